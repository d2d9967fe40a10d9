"""The web role's weight: one gunicorn process of the production role, whole photos uploaded one after another.

    .venv/bin/python bench/light_web.py [--uploads 50] [--frames ../shared/data/frames/images]

A throwaway production instance in bench/out/light_web/ (SQLite, the local Redis as its cache, the shipped baselines
active), gunicorn with webapp/gunicorn.py and one process, warmed with one request (the token sign-in). Then whole
photos (the frames' JPEGs, else the test's two-face photo) are sent to POST /api/faces/upload/ as a labeler would.
It prints the process's resident memory (RSS, from /proc) before, after the first upload and after the last, the
first upload's time and the median of the rest, and whether TensorFlow was ever mapped into the process.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from instance import production_env

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "light_web"
FRAMES = ROOT.parent / "shared" / "data" / "frames" / "images"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def upload(url: str, token: str, name: str, data: bytes) -> tuple[int, dict, float]:
    """POST one picture to /api/faces/upload/ as ``token``'s user: (status, answer, seconds)."""
    body, content_type = multipart(name, data)
    request = urllib.request.Request(
        f"{url}/api/faces/upload/",
        data=body,
        headers={"Content-Type": content_type, "Authorization": f"Token {token}"},
    )
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status, answer = response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        status, answer = exc.code, {}
    return status, answer, time.perf_counter() - start


def photos(folder: Path, count: int) -> list[tuple[str, bytes]]:
    files = sorted(folder.glob("*.jpg"))[:count] if folder.is_dir() else []
    if files:
        return [(f.name, f.read_bytes()) for f in files]
    sys.path.insert(0, str(ROOT))
    from tests.ml.test_detect import group_photo

    out = io.BytesIO()
    group_photo().save(out, "JPEG")
    return [("two.jpg", out.getvalue())] * count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--frames", type=Path, default=FRAMES)
    args = parser.parse_args()

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = production_env(OUT, port, WEB_CONCURRENCY="1", THROTTLE_UPLOADS="100000/minute", LOG_LEVEL="WARNING")
    for command in (["migrate", "-v0"], ["bootstrap"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:webapp.gunicorn", "webapp.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=(OUT / "gunicorn.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        user, password = (OUT / "admin-password.txt").read_text().split()
        login = json.dumps({"username": user, "password": password}).encode()
        deadline = time.monotonic() + 60
        while True:
            try:  # warm: the sign-in is the process's first request served
                request = urllib.request.Request(
                    f"{url}/api/auth/token/", data=login, headers={"Content-Type": "application/json"}
                )
                token = json.loads(urllib.request.urlopen(request, timeout=30).read())["token"]
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((OUT / "gunicorn.log").read_text()[-3000:]) from None
                time.sleep(0.3)
        (worker,) = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
        worker = int(worker)
        rss = {"warm, before any upload": rss_mb(worker)}
        times, faces, statuses = [], 0, {}
        for i, (name, data) in enumerate(photos(args.frames, args.uploads)):
            status, answer, seconds = upload(url, token, name, data)
            times.append(seconds)
            statuses[status] = statuses.get(status, 0) + 1
            faces += len(answer.get("faces", []))
            if i == 0:
                rss["after the first upload"] = rss_mb(worker)
        rss[f"after {len(times)} uploads"] = rss_mb(worker)
        maps = Path(f"/proc/{worker}/maps").read_text()
        report = {
            "role": "webapp.settings.production under gunicorn (webapp/gunicorn.py), 1 process, SQLite",
            "photos": str(args.frames) if args.frames.is_dir() else "the tests' two-face photo",
            "uploads": len(times),
            "statuses": statuses,
            "faces_returned": faces,
            "rss_mb": {k: round(v, 1) for k, v in rss.items()},
            "first_upload_s": round(times[0], 3),
            "later_uploads_median_s": round(statistics.median(times[1:]), 3) if len(times) > 1 else None,
            "tensorflow_mapped": "tensorflow" in maps,
            "litert_mapped": "ai_edge_litert" in maps,
        }
        print(json.dumps(report, indent=2))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
