"""Segments in the admin. Rules are read-only here until the visual rule editor and the criteria
validator land with the evaluators (issue 5): a hand-typed rule could not be checked yet."""

from __future__ import annotations

from django.contrib import admin

from segmentation.models import Segment


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ["name", "key", "kind", "member_count", "evaluated_at"]
    list_filter = ["kind"]
    search_fields = ["key", "name"]
    readonly_fields = ["rules", "member_count", "evaluated_at", "created_at", "updated_at"]
