"""Bucketing: GrowthBook hash v2 vectors, shares that match the weights, and stability."""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import sys
from collections import Counter

import pytest
from scipy.stats import chisquare

from experiments.bucketing import fnv1a32, in_traffic, unit_hash, variant_index


def reference_fnv1a32(text: str) -> int:
    # The algorithm as GrowthBook's SDKs write it, for ASCII text: per character, xor then multiply.
    value = 2166136261
    for character in text:
        value = ((value ^ ord(character)) * 16777619) % 2**32
    return value


@pytest.mark.parametrize(
    ("seed", "unit", "expected"),
    [("seed", "a", 0.0505), ("foo", "ab", 0.2575)],
)
def test_growthbook_hash_v2_vectors(seed: str, unit: str, expected: float) -> None:
    assert unit_hash(seed, unit) == expected


def test_fnv1a32_agrees_with_the_reference_on_random_ascii() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        text = "".join(rng.choices(string.printable, k=rng.randint(0, 40)))
        assert fnv1a32(text) == reference_fnv1a32(text)
    assert fnv1a32("") == 0x811C9DC5


def test_hash_is_in_the_unit_interval_with_four_decimals() -> None:
    for index in range(5000):
        value = unit_hash("exp", f"user-{index}")
        assert 0 <= value < 1
        assert round(value, 4) == value


def test_shares_match_the_weights_on_100k_units() -> None:
    weights = [0.2, 0.3, 0.5]
    counts = Counter(variant_index("checkout", f"u{index}", weights) for index in range(100_000))
    observed = [counts[index] for index in range(3)]
    assert chisquare(observed, [100_000 * w for w in weights]).pvalue > 0.001


def test_traffic_takes_its_share_and_raising_it_only_adds_units() -> None:
    units = [f"visitor-{index}" for index in range(20_000)]
    at_30 = {unit for unit in units if in_traffic("hero", unit, 0.3)}
    at_60 = {unit for unit in units if in_traffic("hero", unit, 0.6)}
    assert abs(len(at_30) / len(units) - 0.3) < 0.015
    assert at_30 <= at_60
    assert not any(in_traffic("hero", unit, 0.0) for unit in units[:500])
    assert all(in_traffic("hero", unit, 1.0) for unit in units[:500])


def test_traffic_hash_is_independent_of_the_variant_hash() -> None:
    # Units let in at 50% traffic must still split 50/50, not all land in one variant.
    inside = [f"u{index}" for index in range(20_000) if in_traffic("split", f"u{index}", 0.5)]
    counts = Counter(variant_index("split", unit, [0.5, 0.5]) for unit in inside)
    assert chisquare([counts[0], counts[1]]).pvalue > 0.001


def test_assignments_are_the_same_in_another_process() -> None:
    units = [f"unit-{index}" for index in range(300)] + ["émile", "用户", "😀-emoji"]
    here = [variant_index("stable", unit, [0.25, 0.25, 0.5]) for unit in units]
    script = (
        "import json, sys\n"
        "from experiments.bucketing import variant_index\n"
        "units = json.loads(sys.stdin.read())\n"
        "print(json.dumps([variant_index('stable', u, [0.25, 0.25, 0.5]) for u in units]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    there = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(units),
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert json.loads(there.stdout) == here
