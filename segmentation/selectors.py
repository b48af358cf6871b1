"""What other apps may ask the segmentation app. Segments themselves arrive with issue 5; until
then the registry of segment keys is empty and every well-formed key is accepted."""

from __future__ import annotations

from collections.abc import Iterable


def segment_keys_unknown(keys: Iterable[str]) -> list[str]:
    """The keys among `keys` that name no segment. With no segments defined yet, none is unknown:
    content can target a segment before a marketer has built it."""
    return []
