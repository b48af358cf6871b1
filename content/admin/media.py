"""Admin of media assets: a list with thumbnails, upload through the same checks as the API
(`content.media`), the alt text as the one editable field, renditions read-only inline."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html

from cmsproject.errors import DomainError
from content.media import (
    media_asset_create,
    media_asset_delete,
    media_asset_update,
    media_renditions_request,
    media_upload_check,
)
from content.models import MediaAsset, Rendition


class MediaAssetAddForm(forms.ModelForm):
    upload = forms.FileField(
        label="Image",
        help_text="JPEG, PNG, GIF, WebP or AVIF. Metadata (EXIF, GPS) is removed; renditions are "
        "made in the background.",
    )

    class Meta:
        model = MediaAsset
        fields = ["alt"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        upload = cleaned.get("upload")
        if upload is None:
            return cleaned
        try:
            self.clean_image = media_upload_check(upload=upload)
        except DomainError as exc:
            for detail in [error.detail for error in exc.errors] or [exc.detail]:
                self.add_error("upload", detail)
        return cleaned


class RenditionInline(admin.TabularInline):
    model = Rendition
    extra = 0
    fields = ["format", "width", "height", "human_size", "link"]
    readonly_fields = fields
    can_delete = False
    ordering = ["format", "width"]

    @admin.display(description="size")
    def human_size(self, rendition: Rendition) -> str:
        return filesizeformat(rendition.size)

    @admin.display(description="file")
    def link(self, rendition: Rendition) -> str:
        return format_html('<a href="{}">{}</a>', rendition.file.url, rendition.file.name)

    # Renditions belong to their asset: whoever may see the asset sees them, nobody edits them.
    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("content.view_mediaasset")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(MediaAsset)
class MediaAssetAdmin(admin.ModelAdmin):
    list_display = ["thumbnail", "original_filename", "format", "dimensions", "human_size"]
    list_display += ["status", "created_at"]
    list_display_links = ["thumbnail", "original_filename"]
    list_filter = ["status", "format"]
    search_fields = ["original_filename", "alt", "=checksum"]
    ordering = ["-created_at"]
    actions = ["make_renditions"]
    readonly_fields = [
        "preview",
        "file",
        "original_filename",
        "format",
        "mime_type",
        "dimensions",
        "human_size",
        "checksum",
        "status",
        "created_by",
        "created_at",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[MediaAsset]:
        return super().get_queryset(request).prefetch_related("renditions")

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        if obj is None:
            kwargs["form"] = MediaAssetAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return ["upload", "alt"]
        return ["preview", "alt", *self.readonly_fields[1:]]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else self.readonly_fields

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        # On add, `obj` is the unsaved instance while the POST is handled: no inline either.
        return [] if obj is None or obj.pk is None else [RenditionInline]

    @admin.display(description="")
    def thumbnail(self, asset: MediaAsset) -> str:
        return format_html(
            '<img src="{}" alt="{}" loading="lazy" style="max-width:96px;max-height:64px">',
            _smallest_url(asset),
            asset.alt,
        )

    @admin.display(description="preview")
    def preview(self, asset: MediaAsset) -> str:
        return format_html(
            '<img src="{}" alt="{}" style="max-width:480px;max-height:320px">',
            asset.file.url,
            asset.alt,
        )

    @admin.display(description="size")
    def human_size(self, asset: MediaAsset) -> str:
        return filesizeformat(asset.size)

    @admin.display(description="dimensions")
    def dimensions(self, asset: MediaAsset) -> str:
        return f"{asset.width} x {asset.height}"

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            media_asset_update(asset=obj, alt=form.cleaned_data["alt"])
            return
        created = media_asset_create(
            image=form.clean_image, alt=form.cleaned_data.get("alt", ""), actor=request.user
        )
        obj.__dict__.update(created.__dict__)  # the admin goes on with `obj` (log, redirect)

    def delete_model(self, request: HttpRequest, obj: MediaAsset) -> None:
        media_asset_delete(asset=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[MediaAsset]) -> None:
        for asset in queryset:
            media_asset_delete(asset=asset)

    @admin.action(description="Make missing renditions again", permissions=["change"])
    def make_renditions(self, request: HttpRequest, queryset: QuerySet[MediaAsset]) -> None:
        for asset in queryset:
            media_renditions_request(asset=asset)
        self.message_user(request, f"Renditions requested for {queryset.count()} asset(s).")


def _smallest_url(asset: MediaAsset) -> str:
    renditions = sorted(
        asset.renditions.all(), key=lambda r: (r.format != "webp", r.width)
    )  # prefetched
    return renditions[0].file.url if renditions else asset.file.url
