"""Label Studio's JSON, both ways, and the predictions our ML backend gives it.

A Label Studio image project labeled with our config (``label_config()``): an ``Image`` named ``image``, a
``KeyPointLabels`` named ``keypoints`` with one label per Kaggle keypoint, a ``RectangleLabels`` named ``face`` (our
predictions put each face found in a box, its 15 points nested under it by ``parentID``, as Label Studio's keypoint
exports expect, so a photo of two faces shows two groups, not 30 points with the same names), and a ``Choices`` named
``emotion`` with the label set's classes, radio buttons (``single-radio``: a click on the class the model chose keeps
it chosen; a checkbox would untick it). Keypoints are in percent of the image (``original_width`` /
``original_height`` give its pixels).

- A task whose image is a 96x96 picture is one face in our framing, its points as they are.
- Any other image is a whole photo: the server's path finds and aligns its faces (faces.detection); each labeled
  point goes to the face whose predicted point of the same name is nearest, and a face with all 15 points is cut from
  those points (the human's points carried into the stored crop). An emotion choice needs a task of one face.

Task images come embedded (a ``data:`` URI) or from Label Studio itself (``LABEL_STUDIO_URL``, with
``LABEL_STUDIO_API_KEY``): no other host is ever fetched.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import io
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.sax.saxutils import quoteattr

import numpy as np
from django.conf import settings

from ml.schema import IMAGE_SIZE, KEYPOINTS, label_key

IMAGE, KEYPOINT_TAG, EMOTION_TAG, FACE_TAG = "image", "keypoints", "emotion", "face"


def label_config(emotions: Sequence[str]) -> str:
    """The labeling config (XML) that matches our 15 keypoints and the label set's ``emotions``."""
    labels = "\n".join(f"    <Label value={quoteattr(name)}/>" for name in KEYPOINTS)
    choices = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in emotions)
    return (
        "<View>\n"
        f'  <Image name="{IMAGE}" value="${IMAGE}" zoom="true" zoomControl="true"/>\n'
        f'  <KeyPointLabels name="{KEYPOINT_TAG}" toName="{IMAGE}" strokeWidth="2">\n{labels}\n  </KeyPointLabels>\n'
        f'  <RectangleLabels name="{FACE_TAG}" toName="{IMAGE}" strokeWidth="1" opacity="0.15">\n'
        '    <Label value="face"/>\n  </RectangleLabels>\n'
        f'  <Choices name="{EMOTION_TAG}" toName="{IMAGE}" choice="single-radio" showInline="true">\n{choices}\n'
        "  </Choices>\n"
        "</View>\n"
    )


class TaskError(Exception):
    """One task that cannot be used; the message says why (the import reports it with the task's id)."""


def read_export(text: str):
    """A Label Studio JSON export's text -> its tasks. Nesting past any real export (a file of 100,000 ``[``) is a
    TaskError, never a RecursionError."""
    import json

    from webapp.pages.parsers import MAX_DEPTH, _depth

    deep = f"not a Label Studio JSON export: nested deeper than {MAX_DEPTH} levels"
    try:
        payload = json.loads(text)
    except RecursionError:
        raise TaskError(deep) from None
    except json.JSONDecodeError as exc:
        raise TaskError(f"not a Label Studio JSON export: {exc}") from None
    if _depth(payload) > MAX_DEPTH:
        raise TaskError(deep)
    return payload


# --- reading a task's image ---------------------------------------------------------------------------------------


def backend_problems() -> list[str]:
    """What stops the ML backend from reading Label Studio's images, in words Label Studio can show."""
    problems = []
    if not settings.LABEL_STUDIO_URL:
        problems.append(
            "LABEL_STUDIO_URL is not set on the Emotion AI Studio server: it cannot fetch the images stored in Label "
            "Studio, so every prediction would be empty (set it to Label Studio's address, e.g. http://127.0.0.1:8080)"
        )
    if not settings.LABEL_STUDIO_API_KEY:
        problems.append(
            "LABEL_STUDIO_API_KEY is not set on the Emotion AI Studio server: Label Studio sends its images only with "
            "a token (in Label Studio: Account & Settings, Legacy Token)"
        )
    return problems


