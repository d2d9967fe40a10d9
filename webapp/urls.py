from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.http import JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import Throttled, ValidationError

from webapp.common.signin import signin_failed, signin_succeeded, signin_wait
from webapp.faces.interchange import api as datasets
from webapp.faces.interchange.labelstudio import api as label_studio
from webapp.faces.labeling import api as labeling
from webapp.faces.store import api as store
from webapp.labels import api as labels
from webapp.pages.parsers import PARSERS
from webapp.recordings import api as recordings
from webapp.registry import api as registry
from webapp.training import api as training


class TokenObtainApi(ObtainAuthToken):
    """DRF's token view; failed sign-ins are limited per client address (THROTTLE_LOGIN, webapp.common.signin)."""

    parser_classes = PARSERS

    def post(self, request, *args, **kwargs):
        if wait := signin_wait(request):
            raise Throttled(wait, "Request was throttled: too many failed sign-ins from this address.")
        try:
            response = super().post(request, *args, **kwargs)
        except ValidationError:
            signin_failed(request)
            raise
        signin_succeeded(request)
        return response


class SigninView(LoginView):
    """The session sign-in form (where /admin/login/ leads), limited as the token view is."""

    def post(self, request, *args, **kwargs):
        if wait := signin_wait(request):
            response = self.render_to_response(self.get_context_data(throttled_wait=wait), status=429)
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        signin_failed(self.request)
        return super().form_invalid(form)

    def form_valid(self, form):
        signin_succeeded(self.request)
        return super().form_valid(form)


api = [
    path("faces/", labeling.FaceListApi.as_view(), name="face-list"),
    path("faces/upload/", store.FaceUploadApi.as_view(), name="face-upload"),
    path("faces/facets/", labeling.FaceFacetsApi.as_view(), name="face-facets"),
    path("faces/bulk/", labeling.FaceBulkApi.as_view(), name="face-bulk"),
    path("faces/<int:face_id>/", labeling.FaceDetailApi.as_view(), name="face-detail"),
    path("faces/<int:face_id>/image/", store.FaceImageApi.as_view(), name="face-image"),
    path("faces/<int:face_id>/original/", store.FaceOriginalApi.as_view(), name="face-original"),
    path("faces/<int:face_id>/photo-faces/", store.PhotoFaceAddApi.as_view(), name="face-photo-faces"),
    path("faces/<int:face_id>/annotations/", labeling.AnnotationApi.as_view(), name="face-annotations"),
    path("faces/<int:face_id>/predictions/", labeling.PredictionRecordApi.as_view(), name="face-predictions"),
    path("queue/next/", labeling.QueueNextApi.as_view(), name="queue-next"),
    path("labeling/agreement/", labeling.AgreementApi.as_view(), name="agreement"),
    path("review/next/", labeling.ReviewNextApi.as_view(), name="review-next"),
    path("faces/<int:face_id>/lease/", labeling.LeaseApi.as_view(), name="face-lease"),
    path("labelsets/<str:task>/", labels.LabelSetApi.as_view(), name="labelset"),
    path("datasets/import/", datasets.DatasetImportApi.as_view(), name="dataset-import"),
    path("datasets/export/<str:fmt>/", datasets.DatasetExportApi.as_view(), name="dataset-export"),
    # Label Studio appends these to the ML backend's URL, without a trailing slash
    path("label-studio/config/", label_studio.LabelStudioConfigApi.as_view(), name="label-studio-config"),
    path("label-studio/health", label_studio.LabelStudioHealthApi.as_view(), name="label-studio-health"),
    path("label-studio/setup", label_studio.LabelStudioSetupApi.as_view(), name="label-studio-setup"),
    path("label-studio/predict", label_studio.LabelStudioPredictApi.as_view(), name="label-studio-predict"),
    path("label-studio/webhook", label_studio.LabelStudioWebhookApi.as_view(), name="label-studio-webhook"),
    path("label-studio/train", label_studio.LabelStudioTrainApi.as_view(), name="label-studio-train"),
    path("label-studio/versions", label_studio.LabelStudioVersionsApi.as_view(), name="label-studio-versions"),
    path("models/", registry.VersionListApi.as_view(), name="version-list"),
    path("models/active/", registry.ActiveManifestApi.as_view(), name="manifest"),
    path("models/promotions/", registry.PromotionListApi.as_view(), name="promotion-list"),
    path("models/rollback/", registry.VersionRollbackApi.as_view(), name="version-rollback"),
    path("models/<int:version_id>/", registry.VersionDetailApi.as_view(), name="version-detail"),
    path("models/<int:version_id>/promote/", registry.VersionPromoteApi.as_view(), name="version-promote"),
    path("training-runs/", training.RunApi.as_view(), name="run-list"),
    path("training-runs/plan/", training.RunPlanApi.as_view(), name="run-plan"),
    path("training-runs/<int:run_id>/", training.RunDetailApi.as_view(), name="run-detail"),
    path("training-runs/<int:run_id>/cancel/", training.RunCancelApi.as_view(), name="run-cancel"),
    path("label-check/", training.LabelCheckApi.as_view(), name="label-check"),
    path("recordings/", recordings.RecordingListApi.as_view(), name="recording-list"),
    path("recordings/upload/", recordings.RecordingUploadApi.as_view(), name="recording-upload"),
    path("recordings/<int:recording_id>/", recordings.RecordingDetailApi.as_view(), name="recording-detail"),
    path("recordings/<int:recording_id>/frames/", recordings.RecordingFramesApi.as_view(), name="recording-frames"),
    path(
        "recordings/<int:recording_id>/<str:which>.csv",
        recordings.RecordingExportApi.as_view(),
        name="recording-export",
    ),
    path("recordings/<int:recording_id>/tracks/<int:number>/", recordings.TrackApi.as_view(), name="track"),
    path(
        "recordings/<int:recording_id>/tracks/<int:number>/merge/",
        recordings.TrackMergeApi.as_view(),
        name="track-merge",
    ),
    path("auth/token/", TokenObtainApi.as_view(), name="auth-token"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]


@csrf_exempt  # nothing here changes state; a POST to a wrong route must get the same JSON 404
def api_not_found(request, *args, **kwargs):
    """Under /api/, an unknown route is a JSON 404 in the API's error shape, never Django's HTML page."""
    return JsonResponse({"detail": f"No such API route: {request.path}. See /api/docs/."}, status=404)


urlpatterns = [
    path("api/", include(api)),
    # ends in a slash, so APPEND_SLASH still redirects /api/faces; [\s\S]: a newline in the path is a character too
    re_path(r"^api/(?:[\s\S]*/)?$", api_not_found),
    path("model-files/<str:kind>/<str:name>/<path:path>", registry.model_file, name="model-file"),
    path("admin/login/", RedirectView.as_view(url="/accounts/login/", query_string=True)),
    path("admin/", admin.site.urls),
    path("accounts/login/", SigninView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("webapp.pages.urls")),
]
