"""What the faces app tells others, without knowing who listens (the training app starts automatic retrains)."""

from django.dispatch import Signal

# Sent after the commit of a human or review label; ``tasks``: the tasks it labeled ("keypoints", "emotion").
labels_saved = Signal()
