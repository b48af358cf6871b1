from django.urls import path

from customers import api
from customers.export import CustomerExportApi

urlpatterns = [
    path("customers/", api.CustomerListApi.as_view(), name="customer-list"),
    path("customers/export/", CustomerExportApi.as_view(), name="customer-export"),
    path("customers/<int:pk>/", api.CustomerDetailApi.as_view(), name="customer-detail"),
    path("identify/", api.IdentifyApi.as_view(), name="identify"),
    path("me/", api.MeApi.as_view(), name="me"),
    path("me/preferences/", api.MePreferencesApi.as_view(), name="me-preferences"),
    path("me/consents/", api.MeConsentsApi.as_view(), name="me-consents"),
    path(
        "customer-attributes/",
        api.CustomerAttributeListApi.as_view(),
        name="customer-attribute-list",
    ),
    path(
        "customer-attributes/<slug:key>/",
        api.CustomerAttributeDetailApi.as_view(),
        name="customer-attribute-detail",
    ),
]
