"""`make compose-check`: the compose stack built from source and run here, then a smoke test from outside it.

Builds the stack's images (from Debian's packages where no registry is reachable: docker/debian/images.sh), brings up
docker/compose.yaml with docker/compose.host.yaml over it (host networking, loopback ports of its own), and checks, as
a user would, through the proxy only:

1. the demo page and its models load in Chromium;
2. a whole photo uploaded by a labeler finds its face;
3. that labeler saves a label;
4. staff import a small keypoints file and a retrain runs on the worker container; its version appears;
5. the stack stops and starts again with its data kept (the volumes);

then removes the stack's containers, volumes and image (the base images and the build cache stay, so a second run
builds only what changed). Prints the time of each step. Exit status 0 only when every check held.

    .venv/bin/python docker/compose_check.py [--keep] [--public-images]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROJECT = "studio-check"
PORT = int(os.environ.get("STUDIO_PORT", "18080"))
BASE_URL = f"http://127.0.0.1:{PORT}"
LOCAL_IMAGES = {
    "PYTHON_IMAGE": "studio-local/python:3.11-bookworm",
    "REDIS_IMAGE": "studio-local/redis:7-bookworm",
    "POSTGRES_IMAGE": "studio-local/postgres:15-bookworm",
}
APP_IMAGE = "studio-check/app"
IMAGE_LABEL = "org.opencontainers.image.title=emotion-ai-studio"  # docker/Dockerfile
# The worker of this check trains for one epoch: the retrain is checked for running end to end, not for its figure.
CHECK_OVERRIDE = """
services:
  worker:
    environment:
      TRAINING_EPOCHS: "1"
      TRAINING_FINETUNE_EPOCHS: "1"
      PROMOTION_MIN_FACES: "1"
"""


class CheckFailed(AssertionError):
    pass


def step(name: str, started: list[float]) -> None:
    now = time.monotonic()
    print(f"  {now - started[0]:7.1f} s  {name}", flush=True)


def render(env: dict[str, str], folder: Path) -> Path:
    """compose.yaml with compose.host.yaml and this check's worker settings over it, as one file. On the host's
    network a published port is refused (docker: "host" network_mode is incompatible with port_bindings), and an
    override can only add to a list, so the proxy's `ports` are dropped here: it listens on STUDIO_PORT itself."""
    import yaml

    extra = folder / "check.yaml"
    extra.write_text(CHECK_OVERRIDE)
    files = [REPO / "docker" / "compose.yaml", REPO / "docker" / "compose.host.yaml", extra]
    command = ["docker-compose", "-p", PROJECT, *(arg for f in files for arg in ("-f", str(f))), "config"]
    result = subprocess.run(command, env=env, cwd=REPO, text=True, capture_output=True)
    if result.returncode:
        raise CheckFailed(f"docker-compose config failed:\n{result.stderr[-3000:]}")
    config = yaml.safe_load(result.stdout)
    for service in config["services"].values():
        if service.get("network_mode") == "host":
            service.pop("ports", None)
    merged = folder / "compose.check.yaml"
    merged.write_text(yaml.safe_dump(config, sort_keys=False))
    return merged


def compose(env: dict[str, str], stack: Path, *args: str, capture: bool = False) -> str:
    command = ["docker-compose", "-p", PROJECT, "--project-directory", str(REPO / "docker"), "-f", str(stack), *args]
    result = subprocess.run(command, env=env, cwd=REPO, text=True, capture_output=capture)
    if result.returncode:
        raise CheckFailed(f"{' '.join(args)} failed ({result.returncode}):\n{(result.stderr or '')[-3000:]}")
    return result.stdout or ""


