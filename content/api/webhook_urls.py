from django.urls import path

from content.api import webhooks

urlpatterns = [
    path("webhooks/", webhooks.WebhookListApi.as_view(), name="webhook-list"),
    path("webhooks/<int:pk>/", webhooks.WebhookDetailApi.as_view(), name="webhook-detail"),
    path(
        "webhooks/<int:pk>/deliveries/",
        webhooks.WebhookDeliveryListApi.as_view(),
        name="webhook-deliveries",
    ),
]
