from django.apps import AppConfig


class SegmentationConfig(AppConfig):
    name = "segmentation"
    verbose_name = "Segments"
