"""Deterministic bucketing, compatible with GrowthBook's hash version 2.

Every server (and any GrowthBook SDK: browser, edge, mobile) computes the same assignment from
the experiment's seed and the unit id alone, so assignments are never stored.

- `fnv1a32(s)`: 32-bit FNV-1a over the string's UTF-16 code units, as the JavaScript SDKs read
  `charCodeAt` (for text in the Basic Multilingual Plane that is every character's code point,
  which is what the Python SDK reads).
- `unit_hash(seed, unit) = (fnv1a32(str(fnv1a32(seed + unit))) % 10000) / 10000`, in [0, 1).
- Traffic: a unit is in an experiment when a *separate* hash, seeded `"__traffic:" + key`, is
  below `traffic`. Keeping it separate from the variant hash means raising traffic only adds
  units: nobody already in changes variant. (A GrowthBook SDK gives the same answer at full
  traffic; below it, give the SDK `coverage` 1 and filter by this hash, or let our API decide.)
- Variants take cumulative ranges of their weights on [0, 1), in the order listed.
"""

from __future__ import annotations

from collections.abc import Sequence

FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193
TRAFFIC_SEED_PREFIX = "__traffic:"
ROLLOUT_SEED_PREFIX = "__rollout:"


def fnv1a32(text: str) -> int:
    value = FNV_OFFSET
    encoded = text.encode("utf-16-le")
    for index in range(0, len(encoded), 2):
        value ^= encoded[index] | (encoded[index + 1] << 8)
        value = (value * FNV_PRIME) & 0xFFFFFFFF
    return value


def unit_hash(seed: str, unit: str) -> float:
    """GrowthBook's hash version 2: a stable number in [0, 1) with four decimals."""
    return (fnv1a32(str(fnv1a32(seed + unit))) % 10000) / 10000


def in_traffic(key: str, unit: str, traffic: float) -> bool:
    if traffic >= 1:  # every hash is below 1: no need to compute it
        return True
    return traffic > 0 and unit_hash(TRAFFIC_SEED_PREFIX + key, unit) < traffic


def variant_index(seed: str, unit: str, weights: Sequence[float]) -> int:
    """The index of the variant whose cumulative weight range holds the unit's hash."""
    position = unit_hash(seed, unit)
    upper = 0.0
    for index, weight in enumerate(weights):
        upper += weight
        if position < upper:
            return index
    # Weights that sum to 1 only up to float rounding leave the top sliver to the last variant.
    return len(weights) - 1
