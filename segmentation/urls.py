from django.urls import path

from segmentation import api

urlpatterns = [
    path("segments/", api.SegmentListApi.as_view(), name="segment-list"),
    path("segments/schema/", api.SegmentSchemaApi.as_view(), name="segment-schema"),
    path("segments/preview/", api.SegmentPreviewApi.as_view(), name="segment-preview"),
    path("segments/<slug:key>/", api.SegmentDetailApi.as_view(), name="segment-detail"),
    path("segments/<slug:key>/members/", api.SegmentMembersApi.as_view(), name="segment-members"),
    path(
        "segments/<slug:key>/members/import/",
        api.SegmentMembersImportApi.as_view(),
        name="segment-members-import",
    ),
    path(
        "segments/<slug:key>/recompute/",
        api.SegmentRecomputeApi.as_view(),
        name="segment-recompute",
    ),
]
