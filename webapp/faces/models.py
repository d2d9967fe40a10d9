"""Django finds an app's models here. They live with the part of the app that owns them: the face store
(``store.models``) and labeling (``labeling.models``)."""

from webapp.common.models import Task
from webapp.faces.labeling.models import Annotation, Exclusion, FaceSummary, Lease, Prediction
from webapp.faces.store.models import UPLOADS_DATASET, Face, dataset_of

__all__ = [
    "UPLOADS_DATASET",
    "Annotation",
    "Exclusion",
    "Face",
    "FaceSummary",
    "Lease",
    "Prediction",
    "Task",
    "dataset_of",
]
