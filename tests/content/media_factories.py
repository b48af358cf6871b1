"""Image files for media tests, made in memory with Pillow (and one PNG written by hand)."""

from __future__ import annotations

import io
import os
import struct
import zlib
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

EXIF_ORIENTATION = 0x0112
EXIF_MAKE = 0x010F
EXIF_GPS_IFD = 0x8825
GPS_LATITUDE_REF, GPS_LATITUDE = 1, 2


def gradient(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A smooth picture: quick to encode in every format, and its orientation can be told."""
    width, height = size
    horizontal = Image.linear_gradient("L").resize(size)
    vertical = Image.linear_gradient("L").rotate(90).resize(size)
    image = Image.merge("RGB", (horizontal, vertical, Image.new("L", size, 128)))
    # A red block in the top-left corner marks which way is up.
    image.paste((255, 0, 0), (0, 0, max(1, width // 4), max(1, height // 4)))
    return image.convert(mode)


def image_bytes(fmt: str, size: tuple[int, int] = (400, 200), **save: Any) -> bytes:
    mode = "RGBA" if fmt in ("PNG", "WEBP", "AVIF") and save.pop("alpha", False) else "RGB"
    out = io.BytesIO()
    gradient(size, mode).save(out, fmt, **save)
    return out.getvalue()


def camera_exif(orientation: int = 1) -> bytes:
    """EXIF as a phone writes it: make, orientation, and where the picture was taken."""
    exif = Image.Exif()
    exif[EXIF_MAKE] = "PhoneCam"
    exif[EXIF_ORIENTATION] = orientation
    exif[EXIF_GPS_IFD] = {GPS_LATITUDE_REF: "N", GPS_LATITUDE: (48.0, 51.0, 30.0)}
    return exif.tobytes()


def jpeg_from_phone(size: tuple[int, int] = (400, 200), orientation: int = 6) -> bytes:
    """A JPEG stored sideways with orientation 6 (shown rotated 90° clockwise), GPS, a comment."""
    return image_bytes("JPEG", size, exif=camera_exif(orientation), comment=b"holiday", quality=90)


def camera_mpo(size: tuple[int, int] = (400, 200)) -> bytes:
    """A JPEG with a second, smaller picture (MPO), as many cameras write; Pillow calls it MPO."""
    out = io.BytesIO()
    gradient(size).save(
        out,
        "MPO",
        save_all=True,
        append_images=[gradient((size[0] // 4, size[1] // 4))],
        exif=camera_exif(1),
    )
    return out.getvalue()


def noise_png(size: tuple[int, int]) -> bytes:
    """Random pixels compress badly: a PNG of about 3 bytes per pixel."""
    width, height = size
    image = Image.frombytes("RGB", size, os.urandom(width * height * 3))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def animated_gif(size: tuple[int, int] = (120, 60), frames: int = 3) -> bytes:
    colours = ["red", "green", "blue", "yellow", "white"]
    images = [Image.new("RGB", size, colours[i % len(colours)]) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(
        out,
        "GIF",
        save_all=True,
        append_images=images[1:],
        duration=80,
        loop=0,
        comment=b"made by someone",
    )
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that declares a huge canvas: the start of a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def upload(name: str, data: bytes, content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)
