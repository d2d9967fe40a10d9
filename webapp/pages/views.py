from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from webapp.pages.permissions import is_labeler


@ensure_csrf_cookie
def demo(request):
    return render(request, "demo.html", {"can_label": is_labeler(request.user)})


@login_required
@ensure_csrf_cookie
def label(request):
    if not is_labeler(request.user):
        raise PermissionDenied("Labelers only.")
    return render(request, "label.html")


@login_required
@ensure_csrf_cookie
def models_page(request):
    if not request.user.is_staff:
        raise PermissionDenied("Staff only.")
    return render(request, "models.html", {"kinds": [("keypoints", "Facial keypoints"), ("emotion", "Emotion")]})
