"""OpenAPI: the emotion a client may send is a class of the label set, listed as the schema's enum when it is made."""

from django.db import DatabaseError

from ml.schema import DEFAULT_LABELS

# request bodies whose `emotion` is a class of the set
EMOTION_INPUTS = ("AnnotationSubmitInputRequest",)


def add_label_set_enum(result, generator, request, public):
    from webapp.labels.selectors import label_set

    try:
        labels = list(label_set(task="emotion").labels)
    except DatabaseError:  # a schema made before the database is migrated (CI's schema check): the default set
        labels = list(DEFAULT_LABELS)
    schemas = result.get("components", {}).get("schemas", {})
    for name in EMOTION_INPUTS:
        emotion = schemas.get(name, {}).get("properties", {}).get("emotion")
        if emotion is not None:
            emotion["enum"] = labels
            emotion["description"] = (
                f"{emotion.get('description', '')} — the set when this schema was made: {', '.join(labels)}"
            ).lstrip(" —")
    return result
