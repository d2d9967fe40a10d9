"""The production role as compose runs it: production settings, collectstatic, gunicorn with webapp/gunicorn.py.

Every page's CSS and JS (and the import map's modules) answer 200 with their content type, under hashed names that
are cached for a year, and the demo runs in Chromium with no console error, offline. A whole photo is detected and
aligned in the web process without TensorFlow in it (LiteRT).
"""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import REPO_ROOT
from tests.e2e.conftest import timer_polled

pytestmark = [pytest.mark.browser]

PAGES = ["/", "/accounts/login/", "/label/", "/import/", "/models/", "/api/docs/"]
TYPES = {".css": "text/css", ".js": "text/javascript", ".mjs": "text/javascript"}


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.in_import_map = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "link" and attrs.get("rel") == "stylesheet":
            self.urls.append(attrs["href"])
        elif tag == "script" and attrs.get("src"):
            self.urls.append(attrs["src"])
        self.in_import_map = tag == "script" and attrs.get("type") == "importmap"

    def handle_data(self, data):
        if self.in_import_map:
            self.urls += re.findall(r'"(/static/[^"]+)"', data)

    def handle_endtag(self, tag):
        self.in_import_map = False


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_serving(url: str, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    """Until ``url`` answers; the process's log if it died or never answered."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/models/active/", timeout=5)
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text()[-3000:]) from None
            time.sleep(0.3)


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    """A production instance of its own: SQLite and files in a temporary folder, the local Redis as its cache."""
    var = tmp_path_factory.mktemp("production")
    port = _port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings.production",
        "SECRET_KEY": "test-" + "k" * 50,
        "ALLOWED_HOSTS": "localhost,127.0.0.1",
        "CACHE_URL": "redis://127.0.0.1:6379/14",
        "SECURE_SSL_REDIRECT": "false",
        "VAR_DIR": str(var),
        "DATABASE_URL": f"sqlite:///{var}/db.sqlite3",
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    import redis

    redis.Redis.from_url(env["CACHE_URL"]).flushdb()  # throttle counts of an earlier run's users (same ids) are gone
    for command in (["migrate", "-v0"], ["bootstrap"], ["collectstatic", "--noinput", "-v0"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=REPO_ROOT, env=env, check=True, timeout=600)
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:webapp.gunicorn", "webapp.wsgi"],
        cwd=REPO_ROOT,
        env=env,
        stdout=(var / "gunicorn.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://localhost:{port}"
    _wait_serving(url, server, var / "gunicorn.log")
    yield SimpleNamespace(url=url, pid=server.pid, var=var, env=env)
    server.terminate()
    server.wait(timeout=30)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.headers, response.read()


def test_every_pages_css_and_js_loads_under_a_hashed_name_cached_for_a_year(production):
    seen = set()
    for page in PAGES:
        status, _, body = _get(production.url + page)  # the staff pages show the sign-in page, with the same assets
        assert status == 200, page
        parser = _Assets()
        parser.feed(body.decode())
        assert parser.urls, f"{page} links no CSS or JS"
        seen.update(parser.urls)
    ours = [u for u in seen if u.startswith("/static/")]
    assert any(u.startswith("/static/css/app.") for u in ours) and any("tf.fesm.min." in u for u in ours)
    for url in ours:
        status, headers, body = _get(production.url + url)
        extension = os.path.splitext(url)[1]
        assert status == 200 and body, url
        assert headers["Content-Type"].startswith(TYPES[extension]), (url, headers["Content-Type"])
        if re.search(r"\.[0-9a-f]{12}\.(css|js)$", url):
            assert "max-age=315360000" in headers["Cache-Control"], (url, headers["Cache-Control"])
    hashed = [u for u in ours if re.search(r"\.[0-9a-f]{12}\.(css|js)$", u)]
    assert len(hashed) == len(ours), set(ours) - set(hashed)


def test_the_demo_runs_in_chromium_with_no_console_error(production, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    errors = []
    try:
        page = timer_polled(context.new_page())
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"{r.url}: {r.failure}"))
        page.goto(production.url + "/")
        try:
            page.wait_for_function("window.studio && window.studio.ready === true", timeout=60_000)
        except Exception:
            raise AssertionError(f"the demo never got ready: {errors}") from None
        assert page.locator("#backend").inner_text() == "wasm"
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") != "rgba(0, 0, 0, 0)"
        for path in ("/label/", "/models/"):
            page.goto(production.url + path)  # signed out: the sign-in page, styled
            page.wait_for_load_state("networkidle")
    finally:
        context.close()
    assert errors == []


def _upload_request(production, token: str, name: str, data: bytes, content_type: str) -> urllib.request.Request:
    """POST /api/faces/upload/ with one picture as multipart ``image``."""
    import uuid

    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    )
    return urllib.request.Request(
        production.url + "/api/faces/upload/",
        data=head.encode() + data + f"\r\n--{boundary}--\r\n".encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": f"Token {token}"},
    )


def _token(production) -> str:
    import json

    user, password = (production.var / "admin-password.txt").read_text().split()
    request = urllib.request.Request(
        production.url + "/api/auth/token/",
        data=json.dumps({"username": user, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["token"]


def test_photos_and_the_staff_pages_run_without_tensorflow_in_the_web_process(production):
    import io
    import json

    from tests.ml.test_detect import group_photo

    photo = io.BytesIO()
    group_photo().save(photo, "JPEG")
    token = _token(production)
    for _ in range(2):  # WEB_CONCURRENCY is 2: each process is likely to serve one
        request = _upload_request(production, token, "two.jpg", photo.getvalue(), "image/jpeg")
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status in (200, 201)
            assert len(json.loads(response.read())["faces"]) == 2
    # the staff pages' reads too: planning a retrain once loaded TensorFlow into the web process (ml.train)
    for path in (
        "/api/training-runs/plan/?kind=keypoints",
        "/api/training-runs/plan/?kind=emotion",
        "/api/models/",
        "/api/training-runs/",
        "/api/labeling/agreement/",
        "/api/datasets/export/label-studio/",
    ):
        for _ in range(2):
            request = urllib.request.Request(production.url + path, headers={"Authorization": f"Token {token}"})
            with urllib.request.urlopen(request, timeout=60) as response:
                assert response.status == 200, path
    children = subprocess.run(["pgrep", "-P", str(production.pid)], capture_output=True, text=True).stdout.split()
    assert children, "no gunicorn worker process"
    mapped = {pid: Path(f"/proc/{pid}/maps").read_text() for pid in children}
    assert any("ai_edge_litert" in maps for maps in mapped.values()), "no process ran the photo with LiteRT"
    for pid, maps in mapped.items():
        assert "tensorflow" not in maps, f"gunicorn worker {pid} loaded TensorFlow"


def test_the_upload_throttle_holds_across_the_web_processes(production):
    """THROTTLE_UPLOADS (30/minute) counts in the shared cache: two processes let one user through 30 times, not 60."""
    import io
    import json

    from PIL import Image

    script = (
        "from django.contrib.auth.models import Group, User; from rest_framework.authtoken.models import Token; "
        "u = User.objects.create_user('throttled'); u.groups.add(Group.objects.get_or_create(name='labelers')[0]); "
        "print(Token.objects.create(user=u).key)"
    )
    token = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=REPO_ROOT,
        env=production.env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    statuses = []
    for i in range(40):
        face = io.BytesIO()
        Image.new("L", (96, 96), i).save(face, "PNG")
        # a new connection each time: the processes take turns
        request = _upload_request(production, token, f"f{i}.png", face.getvalue(), "image/png")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                statuses.append(response.status)
                json.loads(response.read())
        except urllib.error.HTTPError as exc:
            statuses.append(exc.code)
    assert statuses.count(201) + statuses.count(200) == 30 and statuses.count(429) == 10, statuses


@pytest.fixture(scope="module")
def proxied(production):
    """nginx in front of the production instance, configured by ``manage.py proxy_config`` (a 2 s header budget here,
    so that the test waits 2 s, not the default 10)."""
    nginx = "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is missing: `make pytest` installs Debian's nginx-light"
    port = _port()
    env = {**production.env, "REQUEST_HEADER_SECONDS": "2"}
    conf = production.var / "nginx.conf"
    listen, upstream = f"127.0.0.1:{port}", production.env["BIND"]
    user = ["--user", "root"] if os.geteuid() == 0 else []
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "proxy_config",
            "--listen",
            listen,
            "--upstream",
            upstream,
            "--out",
            str(conf),
            *user,
        ],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    text = conf.read_text()
    front = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", str(production.var / "nginx"), "-g", "daemon off;"],
        stdout=(production.var / "nginx.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://localhost:{port}"
    _wait_serving(url, front, production.var / "nginx.log")
    yield SimpleNamespace(url=url, port=port, conf=text)
    front.terminate()
    front.wait(timeout=30)


def test_the_proxy_cuts_a_dripping_client_while_every_gunicorn_worker_stays_free(production, proxied):
    """Slowloris: more dripping connections than gunicorn has workers. Through the proxy, the other requests answer
    at once and the slow ones are cut at the header budget; straight to gunicorn, they would hold every worker
    (bench/slowloris.py measures both)."""
    workers = int(production.env["WEB_CONCURRENCY"])
    slow = []
    for _ in range(workers * 3):
        sock = socket.create_connection(("127.0.0.1", proxied.port), timeout=10)
        sock.sendall(b"GET /api/models/active/ HTTP/1.1\r\nHost: localhost\r\n")  # and never the blank line
        slow.append(sock)
    started = time.monotonic()
    for _ in range(5):  # the others are served meanwhile, quickly
        with urllib.request.urlopen(f"{proxied.url}/api/models/active/", timeout=5) as response:
            assert response.status == 200
    assert time.monotonic() - started < 5
    for sock in slow:  # a header line a second keeps each alive no longer than the header budget (2 s here)
        cut_at = None
        while cut_at is None and time.monotonic() - started < 10:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
                sock.settimeout(1.0)
                if sock.recv(1024) == b"":
                    cut_at = time.monotonic() - started
            except TimeoutError:
                continue
            except OSError:
                cut_at = time.monotonic() - started
        assert cut_at is not None and cut_at < 6, f"a slow client held on for {time.monotonic() - started:.1f} s"
        sock.close()


def test_the_proxys_limits_are_the_apps_own(production, proxied):
    """One place for each limit: the proxy's body size is the app's largest upload, its timeouts webapp/limits.py."""
    from django.conf import settings

    from webapp import limits

    sizes = [int(m) for m in re.findall(r"client_max_body_size (\d+)m;", proxied.conf)]
    largest = max(
        settings.IMPORT_MAX_BYTES, settings.LABEL_STUDIO_IMPORT_MAX_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    )
    assert 0 <= sizes[0] * 1024**2 - largest < 1024**2  # the app's largest, rounded up to a MiB
    assert 0 <= sizes[1] * 1024**2 - settings.RECORDING_MAX_UPLOAD_BYTES < 1024**2  # the video upload's own
    assert "client_header_timeout 2s;" in proxied.conf
    assert f"proxy_read_timeout {limits.REQUEST_SECONDS:g}s;" in proxied.conf
    # a body over the limit is refused by the proxy before gunicorn reads a byte of it
    too_long = {"Content-Length": str(sizes[0] * 2**20 + 1)}
    request = urllib.request.Request(f"{proxied.url}/api/faces/upload/", data=b"x", method="POST", headers=too_long)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 413
