"""The Faces page's reads: one set of filters (the page's URL and ``GET /api/faces/`` share them), the orderings, and
the count of faces per value of each filter.

Every filter is a column of Face or of its FaceSummary (kept by ``services.summaries_refresh``), so a filtered page is
one indexed query at any size; a face without a summary row has nothing said about it (no label, no guess).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Case, Count, F, Q, QuerySet, Value, When
from django.utils import timezone

from webapp.faces.labeling.models import Annotation
from webapp.faces.labeling.selectors import blind_hidden
from webapp.faces.store.models import UPLOADS_DATASET, Face

STATES = {
    "unlabeled": Q(summary__isnull=True) | Q(summary__emotion__isnull=True, summary__keypoints=False),
    "labeled": Q(summary__emotion__isnull=False) | Q(summary__keypoints=True),
    "review": Q(review_emotion=True) | Q(review_keypoints=True),
    "disputed": Q(summary__disputed=True),
}
NONE = "none"  # the emotion or guess filter's value for "no label" / "no guess"

# ordering name -> the column(s); "-name" sorts descending; ties always go by id
ORDERINGS = {
    "id": "id",
    "created_at": "created_at",
    "dataset": "source_name",
    "group": "group",
    "split": "split",
    "source": "source",
    "emotion": "summary__emotion",
    "guess": "summary__guess",
    "guess_probability": "summary__guess_probability",
    "emotion_uncertainty": "emotion_uncertainty",
    "keypoints_uncertainty": "keypoints_uncertainty",
    "emotion_suspicion": "summary__emotion_suspicion",
    "keypoints_suspicion": "summary__keypoints_suspicion",
}

FILTERS = (
    "q",
    "dataset",
    "group",
    "split",
    "source",
    "state",
    "emotion",
    "guess",
    "mismatch",
    "labeler",
    "created_after",
    "created_before",
    "uncertainty_min",
    "uncertainty_max",
    "suspicion_min",
    "excluded",
    "labeled",
    "photo",
    "ids",
)
FACETS = ("dataset", "split", "source", "state", "emotion", "guess")


def _bad(name: str, message: str) -> ValidationError:
    return ValidationError({name: [message]})


def _choice(name: str, value: str, choices) -> str:
    if value not in choices:
        raise _bad(name, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def _number(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise _bad(name, f"must be a number, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise _bad(name, f"must be a finite number, got {value!r}")
    return number


def _moment(name: str, value: str, *, end: bool) -> datetime:
    """A date (the whole day: from its start, or to its end) or a date and time; naive ones are in TIME_ZONE."""
    try:
        moment = datetime.fromisoformat(value)
        if len(value) <= 10:  # a bare date
            moment = datetime.combine(date.fromisoformat(value), time.max if end else time.min)
        if not 1970 <= moment.year <= 9998:
            raise ValueError
        moment = timezone.make_aware(moment) if timezone.is_naive(moment) else moment
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _bad(name, f"must be a date (2026-12-05) or a date and time, got {value!r}") from None


def _q(name: str, value: str) -> Q:
    """One filter as a condition; every value is checked (a 400 names the parameter)."""
    if name == "q":
        value = value.strip()
        if not value:
            return Q()
        number = value.removeprefix("#")
        if number.isdigit():  # a face's id ("123" or "#123"), as the pages print it
            return Q(pk=int(number)) if len(number) < 19 else Q(pk__in=[])
        text = Q(source_name__icontains=value) | Q(group__icontains=value)
        if len(value) >= 8 and all(c in "0123456789abcdef" for c in value.lower()):
            text |= Q(checksum__startswith=value.lower())
        return text
    if name == "dataset":
        if value == UPLOADS_DATASET:
            return Q(source=Face.Source.UPLOAD)
        return Q(source=Face.Source.IMPORT, source_name=value)
    if name == "group":
        return Q(group=value)
    if name == "split":
        return Q(split=_choice(name, value, Face.Split.values))
    if name == "source":
        return Q(source=_choice(name, value, Face.Source.values))
    if name == "state":
        return STATES[_choice(name, value, list(STATES))]
    if name in ("emotion", "guess"):
        column = f"summary__{name}"
        if value == NONE:
            return Q(summary__isnull=True) | Q(**{f"{column}__isnull": True})
        return Q(**{column: value})
    if name == "mismatch":
        wanted = _choice(name, value, ["true", "false"]) == "true"
        both = Q(summary__emotion__isnull=False, summary__guess__isnull=False)
        differ = both & ~Q(summary__emotion=F("summary__guess"))
        return differ if wanted else both & Q(summary__emotion=F("summary__guess"))
    if name == "labeler":
        user = get_user_model().objects.filter(username=value).first()
        if user is None:
            raise _bad(name, f"no user named {value!r}")
        labeled = Annotation.objects.filter(
            author=user, origin__in=[Annotation.Origin.HUMAN, Annotation.Origin.REVIEW]
        ).values("face_id")
        return Q(pk__in=labeled)
    if name == "created_after":
        return Q(created_at__gte=_moment(name, value, end=False))
    if name == "created_before":
        return Q(created_at__lte=_moment(name, value, end=True))
    if name == "uncertainty_min":
        return Q(emotion_uncertainty__gte=_number(name, value))
    if name == "uncertainty_max":
        return Q(emotion_uncertainty__lte=_number(name, value))
    if name == "excluded":
        if _choice(name, value, ["true", "false"]) == "true":
            return Q(summary__excluded=True)
        return Q(summary__isnull=True) | Q(summary__excluded=False)
    if name == "suspicion_min":
        return Q(summary__emotion_suspicion__gte=_number(name, value))
    if name == "ids":  # a selection: comma-separated face ids
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if len(parts) > 1000 or not all(part.isdigit() and len(part) < 19 for part in parts):
            raise _bad(name, "must be at most 1000 comma-separated face ids")
        return Q(pk__in=[int(part) for part in parts])
    if name == "photo":  # the faces found in the same picture as face <id>, that one included
        if not value.isdigit() or len(value) > 18:
            raise _bad(name, f"must be a face id, got {value!r}")
        original = Face.objects.filter(pk=int(value)).values_list("original", flat=True).first()
        return Q(original=original) if original else Q(pk=int(value))
    if name == "labeled":  # the list's first filter, kept: keypoints|emotion, or unlabeled:<task>
        negate, _, task = value.rpartition(":")
        tasks = ["keypoints", "emotion"]
        if task not in tasks or negate not in ("", "unlabeled"):
            choices = [*tasks, *(f"unlabeled:{t}" for t in tasks)]
            raise _bad(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return Q(**{f"human_{task}": not negate})
    raise AssertionError(name)


@dataclass(frozen=True)
class Browse:
    """A parsed filter set: the conditions by parameter, and the ordering."""

    conditions: dict[str, Q]
    ordering: tuple[str, ...]
    hidden: Q | None = None  # faces the viewer may not see (blind labeling: ``selectors.blind_hidden``)

    def faces(self, *, without: str | None = None) -> QuerySet[Face]:
        qs = Face.objects.all() if self.hidden is None else Face.objects.exclude(self.hidden)
        for name, condition in self.conditions.items():
            if name != without:
                qs = qs.filter(condition)
        return qs


def browse_parse(params, viewer=None) -> Browse:
    """Read the filters and ``ordering`` from query parameters (a QueryDict or a dict); unknown ones are ignored (the
    pagination's ``limit`` and ``offset`` ride along). ``viewer``: the faces are those that user may see."""
    conditions = {}
    for name in FILTERS:
        value = params.get(name)
        if value not in (None, ""):
            value = str(value)
            # NUL (PostgreSQL refuses it in text: a 500) and the other control characters are in no name or search
            if any(ord(c) < 32 or ord(c) == 127 for c in value):
                raise _bad(name, "holds a control character (such as NUL); send plain text")
            conditions[name] = _q(name, value)
    ordering = str(params.get("ordering") or "-id")
    key = ordering.removeprefix("-")
    if key not in ORDERINGS:
        choices = ", ".join(f"{name}, -{name}" for name in ORDERINGS)
        raise _bad("ordering", f"must be one of {choices}; got {ordering!r}")
    descending = ordering.startswith("-")
    column = ORDERINGS[key]
    # nulls last either way, so "most uncertain first" does not start with the faces nobody predicted
    by = F(column).desc(nulls_last=True) if descending else F(column).asc(nulls_last=True)
    hidden = blind_hidden(viewer) if viewer is not None else None
    return Browse(conditions, (by, "-id" if descending else "id"), hidden)


def face_browse(params, viewer=None) -> QuerySet[Face]:
    browse = browse_parse(params, viewer)
    return browse.faces().select_related("summary").order_by(*browse.ordering)


def _counted(qs: QuerySet[Face]) -> dict[str, dict[str, int]]:
    """Every facet's counts over ``qs`` in one grouped query: by dataset, split, source, label and guess (a few
    hundred groups at most), with the states counted inside each group; summed here."""
    dataset = Case(When(source=Face.Source.UPLOAD, then=Value(UPLOADS_DATASET)), default=F("source_name"))
    states = {state: Count("id", filter=condition) for state, condition in STATES.items()}
    rows = (
        qs.annotate(dataset_name=dataset)
        .values_list("dataset_name", "split", "source", "summary__emotion", "summary__guess")
        .annotate(n=Count("id"), **states)
        .order_by()
    )
    facets: dict[str, dict[str, int]] = {name: {} for name in FACETS}
    facets["state"] = dict.fromkeys(STATES, 0)
    for dataset_name, split, source, emotion, guess, n, *by_state in rows:
        for name, value in (
            ("dataset", dataset_name),
            ("split", split),
            ("source", source),
            ("emotion", emotion or NONE),
            ("guess", guess or NONE),
        ):
            facets[name][value] = facets[name].get(value, 0) + n
        for state, count in zip(STATES, by_state, strict=True):
            facets["state"][state] += count
    return {
        name: counts if name == "state" else dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        for name, counts in facets.items()
    }


def face_facets(params, viewer=None) -> dict[str, dict[str, int]]:
    """filter -> value -> how many faces it would show, with every other filter applied (the page's counts).

    The facets no filter is set on share one query (all filters applied); a facet whose own filter is set is counted
    without it, one query each: with a few filters set, a handful of grouped queries in all."""
    browse = browse_parse(params, viewer)
    facets = _counted(browse.faces())
    for name in FACETS:
        if name in browse.conditions:
            facets[name] = _counted(browse.faces(without=name))[name]
    return facets
