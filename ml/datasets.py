"""Readers for the CSV formats users bring: Kaggle facial keypoints, FER2013 and the course's icml_face_data.

Every reader returns uint8 images in the 96x96 product framing plus its targets, and a list of ``RowError`` for each
row it skipped (with the 1-based line number in the file and the reason). A file with the wrong columns, or with no
valid row at all, raises ``DatasetError`` naming the file and what was expected.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml.schema import (
    DEFAULT_LABELS,
    FER_CLASSES,
    FER_SIZE,
    ICML_CLASSES,
    IMAGE_SIZE,
    KEYPOINT_COLUMNS,
    NUM_KEYPOINTS,
    label_key,
)

# The longest real line is a keypoints row: 9,216 pixel values (at most 36,863 characters) and 30 coordinates. A line
# is read at most this long, so one endless line (60 KB of gzip unpacked to hundreds of MB) costs a megabyte, not
# the line: the file is refused at that line.
MAX_LINE_CHARS = 1 << 20
csv.field_size_limit(MAX_LINE_CHARS)


class DatasetError(ValueError):
    """The file as a whole cannot be read: wrong columns, not a CSV, or no valid row."""


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class FaceData:
    """Faces read from one file. Exactly one of ``points`` / ``labels`` is set, by task."""

    format: str
    images: np.ndarray  # (N, 96, 96) uint8
    lines: np.ndarray  # (N,) line number of each face in its file
    points: np.ndarray | None = None  # (N, 15, 2) float32, pixels of the 96x96 frame
    labels: np.ndarray | None = None  # (N,) int64, indices into label_names
    label_names: tuple[str, ...] | None = None  # the emotion label set the labels index (emotion files only)
    usage: np.ndarray | None = None  # (N,) str: Training / PublicTest / PrivateTest ("" when the file has none)
    groups: np.ndarray | None = None  # (N,) str: the person / session of each face (GROUP_COLUMNS), "" for none
    errors: list[RowError] = field(default_factory=list)
    excluded: int = 0  # valid rows left out on purpose (a FER code whose class is not in the label set)
    excluded_checksums: list[str] = field(default_factory=list)  # their faces (checksum()), to correct earlier imports

    def __len__(self) -> int:
        return len(self.images)

    @property
    def task(self) -> str:
        return "keypoints" if self.points is not None else "emotion"

    @classmethod
    def concat(cls, parts: list[FaceData]) -> FaceData:
        """The chunks of one file (``iter_faces``) as one: the label set is the last chunk's (it only grows)."""
        last = parts[-1]
        join = lambda name: (  # noqa: E731
            None if getattr(last, name) is None else np.concatenate([getattr(p, name) for p in parts])
        )
        return cls(
            format=last.format,
            images=join("images"),
            lines=join("lines"),
            points=join("points"),
            labels=join("labels"),
            label_names=last.label_names,
            usage=join("usage"),
            groups=join("groups"),
            errors=[e for p in parts for e in p.errors],
            excluded=sum(p.excluded for p in parts),
            excluded_checksums=[c for p in parts for c in p.excluded_checksums],
        )

    def subset(self, mask: np.ndarray) -> FaceData:
        pick = lambda a: None if a is None else a[mask]  # noqa: E731
        return FaceData(
            format=self.format,
            images=self.images[mask],
            lines=self.lines[mask],
            points=pick(self.points),
            labels=pick(self.labels),
            label_names=self.label_names,
            usage=pick(self.usage),
            groups=pick(self.groups),
        )


# A column naming the person (or session, or video) of each face, read by every reader when present: frames of one
# group are near-identical, so every split keeps a group on one side (CK+ ships `subject`).
GROUP_COLUMNS = ("subject", "group", "person")
GROUP_MAX_LENGTH = 100


def _group(row: dict[str, str]) -> str:
    for column in GROUP_COLUMNS:
        if column in row:
            value = row[column].strip()
            if len(value) > GROUP_MAX_LENGTH:
                raise RowSkip(f"{column} is longer than {GROUP_MAX_LENGTH} characters")
            return value
    return ""


class RowSkip(Exception):
    """Raised by a row parser; the reader records it as a RowError and goes on."""


