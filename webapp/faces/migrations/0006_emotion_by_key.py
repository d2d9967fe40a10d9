"""Emotion labels are stored by the class's key, not by a number: the label set is data (webapp.labels), and a number
would change meaning when a class is added or the set reordered. The numbers stored until now are the original
project's five-class codes; this mapping is that numbering as it was, frozen here (not read from code that changes)."""

from django.db import migrations, models

SEED_FIVE_CODES = ("anger", "disgust", "sad", "happiness", "surprise")  # 0..4 as stored before this migration


def to_keys(apps, schema_editor):
    Annotation = apps.get_model("faces", "Annotation")
    for code, key in enumerate(SEED_FIVE_CODES):
        Annotation.objects.filter(emotion=code).update(emotion_key=key)  # update(): no save(), the rows stay as written


def to_codes(apps, schema_editor):
    Annotation = apps.get_model("faces", "Annotation")
    for code, key in enumerate(SEED_FIVE_CODES):
        Annotation.objects.filter(emotion_key=key).update(emotion=code)
    # a class the old numbering has no code for cannot go back: such labels are refused, not silently dropped
    other = Annotation.objects.exclude(emotion_key__isnull=True).exclude(emotion_key__in=SEED_FIVE_CODES)
    if other.exists():
        raise RuntimeError(
            f"{other.count()} emotion labels name classes outside the original five "
            f"({', '.join(sorted(set(other.values_list('emotion_key', flat=True))))}); they have no code to go back to"
        )


class Migration(migrations.Migration):
    dependencies = [("faces", "0005_queue_index_nulls_last_on_postgresql")]

    operations = [
        migrations.AddField(
            model_name="annotation", name="emotion_key", field=models.CharField(max_length=32, null=True, blank=True)
        ),
        migrations.RunPython(to_keys, to_codes),
        migrations.RemoveField(model_name="annotation", name="emotion"),
        migrations.RenameField(model_name="annotation", old_name="emotion_key", new_name="emotion"),
    ]
