from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "webapp.training"
    label = "training"

    def ready(self):
        from webapp.faces.labeling.signals import labels_saved

        labels_saved.connect(_retrain_if_due, dispatch_uid="training.retrain_if_due")


def _retrain_if_due(sender, tasks, **kwargs):
    """Labels were saved: start the automatic retrain of their kinds when AUTO_RETRAIN_AFTER_LABELS says so."""
    from django.conf import settings

    if settings.AUTO_RETRAIN_AFTER_LABELS <= 0:
        return
    from webapp.training.services import run_request_if_due

    for kind in tasks:
        run_request_if_due(kind=kind)
