"""Emotion AI Studio's machine-learning core: plain Python + TensorFlow (tf_keras), no Django."""

import os

# tensorflowjs imports tensorflow_decision_forests, whose welcome banner imports IPython whenever stdout is not a
# terminal (under pytest, Celery, a pipe) — and IPython is not a dependency. Keep it quiet.
os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
