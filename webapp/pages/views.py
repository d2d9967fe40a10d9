from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from webapp.pages.permissions import is_labeler


def forbidden(request, message: str):
    """The 403 page, rendered here: raising PermissionDenied would log a full traceback for an ordinary refusal."""
    return render(request, "403.html", {"exception": message}, status=403)


@ensure_csrf_cookie
def demo(request):
    return render(request, "demo.html", {"can_label": is_labeler(request.user)})


@login_required
@ensure_csrf_cookie
def label(request):
    if not is_labeler(request.user):
        return forbidden(request, "Labelers only.")
    return render(request, "label.html")


@login_required
@ensure_csrf_cookie
def recordings_page(request):
    if not is_labeler(request.user):
        return forbidden(request, "Labelers only.")
    return render(request, "recordings.html")


@login_required
@ensure_csrf_cookie
def models_page(request):
    if not request.user.is_staff:
        return forbidden(request, "Staff only.")
    return render(request, "models.html", {"kinds": [("keypoints", "Facial keypoints"), ("emotion", "Emotion")]})


@login_required
@ensure_csrf_cookie
def import_page(request):
    if not request.user.is_staff:
        return forbidden(request, "Staff only.")
    from ml.datasets import HEADERS

    formats = [*HEADERS.items(), ("label-studio", "a Label Studio JSON export")]
    return render(request, "import.html", {"formats": formats})


@login_required
@ensure_csrf_cookie
def faces_page(request):
    if not is_labeler(request.user):
        return forbidden(request, "Labelers only.")
    return render(request, "faces.html")


@login_required
@ensure_csrf_cookie
def face_page(request, face_id: int):
    if not is_labeler(request.user):
        return forbidden(request, "Labelers only.")
    return render(request, "face.html", {"face_id": face_id})
