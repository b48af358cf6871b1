from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from cmsproject import api
from cmsproject.graphql import GraphQLApi
from cmsproject.observability.views import metrics_view
from cmsproject.schema import schema_current
from cmsproject.storefront import DemoPurchaseApi, storefront_page

# Django tries patterns in order, one regular expression each, until one matches: what browsers
# call most (event ingestion, delivery and content reads) comes first, and the whole API sits under
# one `api/v1/` prefix, so other paths (GraphQL, the admin, media) skip it with one test.
api_v1 = [
    path("", include("analytics.api.urls")),
    path("", include("content.api.urls")),
    path("health/", api.HealthApi.as_view(), name="health"),
    path("auth/token/", api.TokenObtainApi.as_view(), name="token-obtain"),
    path("auth/token/refresh/", api.TokenRefreshApi.as_view(), name="token-refresh"),
    path("auth/logout/", api.LogoutApi.as_view(), name="logout"),
    path("auth/customer-token/", api.CustomerTokenApi.as_view(), name="customer-token"),
    path("api-keys/", api.ApiKeyListApi.as_view(), name="api-key-list"),
    path("api-keys/<str:prefix>/", api.ApiKeyDetailApi.as_view(), name="api-key-detail"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("", include("customers.urls")),
    path("", include("customers.orders_api")),
    path("", include("customers.feedback_api")),
    path("", include("customers.sessions_api")),
    path("", include("analytics.api.nps")),
    path("", include("segmentation.urls")),
    path("", include("experiments.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("graphql/", GraphQLApi.as_view(schema=schema_current), name="graphql"),
    path("", storefront_page, name="storefront"),
    path("demo/purchase/", DemoPurchaseApi.as_view(), name="demo-purchase"),
    path("admin/", admin.site.urls),
    path("", include("content.media_serving_urls")),
    path("metrics", metrics_view, name="metrics"),
]

if settings.CMS_BENCH_VIEWS:
    from cmsproject import bench_views

    urlpatterns += [
        path("bench/django/", bench_views.bare_django_json, name="bench-django"),
        path("bench/drf/", bench_views.BareDrfApi.as_view(), name="bench-drf"),
    ]

handler400 = "cmsproject.errors.bad_request"
handler403 = "cmsproject.errors.permission_denied"
handler404 = "cmsproject.errors.page_not_found"
handler500 = "cmsproject.errors.server_error"
