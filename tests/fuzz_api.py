"""API fuzzing (`make fuzz`, part of `make test`): Schemathesis against a live instance, every operation, a staff token.

A throwaway instance under var/fuzz/ (its own SQLite database and files, Redis db 12, no worker: runs stay pending)
with the baseline registered and a few faces imported serves the API on a free port; Schemathesis generates requests
from /api/schema/ for every operation, with a fixed budget and seed so the run is fast and repeatable, and fails on
any 5xx, any response that breaks the schema, an undocumented status code or content type.

    .venv/bin/python tests/fuzz_api.py [--examples 12] [--paths REGEX]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "var" / "fuzz"
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=12, help="generated cases per operation")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--paths", help="only the operations whose path matches this regular expression")
    args = parser.parse_args()

    from tests import csvs

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings.base",
        "VAR_DIR": str(OUT),
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/12",
        "LOG_LEVEL": "ERROR",
        "THROTTLE_UPLOADS": "100000/minute",  # the fuzzer is one client sending hundreds of requests
        "THROTTLE_WRITES": "100000/minute",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    run = lambda *a: subprocess.run([*manage, *a], env=env, cwd=ROOT, check=True, capture_output=True)  # noqa: E731
    run("migrate", "-v0")
    run("bootstrap")
    kp = csvs.keypoints_csv(OUT / "kp.csv", n=6)
    fer = csvs.write(OUT / "fer.csv", csvs.FER_HEADER, [csvs.fer_row(c, 40 + c, "Training") for c in (0, 1, 3, 4, 5)])
    run("import_faces", "--format", "kaggle-keypoints", str(kp), "-v0")
    run("import_faces", "--format", "fer2013", str(fer), "-v0")
    token = (
        subprocess.run(
            [*manage, "shell", "-c", FUZZ_USER],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*manage, "runserver", f"127.0.0.1:{port}", "--noreload", "--nothreading"],
        env=env,
        cwd=ROOT,
        stdout=(OUT / "server.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/schema/", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        command = [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{base}/api/schema/",
            "--checks",
            CHECKS,
            "--max-examples",
            str(args.examples),
            "--seed",
            str(args.seed),
            "--header",
            f"Authorization: Token {token}",
            "--generation-deterministic",
            "--phases",
            "examples,coverage,fuzzing",
            "--request-timeout",
            "30",
            "--suppress-health-check",
            "all",
            *(["--include-path-regex", args.paths] if args.paths else []),
        ]
        print(" ".join(command[:3]), "…", flush=True)
        return subprocess.run(command, cwd=ROOT, env={**os.environ, "NO_COLOR": "1"}).returncode
    finally:
        server.terminate()
        server.wait(timeout=30)


FUZZ_USER = """
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
user = User.objects.create_user("fuzz-staff", password="not-used", is_staff=True)
print(Token.objects.create(user=user).key)
"""


if __name__ == "__main__":
    sys.exit(main())
