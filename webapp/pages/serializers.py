"""The base of the API's model serializers."""

import copy

from rest_framework import serializers


class ModelOutput(serializers.ModelSerializer):
    """A ModelSerializer that reads its model once per class, not once per instance.

    DRF's ModelSerializer introspects the model and builds every field each time a serializer is made, which was about
    a tenth of a labeling request's CPU (bench/profile_labeling.py). The fields of this project's serializers depend on
    their class alone (none overrides ``get_fields``), so they are built once and each instance gets a copy, as DRF's
    plain Serializer does with its declared fields.
    """

    def get_fields(self):
        cls = type(self)
        built = cls.__dict__.get("_built_fields")  # this class's own: a subclass builds its own
        if built is None:
            built = super().get_fields()
            cls._built_fields = built
        return copy.deepcopy(built)


class Input(serializers.Serializer):
    """A write's body. A field the operation does not take is a 400 naming it: a typo or a guessed option
    (``{"kind": "emotion", "epochs": -1}`` once started a real retrain) never passes silently."""

    IGNORED = frozenset({"csrfmiddlewaretoken"})  # a form's CSRF token is the middleware's, not the operation's

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            unknown = sorted(set(data.keys()) - set(self.fields) - self.IGNORED)
            if unknown:
                takes = ", ".join(self.fields) or "no fields"
                raise serializers.ValidationError(
                    {name: [f"unknown field; this operation takes {takes}"] for name in unknown}
                )
        return super().to_internal_value(data)