def _open_text(path: Path) -> io.TextIOBase:
    raw = open(path, "rb")  # noqa: SIM115 - the caller closes the returned wrapper, which closes this
    magic = raw.read(2)
    raw.seek(0)
    stream = gzip.GzipFile(fileobj=raw) if magic == b"\x1f\x8b" else raw  # by content, not by name
    # utf-8-sig: Excel starts its UTF-8 CSVs with a byte-order mark, which would otherwise glue onto the first column
    return io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")


def _bounded_lines(f: io.TextIOBase, path: Path) -> Iterator[str]:
    """The file's lines for csv.reader, each read at most MAX_LINE_CHARS long; a longer one is a DatasetError."""
    number = 0
    while line := f.readline(MAX_LINE_CHARS + 1):
        number += 1
        if len(line) > MAX_LINE_CHARS:
            raise DatasetError(
                f"{path}: line {number} is longer than {MAX_LINE_CHARS:,} characters; the longest real row (a 96x96 "
                "face's pixels) takes under 40,000: not a face file"
            )
        yield line


def count_lines(path: str | Path, limit: int | None = None) -> int:
    """Lines in a CSV (plain or gzipped), for a progress bar and the web import's cap. Counting stops once past
    ``limit``: a small .gz of a gigabyte of newlines is refused after ``limit`` lines, not after decompressing it all.
    It reads blocks, so one endless line holds no more memory than a block. A file that is not UTF-8 text, or a broken
    gzip, raises DatasetError."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines, last = 0, b""
    try:
        with open(Path(path), "rb") as raw:
            magic = raw.read(2)
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw) if magic == b"\x1f\x8b" else raw  # by content, not by name
            while block := stream.read(1 << 20):
                decoder.decode(block)
                lines += block.count(b"\n")
                last = block[-1:]
                if limit is not None and lines > limit:
                    return lines
            decoder.decode(b"", final=True)
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable CSV ({exc}); expected UTF-8 text, plain or gzipped") from exc
    return lines + (1 if last not in (b"", b"\n") else 0)  # a last line without its newline


def parse_pixels(text: str, side: int) -> np.ndarray:
    """Space-separated 0-255 values -> (side, side) uint8, or RowSkip saying what is wrong."""
    expected = side * side
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # raised when a token is not an integer
        values = np.fromstring(text, dtype=np.int64, sep=" ")  # C parser: 5x faster than float parsing
    if values.size != expected:
        tokens = text.split()
        for i, token in enumerate(tokens):
            try:
                int(token)
            except ValueError:
                raise RowSkip(f"pixel {i + 1} is not an integer in 0..255: {token[:20]!r}") from None
        raise RowSkip(f"expected {expected} pixel values ({side}x{side}), found {len(tokens)}")
    if values.min() < 0 or values.max() > 255:
        bad = int(np.argmax((values < 0) | (values > 255)))
        raise RowSkip(f"pixel {bad + 1} = {values[bad]} is not an integer in 0..255")
    return values.astype(np.uint8).reshape(side, side)


def to_frame(images: np.ndarray) -> np.ndarray:
    """Bring (N, s, s) images into the 96x96 frame by pixel repetition (48 -> 96 is exactly reversible)."""
    side = images.shape[-1]
    if side == IMAGE_SIZE:
        return images
    if IMAGE_SIZE % side:
        raise ValueError(f"cannot bring {side}x{side} images to {IMAGE_SIZE}x{IMAGE_SIZE} by repetition")
    factor = IMAGE_SIZE // side
    return images.repeat(factor, axis=-2).repeat(factor, axis=-1)


def _rows(path: Path, required: tuple[str, ...], expected: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) with header names stripped; check that the required columns exist."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        with _open_text(path) as f:
            reader = csv.reader(_bounded_lines(f, path))
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise DatasetError(f"{path}: the file is empty; expected {expected}") from None
            missing = [c for c in required if c not in header]
            if missing:
                raise DatasetError(
                    f"{path}: missing column(s) {', '.join(missing)}; expected {expected} "
                    f"(found: {', '.join(header[:8])}{'…' if len(header) > 8 else ''})"
                )
            for row in reader:
                line = reader.line_num
                if not row or row == [""]:
                    continue
                if len(row) != len(header):
                    yield line, {"__error__": f"expected {len(header)} fields, found {len(row)}"}
                    continue
                yield line, dict(zip(header, row, strict=True))
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, csv.Error) as exc:
        raise DatasetError(f"{path}: not a readable CSV ({exc}); expected {expected}") from exc


def _chunks(
    path: Path,
    fmt: str,
    required: tuple[str, ...],
    expected: str,
    parse: Callable[[dict[str, str]], tuple[np.ndarray, object, str] | None],
    progress: Callable[[int], None] | None,
    size: int | None,
) -> Iterator[tuple[list, list, list, list, np.ndarray, list[RowError], int]]:
    """The file's rows parsed, ``size`` rows (good, bad or left out) at a time (None: all at once), so a file of any
    length is read in the memory of one chunk. A file with no valid row raises DatasetError once it is read."""
    images, targets, usages, lines, groups, errors, excluded = [], [], [], [], [], [], 0
    valid, bad, left_out, first_error = 0, 0, 0, None
    for line, row in _rows(path, required, expected):
        if progress:
            progress(line)
        try:
            if "__error__" in row:
                raise RowSkip(row["__error__"])
            group = _group(row)
            parsed = parse(row)
        except RowSkip as exc:
            errors.append(RowError(line, str(exc)))
            bad += 1
            first_error = first_error or errors[-1]
        else:
            if parsed is None:
                excluded += 1
                left_out += 1
            else:
                image, target, usage = parsed
                images.append(image)
                targets.append(target)
                usages.append(usage)
                lines.append(line)
                groups.append(group)
                valid += 1
        if size is not None and len(images) + len(errors) + excluded >= size:
            yield images, targets, usages, lines, np.asarray(groups, dtype=object), errors, excluded
            images, targets, usages, lines, groups, errors, excluded = [], [], [], [], [], [], 0
    if not valid:
        detail = f"; first problem: {first_error}" if first_error else ""
        raise DatasetError(f"{path}: no valid {fmt} row ({bad} bad, {left_out} left out){detail}")
    if images or errors or excluded:
        yield images, targets, usages, lines, np.asarray(groups, dtype=object), errors, excluded


def _stack(arrays: list, shape: tuple[int, ...], dtype) -> np.ndarray:
    return np.stack(arrays) if arrays else np.zeros((0, *shape), dtype)


def read_keypoints_csv(path: str | Path, progress: Callable[[int], None] | None = None) -> FaceData:
    """Kaggle Facial Keypoints training.csv (or the course's data.csv): 30 coordinate columns + Image."""
    return FaceData.concat(list(keypoint_chunks(path, progress)))


def keypoint_chunks(
    path: str | Path, progress: Callable[[int], None] | None = None, *, size: int | None = None
) -> Iterator[FaceData]:
    """``read_keypoints_csv`` as chunks of ``size`` rows."""
    expected = "the Kaggle facial keypoints format: 30 columns left_eye_center_x … mouth_center_bottom_lip_y and Image"

    def parse(row: dict[str, str]) -> tuple[np.ndarray, np.ndarray, str]:
        coords = []
        for col in KEYPOINT_COLUMNS:
            text = row[col].strip()
            if not text:
                raise RowSkip(f"missing keypoint {col}")
            try:
                value = float(text)
            except ValueError:
                raise RowSkip(f"{col} is not a number: {text[:20]!r}") from None
            if not math.isfinite(value) or not 0 <= value < IMAGE_SIZE:
                raise RowSkip(f"{col} = {text} is outside the {IMAGE_SIZE}x{IMAGE_SIZE} image")
            coords.append(value)
        image = parse_pixels(row["Image"], IMAGE_SIZE)
        return image, np.asarray(coords, np.float32).reshape(NUM_KEYPOINTS, 2), ""

    for images, targets, usages, lines, groups, errors, _ in _chunks(
        path, "kaggle-keypoints", (*KEYPOINT_COLUMNS, "Image"), expected, parse, progress, size
    ):
        yield FaceData(
            format="kaggle-keypoints",
            images=_stack(images, (IMAGE_SIZE, IMAGE_SIZE), np.uint8),
            points=_stack(targets, (NUM_KEYPOINTS, 2), np.float32),
            usage=np.asarray(usages, dtype=str),
            lines=np.asarray(lines, dtype=np.int64),
            groups=groups,
            errors=errors,
        )


USAGES = ("Training", "PublicTest", "PrivateTest", "")  # FER2013's split column; empty: the app draws the split


def _emotion_reader(fmt: str, codes: tuple[str, ...]):
    """A reader of emotion CSVs whose ``emotion`` column holds the file's numeric codes (``codes[i]`` names code i) or
    class names. The faces are labelled in ``labels`` (the label set; default: the default preset): a code whose class
    is not in the set is left out (the file numbers classes the team does not study), a name that is not in it is a
    bad row that says the set, unless ``add_classes`` appends it to the set (``FaceData.label_names``)."""
    expected = f"the {fmt} format: columns emotion, pixels, Usage (emotion: codes 0..{len(codes) - 1} or class names)"

    def read(
        path: str | Path,
        progress: Callable[[int], None] | None = None,
        *,
        labels: Sequence[str] | None = None,
        add_classes: bool = False,
    ) -> FaceData:
        return FaceData.concat(list(chunks(path, progress, labels=labels, add_classes=add_classes)))

    def chunks(
        path: str | Path,
        progress: Callable[[int], None] | None = None,
        *,
        labels: Sequence[str] | None = None,
        add_classes: bool = False,
        size: int | None = None,
    ) -> Iterator[FaceData]:
        names = list(DEFAULT_LABELS if labels is None else labels)
        left_out: list[str] = []

        def parse(row: dict[str, str]) -> tuple[np.ndarray, int, str] | None:
            text = row["emotion"].strip()
            try:
                code = int(text)
            except ValueError:
                code = None
            if code is not None and not 0 <= code < len(codes):
                raise RowSkip(f"emotion {code} is out of range 0..{len(codes) - 1}")
            if code is None:
                try:
                    name = label_key(text)
                except ValueError as exc:
                    raise RowSkip(f"emotion: {exc}") from None
                if name not in names and not add_classes:
                    raise RowSkip(
                        f"emotion {name!r} is not in the label set ({', '.join(names)}); add the class first "
                        f"(python manage.py labelset emotion --add {name}) or import with --add-classes"
                    )
            usage = row["Usage"].strip()
            if usage not in USAGES:
                raise RowSkip(f"Usage {usage[:20]!r} is not one of {', '.join(u for u in USAGES if u)} (or empty)")
            image = parse_pixels(row["pixels"], FER_SIZE)
            if code is not None:
                name = codes[code]
                if name not in names:
                    left_out.append(checksum(to_frame(image[None])[0]))
                    return None  # a valid face of a class the label set leaves out
            if name not in names:
                names.append(name)  # add_classes: the file's new class joins the set
            return image, names.index(name), usage

        for images, targets, usages, lines, groups, errors, excluded in _chunks(
            path, fmt, ("emotion", "pixels", "Usage"), expected, parse, progress, size
        ):
            yield FaceData(
                format=fmt,
                images=to_frame(_stack(images, (FER_SIZE, FER_SIZE), np.uint8)),
                labels=np.asarray(targets, np.int64),
                label_names=tuple(names),
                usage=np.asarray(usages, dtype=str),
                lines=np.asarray(lines, dtype=np.int64),
                groups=groups,
                errors=errors,
                excluded=excluded,
                excluded_checksums=list(left_out),
            )
            left_out.clear()

    read.chunks = chunks
    return read


read_fer2013_csv = _emotion_reader("fer2013", FER_CLASSES)
# icml_face_data.csv numbers the seed's five classes in its own order.
read_icml_csv = _emotion_reader("icml", ICML_CLASSES)

READERS: dict[str, Callable[..., FaceData]] = {
    "kaggle-keypoints": read_keypoints_csv,
    "fer2013": read_fer2013_csv,
    "icml": read_icml_csv,
}
TASK_OF_FORMAT = {"kaggle-keypoints": "keypoints", "fer2013": "emotion", "icml": "emotion"}


def sniff_format(path: str | Path) -> str:
    """Tell the format from the header (and, for emotion files, from the column order)."""
    with _open_text(Path(path)) as f:
        header = [h.strip() for h in next(csv.reader(_bounded_lines(f, Path(path))), [])]
    if set(KEYPOINT_COLUMNS) <= set(header):
        return "kaggle-keypoints"
    if header[:3] == ["emotion", "pixels", "Usage"]:
        return "fer2013"
    if header[:3] == ["emotion", "Usage", "pixels"]:
        return "icml"
    raise DatasetError(f"{path}: unknown format (header {header[:4]}); expected one of {', '.join(READERS)}")


HEADERS = {
    "kaggle-keypoints": "left_eye_center_x, …, Image",
    "fer2013": "emotion,pixels,Usage",
    "icml": "emotion, Usage, pixels",
}


def checked_format(path: str | Path, fmt: str | None) -> str:
    """``fmt``, or the format the header tells when None; a format that contradicts the header is a DatasetError."""
    if fmt is not None and fmt not in READERS:
        raise DatasetError(f"unknown format {fmt!r}; expected one of {', '.join(READERS)}")
    try:
        told = sniff_format(path)
    except (DatasetError, UnicodeDecodeError, OSError, EOFError, csv.Error):
        told = None  # an unknown header or no text: the reader says what is wrong
    if fmt is None:
        fmt = told or sniff_format(path)
    elif told is not None and told != fmt:
        raise DatasetError(
            f"{Path(path).name} has the {told} header ({HEADERS[told]}), not the {fmt} one ({HEADERS[fmt]}); "
            f"import it as {told}. The emotion formats number the classes differently, so reading one as the other "
            "would store wrong labels."
        )
    return fmt


def read_faces(
    path: str | Path,
    fmt: str | None = None,
    progress: Callable[[int], None] | None = None,
    *,
    labels: Sequence[str] | None = None,
    add_classes: bool = False,
) -> FaceData:
    """Read a CSV in ``fmt`` (default: told from the header); emotion files are labelled in ``labels`` (the label
    set; see ``_emotion_reader``). A format that contradicts the header is refused: FER2013
    and icml files hold the same faces under different emotion codes (FER 4 is sad, icml 4 is surprise), so reading
    one as the other would store wrong labels without a single bad row."""
    fmt = checked_format(path, fmt)
    if TASK_OF_FORMAT[fmt] == "emotion":
        return READERS[fmt](path, progress=progress, labels=labels, add_classes=add_classes)
    return READERS[fmt](path, progress=progress)


def iter_faces(
    path: str | Path,
    fmt: str,
    progress: Callable[[int], None] | None = None,
    *,
    size: int = 2000,
    labels: Sequence[str] | None = None,
    add_classes: bool = False,
) -> Iterator[FaceData]:
    """``read_faces`` as chunks of ``size`` rows (good, bad or left out), each a FaceData of its own rows: an import
    holds one chunk at a time, whatever the file's length (``fmt`` is checked against the header as there)."""
    fmt = checked_format(path, fmt)
    if TASK_OF_FORMAT[fmt] == "emotion":
        yield from READERS[fmt].chunks(path, progress, labels=labels, add_classes=add_classes, size=size)
    else:
        yield from keypoint_chunks(path, progress, size=size)


def relabel(data: FaceData, labels: Sequence[str]) -> FaceData:
    """The faces of ``data`` whose class is in ``labels``, indexed into ``labels`` (a version trained on another set
    is scored on the classes both have)."""
    index = {name: i for i, name in enumerate(labels)}
    mapping = np.array([index.get(name, -1) for name in data.label_names], np.int64)
    new = mapping[data.labels] if len(data) else np.zeros(0, np.int64)
    kept = data.subset(new >= 0)
    kept.labels, kept.label_names = new[new >= 0], tuple(labels)
    return kept


def block_split(n: int, val_fraction: float = 0.15, blocks: int = 20, seed: int = 0) -> np.ndarray:
    """Boolean validation mask over n rows, made of whole contiguous blocks.

    Neighbouring keypoint rows are frames of one video, so a random row split leaks faces into validation.
    The file is cut into ``blocks`` contiguous blocks and a seeded choice of them is held out.
    """
    edges = np.linspace(0, n, blocks + 1).astype(int)
    n_val = max(1, round(blocks * val_fraction))
    chosen = np.random.default_rng(seed).choice(blocks, size=n_val, replace=False)
    mask = np.zeros(n, bool)
    for b in chosen:
        mask[edges[b] : edges[b + 1]] = True
    return mask


def checksum(frame: np.ndarray) -> str:
    """A face's identity is its pixels: the same frame read twice is one face (the web app keys faces by this too)."""
    return hashlib.sha256(np.ascontiguousarray(frame, np.uint8).tobytes()).hexdigest()


def split(data: FaceData, val_fraction: float = 0.15) -> tuple[FaceData, FaceData]:
    """The standard train/validation split of a file: PublicTest rows for emotion, contiguous blocks for keypoints.

    A validation row whose pixels repeat a training row stays out of validation: FER2013 repeats faces across its
    Usage groups (211 of the five-class PublicTest rows are Training faces), and a face the model trained on says
    nothing about unseen ones.
    """
    if data.task == "emotion" and data.usage is not None and np.any(data.usage == "PublicTest"):
        val = data.usage == "PublicTest"
        train = data.usage == "Training"
    elif data.groups is not None and any(data.groups):
        val = group_held_out(data.groups, val_fraction)
        train = ~val
    else:
        val = block_split(len(data), val_fraction)
        train = ~val
    seen = {checksum(frame) for frame in data.images[train]}
    val &= np.array([not (held and checksum(frame) in seen) for held, frame in zip(val, data.images, strict=True)])
    return data.subset(train), data.subset(val)


# --- whole frames with 68-point ground truth (the pipeline's benchmark and calibration set) ----------------------

# iBUG 68 -> the 15 Kaggle points (subject's left = image right): eye centres are the means of each eye contour.
MAP68: tuple[tuple[int, ...], ...] = (
    (42, 43, 44, 45, 46, 47),
    (36, 37, 38, 39, 40, 41),
    (42,),
    (45,),
    (39,),
    (36,),
    (22,),
    (26,),
    (21,),
    (17,),
    (30,),
    (54,),
    (48,),
    (51,),
    (57,),
)


@dataclass
class Frames:
    """Whole images and their 15 ground-truth points in image pixels."""

    directory: Path
    names: list[str]
    persons: np.ndarray  # (N,) str: the file name without its trailing _NN.jpg
    points: np.ndarray  # (N, 15, 2) float64

    def subset(self, mask: np.ndarray) -> Frames:
        keep = np.flatnonzero(mask)
        return Frames(self.directory, [self.names[i] for i in keep], self.persons[keep], self.points[keep])

    def path(self, i: int) -> Path:
        return self.directory / "images" / self.names[i]


def points68_to_15(points68: np.ndarray) -> np.ndarray:
    points68 = np.asarray(points68, np.float64)
    return np.stack([points68[..., list(idx), :].mean(-2) for idx in MAP68], -2)


def read_frames(directory: str | Path) -> Frames:
    """``frames/``: ``frames.csv.gz`` (image, x0, y0, ..., x67, y67) and ``images/``."""
    directory = Path(directory)
    names, rows = [], []
    for line, row in _rows(directory / "frames.csv.gz", ("image", "x0", "y67"), "image,x0,y0,...,x67,y67"):
        try:
            rows.append([float(row[f"{a}{i}"]) for i in range(68) for a in ("x", "y")])
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"{directory}/frames.csv.gz line {line}: 136 numbers expected") from None
        names.append(row["image"])
    persons = np.array([name.rsplit("_", 1)[0] for name in names])
    return Frames(directory, names, persons, points68_to_15(np.array(rows).reshape(-1, 68, 2)))


def group_hash(group: str) -> int:
    """A stable number for a group's name: the same on every run, machine and Python (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(str(group).encode()).digest()[:8], "big")


def group_held_out(groups: np.ndarray, val_fraction: float) -> np.ndarray:
    """Validation mask that holds out whole groups, chosen by a stable hash of their names (a group is on one side,
    whatever else the file holds and however often it is read)."""
    return np.array([group_hash(g) % 10_000 < val_fraction * 10_000 for g in groups], bool)


def group_folds(groups: np.ndarray, k: int) -> np.ndarray:
    """Fold number 0..k-1 of each face for k-fold validation by group: every face of a group in one fold. Groups are
    dealt round-robin in the order of their stable hash, so folds hold about as many groups each and never change
    while the groups do not."""
    names = sorted(set(groups), key=lambda g: (group_hash(g), g))
    fold_of = {name: i % k for i, name in enumerate(names)}
    return np.array([fold_of[g] for g in groups], np.int64)


def person_split(persons: np.ndarray) -> np.ndarray:
    """Boolean mask of the benchmark half, by person (a stable hash of the name), never by frame."""
    return np.array([hashlib.sha256(p.encode()).digest()[0] % 2 == 1 for p in persons])
