"""Cursor pagination, available to every app for large collections."""

from __future__ import annotations

import pytest
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from cmsproject.models import AuditEntry
from cmsproject.pagination import CursorPagination

pytestmark = pytest.mark.django_db


def page(url: str) -> dict:
    request = Request(APIRequestFactory().get(url))
    paginator = CursorPagination()
    items = paginator.paginate_queryset(AuditEntry.objects.all(), request)
    return paginator.get_paginated_response([item.action for item in items]).data


def test_cursor_pages_walk_newest_first_without_count():
    for index in range(5):
        AuditEntry.objects.create(actor_label="x", action=f"a{index}")

    first = page("/things/?page_size=2")
    second = page(first["next"])

    assert set(first) == {"results", "next", "previous"}
    assert first["results"] == ["a4", "a3"]
    assert second["results"] == ["a2", "a1"]
    assert second["previous"]


def test_a_forged_cursor_is_a_404_not_a_crash():
    from rest_framework.exceptions import NotFound

    with pytest.raises(NotFound):
        page("/things/?cursor=bz1hYmM%3D")  # "o=abc": an offset that is not a number
