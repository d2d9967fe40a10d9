"""Keras -> TF.js layers format (``tensorflowjs``), with optional weight quantization and a manifest.json.

An export directory holds model.json + weight shards + manifest.json (+ metrics.json and plots when given), and
model.tflite, the same weights for the server's LiteRT runtime (ml.litert). It is built
in a temporary sibling directory and moved into place with ``os.replace``, so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ml.align import MODEL_FRAMINGS
from ml.litert import write_tflite
from ml.schema import manifest_fields

QUANTIZATIONS = {"float16": "float16", "uint8": "uint8"}


def _convert(model, directory: Path, quantize: str | None) -> None:
    import tensorflowjs as tfjs

    dtype_map = {QUANTIZATIONS[quantize]: "*"} if quantize else None
    tfjs.converters.save_keras_model(model, str(directory), quantization_dtype_map=dtype_map)


def export_tfjs(
    model,
    out_dir: str | Path,
    *,
    task: str,
    quantize: str | None = None,
    metrics: dict | None = None,
    extra: dict | None = None,
    labels: Sequence[str] | None = None,
) -> Path:
    """Write the model into ``out_dir`` (which must not exist yet) and return it; an emotion model's ``labels`` name
    its outputs in the manifest."""
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantize!r}; expected one of {', '.join(QUANTIZATIONS)}")
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists; exports are never overwritten")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        _convert(model, tmp, quantize)
        write_tflite(tmp)  # the server's light runtime (ml.litert) runs the same weights
        weight_bytes = sum(p.stat().st_size for p in tmp.glob("*.bin"))
        manifest = {
            **manifest_fields(task, labels),
            "framing": MODEL_FRAMINGS[task].to_dict(),
            "model": "model.json",
            "quantization": quantize or "float32",
            "weight_bytes": weight_bytes,
            "parameters": int(model.count_params()),
            **(extra or {}),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if metrics is not None:
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        os.chmod(tmp, 0o755)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def read_manifest(model_dir: str | Path) -> dict:
    return json.loads((Path(model_dir) / "manifest.json").read_text())


def load_tfjs(model_dir: str | Path):
    """Load an exported TF.js layers model back into tf_keras: evaluation scores exactly what the browser gets."""
    import tensorflowjs as tfjs

    path = Path(model_dir) / "model.json"
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir}: no model.json (expected a TF.js layers export)")
    return tfjs.converters.load_keras_model(str(path))
