from django.urls import include, path

from content.api import views

urlpatterns = [
    path("content-types/", views.ContentTypeListApi.as_view(), name="content-type-list"),
    path(
        "content-types/<slug:api_id>/",
        views.ContentTypeDetailApi.as_view(),
        name="content-type-detail",
    ),
    path(
        "content-types/<slug:api_id>/schema/",
        views.ContentTypeSchemaApi.as_view(),
        name="content-type-schema",
    ),
    path("components/", views.ComponentListApi.as_view(), name="component-list"),
    path("components/<slug:api_id>/", views.ComponentDetailApi.as_view(), name="component-detail"),
    path("content/<slug:type_api_id>/", views.EntryListApi.as_view(), name="entry-list"),
    path(
        "content/<slug:type_api_id>/<slug:slug>/",
        views.EntryDetailApi.as_view(),
        name="entry-detail",
    ),
    path(
        "content/<slug:type_api_id>/<slug:slug>/publish/",
        views.EntryPublishApi.as_view(),
        name="entry-publish",
    ),
    path(
        "content/<slug:type_api_id>/<slug:slug>/unpublish/",
        views.EntryUnpublishApi.as_view(),
        name="entry-unpublish",
    ),
    path(
        "content/<slug:type_api_id>/<slug:slug>/revisions/",
        views.EntryRevisionListApi.as_view(),
        name="entry-revisions",
    ),
    path(
        "content/<slug:type_api_id>/<slug:slug>/revisions/<int:number>/restore/",
        views.EntryRevisionRestoreApi.as_view(),
        name="entry-revision-restore",
    ),
    path(
        "deliver/<slug:type_api_id>/<slug:slug>/",
        views.DeliverApi.as_view(),
        name="deliver",
    ),
    path("", include("content.api.media_urls")),
    path("", include("content.api.webhook_urls")),
]
