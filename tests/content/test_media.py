"""Media assets: upload checks by content and size, EXIF stripped with the orientation applied,
renditions (widths, formats, never upscaled, idempotent), `media.uploaded` once, the REST API and
who may use it, the path-aware body limit, file serving, and the admin.

Uploads run the product's path: the view, `content.media`, the task enqueued after commit.
`tasks_inline` makes that task run in this process in both passes.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image, features
from rest_framework.test import APIClient

from cmsproject.asgi import application as asgi_application
from cmsproject.middleware import ChunkedBodyWSGI
from cmsproject.services import api_key_create
from content import media
from content.media import media_renditions_make, media_renditions_pending
from content.models import MediaAsset, Rendition, WebhookDelivery
from content.webhooks import webhook_endpoint_create
from tests.content import webhook_receiver as receiver_fixtures
from tests.content.media_factories import (
    EXIF_GPS_IFD,
    animated_gif,
    camera_exif,
    camera_mpo,
    image_bytes,
    jpeg_from_phone,
    noise_png,
    png_header_only,
    upload,
)
from tests.factories import UserFactory

webhook_receiver = receiver_fixtures.webhook_receiver  # the fixture, shared with its own module

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"
MEDIA = "/api/v1/media/"
MB = 1024 * 1024
AVIF = ["avif"] if features.check("avif") else []


# --- fixtures and helpers ------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def media_root(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.CMS_SERVE_MEDIA = True
    return settings.MEDIA_ROOT


@pytest.fixture
def tasks_inline(settings) -> None:
    """Tasks enqueued after commit run here, at once, in both passes."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CMS_EMBEDDED_TASKS_INLINE = True


@pytest.fixture
def committed(django_capture_on_commit_callbacks, tasks_inline) -> Callable[[], Any]:
    """`with committed():` ends the block as a commit would: enqueued tasks run at its end."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def dispatched(monkeypatch) -> list[dict[str, Any]]:
    """The webhook seam: what `content.media` hands to `webhooks_dispatch` (another app's
    code, with its own tests)."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(media, "webhooks_dispatch", lambda **kwargs: calls.append(kwargs))
    return calls


def post_image(client: APIClient, data: bytes, name: str = "photo.png", **extra: Any) -> Any:
    return client.post(MEDIA, {"file": upload(name, data), **extra}, format="multipart")


def uploaded(client: APIClient, committed, data: bytes, name: str = "photo.png") -> dict:
    with committed():
        response = post_image(client, data, name)
    assert response.status_code == 201, response.content
    return client.get(f"{MEDIA}{response.json()['id']}/").json()


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["detail"]
    return body


def error_codes(body: dict) -> dict[str, str]:
    return {error["attr"]: error["code"] for error in body.get("errors", [])}


def stored_files(root: Path) -> list[Path]:
    return [path for path in Path(root).rglob("*") if path.is_file()] if Path(root).exists() else []


def assert_nothing_saved(root: Path) -> None:
    assert MediaAsset.objects.count() == 0
    assert Rendition.objects.count() == 0
    assert stored_files(root) == []


