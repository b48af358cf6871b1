"""Media assets: upload checks, the stored original, renditions, and the API representation.

Upload (`media_upload`, synchronous, in the request):
- the size is checked first (`CMS_MEDIA_MAX_BYTES` → 413); the body limit of the one upload path
  is raised to match in `cmsproject.middleware`;
- the type is what Pillow finds in the bytes, never the name or the declared content type, and
  only JPEG, PNG, GIF, WebP and AVIF are opened at all (no SVG: it can carry script; no plugin that
  shells out, such as EPS). Pixel counts over `CMS_MEDIA_MAX_PIXELS` (every frame counted for an
  animation) are refused before anything is decoded; the whole image is then decoded, so a
  truncated or corrupt file is refused too;
- the stored original is re-encoded without metadata: EXIF (GPS, camera, ...), XMP, IPTC and
  comments are dropped, the EXIF orientation is applied to the pixels first. The ICC profile is
  kept: it is colour, not personal data, and dropping it would shift colours.

Renditions (`media_renditions_make`, a Celery task after the upload commits): widths 320, 640,
1280 and 1920 that do not exceed the original (never upscaled), plus the original width when it
is under 1920, so a `srcset` always reaches the full size. Formats: the original's (a GIF's are
PNG: lossless like GIF, full alpha, smaller, and animated as APNG), WebP, and AVIF where Pillow
supports it. Animations keep every frame, except in AVIF, which is skipped for them (encoding each
frame is slow, and animated WebP plays everywhere AVIF does). When all renditions exist the asset
turns `ready` and `media.uploaded` is dispatched once.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import struct
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError, features

from cmsproject.audit import actor_of
from cmsproject.errors import (
    FieldError,
    NotFound,
    PayloadTooLarge,
    ValidationError,
)
from content.models import MediaAsset, Rendition
from content.webhooks import webhooks_dispatch

logger = logging.getLogger(__name__)

RENDITION_WIDTHS = (320, 640, 1280, 1920)
# Pillow's format name → (our format name, MIME type, file extension).
FORMATS = {
    "JPEG": ("jpeg", "image/jpeg", "jpg"),
    "PNG": ("png", "image/png", "png"),
    "GIF": ("gif", "image/gif", "gif"),
    "WEBP": ("webp", "image/webp", "webp"),
    "AVIF": ("avif", "image/avif", "avif"),
}
ACCEPTED_TEXT = "JPEG, PNG, GIF, WebP or AVIF"
# The only Pillow plugins ever run on an upload. JPEG's also opens MPO (camera JPEGs with an extra
# preview or depth picture), which is stored as a JPEG of its first picture.
OPEN_FORMATS = ["JPEG", "PNG", "GIF", "WEBP", "AVIF"]
ANIMATED_FORMATS = {"GIF", "PNG", "WEBP", "AVIF"}
# Metadata Pillow may write back from `Image.info`: the ones kept are needed to render correctly.
KEPT_INFO = ("icc_profile", "transparency", "duration", "loop", "background")
ENCODE_OPTIONS: dict[str, dict[str, Any]] = {
    "jpeg": {"format": "JPEG", "quality": 82, "optimize": True, "progressive": True},
    "png": {"format": "PNG"},
    "webp": {"format": "WEBP", "quality": 80},
    "avif": {"format": "AVIF", "quality": 60},
}
# An asset still `processing` this long after upload lost its task; the beat job picks it up.
PENDING_AFTER = timedelta(minutes=2)
PENDING_BATCH = 20


def avif_supported() -> bool:
    return bool(features.check("avif"))


# --- Upload --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CleanImage:
    """An upload that passed every check, re-encoded without metadata, not stored yet."""

    content: bytes
    format: str  # ours: jpeg, png, gif, webp, avif
    mime_type: str
    extension: str
    width: int
    height: int
    checksum: str
    original_filename: str


def _file_error(code: str, detail: str) -> ValidationError:
    return ValidationError(detail, errors=[FieldError("file", code, detail)])


def _original_filename(upload: Any) -> str:
    name = os.path.basename(str(getattr(upload, "name", "") or "").replace("\\", "/"))
    return name[-255:] or "upload"


def media_upload_check(*, upload: Any) -> CleanImage:
    """Every check an upload must pass, and the clean re-encoded original. Writes nothing.

    Raises `PayloadTooLarge` (413) or `ValidationError` (400) naming `file`."""
    limit = settings.CMS_MEDIA_MAX_BYTES
    if upload is None:
        raise _file_error("required", "Send the image as the multipart field `file`.")
    if (upload.size or 0) > limit:
        raise PayloadTooLarge(
            f"The file is {upload.size} bytes; the limit is {limit} bytes.",
            errors=[FieldError("file", "too_large", f"At most {limit} bytes.")],
        )
    upload.seek(0)
    data = upload.read(limit + 1)
    if len(data) > limit:  # a size that lied
        raise PayloadTooLarge(f"The file is larger than the limit of {limit} bytes.")
    if not data:
        raise _file_error("empty", "The file is empty.")

    try:
        with Image.open(io.BytesIO(data), formats=OPEN_FORMATS) as probe:
            pillow_format = "JPEG" if probe.format == "MPO" else probe.format
            _check_pixels(probe, pillow_format)
            probe.verify()
        with Image.open(io.BytesIO(data), formats=OPEN_FORMATS) as image:
            content, width, height = _strip_metadata(image, pillow_format)
    except UnidentifiedImageError:
        raise _file_error(
            "not_an_image", f"The file is not a {ACCEPTED_TEXT} image (its content was checked)."
        ) from None
    except Image.DecompressionBombError:
        raise _too_many_pixels() from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        raise _file_error(
            "corrupt_image", f"The image is truncated or corrupt and cannot be read ({error})."
        ) from None

    ours, mime_type, extension = FORMATS[pillow_format]
    return CleanImage(
        content=content,
        format=ours,
        mime_type=mime_type,
        extension=extension,
        width=width,
        height=height,
        checksum=hashlib.sha256(content).hexdigest(),
        original_filename=_original_filename(upload),
    )


def _too_many_pixels() -> ValidationError:
    limit = settings.CMS_MEDIA_MAX_PIXELS
    return _file_error(
        "too_many_pixels",
        f"The image has more than {limit} pixels (all frames counted); scale it down first.",
    )


def _is_animated(image: Image.Image, pillow_format: str) -> bool:
    return pillow_format in ANIMATED_FORMATS and getattr(image, "n_frames", 1) > 1


def _check_pixels(image: Image.Image, pillow_format: str) -> None:
    """From the header only: a small file can declare a huge canvas (a decompression bomb)."""
    width, height = image.size
    frames = image.n_frames if _is_animated(image, pillow_format) else 1
    if width < 1 or height < 1 or width * height * frames > settings.CMS_MEDIA_MAX_PIXELS:
        raise _too_many_pixels()


def _kept_info(image: Image.Image) -> dict[str, Any]:
    return {key: image.info[key] for key in KEPT_INFO if key in image.info}


def _strip_metadata(image: Image.Image, pillow_format: str) -> tuple[bytes, int, int]:
    """Decode the whole image and encode it again with nothing but its pixels, its colour profile
    and its animation timing. Returns (bytes, width, height)."""
    out = io.BytesIO()
    if _is_animated(image, pillow_format):
        # Orientation is a camera's EXIF; animations have none worth applying.
        image.info = _kept_info(image)
        image.save(out, format=pillow_format, save_all=True)
        return out.getvalue(), image.width, image.height

    image.load()
    options: dict[str, Any] = {}
    if image.info.get("icc_profile"):
        options["icc_profile"] = image.info["icc_profile"]
    orientation = image.getexif().get(0x0112, 1)
    if pillow_format == "JPEG" and orientation == 1 and image.format == "JPEG":
        # The same quantization tables and subsampling: re-encoding loses next to nothing.
        options.update(quality="keep", subsampling="keep")
        clean = image
    else:
        clean = ImageOps.exif_transpose(image)
        if pillow_format == "JPEG":
            options.update(quality=95)
    clean.info = _kept_info(clean)
    clean.save(out, format=pillow_format, **options)
    return out.getvalue(), clean.width, clean.height


def media_asset_create(*, image: CleanImage, alt: str = "", actor: Any = None) -> MediaAsset:
    """Store a checked image and enqueue its renditions after commit."""
    from cmsproject.celery import enqueue_on_commit
    from content.tasks import media_renditions_task  # content.tasks imports this module

    user, _ = actor_of(actor)
    asset = MediaAsset(
        original_filename=image.original_filename,
        mime_type=image.mime_type,
        format=image.format,
        width=image.width,
        height=image.height,
        size=len(image.content),
        checksum=image.checksum,
        alt=alt or "",
        status=MediaAsset.Status.PROCESSING,
        created_by=user,
    )
    # A random name: the original's name may say more than its owner meant to publish.
    asset.file.save(f"{uuid.uuid4().hex}.{image.extension}", ContentFile(image.content), save=False)
    try:
        with transaction.atomic():
            asset.save()
    except Exception:
        asset.file.delete(save=False)
        raise
    enqueue_on_commit(media_renditions_task, asset.pk)
    return asset


def media_upload(*, upload: Any, alt: str = "", actor: Any = None) -> MediaAsset:
    """Check an uploaded image (see the module docstring), store it without metadata, and make its
    renditions in a worker. Nothing is written when a check fails."""
    return media_asset_create(image=media_upload_check(upload=upload), alt=alt, actor=actor)


def media_asset_update(*, asset: MediaAsset, alt: str) -> MediaAsset:
    asset.alt = alt
    asset.save(update_fields=["alt"])
    return asset


def media_asset_delete(*, asset: MediaAsset) -> None:
    """Delete the asset, its renditions and, once that has committed, their files."""
    names = [asset.file.name, *(r.file.name for r in asset.renditions.all())]
    storage = asset.file.storage
    asset.delete()

    def delete_files() -> None:
        for name in names:
            if name:
                storage.delete(name)

    transaction.on_commit(delete_files, robust=True)


# --- Reads ---------------------------------------------------------------------------------------
def media_assets_list(*, status: str | None = None) -> QuerySet[MediaAsset]:
    assets = MediaAsset.objects.prefetch_related("renditions")
    if status:
        assets = assets.filter(status=status)
    return assets


def media_asset_get(*, asset_id: int, ready_only: bool = False) -> MediaAsset:
    assets = media_assets_list(status=MediaAsset.Status.READY if ready_only else None)
    asset = assets.filter(pk=asset_id).first()
    if asset is None:
        raise NotFound(f"No media asset {asset_id}.")
    return asset


def _url(file: Any, request: Any) -> str:
    url = file.url
    return request.build_absolute_uri(url) if request is not None else url


def media_asset_payload(asset: MediaAsset, *, request: Any = None) -> dict[str, Any]:
    """The API representation. `renditions` are ordered by format then width; `srcset` holds one
    ready-made `srcset` attribute per format. URLs are absolute when a request is given."""
    renditions = sorted(asset.renditions.all(), key=lambda r: (r.format, r.width))
    srcset: dict[str, list[str]] = {}
    listed = []
    for rendition in renditions:
        url = _url(rendition.file, request)
        listed.append(
            {
                "width": rendition.width,
                "height": rendition.height,
                "format": rendition.format,
                "mime_type": _mime_type(rendition.format),
                "url": url,
                "size": rendition.size,
            }
        )
        srcset.setdefault(rendition.format, []).append(f"{url} {rendition.width}w")
    return {
        "id": asset.pk,
        "url": _url(asset.file, request),
        "original_filename": asset.original_filename,
        "mime_type": asset.mime_type,
        "format": asset.format,
        "width": asset.width,
        "height": asset.height,
        "size": asset.size,
        "checksum": asset.checksum,
        "alt": asset.alt,
        "status": asset.status,
        "created_at": asset.created_at.isoformat() if asset.created_at else None,
        "renditions": listed,
        "srcset": {fmt: ", ".join(entries) for fmt, entries in srcset.items()},
    }


def _mime_type(fmt: str) -> str:
    return f"image/{fmt}"


# --- Renditions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RenditionSpec:
    width: int
    height: int
    format: str  # ours: jpeg, png, webp, avif


def rendition_widths(original_width: int) -> list[int]:
    """Standard widths up to the original's, and the original's own when it is under the largest."""
    widths = [width for width in RENDITION_WIDTHS if width <= original_width]
    if original_width < RENDITION_WIDTHS[-1] and original_width not in widths:
        widths.append(original_width)
    return widths


def rendition_formats(*, original_format: str, animated: bool = False) -> list[str]:
    first = "png" if original_format == "gif" else original_format
    formats = [first, "webp"]
    if avif_supported() and not animated:
        formats.append("avif")
    return list(dict.fromkeys(formats))


def rendition_specs(asset: MediaAsset, *, animated: bool = False) -> list[RenditionSpec]:
    return [
        RenditionSpec(width, max(1, round(asset.height * width / asset.width)), fmt)
        for fmt in rendition_formats(original_format=asset.format, animated=animated)
        for width in rendition_widths(asset.width)
    ]


def _frames(image: Image.Image) -> list[tuple[Image.Image, int]]:
    """(frame in RGB or RGBA, duration in ms) for each frame."""
    frames = []
    for frame in ImageSequence.Iterator(image):
        frames.append((_as_rgb(frame), int(frame.info.get("duration", 100) or 100)))
    return frames


def _as_rgb(frame: Image.Image) -> Image.Image:
    if frame.mode in ("RGB", "RGBA"):
        return frame.copy()
    if frame.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit greyscale: scale, do not clip
        return frame.convert("I").point(lambda value: value * (1 / 256)).convert("RGB")
    if frame.has_transparency_data:
        return frame.convert("RGBA")
    return frame.convert("RGB")


def _encode(
    frames: list[tuple[Image.Image, int]],
    spec: RenditionSpec,
    *,
    icc_profile: bytes | None,
    loop: int,
) -> bytes:
    size = (spec.width, spec.height)
    resized = [
        (frame if frame.size == size else frame.resize(size, Image.Resampling.LANCZOS), duration)
        for frame, duration in frames
    ]
    first = resized[0][0]
    if spec.format == "jpeg" and first.mode == "RGBA":
        first = first.convert("RGB")
    options = dict(ENCODE_OPTIONS[spec.format])
    if icc_profile:
        options["icc_profile"] = icc_profile
    if len(resized) > 1:
        options.update(
            save_all=True,
            append_images=[frame for frame, _ in resized[1:]],
            duration=[duration for _, duration in resized],
            loop=loop,
        )
    out = io.BytesIO()
    first.save(out, **options)
    return out.getvalue()


def media_renditions_make(*, asset_id: int) -> None:
    """Make the asset's missing renditions, then mark it ready and announce `media.uploaded`.

    Idempotent: existing renditions are skipped, a race with another run is settled by the unique
    (asset, width, format) constraint, and the announcement happens on the one transition to ready
    (its webhook key deduplicates as well). A failure marks the asset `failed` and is logged."""
    asset = MediaAsset.objects.filter(pk=asset_id).first()
    if asset is None:
        logger.info("Media asset %s is gone; no renditions to make.", asset_id)
        return
    try:
        _renditions_fill(asset)
    except Exception:
        # Any failure (an image Pillow cannot encode, a full disk) must leave a visible state,
        # not an asset processing forever; the traceback is in the log.
        logger.exception("Renditions of media asset %s failed.", asset_id)
        MediaAsset.objects.filter(pk=asset_id).update(status=MediaAsset.Status.FAILED)
        return
    _mark_ready(asset_id)


def _renditions_fill(asset: MediaAsset) -> None:
    existing = set(asset.renditions.values_list("width", "format"))
    with asset.file.open("rb") as stored, Image.open(stored, formats=OPEN_FORMATS) as image:
        animated = _is_animated(image, image.format)
        specs = [
            spec
            for spec in rendition_specs(asset, animated=animated)
            if (spec.width, spec.format) not in existing
        ]
        if not specs:
            return
        icc_profile = image.info.get("icc_profile")
        loop = int(image.info.get("loop", 0) or 0)
        frames = _frames(image) if animated else [(_as_rgb(image), 0)]
    stem = os.path.splitext(os.path.basename(asset.file.name))[0]
    for spec in specs:
        data = _encode(frames, spec, icc_profile=icc_profile, loop=loop)
        rendition = Rendition(
            asset=asset, width=spec.width, height=spec.height, format=spec.format, size=len(data)
        )
        extension = "jpg" if spec.format == "jpeg" else spec.format
        rendition.file.save(f"{stem}-{spec.width}w.{extension}", ContentFile(data), save=False)
        try:
            with transaction.atomic():
                rendition.save()
        except IntegrityError:
            # Another run made this one first (or the asset was deleted meanwhile): keep theirs.
            rendition.file.delete(save=False)
            if not MediaAsset.objects.filter(pk=asset.pk).exists():
                return


def _mark_ready(asset_id: int) -> None:
    with transaction.atomic():
        turned_ready = (
            MediaAsset.objects.filter(pk=asset_id)
            .exclude(status=MediaAsset.Status.READY)
            .update(status=MediaAsset.Status.READY)
        )
        if not turned_ready:
            return
        asset = media_asset_get(asset_id=asset_id)
        # Inside the transaction that makes the asset ready: both happen, or neither.
        webhooks_dispatch(
            event="media.uploaded",
            payload=media_asset_payload(asset),
            key=f"media.uploaded:{asset_id}",
        )


def media_renditions_request(*, asset: MediaAsset) -> None:
    """Make the asset's missing renditions again, in a worker (after a failure, say)."""
    from cmsproject.celery import enqueue_on_commit
    from content.tasks import media_renditions_task

    MediaAsset.objects.filter(pk=asset.pk, status=MediaAsset.Status.FAILED).update(
        status=MediaAsset.Status.PROCESSING
    )
    enqueue_on_commit(media_renditions_task, asset.pk)


def media_renditions_pending() -> int:
    """The beat's safety net: assets still processing long after upload lost their task (a
    worker died). Makes their renditions; returns how many assets it processed."""
    cutoff = timezone.now() - PENDING_AFTER
    asset_ids = list(
        MediaAsset.objects.filter(status=MediaAsset.Status.PROCESSING, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("pk", flat=True)[:PENDING_BATCH]
    )
    for asset_id in asset_ids:
        media_renditions_make(asset_id=asset_id)
    return len(asset_ids)
