from django.apps import AppConfig


class FacesConfig(AppConfig):
    name = "webapp.faces"
    label = "faces"

    def ready(self) -> None:
        from django.conf import settings
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = settings.UPLOAD_MAX_PIXELS  # Pillow's decompression-bomb guard at our limit