def request(method: str, path: str, token: str | None = None, body=None, files=None, timeout: float = 60):
    """One HTTP call through the proxy; returns (status, parsed JSON or text)."""
    headers = {"Accept": "application/json"}
    data = None
    if token:
        headers["Authorization"] = f"Token {token}"
    if files is not None:
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in (body or {}).items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        for name, (filename, content) in files.items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n".encode()
                + content
                + b"\r\n"
            )
        data = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    call = urllib.request.Request(BASE_URL + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(call, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)


def wait_serving(timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            status, _ = request("GET", "/api/models/active/", timeout=5)
            if status == 200:
                return
            last = status
        except OSError as error:
            last = error
        time.sleep(2)
    raise CheckFailed(f"the proxy at {BASE_URL} did not serve within {timeout:.0f} s (last: {last})")


def create_users(env, stack) -> dict[str, str]:
    """A staff user and a labeler with known passwords, made inside the web container (the way an operator does)."""
    passwords = {"check-staff": secrets.token_urlsafe(12), "check-labeler": secrets.token_urlsafe(12)}
    code = (
        "from django.contrib.auth import get_user_model; from django.contrib.auth.models import Group;"
        "from webapp.pages.permissions import LABELERS_GROUP;"
        "User = get_user_model();"
        f"p = {passwords!r};"
        "s, _ = User.objects.get_or_create(username='check-staff', defaults={'is_staff': True});"
        "s.set_password(p['check-staff']); s.save();"
        "l, _ = User.objects.get_or_create(username='check-labeler');"
        "l.set_password(p['check-labeler']); l.save(); l.groups.add(Group.objects.get(name=LABELERS_GROUP))"
    )
    compose(env, stack, "exec", "-T", "web", "python", "manage.py", "shell", "-c", code, capture=True)
    tokens = {}
    for user, password in passwords.items():
        status, body = request("POST", "/api/auth/token/", body={"username": user, "password": password})
        expect(status == 200, f"sign-in of {user}: {status} {body}")
        tokens[user] = body["token"]
    return tokens


def check_demo_page() -> str:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            model_files: list[int] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("response", lambda r: "/model-files/" in r.url and model_files.append(r.status))
            page.goto(BASE_URL + "/")
            page.wait_for_function("window.studio && window.studio.ready === true", timeout=120_000)
            manifest = page.evaluate("window.studio.models.manifest")
            expect(not errors, f"the demo page raised: {errors}")
            expect({"keypoints", "emotion"} <= set(manifest), f"the demo's manifest: {manifest}")
            expect(len(model_files) >= 4 and set(model_files) == {200}, f"model files: {model_files}")
            return (
                f"keypoints v{manifest['keypoints']['version']}, emotion v{manifest['emotion']['version']},"
                f" {len(model_files)} model files"
            )
        finally:
            browser.close()


def photo_bytes() -> bytes:
    from tests.e2e.conftest import astronaut

    out = io.BytesIO()
    astronaut().save(out, "JPEG", quality=92)
    return out.getvalue()


def smoke(env, stack, started) -> dict:
    wait_serving()
    step("serving through the proxy", started)
    tokens = create_users(env, stack)
    staff, labeler = tokens["check-staff"], tokens["check-labeler"]

    served = check_demo_page()
    step(f"demo page ready in Chromium, its models loaded ({served})", started)

    status, body = request("POST", "/api/faces/upload/", labeler, files={"image": ("photo.jpg", photo_bytes())})
    expect(status == 201, f"photo upload: {status} {body}")
    faces = body["faces"] if isinstance(body, dict) and "faces" in body else body
    expect(len(faces) >= 1, f"photo upload found no face: {body}")
    face_id = faces[0]["id"]
    step(f"photo uploaded by the labeler: {len(faces)} face(s) found", started)

    status, body = request("POST", f"/api/faces/{face_id}/annotations/", labeler, body={"emotion": "happiness"})
    expect(status == 201, f"the labeler's label: {status} {body}")
    status, body = request("GET", f"/api/faces/{face_id}/", labeler)
    expect(status == 200, f"face {face_id}: {status} {body}")
    step("the labeler saved a label", started)

    from tests import csvs

    with tempfile.TemporaryDirectory() as folder:
        data = csvs.keypoints_csv(Path(folder) / "keypoints.csv", n=40).read_bytes()
    status, body = request(
        "POST", "/api/datasets/import/", staff, body={"format": "kaggle-keypoints"}, files={"file": ("kp.csv", data)}
    )
    expect(status in (200, 201), f"keypoints import: {status} {body}")
    status, run = request("POST", "/api/training-runs/", staff, body={"kind": "keypoints", "from_scratch": True})
    expect(status == 201, f"retrain: {status} {run}")
    deadline = time.monotonic() + 900
    while run["status"] not in ("succeeded", "failed", "cancelled"):
        expect(time.monotonic() < deadline, f"run {run['id']} still {run['status']} after 900 s")
        time.sleep(3)
        status, run = request("GET", f"/api/training-runs/{run['id']}/", staff)
        expect(status == 200, f"run detail: {status} {run}")
    expect(run["status"] == "succeeded", f"run {run['id']} {run['status']}: {run.get('log', '')[-2000:]}")
    expect(run.get("version") is not None, f"run {run['id']} made no version: {run.get('log', '')[-2000:]}")
    status, versions = request("GET", "/api/models/?kind=keypoints", staff)
    listed = versions["results"] if isinstance(versions, dict) and "results" in versions else versions
    expect(run["version"] in [v["id"] for v in listed], f"version {run['version']} not listed: {versions}")
    step(f"retrain ran on the worker container: run {run['id']} succeeded, v{run['version_number']} listed", started)
    return {"face": face_id, "version": run["version"], "staff": staff}


def after_restart(staff: str, kept: dict) -> None:
    status, face = request("GET", f"/api/faces/{kept['face']}/", staff)
    expect(status == 200, f"face {kept['face']} after the restart: {status} {face}")
    status, version = request("GET", f"/api/models/{kept['version']}/", staff)
    expect(status == 200, f"version {kept['version']} after the restart: {status} {version}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave the stack running (and its volumes) at the end")
    parser.add_argument(
        "--public-images", action="store_true", help="build on python:3.11-slim-bookworm etc. (needs a registry)"
    )
    args = parser.parse_args()

    env = {**os.environ, "SECRET_KEY": secrets.token_urlsafe(50), "STUDIO_IMAGE": APP_IMAGE, "STUDIO_PORT": str(PORT)}
    started = [time.monotonic()]
    if not args.public_images:
        subprocess.run([str(REPO / "docker" / "debian" / "images.sh")], check=True)
        env.update(LOCAL_IMAGES)
        step("base images from Debian's packages", started)
    folder = Path(tempfile.mkdtemp(prefix="compose-check-"))
    stack = render(env, folder)
    ok = False
    try:
        compose(env, stack, "down", "-v", "--remove-orphans", capture=True)  # a stack an interrupted run left
        compose(env, stack, "build", "-q", "web")  # proxy and worker use the same image
        # the image an earlier run left untagged (its layers were this build's cache) goes now
        subprocess.run(["docker", "image", "prune", "-f", "--filter", f"label={IMAGE_LABEL}"], capture_output=True)
        step("app image built", started)
        compose(env, stack, "up", "-d", "--no-build", capture=True)
        kept = smoke(env, stack, started)

        compose(env, stack, "stop", capture=True)
        compose(env, stack, "up", "-d", "--no-build", capture=True)
        wait_serving()
        after_restart(kept["staff"], kept)
        step("stopped and started again: the face and the version are kept", started)
        ok = True
    except CheckFailed as error:
        print(f"compose-check FAILED: {error}", file=sys.stderr)
        logs = compose(env, stack, "logs", "--no-color", "--tail", "40", capture=True)
        print(logs[-8000:], file=sys.stderr)
    finally:
        if not args.keep:
            compose(env, stack, "down", "-v", "--remove-orphans", capture=True)
            subprocess.run(["docker", "rmi", "--no-prune", APP_IMAGE], capture_output=True)
            step(
                "stack removed (containers, volumes, the app image's tag; its layers are the next build's cache)",
                started,
            )
        shutil.rmtree(folder, ignore_errors=True)
    print(f"compose-check {'passed' if ok else 'FAILED'} in {time.monotonic() - started[0]:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
