"""The real Label Studio, from the package index, in its own virtual environment (its pins differ from ours).

``make interop`` installs it into .venv-label-studio and sets LABEL_STUDIO_BIN; a plain ``pytest`` run without it
skips this folder (``make test`` runs it, so CI does).
"""

import os
import secrets
import socket
import subprocess
import time
import urllib.request

import pytest

BIN = os.path.abspath(os.environ["LABEL_STUDIO_BIN"]) if os.environ.get("LABEL_STUDIO_BIN") else ""
if not BIN:
    pytest.skip("LABEL_STUDIO_BIN is not set: `make interop` installs Label Studio", allow_module_level=True)


from tests.e2e.conftest import browser  # noqa: E402, F401 - the same headless Chromium as the page tests


class LabelStudio:
    def __init__(self, url: str, token: str, email: str, password: str):
        self.url, self.token, self.email, self.password = url, token, email, password

    def call(self, method: str, path: str, **kwargs):
        import requests

        response = requests.request(
            method, self.url + path, headers={"Authorization": f"Token {self.token}"}, timeout=120, **kwargs
        )
        assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text[:500]}"
        return response.json() if response.content else None


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """Label Studio on loopback with a throwaway data directory, an admin and a legacy API token of its own."""
    assert os.path.exists(BIN), f"{BIN} is missing: run `make interop`"
    data = tmp_path_factory.mktemp("label-studio")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token, password = secrets.token_hex(20), secrets.token_urlsafe(12)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(data),
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "LABEL_STUDIO_USERNAME": "admin@example.com",
        "LABEL_STUDIO_PASSWORD": password,
        "LABEL_STUDIO_USER_TOKEN": token,
        # Label Studio 1.23 refuses loopback ML backends and legacy tokens without these
        "SSRF_PROTECTION_ENABLED": "false",
        "USE_DEFAULT_BANNED_SUBNETS": "false",
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "ML_TIMEOUT_HEALTH": "10",
        "ML_TIMEOUT_SETUP": "10",
    }
    log = (data / "label-studio.log").open("w")
    server = subprocess.Popen(
        [BIN, "start", "--no-browser", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)],
        env=env,
        cwd=data,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=5).read()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError((data / "label-studio.log").read_text()[-3000:]) from None
            time.sleep(1)
    yield LabelStudio(url, token, env["LABEL_STUDIO_USERNAME"], password)
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
