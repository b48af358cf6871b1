"""Per-block personalization: which `data` a caller sees of a block with variants.

A variant targets segments; the first variant that shares a segment with the caller wins, else
the block's default. A variant's `data` is merged over the default (it names only what differs).
The admin's "preview as segment" and the delivery endpoint both resolve through here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def block_resolve(block: Mapping[str, Any], segments: Iterable[str]) -> dict[str, Any]:
    """`{"id", "component", "data"}` for a caller in `segments`; variants are not sent on."""
    caller = set(segments)
    data = dict(block.get("data") or {})
    variant_id = None
    for variant in block.get("variants") or ():
        if caller.intersection(variant.get("segments") or ()):
            data.update(variant.get("data") or {})
            variant_id = variant.get("id")
            break
    return {
        "id": block.get("id"),
        "component": block["component"],
        "data": data,
        "variant": variant_id,
    }


def zones_resolve(
    zones: Mapping[str, list[Mapping[str, Any]]], segments: Iterable[str]
) -> dict[str, list[dict[str, Any]]]:
    caller = frozenset(segments)
    return {
        name: [block_resolve(block, caller) for block in blocks] for name, blocks in zones.items()
    }
