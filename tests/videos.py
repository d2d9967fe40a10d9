"""Small real video files written by the tests themselves (PyAV's encoders): a face moved, zoomed or still over a
scene, two faces crossing, a clip with no face, broken files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def face_portrait() -> Image.Image:
    """The astronaut's head and shoulders (tests.e2e.conftest.astronaut), square: the face fills a third of it."""
    from tests.e2e.conftest import astronaut

    return astronaut().crop((100, 0, 360, 260))


# (time s) -> [(x, y, side) of each face's square in the frame]
Placement = Callable[[float], list[tuple[float, float, float]]]


def write_clip(
    path: Path,
    faces: list[Image.Image],
    placement: Placement,
    *,
    seconds: float = 2.0,
    fps: int = 30,
    size: tuple[int, int] = (640, 360),
    codec: str | None = None,
    background: int = 40,
    noise: float = 0.0,
) -> Path:
    """An H.264 mp4 (or VP8 webm by the suffix) where face i is pasted at placement(t)[i] on a grey scene;
    ``noise``: a camera's sensor noise, the standard deviation in grey levels, new in every frame."""
    import av

    codec = codec or ("libvpx" if path.suffix == ".webm" else "libx264")
    width, height = size
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "veryfast", "g": "30"}
        else:
            stream.bit_rate = 2_000_000
        for i in range(round(seconds * fps)):
            canvas = Image.new("RGB", size, (background,) * 3)
            for face, (x, y, side) in zip(faces, placement(i / fps), strict=False):
                canvas.paste(face.resize((round(side), round(side)), Image.BICUBIC), (round(x), round(y)))
            pixels = np.asarray(canvas, np.float32)
            if noise:
                pixels = pixels + rng.normal(0, noise, pixels.shape)
            frame = av.VideoFrame.from_ndarray(np.clip(pixels, 0, 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def still(x: float = 200, y: float = 40, side: float = 260) -> Placement:
    return lambda t: [(x, y, side)]


def moving(speed: float = 60.0, side: float = 220) -> Placement:
    """One face sliding right at ``speed`` px/s, at ordinary speed for a person in a webcam."""
    return lambda t: [(60 + speed * t, 60, side)]


def crossing(seconds: float, width: int = 1280, side: float = 300, below: float = 400) -> Placement:
    """Two people crossing paths at walking pace: one left to right above, the other right to left below."""
    span = width - side
    return lambda t: [(span * t / seconds, 10, side), (span * (1 - t / seconds), below, side)]


def crossing_clip(path: Path, seconds: float) -> Path:
    """Two people (the portrait and its mirror image) crossing a 1280x720 frame in ``seconds``."""
    from PIL import Image

    face = face_portrait()
    faces = [face, face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return write_clip(path, faces, crossing(seconds), seconds=seconds, size=(1280, 720))


def audio_only(path: Path, seconds: float = 1.0) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = int(16000 * seconds)
        t = np.arange(samples) / 16000
        frame = av.AudioFrame.from_ndarray(
            (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], format="fltp", layout="mono"
        )
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
