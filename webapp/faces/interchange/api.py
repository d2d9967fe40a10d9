"""Dataset import and export over the API (staff): the same services the management commands call."""

import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from ml.datasets import READERS, DatasetError, count_lines
from webapp.common.throttling import ScopedRateThrottle
from webapp.faces.interchange.formats import WRITERS
from webapp.faces.interchange.services import faces_import
from webapp.pages.errors import ErrorOutput, TooLarge
from webapp.pages.permissions import IsStaff
from webapp.pages.serializers import Input


class DatasetImportApi(APIView):
    permission_classes = [IsStaff]
    parser_classes = [MultiPartParser]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "uploads"

    @extend_schema_serializer(component_name="DatasetImportInput")
    class InputSerializer(Input):
        format = serializers.ChoiceField(choices=[*READERS, "label-studio"])
        file = serializers.FileField(help_text="the CSV, plain or .gz; for label-studio, its JSON export")
        relabel = serializers.BooleanField(
            default=False, help_text="faces already present take this file's label (repairs a wrong-format import)"
        )
        add_classes = serializers.BooleanField(
            default=False, help_text="a class name the label set lacks is added to it (default: a bad row)"
        )

    @extend_schema(
        request=InputSerializer,
        responses={
            413: OpenApiResponse(ErrorOutput, description="more rows than IMPORT_MAX_ROWS"),
            201: inline_serializer(
                "ImportReport",
                {
                    "created": serializers.IntegerField(),
                    "duplicates": serializers.IntegerField(),
                    "excluded": serializers.IntegerField(),
                    "relabeled": serializers.IntegerField(allow_null=True, help_text="null unless relabel"),
                    "classes_added": serializers.ListField(child=serializers.CharField()),
                    "annotators": serializers.DictField(
                        child=serializers.DictField(),
                        help_text="Label Studio: each annotator the file names -> {user, existed}: the account its "
                        "labels are credited to; existed: a user with that e-mail (else made for the import, inactive)",
                    ),
                    "errors": serializers.ListField(child=serializers.CharField()),
                    "guesses": serializers.CharField(help_text="the served model's guesses of the new faces"),
                    "summary": serializers.CharField(),
                },
            ),
        },
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        if upload.size > settings.IMPORT_MAX_BYTES:  # the proxy's body limit is this too (manage.py proxy_config)
            raise TooLarge(
                f"{upload.name} is {upload.size:,} bytes; an import over the web takes at most "
                f"{settings.IMPORT_MAX_BYTES:,} (IMPORT_MAX_BYTES). Compress it (.gz), split it, or import it on the "
                "server with `manage.py import_faces`."
            )
        if data.validated_data["format"] == "label-studio":
            report = _label_studio_import(upload, request.user)
            return Response(_report_body(report, upload.name), status=status.HTTP_201_CREATED)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(upload.name).name
            with path.open("wb") as f:
                for chunk in upload.chunks():
                    f.write(chunk)
            # an import holds its rows in memory (~18 MB per 1,000): refuse what the web process cannot hold, read
            # from the file itself (a small .gz can hold a huge file), before a row is parsed
            try:
                rows = count_lines(path, limit=settings.IMPORT_MAX_ROWS + 1) - 1
            except DatasetError as exc:
                raise serializers.ValidationError({"file": [str(exc).replace(str(tmp) + "/", "")]}) from exc
            if rows > settings.IMPORT_MAX_ROWS:
                raise TooLarge(
                    f"{upload.name} has more than {settings.IMPORT_MAX_ROWS:,} rows; an import over the web takes at "
                    "most that many (IMPORT_MAX_ROWS). Split the file, or import it on the server with "
                    "`manage.py import_faces`."
                )
            try:
                report = faces_import(
                    path=path,
                    fmt=data.validated_data["format"],
                    author=request.user,
                    relabel=data.validated_data["relabel"],
                    add_classes=data.validated_data["add_classes"],
                )
            except DatasetError as exc:
                raise serializers.ValidationError({"file": [str(exc).replace(str(tmp) + "/", "")]}) from exc
        return Response(_report_body(report, upload.name, path), status=status.HTTP_201_CREATED)


def _report_body(report, name: str, path: Path | None = None) -> dict:
    return {
        "created": report.created,
        "duplicates": report.duplicates,
        "excluded": report.excluded,
        "relabeled": report.relabeled,
        "classes_added": report.classes_added,
        "annotators": {name: {"user": user, "existed": existed} for name, (user, existed) in report.annotators.items()},
        "errors": [str(e) for e in report.errors],
        "guesses": report.guesses,
        "summary": report.summary().replace(str(path), name) if path else report.summary(),
    }


def _label_studio_import(upload, user):
    """A Label Studio JSON export: parsed whole (it is at most UPLOAD_MAX_BYTES), each task imported on its own."""
    from webapp.faces.interchange.labelstudio.protocol import Deadline, TaskError, read_export
    from webapp.faces.interchange.labelstudio.services import faces_import_label_studio

    if upload.size > settings.LABEL_STUDIO_IMPORT_MAX_BYTES:
        raise TooLarge(
            f"{upload.name} is {upload.size:,} bytes; Label Studio exports over the web take at most "
            f"{settings.LABEL_STUDIO_IMPORT_MAX_BYTES:,} (LABEL_STUDIO_IMPORT_MAX_BYTES). Import it on the server "
            "with `manage.py import_faces --format label-studio`."
        )
    try:
        payload = read_export(upload.read().decode("utf-8-sig"))
    except (UnicodeDecodeError, TaskError) as exc:
        raise serializers.ValidationError({"file": [f"{upload.name}: {exc}"]}) from None
    tasks = len(payload) if isinstance(payload, list) else 1
    if tasks > settings.IMPORT_MAX_ROWS:
        raise TooLarge(
            f"{upload.name} has {tasks:,} tasks; an import over the web takes at most {settings.IMPORT_MAX_ROWS:,}."
        )
    try:
        deadline = Deadline(settings.LABEL_STUDIO_REQUEST_SECONDS)  # one for the request's fetches, all together
        return faces_import_label_studio(payload=payload, author=user, name=Path(upload.name).name, deadline=deadline)
    except TaskError as exc:
        raise serializers.ValidationError({"file": [f"{upload.name}: {exc}"]}) from None


def _selection_parameters():
    from webapp.faces.labeling.api import BROWSE_PARAMETERS

    return list(BROWSE_PARAMETERS)


_SELECTION = _selection_parameters()


class DatasetExportApi(APIView):
    """Download the labeled faces; with any face-list filter (or ``ids``), the faces it selects alone."""

    permission_classes = [IsStaff]

    @extend_schema(
        parameters=[
            OpenApiParameter("fmt", str, OpenApiParameter.PATH, enum=list(WRITERS)),
            *_SELECTION,
        ],
        responses={
            (200, "text/csv"): bytes,
            (200, "application/zip"): bytes,
            (200, "application/json"): OpenApiTypes.ANY,  # Label Studio's tasks
        },
    )
    def get(self, request, fmt: str):
        if fmt not in WRITERS:
            raise serializers.ValidationError({"format": [f"must be one of {', '.join(WRITERS)}"]})
        from webapp.faces.labeling import browse

        only = None
        if any(request.query_params.get(name) for name in browse.FILTERS):  # a selection of the Faces page
            only = set(browse.browse_parse(request.query_params).faces().values_list("pk", flat=True))
        # Written in a directory removed at once; what is sent is an unlinked temporary file (gone when closed).
        download = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it after sending
        with tempfile.TemporaryDirectory(prefix="export-") as tmp:
            content = Path(tmp) / "content"  # the archive is written beside what it packs, never inside it
            content.mkdir()
            name = f"{fmt}.json" if fmt in ("coco-keypoints", "label-studio") else f"{fmt}.csv"
            WRITERS[fmt](content / name, only=only)
            if fmt == "coco-keypoints":  # the JSON and its images, as one download
                archive = shutil.make_archive(str(Path(tmp) / "coco-keypoints"), "zip", content)
                result, name = Path(archive), "coco-keypoints.zip"
            else:
                result = content / name
            with result.open("rb") as f:
                shutil.copyfileobj(f, download, 1024 * 1024)
        download.seek(0)
        return FileResponse(download, as_attachment=True, filename=name)
