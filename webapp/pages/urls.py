from django.urls import path

from webapp.pages import views

urlpatterns = [
    path("", views.demo, name="demo"),
    path("label/", views.label, name="label"),
    path("models/", views.models_page, name="models"),
    path("import/", views.import_page, name="import"),
    path("faces/", views.faces_page, name="faces"),
    path("faces/<int:face_id>/", views.face_page, name="face"),
    path("recordings/", views.recordings_page, name="recordings"),
]
