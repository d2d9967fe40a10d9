from django.apps import AppConfig


class LabelsConfig(AppConfig):
    name = "webapp.labels"
    label = "labels"
