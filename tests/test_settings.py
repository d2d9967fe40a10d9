import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


def _check(**env):
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "ALLOWED_HOSTS", "CACHE_URL")}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO_ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "webapp.settings.production", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION_ENV = {"SECRET_KEY": "k" * 60, "ALLOWED_HOSTS": "studio.example", "CACHE_URL": "redis://127.0.0.1:6379/1"}


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS", "CACHE_URL"])
def test_production_refuses_to_start_without_its_environment(missing):
    env = dict(PRODUCTION_ENV)
    env.pop(missing)
    done = _check(**env)
    assert done.returncode != 0
    assert "production settings need SECRET_KEY, ALLOWED_HOSTS and CACHE_URL" in done.stderr and missing in done.stderr


@pytest.mark.parametrize("cache", ["locmemcache://", "dummycache://"])
def test_production_refuses_a_cache_each_process_keeps_to_itself(cache):
    """Throttles count in the cache: with one per gunicorn process, N processes let a user through N times."""
    done = _check(**{**PRODUCTION_ENV, "CACHE_URL": cache})
    assert done.returncode != 0 and "CACHE_URL must name a cache shared by every process" in done.stderr
    assert _check(**PRODUCTION_ENV).returncode == 0


def test_broker_falls_back_to_sqlite_when_no_redis_answers(monkeypatch):
    from webapp.settings import base

    assert base._redis_answers("127.0.0.1", 1) is False  # nothing listens on port 1
    assert base.SQLITE_BROKER_URL.startswith("sqla+sqlite:///")


def _setting(name: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", f"from webapp.settings import base; print(repr(base.{name}))"],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_number_settings_read_exponents_and_name_a_bad_value():
    done = _setting("TRAINING_FINETUNE_LEARNING_RATE", TRAINING_FINETUNE_LEARNING_RATE="1e-4")
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == 1e-4
    done = _setting("PROMOTION_MARGIN_ACCURACY", PROMOTION_MARGIN_ACCURACY="a lot")
    assert done.returncode != 0
    assert "PROMOTION_MARGIN_ACCURACY must be a number such as 0.01 or 1e-4, got 'a lot'" in done.stderr


def test_the_domain_blend_is_the_recipes_unless_set_and_a_blend_out_of_range_is_refused(settings):
    from ml.recipes import DOMAIN_RECIPES
    from webapp.training.services import domain_recipe

    assert domain_recipe("emotion").blend == DOMAIN_RECIPES["emotion"].blend == 0.5
    settings.TRAINING_DOMAIN_BLEND = 1.0
    assert domain_recipe("emotion").blend == 1.0
    done = _setting("TRAINING_DOMAIN_BLEND", TRAINING_DOMAIN_BLEND="1.5")
    assert done.returncode != 0 and "TRAINING_DOMAIN_BLEND must be in (0, 1], got 1.5" in done.stderr


@pytest.mark.django_db
def test_one_sign_in_page_and_a_quiet_403(client, caplog):
    from tests import factories

    for protected in ("/label/", "/models/", "/import/", "/admin/"):
        response = client.get(protected, follow=True)
        assert response.redirect_chain[-1][0].startswith("/accounts/login/?next="), (protected, response.redirect_chain)
        assert b"Sign in" in response.content
    client.force_login(factories.user("labeler"))
    with caplog.at_level("WARNING", logger="django.request"):
        response = client.get("/models/")
    assert response.status_code == 403 and b"Staff only." in response.content
    assert client.get("/import/").status_code == 403
    assert not any(record.exc_info for record in caplog.records)  # an ordinary refusal, not a traceback


def test_the_web_role_serves_with_its_gunicorn_settings(tmp_path):
    """`gunicorn -c python:webapp.gunicorn webapp.wsgi` (Dockerfile, compose, the load benchmark) starts and answers."""
    import http.client
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1", "VAR_DIR": str(tmp_path)}
    env["DJANGO_SETTINGS_MODULE"] = "webapp.settings.base"
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:webapp.gunicorn", "webapp.wsgi"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/api/no-such-route/")
                response = conn.getresponse()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, server.stderr.read()
                time.sleep(0.3)
        assert response.status == 404 and response.getheader("Content-Type") == "application/json"
        assert response.getheader("Connection") != "close"  # kept alive between a labeler's requests
    finally:
        server.terminate()
        server.wait(timeout=30)
