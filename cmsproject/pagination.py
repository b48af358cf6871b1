"""List envelopes per API.md: `{"results", "next", "previous"}` and `count` where it is cheap."""

from __future__ import annotations

from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """For small, bounded lists (types, segments, experiments): includes `count`."""

    page_size_query_param = "page_size"
    max_page_size = 200


class CursorPagination(pagination.CursorPagination):
    """For large collections (customers, events, members): stable under inserts, no COUNT(*).

    Views set `ordering` to an indexed, unique-enough column (default: newest id first).
    """

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
