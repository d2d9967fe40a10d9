"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright against a live Django server."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop in the test thread

CHROMIUM = "/usr/bin/chromium"
POLL_MS = 100


def timer_polled(page):
    """``page.wait_for_function`` checks its condition on a 100 ms timer instead of Playwright's default,
    requestAnimationFrame: animation frames can starve on a loaded machine (the 2-core CI runs the server, TF.js and
    the browser at once), and a label-page check once waited its 30 s with the page long in the state it asked for."""
    wait = page.wait_for_function
    page.wait_for_function = lambda expression, **options: wait(expression, **{"polling": POLL_MS, **options})
    return page


def astronaut(size: int | None = None) -> Image.Image:
    """A real face: NASA's public-domain portrait of Eileen Collins, shipped inside scikit-image."""
    from skimage import data

    image = Image.fromarray(data.astronaut())
    return image.resize((size, size), Image.BICUBIC) if size else image


def write_y4m(path, image: Image.Image, width: int = 640, height: int = 480, frames: int = 2) -> None:
    """A .y4m clip for Chromium's fake camera: the image centred on a black 640x480 frame, 4:2:0 (JPEG range)."""
    canvas = Image.new("RGB", (width, height))
    side = min(width, height)
    canvas.paste(image.resize((side, side), Image.BICUBIC), ((width - side) // 2, 0))
    ycbcr = np.asarray(canvas.convert("YCbCr"), np.float32)
    y = ycbcr[..., 0].astype(np.uint8)
    chroma = [
        ycbcr[..., c].reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3)).round().astype(np.uint8) for c in (1, 2)
    ]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + y.tobytes() + chroma[0].tobytes() + chroma[1].tobytes())


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make test does)")
    from playwright.sync_api import sync_playwright

    clip = tmp_path_factory.mktemp("camera") / "face.y4m"
    write_y4m(clip, astronaut())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-gpu",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={clip}",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def site(live_server, media, settings, transactional_db):
    """The live server with the shipped baseline models registered and active: what a user gets."""
    from webapp.registry.services import baseline_register

    settings.BASELINE_MODELS_DIR = settings.BASE_DIR / "models" / "baseline"
    served = [v for v in baseline_register() if v.number == 1]
    assert len(served) == 2, "the shipped baseline models are missing from models/baseline/"
    return live_server.url


@pytest.fixture
def faces(media, transactional_db):
    from tests import csvs
    from webapp.faces.interchange.services import faces_import

    faces_import(path=csvs.keypoints_csv(media / "kp.csv", n=30), fmt="kaggle-keypoints")


@pytest.fixture
def open_page(browser, site):
    """A fresh browser context per test; every console error fails the test."""
    contexts, errors = [], []

    def open_(path: str = "/", user=None, width: int = 1280):
        context = browser.new_context(viewport={"width": width, "height": 900 if width > 500 else 844})
        contexts.append(context)
        page = timer_polled(context.new_page())
        page.on("console", lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
        if user is not None:
            page.goto(f"{site}/accounts/login/")
            page.fill("input[name=username]", user.username)
            page.fill("input[name=password]", "pw")
            page.click("button.primary")
            page.wait_for_load_state()
        page.goto(f"{site}{path}")
        return page

    open_.expect_error = []  # a test that provokes a failure names the console line it expects
    yield open_
    for context in contexts:
        context.close()
    unexpected = [e for e in errors if not any(expected in e for expected in open_.expect_error)]
    assert unexpected == [], "console errors:\n" + "\n".join(unexpected)


@pytest.fixture
def redis_clean():
    import redis

    redis.Redis.from_url("redis://127.0.0.1:6379/15").flushdb()
