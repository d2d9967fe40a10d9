"""Stored emotion labels keep their meaning across the move from the seed's numbers to class keys."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("faces", "0005_queue_index_nulls_last_on_postgresql")]


@pytest.mark.django_db(transaction=True)
def test_the_seeds_codes_become_their_class_keys_and_nothing_else_changes():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    face = old.get_model("faces", "Face").objects.create(
        checksum="0" * 64, image="faces/x.png", source="upload", split="train"
    )
    Annotation = old.get_model("faces", "Annotation")
    for code in (0, 1, 2, 3, 4, None):
        Annotation.objects.create(face=face, origin="human", emotion=code, skip=code is None)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    from webapp.faces.models import Annotation as Current

    stored = list(Current.objects.order_by("id").values_list("emotion", "skip"))
    # the original project's numbering: 0 anger, 1 disgust, 2 sad, 3 happiness, 4 surprise
    assert stored == [
        ("anger", False),
        ("disgust", False),
        ("sad", False),
        ("happiness", False),
        ("surprise", False),
        (None, True),
    ]
