from django.urls import path

from experiments import api

urlpatterns = [
    path("experiments/", api.ExperimentListApi.as_view(), name="experiment-list"),
    path("experiments/<slug:key>/", api.ExperimentDetailApi.as_view(), name="experiment-detail"),
    path(
        "experiments/<slug:key>/assignment/",
        api.AssignmentApi.as_view(),
        name="experiment-assignment",
    ),
    path(
        "experiments/<slug:key>/results/",
        api.ExperimentResultsApi.as_view(),
        name="experiment-results",
    ),
    path(
        "experiments/<slug:key>/winner/",
        api.ExperimentWinnerApi.as_view(),
        name="experiment-winner",
    ),
    path("flags/", api.FlagListApi.as_view(), name="flag-list"),
    path("flags/<slug:key>/", api.FlagDetailApi.as_view(), name="flag-detail"),
]
