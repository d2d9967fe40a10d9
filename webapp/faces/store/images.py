"""Decoding untrusted uploads, and the 96x96 greyscale frame every face is stored in."""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image, ImageOps

from ml.schema import IMAGE_SIZE

# MPO: the multi-picture JPEG many phones save; its first picture is the photo.
EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp"}
ALLOWED_FORMATS = set(EXTENSIONS)


def decode_upload(data: bytes) -> tuple[Image.Image, str]:
    """Bytes of an uploaded file -> (fully decoded image, its format), or ValidationError saying what is wrong."""
    max_bytes, max_pixels = settings.UPLOAD_MAX_BYTES, settings.UPLOAD_MAX_PIXELS
    if not data:
        raise ValidationError({"image": ["The file is empty."]})
    if len(data) > max_bytes:
        raise ValidationError(
            {"image": [f"The file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB."]}
        )
    # Pillow checks the pixel count from the header, before decoding: past MAX_IMAGE_PIXELS (set to our limit by
    # FacesConfig.ready) it warns, made an error here; past twice the limit it raises. Nothing big is ever decoded.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in ALLOWED_FORMATS:
                raise ValidationError(
                    {"image": [f"{image.format} images are not accepted; send a JPEG, PNG or WEBP image."]}
                )
            _check_shape(*image.size)  # from the header, before a single pixel is decoded
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationError(
            {"image": [f"The image is larger than {max_pixels / 1e6:.0f} megapixels, the limit."]}
        ) from None
    except ValidationError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow names its in-memory buffer in some messages ("<_io.BytesIO object at 0x…>"): not the user's business
        detail = re.sub(r"\s*<_io\.\w+ object at 0x[0-9a-f]+>", "", str(exc)).strip()
        detail = f" ({detail})" if detail and "cannot identify image file" not in detail else ""
        raise ValidationError({"image": [f"The file is not a readable JPEG, PNG or WEBP image{detail}."]}) from None
    # exif_transpose returns a copy without .format when it turns the image, so the verified format goes alongside
    return ImageOps.exif_transpose(_eight_bit(image)), image.format


def _check_shape(width: int, height: int) -> None:
    """A strip of a picture (40000 x 1000 px is under the pixel limit) holds no face worth finding, and detecting in
    one took a minute and gigabytes: refuse sides far out of proportion."""
    ratio = max(width, height) / max(1, min(width, height))
    if ratio > settings.UPLOAD_MAX_ASPECT:
        raise ValidationError(
            {
                "image": [
                    f"The image is {width} x {height} px: one side is {ratio:.0f} times the other; at most "
                    f"{settings.UPLOAD_MAX_ASPECT:g} is accepted. Crop it around the faces."
                ]
            }
        )


def bounded(image: Image.Image, side: int) -> Image.Image:
    """The picture with its longer side at most ``side`` px (a face detector reads a few hundred pixels anyway)."""
    if max(image.size) <= side:
        return image
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX)


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit grey pictures scaled to 0..255 (Pillow's own conversion clips them to white)."""
    if image.mode not in ("I", "I;16", "I;16B", "I;16L", "F"):
        return image
    values = np.asarray(image, np.float64)
    top = 65535.0 if image.mode.startswith("I") and values.max() > 255 else max(255.0, float(values.max()))
    scaled = Image.fromarray(np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8), "L")
    scaled.info = dict(image.info)  # keeps the EXIF orientation
    return scaled


def to_frame(image: Image.Image) -> np.ndarray:
    """Any image -> the (96, 96) uint8 grey frame: centre square crop, area resampling, ITU-R 601 luma."""
    grey = image.convert("L")
    side = min(grey.size)
    left, top = (grey.width - side) // 2, (grey.height - side) // 2
    grey = grey.crop((left, top, left + side, top + side))
    if side != IMAGE_SIZE:
        grey = grey.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX if side > IMAGE_SIZE else Image.BICUBIC)
    return np.asarray(grey, np.uint8)


def png_bytes(frame: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.asarray(frame, np.uint8), "L").save(out, "PNG", optimize=False, compress_level=6)
    return out.getvalue()


def read_frame(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L"), np.uint8)