def key_client(*scopes: str) -> APIClient:
    _, raw = api_key_create(name="site", scopes=list(scopes), created_by=None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


def open_stored(asset: MediaAsset) -> Image.Image:
    with asset.file.open("rb") as stored:
        return Image.open(io.BytesIO(stored.read()))


def is_marker(pixel: tuple[int, ...]) -> bool:
    """The red block `gradient` paints top-left; everywhere else blue is 128."""
    return pixel[0] > 200 and pixel[2] < 60


def grid(payload: dict) -> set[tuple[int, str]]:
    return {(r["width"], r["format"]) for r in payload["renditions"]}


# --- upload: the stored original -----------------------------------------------------------------
def test_jpeg_from_a_phone_is_stored_upright_without_exif(staff_client, committed):
    payload = uploaded(staff_client, committed, jpeg_from_phone((400, 200), orientation=6), "a.jpg")

    asset = MediaAsset.objects.get(pk=payload["id"])
    stored = open_stored(asset)
    assert stored.format == "JPEG"
    assert stored.size == (200, 400) and (payload["width"], payload["height"]) == (200, 400)
    assert is_marker(stored.getpixel((190, 5)))  # the red corner is now top-right
    assert not is_marker(stored.getpixel((5, 5)))
    assert dict(stored.getexif()) == {}
    assert "exif" not in stored.info and "comment" not in stored.info
    raw = asset.file.open("rb").read()
    assert b"PhoneCam" not in raw and b"holiday" not in raw and b"Exif\x00\x00" not in raw
    assert payload["size"] == len(raw) and payload["mime_type"] == "image/jpeg"
    assert payload["checksum"] == hashlib.sha256(raw).hexdigest()


def test_jpeg_without_rotation_keeps_its_quality_settings(staff_client, committed):
    original = jpeg_from_phone((300, 200), orientation=1)

    payload = uploaded(staff_client, committed, original, "b.jpg")

    stored = open_stored(MediaAsset.objects.get(pk=payload["id"]))
    assert stored.size == (300, 200)
    assert stored.quantization == Image.open(io.BytesIO(original)).quantization
    assert dict(stored.getexif()) == {}


def test_camera_mpo_is_stored_as_a_plain_jpeg_of_its_main_picture(staff_client, committed):
    data = camera_mpo((400, 200))
    assert Image.open(io.BytesIO(data)).format == "MPO"

    payload = uploaded(staff_client, committed, data, "camera.jpg")

    stored = open_stored(MediaAsset.objects.get(pk=payload["id"]))
    assert (payload["format"], stored.format, stored.size) == ("jpeg", "JPEG", (400, 200))
    assert dict(stored.getexif()) == {}
    assert grid(payload) == {(w, f) for w in (320, 400) for f in ["jpeg", "webp", *AVIF]}


@pytest.mark.parametrize(
    "fmt, options",
    [
        ("PNG", {"exif": camera_exif()}),
        ("WEBP", {"exif": camera_exif(), "xmp": b"<x:xmpmeta>secret-place</x:xmpmeta>"}),
        ("AVIF", {"exif": camera_exif(), "xmp": b"<x:xmpmeta>secret-place</x:xmpmeta>"}),
    ],
)
def test_metadata_is_stripped_from_every_format(staff_client, committed, fmt, options):
    if fmt == "AVIF" and not AVIF:
        pytest.skip("Pillow without AVIF")

    payload = uploaded(staff_client, committed, image_bytes(fmt, (300, 150), **options), "x.bin")

    asset = MediaAsset.objects.get(pk=payload["id"])
    raw = asset.file.open("rb").read()
    assert payload["format"] == fmt.lower()
    assert b"PhoneCam" not in raw and b"secret-place" not in raw
    assert dict(open_stored(asset).getexif()) == {}


def test_type_comes_from_the_content_not_the_name(staff_client, committed):
    payload = uploaded(staff_client, committed, image_bytes("WEBP", (200, 100)), "looks.jpg")

    assert (payload["format"], payload["mime_type"]) == ("webp", "image/webp")
    assert payload["original_filename"] == "looks.jpg"
    assert payload["url"].endswith(".webp")


# --- renditions ----------------------------------------------------------------------------------
def test_wide_image_gets_the_four_widths_in_each_format(staff_client, committed):
    payload = uploaded(staff_client, committed, image_bytes("PNG", (2000, 1000)), "wide.png")

    assert payload["status"] == "ready"
    assert grid(payload) == {
        (width, fmt) for width in (320, 640, 1280, 1920) for fmt in ["png", "webp", *AVIF]
    }
    for rendition in payload["renditions"]:
        assert rendition["height"] == round(1000 * rendition["width"] / 2000)
        stored = Rendition.objects.get(
            asset_id=payload["id"], width=rendition["width"], format=rendition["format"]
        )
        with stored.file.open("rb") as file:
            image = Image.open(io.BytesIO(file.read()))
        assert image.format.lower() == rendition["format"]
        assert image.size == (rendition["width"], rendition["height"])
        assert rendition["size"] == stored.file.size


def test_small_image_is_never_upscaled_and_keeps_its_own_width(staff_client, committed):
    payload = uploaded(staff_client, committed, image_bytes("JPEG", (500, 250)), "small.jpg")

    assert grid(payload) == {
        (width, fmt) for width in (320, 500) for fmt in ["jpeg", "webp", *AVIF]
    }
    assert max(r["width"] for r in payload["renditions"]) == 500


def test_image_narrower_than_every_width_gets_one_rendition_per_format(staff_client, committed):
    payload = uploaded(staff_client, committed, image_bytes("PNG", (200, 300)), "tiny.png")

    assert grid(payload) == {(200, fmt) for fmt in ["png", "webp", *AVIF]}


def test_response_lists_renditions_ready_for_srcset(staff_client, committed):
    payload = uploaded(staff_client, committed, image_bytes("JPEG", (1400, 700)), "hero.jpg")

    webp = [r for r in payload["renditions"] if r["format"] == "webp"]
    assert [r["width"] for r in webp] == [320, 640, 1280, 1400]
    assert all(r["url"].startswith("http://testserver/media/") for r in webp)
    assert all(r["mime_type"] == "image/webp" for r in webp)
    assert payload["srcset"]["webp"] == ", ".join(f"{r['url']} {r['width']}w" for r in webp)
    assert set(payload["srcset"]) == {"jpeg", "webp", *AVIF}


def test_rendition_files_are_served_at_their_url(staff_client, committed, api_client):
    payload = uploaded(staff_client, committed, image_bytes("PNG", (400, 200)), "a.png")
    rendition = next(r for r in payload["renditions"] if r["format"] == "webp")

    response = api_client.get(rendition["url"].removeprefix("http://testserver"))

    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    assert "immutable" in response["Cache-Control"]
    assert b"".join(response.streaming_content)[:4] == b"RIFF"


def test_media_serving_can_be_turned_off_and_answers_404_problem(settings, api_client):
    assert_problem(api_client.get("/media/originals/none.png"), 404)
    settings.CMS_SERVE_MEDIA = False
    assert_problem(api_client.get("/media/anything.png"), 404)


def test_media_serving_refuses_paths_outside_the_media_root(api_client, media_root):
    Path(media_root).mkdir(parents=True, exist_ok=True)
    (Path(media_root).parent / "secret.txt").write_text("nope")

    response = api_client.get("/media/../secret.txt")

    assert response.status_code == 404


def test_animated_gif_keeps_its_frames_and_gets_png_and_webp(staff_client, committed):
    payload = uploaded(staff_client, committed, animated_gif((120, 60), frames=3), "anim.gif")

    asset = MediaAsset.objects.get(pk=payload["id"])
    stored = open_stored(asset)
    assert (stored.format, stored.n_frames) == ("GIF", 3)
    assert b"made by someone" not in asset.file.open("rb").read()
    assert grid(payload) == {(120, "png"), (120, "webp")}
    for rendition in asset.renditions.all():
        with rendition.file.open("rb") as file:
            assert Image.open(io.BytesIO(file.read())).n_frames == 3


def test_rendition_task_run_twice_makes_no_duplicates(staff_client, committed, dispatched):
    payload = uploaded(staff_client, committed, image_bytes("PNG", (700, 350)), "a.png")
    files_before = sorted(stored_files(MediaAsset.objects.get().file.storage.location))

    media_renditions_make(asset_id=payload["id"])
    media_renditions_make(asset_id=payload["id"])

    assert Rendition.objects.filter(asset_id=payload["id"]).count() == len(payload["renditions"])
    assert len(payload["renditions"]) == 3 * (2 + len(AVIF))
    assert sorted(stored_files(MediaAsset.objects.get().file.storage.location)) == files_before
    assert len(dispatched) == 1


def test_missing_renditions_are_made_and_existing_ones_kept(staff_client, committed):
    payload = uploaded(staff_client, committed, image_bytes("PNG", (700, 350)), "a.png")
    kept = Rendition.objects.get(asset_id=payload["id"], width=320, format="png")
    Rendition.objects.filter(asset_id=payload["id"], format="webp").delete()

    media_renditions_make(asset_id=payload["id"])

    assert Rendition.objects.filter(asset_id=payload["id"]).count() == len(payload["renditions"])
    assert Rendition.objects.get(pk=kept.pk).file.name == kept.file.name


def test_media_uploaded_is_dispatched_once_when_renditions_are_done(
    staff_client, committed, dispatched
):
    with committed():
        response = post_image(staff_client, image_bytes("PNG", (400, 200)), "a.png")
        assert response.json()["status"] == "processing"
        assert dispatched == []  # nothing is announced before the renditions exist

    assert len(dispatched) == 1
    call = dispatched[0]
    asset_id = response.json()["id"]
    assert (call["event"], call["key"]) == ("media.uploaded", f"media.uploaded:{asset_id}")
    assert call["payload"]["id"] == asset_id and call["payload"]["status"] == "ready"
    assert grid(call["payload"]) == {(320, f) for f in ["png", "webp", *AVIF]} | {
        (400, f) for f in ["png", "webp", *AVIF]
    }


def test_subscribed_endpoint_receives_media_uploaded_once(
    staff_client, committed, webhook_receiver
):
    webhook_endpoint_create(
        url=webhook_receiver.url, events=["media.uploaded"], secret="s3cret-for-tests-0123456789"
    )

    payload = uploaded(staff_client, committed, image_bytes("PNG", (400, 200)), "a.png")
    with committed():
        media_renditions_make(asset_id=payload["id"])  # a second run announces nothing

    [request] = webhook_receiver.wait_for(1)
    body = request.json()
    assert body["event"] == "media.uploaded"
    assert body["data"]["id"] == payload["id"] and body["data"]["status"] == "ready"
    assert grid(body["data"]) == grid(payload)
    assert WebhookDelivery.objects.filter(event="media.uploaded").count() == 1


def test_a_file_that_cannot_be_rendered_marks_the_asset_failed(staff_client, dispatched, caplog):
    response = post_image(staff_client, image_bytes("PNG", (400, 200)), "a.png")  # not committed
    asset = MediaAsset.objects.get(pk=response.json()["id"])
    Path(asset.file.path).write_bytes(b"no longer an image")

    media_renditions_make(asset_id=asset.pk)

    asset.refresh_from_db()
    assert asset.status == MediaAsset.Status.FAILED
    assert dispatched == []
    assert f"Renditions of media asset {asset.pk} failed" in caplog.text


def test_beat_safety_net_processes_assets_whose_task_was_lost(staff_client, dispatched):
    lost = post_image(staff_client, image_bytes("PNG", (400, 200)), "lost.png").json()["id"]
    fresh = post_image(staff_client, image_bytes("PNG", (400, 200)), "fresh.png").json()["id"]
    MediaAsset.objects.filter(pk=lost).update(created_at=timezone.now() - timedelta(minutes=10))

    assert media_renditions_pending() == 1

    assert MediaAsset.objects.get(pk=lost).status == MediaAsset.Status.READY
    assert MediaAsset.objects.get(pk=fresh).status == MediaAsset.Status.PROCESSING
    assert media_renditions_pending() == 0
    assert [call["key"] for call in dispatched] == [f"media.uploaded:{lost}"]


# --- refused uploads -----------------------------------------------------------------------------
def test_text_file_named_png_is_400_problem_and_nothing_is_saved(staff_client, media_root):
    response = post_image(staff_client, b"hello, I am text pretending\n" * 20, "cat.png")

    body = assert_problem(response, 400)
    assert error_codes(body) == {"file": "not_an_image"}
    assert_nothing_saved(media_root)


def test_svg_is_refused(staff_client, media_root):
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'

    body = assert_problem(post_image(staff_client, svg, "logo.svg"), 400)

    assert error_codes(body) == {"file": "not_an_image"}
    assert_nothing_saved(media_root)


def test_other_image_types_are_refused(staff_client, media_root):
    body = assert_problem(post_image(staff_client, image_bytes("BMP"), "a.bmp"), 400)

    assert "JPEG, PNG, GIF, WebP or AVIF" in body["detail"]
    assert_nothing_saved(media_root)


def test_truncated_image_is_400_problem(staff_client, media_root):
    whole = image_bytes("JPEG", (600, 400))

    body = assert_problem(post_image(staff_client, whole[: len(whole) // 2], "cut.jpg"), 400)

    assert error_codes(body) == {"file": "corrupt_image"}
    assert_nothing_saved(media_root)


def test_empty_file_and_missing_file_are_400(staff_client, media_root):
    assert error_codes(assert_problem(post_image(staff_client, b"", "e.png"), 400)) == {
        "file": "empty"
    }
    missing = staff_client.post(MEDIA, {"alt": "no file"}, format="multipart")
    assert error_codes(assert_problem(missing, 400)) == {"file": "required"}
    assert_nothing_saved(media_root)


@pytest.mark.parametrize("size", [(8000, 8000), (20000, 20000)], ids=["over-our-limit", "bomb"])
def test_decompression_bomb_is_400_problem(staff_client, media_root, size):
    """8000² is over CMS_MEDIA_MAX_PIXELS (50M); 20000² is over Pillow's own bomb limit too."""
    data = png_header_only(*size)
    assert len(data) < 200

    body = assert_problem(post_image(staff_client, data, "bomb.png"), 400)

    assert error_codes(body) == {"file": "too_many_pixels"}
    assert_nothing_saved(media_root)


def test_animation_counts_every_frame_against_the_pixel_limit(settings, staff_client, media_root):
    settings.CMS_MEDIA_MAX_PIXELS = 120 * 60 * 4

    body = assert_problem(post_image(staff_client, animated_gif((120, 60), 5), "a.gif"), 400)

    assert error_codes(body) == {"file": "too_many_pixels"}
    assert_nothing_saved(media_root)


def test_thirty_megabyte_upload_is_413_problem_and_nothing_is_saved(staff_client, media_root):
    data = image_bytes("PNG", (64, 64)) + b"\0" * (30 * MB)

    body = assert_problem(post_image(staff_client, data, "huge.png"), 413)

    assert body["type"] == "urn:cms:problem:too-large"
    assert_nothing_saved(media_root)


def test_file_over_the_media_limit_inside_the_body_allowance_is_413(
    settings, staff_client, media_root
):
    """The body may exceed CMS_MEDIA_MAX_BYTES by the multipart framing; the file may not."""
    data = noise_png((100, 100))
    settings.CMS_MEDIA_MAX_BYTES = len(data) - 1

    body = assert_problem(post_image(staff_client, data, "a.png"), 413)

    assert error_codes(body) == {"file": "too_large"}
    assert_nothing_saved(media_root)


def test_upload_of_several_megabytes_is_accepted_without_a_trailing_slash(staff_client, committed):
    """Past the global 1 MB limit and past FILE_UPLOAD_MAX_MEMORY_SIZE (a temporary file)."""
    data = noise_png((1000, 1000))
    assert len(data) > 2.5 * MB

    with committed():
        response = staff_client.post(
            MEDIA.rstrip("/"), {"file": upload("big.png", data)}, format="multipart"
        )

    assert response.status_code == 201, response.content[:500]
    assert MediaAsset.objects.get().status == MediaAsset.Status.READY


def test_nineteen_megabytes_pass_the_body_limit_and_reach_the_content_check(
    staff_client, media_root
):
    """Django's DATA_UPLOAD_MAX_MEMORY_SIZE (1 MB) does not count the file part."""
    body = assert_problem(post_image(staff_client, b"x" * (19 * MB), "big.png"), 400)

    assert error_codes(body) == {"file": "not_an_image"}
    assert_nothing_saved(media_root)


def test_two_megabyte_bodies_elsewhere_are_still_413(staff_client, committed):
    payload = uploaded(staff_client, committed, image_bytes("PNG", (100, 100)), "a.png")
    big_json = json.dumps({"alt": "x" * (2 * MB)})

    patch = staff_client.patch(
        f"{MEDIA}{payload['id']}/", big_json, content_type="application/json"
    )
    keys = staff_client.post(
        "/api/v1/api-keys/",
        json.dumps({"name": "x" * (2 * MB), "scopes": ["content:read"]}),
        content_type="application/json",
    )
    media_put = staff_client.put(MEDIA, big_json, content_type="application/json")

    assert_problem(patch, 413)
    assert_problem(keys, 413)
    assert_problem(media_put, 413)  # only POST gets the media limit


def _asgi_scope(path: str, method: str = "POST") -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"content-type", b"multipart/form-data; boundary=xyz"),
            (b"host", b"localhost"),
        ],
        "server": ("localhost", 80),
        "client": ("127.0.0.1", 5000),
        "scheme": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "root_path": "",
    }


async def _asgi_chunked_status(path: str, size: int) -> int:
    chunks = [b"-" * (size // 2), b"-" * (size - size // 2)]
    sent: list[dict] = []

    async def receive() -> dict:
        if not chunks:  # the client waits for the answer (Django listens for a disconnect)
            await asyncio.sleep(60)
            return {"type": "http.disconnect"}
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict) -> None:
        sent.append(message)

    await asgi_application(_asgi_scope(path), receive, send)
    return sent[0]["status"]


@pytest.mark.django_db(transaction=True)
async def test_chunked_upload_body_over_one_megabyte_passes_the_asgi_limit_on_the_media_path():
    """No Content-Length: the ASGI wrapper applies the media limit to POST /api/v1/media/ only
    (anonymous here, so the answer past the limit is 401)."""
    assert await _asgi_chunked_status("/api/v1/media/", int(1.5 * MB)) == 401
    assert await _asgi_chunked_status("/api/v1/media", int(1.5 * MB)) == 401
    assert await _asgi_chunked_status("/api/v1/media/1/", int(1.5 * MB)) == 413
    assert await _asgi_chunked_status("/api/v1/auth/token/", int(1.5 * MB)) == 413


def test_chunked_upload_body_on_wsgi_gets_the_media_limit_on_its_path_only():
    seen: list[int] = []

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        seen.append(int(environ["CONTENT_LENGTH"]))
        start_response("204 No Content", [])
        return []

    def call(path: str) -> str:
        statuses: list[str] = []
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "HTTP_TRANSFER_ENCODING": "chunked",
            "wsgi.input": io.BytesIO(b"-" * int(1.5 * MB)),
        }
        ChunkedBodyWSGI(app)(environ, lambda status, headers: statuses.append(status))
        return statuses[0]

    assert call("/api/v1/media/").startswith("204")
    assert call("/api/v1/customers/").startswith("413")
    assert seen == [int(1.5 * MB)]


# --- who may ----------------------------------------------------------------------------------
def test_anonymous_upload_is_401(api_client, media_root):
    assert_problem(post_image(api_client, image_bytes("PNG")), 401)
    assert_nothing_saved(media_root)


def test_api_key_without_content_write_is_403(media_root):
    client = key_client("content:read", "customers:write")

    assert_problem(post_image(client, image_bytes("PNG")), 403)
    assert_nothing_saved(media_root)


def test_api_key_with_content_write_may_upload(committed):
    client = key_client("content:write")

    with committed():
        response = post_image(client, image_bytes("PNG"), alt="A gradient")

    assert response.status_code == 201
    assert response["Location"].endswith(f"{MEDIA}{response.json()['id']}/")
    asset = MediaAsset.objects.get()
    assert (asset.alt, asset.created_by) == ("A gradient", None)


def test_staff_without_the_add_permission_is_403(media_root):
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_mediaasset"))
    client = APIClient()
    client.force_authenticate(user)

    assert_problem(post_image(client, image_bytes("PNG")), 403)
    assert client.get(MEDIA).status_code == 200
    assert_nothing_saved(media_root)


def test_json_post_to_the_upload_is_415(staff_client):
    response = staff_client.post(MEDIA, {"file": "x"}, format="json")

    assert_problem(response, 415)


def test_listing_needs_staff_or_a_content_read_key(api_client):
    assert_problem(api_client.get(MEDIA), 401)
    assert_problem(key_client("customers:read").get(MEDIA), 403)
    assert key_client("content:read").get(MEDIA).status_code == 200


def test_anyone_may_read_a_ready_asset_but_only_readers_one_in_processing(
    staff_client, api_client, committed
):
    ready = uploaded(staff_client, committed, image_bytes("PNG"), "a.png")
    processing = post_image(staff_client, image_bytes("PNG"), "b.png").json()  # no commit

    public = api_client.get(f"{MEDIA}{ready['id']}/")
    assert public.status_code == 200 and public.json()["status"] == "ready"
    assert public["Cache-Tag"] == f"media:{ready['id']}"
    assert_problem(api_client.get(f"{MEDIA}{processing['id']}/"), 404)
    assert key_client("content:read").get(f"{MEDIA}{processing['id']}/").status_code == 200
    assert staff_client.get(f"{MEDIA}{processing['id']}/").json()["renditions"] == []


def test_detail_answers_304_to_its_etag(staff_client, api_client, committed):
    ready = uploaded(staff_client, committed, image_bytes("PNG"), "a.png")
    first = api_client.get(f"{MEDIA}{ready['id']}/")

    again = api_client.get(f"{MEDIA}{ready['id']}/", HTTP_IF_NONE_MATCH=first["ETag"])

    assert again.status_code == 304


# --- list, change, delete ------------------------------------------------------------------------
def test_list_is_cursor_paginated_newest_first_with_a_flat_query_count(staff_client, committed):
    ids = [
        uploaded(staff_client, committed, image_bytes("PNG", (100, 50)), f"{n}.png")["id"]
        for n in range(3)
    ]

    with CaptureQueriesContext(connection) as three:
        first = staff_client.get(MEDIA, {"page_size": 2}).json()
    second = staff_client.get(first["next"]).json()
    uploaded(staff_client, committed, image_bytes("PNG", (100, 50)), "more.png")
    with CaptureQueriesContext(connection) as four:
        staff_client.get(MEDIA)

    assert [a["id"] for a in first["results"] + second["results"]] == ids[::-1]
    assert set(first) >= {"results", "next", "previous"}
    assert all(a["renditions"] for a in first["results"])
    assert len(four) == len(three)


def test_list_filters_by_status(staff_client, committed):
    uploaded(staff_client, committed, image_bytes("PNG"), "ready.png")
    post_image(staff_client, image_bytes("PNG"), "waiting.png")  # no commit: still processing

    ready = staff_client.get(MEDIA, {"status": "ready"}).json()["results"]
    bad = staff_client.get(MEDIA, {"status": "nope"})

    assert [a["original_filename"] for a in ready] == ["ready.png"]
    assert error_codes(assert_problem(bad, 400)) == {"status": "invalid"}


def test_patch_changes_the_alt_text(staff_client, committed):
    payload = uploaded(staff_client, committed, image_bytes("PNG"), "a.png")

    response = staff_client.patch(f"{MEDIA}{payload['id']}/", {"alt": "Sunset"}, format="json")
    too_long = staff_client.patch(f"{MEDIA}{payload['id']}/", {"alt": "x" * 301}, format="json")

    assert response.status_code == 200 and response.json()["alt"] == "Sunset"
    assert error_codes(assert_problem(too_long, 400)) == {"alt": "max_length"}


def test_delete_removes_the_asset_and_its_files(staff_client, committed, media_root):
    payload = uploaded(staff_client, committed, image_bytes("PNG"), "a.png")
    assert stored_files(media_root)

    with committed():
        response = staff_client.delete(f"{MEDIA}{payload['id']}/")

    assert response.status_code == 204
    assert_nothing_saved(media_root)
    assert_problem(staff_client.get(f"{MEDIA}{payload['id']}/"), 404)


# --- admin ---------------------------------------------------------------------------------------
def test_admin_upload_goes_through_the_same_checks(admin_client, committed, media_root):
    add = "/admin/content/mediaasset/add/"

    refused = admin_client.post(
        add, {"upload": upload("cat.png", b"text, not an image"), "alt": ""}
    )
    assert refused.status_code == 200
    assert b"is not a JPEG, PNG, GIF, WebP or AVIF image" in refused.content
    assert_nothing_saved(media_root)

    with committed():
        done = admin_client.post(
            add, {"upload": upload("a.jpg", jpeg_from_phone((400, 200))), "alt": "Phone photo"}
        )

    assert done.status_code == 302
    asset = MediaAsset.objects.get()
    assert (asset.width, asset.height, asset.alt) == (200, 400, "Phone photo")
    assert asset.status == MediaAsset.Status.READY and asset.renditions.count()
    assert EXIF_GPS_IFD not in open_stored(asset).getexif()
    listing = admin_client.get("/admin/content/mediaasset/")
    assert listing.status_code == 200 and b"<img" in listing.content
    change = admin_client.get(f"/admin/content/mediaasset/{asset.pk}/change/")
    assert change.status_code == 200 and b"webp" in change.content
