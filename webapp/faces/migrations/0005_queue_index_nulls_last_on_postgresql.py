"""The queue's order is "most uncertain first, faces with no prediction yet last" (DESC NULLS LAST). On SQLite a DESC
index already orders NULLs last; on PostgreSQL a DESC index orders them first, so the queue head could not walk the
index: every queue request sorted the whole faces table (EXPLAIN ANALYZE at 3,447 faces: a sequential scan and a
top-N sort, 5.2 ms; with this index, an index scan, 0.04 ms). Django's Index cannot say NULLS LAST portably, so the
model keeps its declaration and PostgreSQL gets the index it needs under the same name."""

from django.db import migrations

TASKS = ("keypoints", "emotion")


def _recreate(apps, schema_editor, nulls: str):
    if schema_editor.connection.vendor != "postgresql":
        return
    for task in TASKS:
        schema_editor.execute(f'DROP INDEX IF EXISTS "queue_{task}"')
        schema_editor.execute(
            f'CREATE INDEX "queue_{task}" ON "faces_face" ("human_{task}", "{task}_uncertainty" DESC {nulls}, "id")'
        )


class Migration(migrations.Migration):
    dependencies = [("faces", "0004_face_group")]

    operations = [
        migrations.RunPython(
            lambda apps, editor: _recreate(apps, editor, "NULLS LAST"),
            lambda apps, editor: _recreate(apps, editor, "NULLS FIRST"),
        )
    ]
