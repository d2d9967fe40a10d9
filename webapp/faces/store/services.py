"""Writes of the face store: pictures and their faces, content-addressed. Nothing here knows how faces are labeled."""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from ml.datasets import checksum
from ml.schema import IMAGE_SIZE
from webapp.faces.store import images
from webapp.faces.store.models import Face


def file_write_once(path: Path, data: bytes) -> None:
    """Content-addressed, so an existing file already holds these bytes; a new one appears whole (a private temporary
    file renamed into place), also when several requests write it at once."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def frame_write(frame: np.ndarray, digest: str) -> str:
    relative = f"faces/{digest[:2]}/{digest}.png"
    file_write_once(Path(settings.MEDIA_ROOT) / relative, images.png_bytes(frame))
    return relative


def split_for(*, digest: str, group: str = "") -> str:
    """The fixed validation split of faces that bring none, never re-drawn: a stable hash of the face's group (every
    face of a person or photo batch on one side), or of the face itself when it has no group."""
    from ml.datasets import group_held_out

    held_out = group_held_out(np.array([group or digest]), settings.TRAINING_VAL_PERCENT / 100)[0]
    return Face.Split.VAL if held_out else Face.Split.TRAIN


def picture_store(data: bytes, fmt: str) -> str:
    """Keep a picture faces were found in, once per file (named by its checksum, never under a public URL: the API
    serves it to signed-in labelers and staff). Returns its path relative to MEDIA_ROOT."""
    digest = hashlib.sha256(data).hexdigest()
    relative = f"originals/{digest[:2]}/{digest}.{images.EXTENSIONS[fmt]}"
    file_write_once(Path(settings.MEDIA_ROOT) / relative, data)
    return relative


def _faces_store(
    found: list[tuple[np.ndarray, list | None]], *, picture: tuple[bytes, str] | None, filename: str, author, group: str
) -> list[tuple[Face, bool]]:
    """Store each (96x96 frame, its box in the picture or None); the same pixels are one face (the first stored)."""
    original = None
    results = []
    for frame, box in found:
        digest = checksum(frame)
        existing = Face.objects.filter(checksum=digest).first()
        if existing:
            results.append((existing, False))
            continue
        if original is None and picture is not None:
            original = picture_store(*picture)
        try:
            with transaction.atomic():
                face = Face.objects.create(
                    checksum=digest,
                    image=frame_write(frame, digest),
                    original=original or "",
                    box=box if original else None,
                    source=Face.Source.UPLOAD,
                    source_name=Path(filename or "upload").name[:200],
                    split=split_for(digest=digest, group=group),
                    group=group,
                    created_by=author,
                )
        except IntegrityError:  # the same picture sent at the same moment by someone else: one face, theirs
            results.append((Face.objects.get(checksum=digest), False))
            continue
        results.append((face, True))
    return results


def face_upload(*, data: bytes, filename: str, author, group: str = "") -> list[tuple[Face, bool]]:
    """Store an uploaded photo as one face per face in it. Returns [(face, created)]; the same pixels are one face.

    ``group``: the person or session the photo shows (a batch of photos of one sitting); without one, the faces of a
    photo form its group, so they stay on one side of every split.

    A 96x96 picture is taken as a face already cut in the product's framing (its own original, the whole of it its
    box); any other picture goes through detection and alignment (store.detection), is kept as the faces' original
    with each face's box, and one with no face raises UnprocessableImage.
    """
    image, fmt = images.decode_upload(data)
    group = group.strip() or f"photo:{hashlib.sha256(data).hexdigest()[:16]}"
    if image.size == (IMAGE_SIZE, IMAGE_SIZE):
        whole = [[0.0, 0.0], [float(IMAGE_SIZE), 0.0], [float(IMAGE_SIZE), float(IMAGE_SIZE)], [0.0, float(IMAGE_SIZE)]]
        return _faces_store(
            [(images.to_frame(image), whole)], picture=(data, fmt), filename=filename, author=author, group=group
        )
    from webapp.faces.store.detection import face_crops

    return _faces_store(face_crops(image), picture=(data, fmt), filename=filename, author=author, group=group)


def _finite(value) -> bool:
    """A JSON number a picture's pixels can be: not a bool, not NaN or infinite, not an integer beyond any float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, int):
        return abs(value) < 10**15
    return math.isfinite(value)


