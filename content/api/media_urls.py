from django.urls import path

from content.api.media import MediaDetailApi, MediaListApi

urlpatterns = [
    path("media/", MediaListApi.as_view(), name="media-list"),
    path("media/<int:pk>/", MediaDetailApi.as_view(), name="media-detail"),
]
