from django.urls import path

from analytics.api import reports, views

urlpatterns = [
    path("events/", views.EventSingleIngestApi.as_view(), name="events-ingest"),
    path("events/batch/", views.EventBatchIngestApi.as_view(), name="events-ingest-batch"),
    path("event-types/", views.EventTypeListApi.as_view(), name="event-type-list"),
    path("event-types/<slug:name>/", views.EventTypeDetailApi.as_view(), name="event-type-detail"),
    path("customers/<int:pk>/events/", views.CustomerEventsApi.as_view(), name="customer-events"),
]

urlpatterns += [
    path("analytics/funnel/", reports.FunnelApi.as_view(), name="analytics-funnel"),
    path("analytics/timeseries/", reports.TimeseriesApi.as_view(), name="analytics-timeseries"),
    path("analytics/journeys/", reports.JourneysApi.as_view(), name="analytics-journeys"),
]