def _box(value, where: str, width: int, height: int) -> list[list[float]]:
    """A face's box as the browser sends it: four [x, y] corners, finite, near the picture (a crop may reach past its
    edge, as a face at the border does, but not further than the picture is wide or high)."""
    message = f"{where} must be four [x, y] corners of the face's crop in the picture"
    if not isinstance(value, list) or len(value) != 4:
        raise ValidationError({"boxes": [message]})
    corners = []
    for corner in value:
        if not (isinstance(corner, list) and len(corner) == 2):
            raise ValidationError({"boxes": [message]})
        x, y = corner
        if any(not _finite(v) for v in (x, y)):
            raise ValidationError({"boxes": [f"{where}: corners are finite numbers, got {corner!r}"]})
        if not (-width <= x <= 2 * width and -height <= y <= 2 * height):
            raise ValidationError(
                {"boxes": [f"{where}: corner {corner!r} lies far outside the {width}x{height} picture"]}
            )
        corners.append([round(float(x), 2), round(float(y), 2)])
    return corners


def faces_upload_crops(
    *,
    crops: list[bytes],
    filename: str,
    author,
    group: str = "",
    picture: bytes | None = None,
    boxes: list | None = None,
) -> list[tuple[Face, bool]]:
    """The faces of one picture as the browser cut them (96x96 each, the stored framing), stored in one request under
    the picture's name; without a ``group`` they share the picture's.

    ``picture``: the picture itself, which the person chose to send with its faces: kept once (by checksum) as every
    face's original, with ``boxes`` (one per crop, its four corners in the picture's pixels). Everything is checked
    before anything is stored: a crop of another size, a picture that is not an image, boxes that do not fit.
    """
    for i, data in enumerate(crops):
        image, _ = images.decode_upload(data)
        if image.size != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValidationError({"crops": [f"crop {i + 1} is {image.width}x{image.height}; crops are 96x96 faces"]})
    stored_picture = None
    corners: list = [None] * len(crops)
    if picture is not None:
        image, fmt = images.decode_upload(picture)
        if boxes is None or len(boxes) != len(crops):
            raise ValidationError({"boxes": [f"send one box per crop with the picture: {len(crops)} crops"]})
        corners = [_box(box, f"box {i + 1}", image.width, image.height) for i, box in enumerate(boxes)]
        stored_picture = (picture, fmt)
    elif boxes is not None:
        raise ValidationError({"boxes": ["boxes say where the crops lie in a picture: send the picture with them"]})
    group = group.strip() or f"photo:{hashlib.sha256(picture or b''.join(crops)).hexdigest()[:16]}"
    if stored_picture is None:  # without the picture each crop is its own original, as an uploaded 96x96 face is
        return [r for data in crops for r in face_upload(data=data, filename=filename, author=author, group=group)]
    found = [(images.to_frame(images.decode_upload(data)[0]), box) for data, box in zip(crops, corners, strict=True)]
    return _faces_store(found, picture=stored_picture, filename=filename, author=author, group=group)


MIN_BOX_SIDE = 12  # px: a smaller box holds no face the models can read


def face_add_in_photo(*, face: Face, box, author) -> tuple[Face, bool]:
    """A face the detector missed in ``face``'s picture, boxed by a person: cut through the same alignment as a detected
    one (``detection.face_in_box``) and stored with the picture as its original, in the face's group (one person's
    photo stays on one side of every split). Returns (face, created); a box that holds the pixels of a stored face
    returns that face."""
    if not face.original:
        raise ValidationError({"box": [f"face {face.pk} has no picture kept: nothing to draw a face in"]})
    data = (Path(settings.MEDIA_ROOT) / face.original).read_bytes()
    image, fmt = images.decode_upload(data)
    if not isinstance(box, list | tuple) or len(box) != 4:
        raise ValidationError({"box": ["send the box as [x, y, width, height] in the picture's pixels"]})
    if not all(_finite(v) for v in box):
        raise ValidationError({"box": [f"the box's values are finite numbers, got {box!r}"]})
    x, y, w, h = (float(v) for v in box)
    if w < MIN_BOX_SIDE or h < MIN_BOX_SIDE:
        raise ValidationError({"box": [f"the box is {w:.0f}x{h:.0f} px; draw it at least {MIN_BOX_SIDE} px a side"]})
    if x < 0 or y < 0 or x + w > image.width or y + h > image.height:
        raise ValidationError(
            {"box": [f"the box [{x:.0f}, {y:.0f}, {w:.0f}, {h:.0f}] leaves the {image.width}x{image.height} picture"]}
        )
    from webapp.faces.store.detection import face_in_box

    frame, corners = face_in_box(image, (x, y, w, h))
    return _faces_store(
        [(frame, corners)], picture=(data, fmt), filename=face.source_name, author=author, group=face.group
    )[0]
