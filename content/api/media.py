"""REST views of media assets: upload (multipart), list, read, change the alt text, delete.

Who may: uploading, changing and deleting need staff with the MediaAsset model permission or an
API key with `content:write`; listing needs the view permission or `content:read`. Reading one
ready asset is public (its files are public anyway); one still processing or failed is shown to
those who may list. Every check of the file itself is in `content.media`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cmsproject.auth import HasApiKeyScope, StaffModelPermission, request_api_key
from cmsproject.errors import FieldError, ValidationError
from cmsproject.pagination import CursorPagination
from content.api.access import READ, SCOPES, WRITE
from content.media import (
    media_asset_delete,
    media_asset_get,
    media_asset_payload,
    media_asset_update,
    media_assets_list,
    media_upload,
)
from content.models import MediaAsset

PROBLEM = OpenApiResponse(description="application/problem+json")
ALT_MAX_LENGTH = MediaAsset._meta.get_field("alt").max_length


# --- Serializers: input checks, and the documented shape of `media_asset_payload` ----------------
class MediaUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="JPEG, PNG, GIF, WebP or AVIF; the type is detected from the content."
    )
    alt = serializers.CharField(
        required=False, allow_blank=True, max_length=ALT_MAX_LENGTH, default=""
    )


class MediaUpdateSerializer(serializers.Serializer):
    alt = serializers.CharField(allow_blank=True, max_length=ALT_MAX_LENGTH)


class RenditionSerializer(serializers.Serializer):
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    format = serializers.ChoiceField(choices=["jpeg", "png", "webp", "avif"])
    mime_type = serializers.CharField()
    url = serializers.URLField()
    size = serializers.IntegerField(help_text="Bytes.")


class MediaAssetSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField(help_text="The original, without its metadata.")
    original_filename = serializers.CharField()
    mime_type = serializers.CharField()
    format = serializers.ChoiceField(choices=["jpeg", "png", "gif", "webp", "avif"])
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    size = serializers.IntegerField(help_text="Bytes of the stored original.")
    checksum = serializers.CharField(help_text="SHA-256 of the stored original.")
    alt = serializers.CharField()
    status = serializers.ChoiceField(choices=MediaAsset.Status.choices)
    created_at = serializers.DateTimeField()
    renditions = RenditionSerializer(many=True, help_text="Empty until `status` is `ready`.")
    srcset = serializers.DictField(
        child=serializers.CharField(),
        help_text='One `srcset` attribute per format, e.g. {"webp": "<url> 320w, <url> 640w"}.',
    )


# --- Views ---------------------------------------------------------------------------------------
class MediaAccess:
    permission_classes = (StaffModelPermission | HasApiKeyScope,)
    permission_model = MediaAsset
    required_scope = SCOPES


def may_list_media(request: Request) -> bool:
    key = request_api_key(request)
    if key is not None:
        return key.has_scope(READ) or key.has_scope(WRITE)
    user = request.user
    return bool(
        user
        and user.is_authenticated
        and user.is_staff
        and user.has_perm("content.view_mediaasset")
    )


STATUS = OpenApiParameter("status", str, enum=MediaAsset.Status.values, required=False)


class MediaListApi(MediaAccess, generics.ListAPIView):
    serializer_class = MediaAssetSerializer
    pagination_class = CursorPagination
    parser_classes = (MultiPartParser,)

    def get_queryset(self) -> Any:
        wanted = self.request.query_params.get("status")
        if wanted and wanted not in MediaAsset.Status.values:
            detail = f"One of {', '.join(MediaAsset.Status.values)}."
            raise ValidationError(detail, errors=[FieldError("status", "invalid", detail)])
        return media_assets_list(status=wanted or None)

    @extend_schema(parameters=[STATUS], responses={200: MediaAssetSerializer(many=True)})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(
            [media_asset_payload(asset, request=request) for asset in page]
        )

    @extend_schema(
        request={"multipart/form-data": MediaUploadSerializer},
        responses={201: MediaAssetSerializer, 400: PROBLEM, 413: PROBLEM, 415: PROBLEM},
        description="Upload an image as multipart field `file` (and optional `alt`). The answer "
        "has `status: processing`; renditions are made by a worker, then the asset turns `ready` "
        "and `media.uploaded` is sent to webhooks.",
    )
    def post(self, request: Request) -> Response:
        body = MediaUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        asset = media_upload(
            upload=body.validated_data["file"], alt=body.validated_data["alt"], actor=request.user
        )
        location = request.build_absolute_uri(reverse("media-detail", args=[asset.pk]))
        return Response(
            media_asset_payload(asset, request=request),
            status=status.HTTP_201_CREATED,
            headers={"Location": location},
        )


class MediaDetailApi(MediaAccess, APIView):
    def get_permissions(self) -> list[Any]:
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            return [AllowAny()]
        return super().get_permissions()

    @extend_schema(responses={200: MediaAssetSerializer, 304: None, 404: PROBLEM})
    def get(self, request: Request, pk: int) -> Response:
        reader = may_list_media(request)
        asset = media_asset_get(asset_id=pk, ready_only=not reader)
        payload = media_asset_payload(asset, request=request)
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        headers = {
            "ETag": f'"m{digest[:32]}"',
            "Cache-Tag": f"media:{asset.pk}",
            "Surrogate-Key": f"media:{asset.pk}",
            "Vary": "Authorization, Cookie",
            "Cache-Control": (
                "private, no-store"
                if asset.status != MediaAsset.Status.READY
                else "public, max-age=0, must-revalidate"
            ),
        }
        if headers["ETag"] in _etags(request.headers.get("If-None-Match", "")):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
        return Response(payload, headers=headers)

    @extend_schema(
        request=MediaUpdateSerializer,
        responses={200: MediaAssetSerializer, 400: PROBLEM, 404: PROBLEM},
    )
    def patch(self, request: Request, pk: int) -> Response:
        asset = media_asset_get(asset_id=pk)
        body = MediaUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        asset = media_asset_update(asset=asset, alt=body.validated_data["alt"])
        return Response(media_asset_payload(asset, request=request))

    @extend_schema(responses={204: None, 404: PROBLEM})
    def delete(self, request: Request, pk: int) -> Response:
        media_asset_delete(asset=media_asset_get(asset_id=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
