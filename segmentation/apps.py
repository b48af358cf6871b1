from django.apps import AppConfig


class SegmentationConfig(AppConfig):
    name = "segmentation"
    verbose_name = "Segments"

    def ready(self) -> None:
        from content.webhooks import webhook_event_register

        webhook_event_register("segment.entered", "A customer or browser entered a segment")
        webhook_event_register("segment.exited", "A customer or browser left a segment")

        from analytics.signals import events_ingested
        from customers.signals import customer_changed
        from segmentation import services

        # Incremental evaluation: both signals are sent after the change committed.
        events_ingested.connect(services.on_events_ingested, dispatch_uid="segmentation-events")
        customer_changed.connect(services.on_customer_changed, dispatch_uid="segmentation-customer")
