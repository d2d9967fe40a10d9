from tests.training.conftest import dirs, redis_broker, start_worker  # noqa: F401 - the real worker's fixtures