class Deadline:
    """The time a request may spend fetching from Label Studio, all its fetches together: a server that drips one
    byte every few seconds (each read well inside any per-read timeout) cannot hold the worker past it."""

    def __init__(self, seconds: float):
        self.seconds, self.ends = seconds, time.monotonic() + seconds

    def left(self, what: str) -> float:
        remaining = self.ends - time.monotonic()
        if remaining <= 0:
            raise TaskError(f"{what}: not fetched within this request's {self.seconds:g} s for Label Studio")
        return remaining


def task_image_bytes(ref: str, deadline: Deadline | None = None) -> bytes:
    """A task's ``data.image``: an embedded data URI, or a file on LABEL_STUDIO_URL (a path or a URL on that host),
    fetched within ``deadline`` (default: LABEL_STUDIO_TIMEOUT for this fetch, start to end)."""
    if not isinstance(ref, str) or not ref:
        raise TaskError("data.image is missing")
    if ref.startswith("data:"):
        head, _, payload = ref.partition(",")
        if not head.endswith(";base64"):
            raise TaskError("data.image: only base64 data URIs are read")
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise TaskError("data.image: the data URI is not valid base64") from None
    base = settings.LABEL_STUDIO_URL
    if not base:
        raise TaskError(
            f"data.image {ref[:80]!r} is on a Label Studio server, and LABEL_STUDIO_URL is not set: set it (and "
            "LABEL_STUDIO_API_KEY), or export with the images embedded"
        )
    if any(c in ref for c in " \r\n\t\x00") or not ref.isprintable():
        raise TaskError(f"data.image {ref[:80]!r}: a URL holds no spaces or control characters (encode them)")
    url = urllib.parse.urljoin(base.rstrip("/") + "/", ref)
    home, there = urllib.parse.urlsplit(base), urllib.parse.urlsplit(url)
    if (there.scheme, there.netloc) != (home.scheme, home.netloc):
        raise TaskError(f"data.image {ref[:80]!r} is not on LABEL_STUDIO_URL ({base}); no other host is fetched")
    request = urllib.request.Request(url, headers={"Authorization": f"Token {settings.LABEL_STUDIO_API_KEY}"})
    limit = settings.UPLOAD_MAX_BYTES
    deadline = deadline or Deadline(settings.LABEL_STUDIO_TIMEOUT)
    what = f"data.image {ref[:80]!r}"
    try:
        timeout = min(settings.LABEL_STUDIO_TIMEOUT, deadline.left(what))
        with _opener().open(request, timeout=timeout) as response:
            parts, size = [], 0
            # read1: at most one read of the socket each time, so the deadline is checked between the drips
            while size <= limit and (part := response.read1(min(1 << 16, limit + 1 - size))):
                parts.append(part)
                size += len(part)
                deadline.left(what)
            data = b"".join(parts)
    except (OSError, http.client.HTTPException, ValueError) as exc:  # HTTPError, URLError, timeouts, bad URLs
        raise TaskError(f"{what}: Label Studio did not send it ({exc})") from None
    if len(data) > limit:
        raise TaskError(f"data.image {ref[:80]!r} is larger than {limit:,} bytes")
    return data


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only on LABEL_STUDIO_URL's own host: an image is never fetched from anywhere else."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        home, there = urllib.parse.urlsplit(settings.LABEL_STUDIO_URL), urllib.parse.urlsplit(newurl)
        if (there.scheme, there.netloc) != (home.scheme, home.netloc):
            raise urllib.error.HTTPError(newurl, code, f"redirected off {settings.LABEL_STUDIO_URL}", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener():
    return urllib.request.build_opener(_SameHostRedirects)


def _get_json(path: str):
    """GET a Label Studio API path with our key (LABEL_STUDIO_URL must be set)."""
    import json

    url = settings.LABEL_STUDIO_URL.rstrip("/") + path
    request = urllib.request.Request(url, headers={"Authorization": f"Token {settings.LABEL_STUDIO_API_KEY}"})
    with _opener().open(request, timeout=settings.LABEL_STUDIO_TIMEOUT) as response:
        return json.loads(response.read())


def annotator_email(user_id: int) -> str | None:
    """Label Studio's own exports name an annotator by its id there: its e-mail, asked of LABEL_STUDIO_URL (None when
    no server is set or it does not say)."""
    if not settings.LABEL_STUDIO_URL:
        return None
    try:
        email = _get_json(f"/api/users/{int(user_id)}/").get("email")
    except (OSError, ValueError, AttributeError):
        return None
    return email.strip()[:150] if isinstance(email, str) and email.strip() else None


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


# --- results <-> points -------------------------------------------------------------------------------------------


def _region_id(n: int) -> str:
    return f"r{n}"


def _image_region(region_id: str, tag: str, kind: str, width: int, height: int, value: dict, meta: str) -> dict:
    """A region on the task's image (``value`` in percent of it), with its meta text when there is one."""
    region = {
        "id": region_id,
        "from_name": tag,
        "to_name": IMAGE,
        "type": kind,
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": value,
    }
    if meta:
        region["meta"] = {"text": [meta]}
    return region


def has_face_tag(config: str | None) -> bool:
    """Whether a project's labeling config (as Label Studio sends it with a predict request) has our face boxes: a
    project made with an earlier config has none, and gets its points without them."""
    return config is None or f'name="{FACE_TAG}"' in config


def face_result(points: np.ndarray, width: int, height: int, *, region_id: str, meta: str) -> dict:
    """A face's box (its points' extent with a margin) as a RectangleLabels region in percent of the image."""
    lo, hi = np.min(points, axis=0), np.max(points, axis=0)
    margin = 0.35 * (hi - lo).max()
    x0, y0 = np.maximum(lo - margin, 0)
    x1, y1 = np.minimum(hi + margin, [width, height])
    value = {
        "x": 100.0 * float(x0) / width,
        "y": 100.0 * float(y0) / height,
        "width": 100.0 * float(x1 - x0) / width,
        "height": 100.0 * float(y1 - y0) / height,
        "rotation": 0,
        "rectanglelabels": ["face"],
    }
    return _image_region(region_id, FACE_TAG, "rectanglelabels", width, height, value, meta)


def keypoint_results(
    points: np.ndarray, width: int, height: int, *, start: int = 0, meta: str = "", parent: str | None = None
) -> list[dict]:
    """15 points (image pixels) as KeyPointLabels regions in percent of the image (nested under ``parent``)."""
    results = []
    for i, (name, (x, y)) in enumerate(zip(KEYPOINTS, points, strict=True)):
        value = {"x": 100.0 * float(x) / width, "y": 100.0 * float(y) / height, "width": 0.6, "keypointlabels": [name]}
        region = _image_region(_region_id(start + i), KEYPOINT_TAG, "keypointlabels", width, height, value, meta)
        if parent is not None:
            region["parentID"] = parent
        results.append(region)
    return results


def emotion_result(emotion: str, n: int) -> dict:
    return {
        "id": _region_id(n),
        "from_name": EMOTION_TAG,
        "to_name": IMAGE,
        "type": "choices",
        "value": {"choices": [emotion]},
    }


@dataclass
class LabeledPoint:
    name: str
    x: float  # image pixels
    y: float


@dataclass
class ParsedAnnotation:
    points: list[LabeledPoint] = field(default_factory=list)
    emotion: str | None = None  # a class key of the label set
    author: str = ""  # e-mail or "label-studio user N"; empty when the export names nobody
    created_at: datetime | None = None
    size: tuple[int, int] | None = None  # original_width/height the results were drawn on


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise TaskError(f"{what} must be a number, got {value!r}")
    return float(value)


def parse_result(result, where: str, emotions: Sequence[str]) -> ParsedAnnotation:
    """One annotation's (or prediction's) ``result`` list: our keypoints and emotion, a class of ``emotions`` by name
    (other tags are ignored)."""
    if not isinstance(result, list):
        raise TaskError(f"{where}: result must be a list")
    parsed = ParsedAnnotation()
    for j, region in enumerate(result):
        here = f"{where}, result {j + 1}"
        if not isinstance(region, dict) or not isinstance(region.get("value"), dict):
            raise TaskError(f"{here}: a region must be an object with a value")
        value, kind = region["value"], region.get("type")
        if kind == "keypointlabels":
            names = value.get("keypointlabels")
            if not isinstance(names, list) or len(names) != 1 or names[0] not in KEYPOINTS:
                raise TaskError(f"{here}: keypointlabels must be one of our 15 names, got {names!r}")
            width = _number(region.get("original_width"), f"{here}: original_width")
            height = _number(region.get("original_height"), f"{here}: original_height")
            if width <= 0 or height <= 0:
                raise TaskError(f"{here}: original_width/height must be positive")
            size = (round(width), round(height))
            if parsed.size not in (None, size):
                raise TaskError(f"{here}: regions of one annotation give two image sizes, {parsed.size} and {size}")
            parsed.size = size
            x, y = _number(value.get("x"), f"{here}: x"), _number(value.get("y"), f"{here}: y")
            if not (0 <= x <= 100 and 0 <= y <= 100):
                raise TaskError(f"{here}: the point ({x:g} %, {y:g} %) is outside the image")
            parsed.points.append(LabeledPoint(names[0], x * width / 100, y * height / 100))
        elif kind == "choices" and region.get("from_name", EMOTION_TAG) == EMOTION_TAG:
            choices = value.get("choices")
            try:
                key = label_key(choices[0]) if isinstance(choices, list) and len(choices) == 1 else None
            except ValueError:
                key = None
            if key not in emotions:
                raise TaskError(
                    f"{here}: emotion must be one of the label set ({', '.join(emotions)}), got {choices!r}"
                )
            if parsed.emotion is not None and parsed.emotion != key:
                raise TaskError(f"{here}: two emotions in one annotation")
            parsed.emotion = key
    return parsed


LS_USER = "label-studio user "


def _author(completed_by) -> str:
    """An annotation's author as the export names it: an e-mail, or Label Studio's user id (resolved on import)."""
    if isinstance(completed_by, dict):
        email = completed_by.get("email")
        if isinstance(email, str) and email.strip():
            return email.strip()[:150]
        completed_by = completed_by.get("id")
    if isinstance(completed_by, int) and not isinstance(completed_by, bool):
        return f"{LS_USER}{completed_by}"
    return ""


def _time(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # a time without a zone is read as UTC


@dataclass
class ParsedTask:
    id: object
    image: str
    annotations: list[ParsedAnnotation]


def parse_tasks(payload, emotions: Sequence[str]) -> tuple[list[ParsedTask], list[str]]:
    """A Label Studio JSON export (a list of tasks) -> the tasks we can read, and one message per task we cannot."""
    if isinstance(payload, dict):
        payload = [payload]  # one task
    if not isinstance(payload, list):
        raise TaskError("a Label Studio export is a JSON list of tasks")
    tasks, errors = [], []
    for n, task in enumerate(payload, 1):
        name = f"task {task.get('id', f'#{n}')}" if isinstance(task, dict) else f"task #{n}"
        try:
            if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
                raise TaskError("a task must be an object with data")
            annotations = []
            for k, annotation in enumerate(task.get("annotations") or []):
                if not isinstance(annotation, dict):
                    raise TaskError(f"annotation {k + 1} must be an object")
                if annotation.get("was_cancelled"):
                    continue  # skipped in Label Studio: no label
                parsed = parse_result(annotation.get("result", []), f"annotation {k + 1}", emotions)
                parsed.author = _author(annotation.get("completed_by"))
                parsed.created_at = _time(annotation.get("created_at"))
                annotations.append(parsed)
            tasks.append(ParsedTask(task.get("id", f"#{n}"), task["data"].get(IMAGE), annotations))
        except TaskError as exc:
            errors.append(f"{name}: {exc}")
    return tasks, errors


# --- photos: faces and their points ------------------------------------------------------------------------------


@dataclass
class FaceLabel:
    author: str
    created_at: datetime | None
    points: np.ndarray | None  # (15, 2) in the stored crop
    emotion: str | None


@dataclass
class TaskFace:
    crop: np.ndarray  # 96x96 uint8 in FACE_FRAMING
    labels: list[FaceLabel]  # one per annotation that labels this face


def _placed(annotation: ParsedAnnotation, owner, faces: int) -> list[np.ndarray]:
    """The annotation's points per face ((15, 2), NaN where not placed); ``owner(point)`` names a point's face."""
    names = {name: i for i, name in enumerate(KEYPOINTS)}
    placed = [np.full((len(KEYPOINTS), 2), np.nan) for _ in range(faces)]
    for p in annotation.points:
        k = owner(p)
        if not np.isnan(placed[k][names[p.name], 0]):
            where = "the face" if faces == 1 else f"face {k + 1}"
            raise TaskError(f"{p.name} is placed twice on {where}")
        placed[k][names[p.name]] = (p.x, p.y)
    for k, points in enumerate(placed):
        if not np.isnan(points).all():
            _complete(points, "the face" if faces == 1 else f"face {k + 1}")
    return placed


def faces_of(image, annotations: list[ParsedAnnotation]) -> list[TaskFace]:
    """The stored faces one task gives, each with every annotation's label of it.

    A 96x96 picture is one face as it is. A whole photo goes through detection and alignment; each labeled point
    goes to the face whose predicted point of that name is nearest, and a face is cut from the first annotation that
    placed all 15 of its points (else from the predicted ones); every annotation's points are carried into that crop.
    """
    from ml import align
    from webapp.faces.store.detection import analyze_photo
    from webapp.faces.store.images import to_frame

    width, height = image.size
    for annotation in annotations:
        if annotation.size and annotation.size != (width, height):
            raise TaskError(f"the results were drawn on a {annotation.size} image; the image is {width}x{height}")
    names = {name: i for i, name in enumerate(KEYPOINTS)}
    if (width, height) == (IMAGE_SIZE, IMAGE_SIZE):
        labels = []
        for a in annotations:
            (points,) = _placed(a, lambda p: 0, 1)
            labels.append(FaceLabel(a.author, a.created_at, None if np.isnan(points).all() else points, a.emotion))
        return [TaskFace(to_frame(image), labels)]
    found, scale = analyze_photo(image)
    if not found:
        raise TaskError("no face found in the photo")
    predicted = [f.points * scale for f in found]  # the photo's own pixels

    def owner(p: LabeledPoint) -> int:
        return int(np.argmin([np.hypot(*(points[names[p.name]] - (p.x, p.y))) for points in predicted]))

    placed = [_placed(a, owner, len(found)) for a in annotations]
    for a in annotations:
        if a.emotion is not None and len(found) > 1:
            raise TaskError(f"one emotion for a photo of {len(found)} faces: label each face in a task of its own")
    faces = []
    for k in range(len(found)):
        anchor = next((p[k] for p in placed if not np.isnan(p[k]).all()), predicted[k])
        m = align.matrix_from_points(anchor, align.FACE_FRAMING)
        labels = [
            FaceLabel(a.author, a.created_at, None if np.isnan(p[k]).all() else align.apply(m, p[k]), a.emotion)
            for a, p in zip(annotations, placed, strict=True)
        ]
        faces.append(TaskFace(align.warp(image, m), labels))
    return faces


def _complete(points: np.ndarray, what: str) -> None:
    missing = [KEYPOINTS[i] for i in np.flatnonzero(np.isnan(points[:, 0]))]
    if missing:
        raise TaskError(f"{what} has {len(KEYPOINTS) - len(missing)} of 15 keypoints (missing {', '.join(missing)})")


def decode(data: bytes):
    """Bytes of a task image -> a PIL image, with the upload checks (type, size, bombs); TaskError otherwise."""
    from django.core.exceptions import ValidationError

    from webapp.faces.store.images import decode_upload

    try:
        return decode_upload(data)[0]
    except ValidationError as exc:
        raise TaskError(" ".join(exc.messages)) from None


def png(frame: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(frame).save(out, "PNG")
    return out.getvalue()
