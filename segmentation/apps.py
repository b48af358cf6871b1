from django.apps import AppConfig


class SegmentationConfig(AppConfig):
    name = "segmentation"
    verbose_name = "Segments"

    def ready(self) -> None:
        from content.webhooks import webhook_event_register

        webhook_event_register("segment.entered", "A customer or browser entered a segment")
        webhook_event_register("segment.exited", "A customer or browser left a segment")
