from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = "Customers"

    def ready(self) -> None:
        from content.webhooks import webhook_event_register
        from customers import topics  # noqa: F401 - registers this app's live topics

        webhook_event_register("order.created", "A customer placed an order")
        webhook_event_register("ticket.updated", "A support ticket was opened or changed status")
        webhook_event_register(
            "notification.created", "A notification for the webhook channel (e.g. a push service)"
        )
