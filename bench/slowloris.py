"""Slow clients against the web role, with and without the proxy: N connections that each send one header line every
few seconds and never finish (slowloris), while another client times ordinary requests.

    .venv/bin/python bench/slowloris.py [--connections 50] [--seconds 60]

Starts a production instance of its own (gunicorn as webapp/gunicorn.py sets it, its SQLite and files in a temporary
folder, the local Redis as cache) and nginx in front of it from ``manage.py proxy_config``; runs the attack on gunicorn
directly, then through nginx, and prints the other requests' p50/p99 and how many failed (timed out after 5 s).
Needs nginx (Debian's package: `apt-get install nginx-light`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from instance import production_env

ROOT = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text()[-3000:]) from None
            time.sleep(0.3)


def drip(port: int, stop: threading.Event, every: float) -> None:
    """One slowloris connection: a request line, then a header line every ``every`` seconds, never the end."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /api/models/active/ HTTP/1.1\r\nHost: localhost\r\n")
        while not stop.wait(every):
            sock.sendall(b"X-Slow: 1\r\n")
    except OSError:
        pass  # cut by the server: what a proxy should do


def measure(url: str, seconds: float, connections: int, port: int, every: float) -> dict:
    stop = threading.Event()
    slow = [threading.Thread(target=drip, args=(port, stop, every), daemon=True) for _ in range(connections)]
    for thread in slow:
        thread.start()
    time.sleep(1.0)  # the slow connections are in place
    times, failed, ends = [], 0, time.monotonic() + seconds
    while time.monotonic() < ends:
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
            times.append(time.monotonic() - started)
        except OSError:
            failed += 1
        time.sleep(0.2)
    stop.set()
    times.sort()
    pick = lambda q: round(1000 * times[min(len(times) - 1, int(q * len(times)))]) if times else None  # noqa: E731
    return {"requests": len(times) + failed, "failed": failed, "p50_ms": pick(0.5), "p99_ms": pick(0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between a slow client's header lines")
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    var = Path(tempfile.mkdtemp(prefix="slowloris-"))
    web, proxy = _port(), _port()
    env = production_env(var, web, TRUSTED_PROXIES="127.0.0.1")
    manage = [sys.executable, str(ROOT / "manage.py")]
    for command in (["migrate", "-v0"], ["bootstrap"], ["collectstatic", "--noinput", "-v0"]):
        subprocess.run([*manage, *command], cwd=ROOT, env=env, check=True, capture_output=True)
    conf = var / "nginx.conf"
    listen, upstream = f"127.0.0.1:{proxy}", f"127.0.0.1:{web}"
    user = ["--user", "root"] if os.geteuid() == 0 else []
    subprocess.run([*manage, "proxy_config", "--listen", listen, "--upstream", upstream, "--out", str(conf), *user],
                   cwd=ROOT, env=env, check=True, capture_output=True)  # fmt: skip
    logs = {name: (var / f"{name}.log").open("w") for name in ("gunicorn", "nginx")}
    gunicorn = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "python:webapp.gunicorn", "webapp.wsgi"],
                                cwd=ROOT, env=env, stdout=logs["gunicorn"], stderr=subprocess.STDOUT)  # fmt: skip
    front = subprocess.Popen([nginx, "-c", str(conf), "-p", str(var / "nginx"), "-g", "daemon off;"],
                             stdout=logs["nginx"], stderr=subprocess.STDOUT)  # fmt: skip
    try:
        _wait(f"http://localhost:{web}/api/models/active/", gunicorn, var / "gunicorn.log")
        _wait(f"http://localhost:{proxy}/api/models/active/", front, var / "nginx.log")
        workers = len(subprocess.run(["pgrep", "-P", str(gunicorn.pid)], capture_output=True, text=True).stdout.split())
        slow = f"{args.connections} slow connections, a header line every {args.every:g} s"
        print(f"gunicorn: {workers} workers; {slow},")
        print(f"{args.seconds:g} s each; other requests: GET /api/models/active/ every 0.2 s, 5 s timeout")
        for name, port in (("gunicorn directly", web), ("through nginx", proxy)):
            figures = measure(f"http://localhost:{port}/api/models/active/", args.seconds, args.connections, port,
                              args.every)  # fmt: skip
            print(f"  {name:18} {figures}")
            time.sleep(args.every + 1)  # the last slow connections are gone before the next round
    finally:
        for process in (front, gunicorn):
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    main()
