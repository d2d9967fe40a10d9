"""The server's light runtime: every export also holds ``model.tflite``, run by LiteRT's small interpreter.

A web process that finds faces in an upload (BlazeFace, then the keypoint model) or answers Label Studio (both models)
must not carry TensorFlow: importing it and loading one Keras model took a gunicorn process from 69 MB to 939 MB and
its first photo 5-6 s. ``ai_edge_litert`` is the TFLite interpreter alone (about 50 MB resident with a model).

The TFLite file is converted from the TF.js files of the same export, loaded back, so it holds the weights the
browser gets (float16 storage: a float16 export keeps its exact weights, a uint8 one its dequantized ones rounded to
float16). Converting needs TensorFlow (the worker, ``manage.py bootstrap``, the CLI); running it does not.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np

TFLITE_FILE = "model.tflite"


def interpreter(*, path: str | Path | None = None, content: bytes | None = None, num_threads: int = 1):
    """A LiteRT interpreter for a .tflite file or its bytes (TensorFlow is never imported here)."""
    from ai_edge_litert.interpreter import Interpreter

    if path is not None:
        return Interpreter(model_path=str(path), num_threads=num_threads)
    return Interpreter(model_content=content, num_threads=num_threads)


def tflite_bytes(model) -> bytes:
    """A tf_keras model as a TFLite flatbuffer with float16 weights (dequantized to float32 when it loads)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return converter.convert()


def write_tflite(model_dir: str | Path) -> Path:
    """Write ``model.tflite`` beside the TF.js files of an export, converted from those files (what is served)."""
    from ml.export import load_tfjs

    model_dir = Path(model_dir)
    target = model_dir / TFLITE_FILE
    tmp = target.with_suffix(".tflite.tmp")
    tmp.write_bytes(tflite_bytes(load_tfjs(model_dir)))
    tmp.replace(target)
    return target


class LiteModel:
    """A TFLite model called like a Keras one: ``model(x, training=False)`` on a batch of any size.

    One interpreter per model; calls are serialised by a lock (an interpreter holds its tensors between calls).
    """

    def __init__(self, path: str | Path):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path.parent}: no {TFLITE_FILE} (python -m ml tflite --model {path.parent})")
        self._interpreter = interpreter(path=path)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = None
        self._lock = threading.Lock()

    def __call__(self, x, training: bool = False) -> np.ndarray:
        x = np.asarray(x, np.float32)
        with self._lock:
            if self._batch != len(x):
                self._interpreter.resize_tensor_input(self._input["index"], list(x.shape), strict=True)
                self._interpreter.allocate_tensors()
                self._batch = len(x)
            self._interpreter.set_tensor(self._input["index"], x)
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output).copy()
