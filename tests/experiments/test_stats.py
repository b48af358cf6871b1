"""The experiment statistics engine (experiments/stats.py): pure functions, no database.

Figures are pinned three ways: GrowthBook's own published test vectors (gbstats'
`tests/frequentist/test_tests.py`), figures derived by hand here with plain math, and a second
implementation written differently in this file (Bernoulli arrays, a gradient for the delta
method, scipy's interval helpers, a root search for the sequential p-value) compared to 1e-9 on
random experiments.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import optimize
from scipy import stats as sps

from experiments.stats import (
    METHODS,
    Analysis,
    VariantCounts,
    chance_to_win,
    credible_interval,
    experiment_analyze,
    fixed_horizon,
    relative_uplift,
    sequential,
    sequential_interval_halfwidth,
    sequential_p_value,
    sequential_rho,
    srm_p_value,
    welch_dof,
)

ANY_TIME = Analysis(min_exposures=0)  # the decision rule's gates open; only the statistics


def analyze(
    *counts: tuple[int, int],
    weights: list[float] | None = None,
    analysis: Analysis = ANY_TIME,
    runtime_hours: float = 0.0,
) -> dict[str, Any]:
    """`experiment_analyze` on (exposures, conversions) pairs; the first is control, "control",
    the others "b", "c", ...; equal weights unless given."""
    weights = weights or [1 / len(counts)] * len(counts)
    keys = ["control", *"bcdefgh"]
    variants = [
        VariantCounts(keys[i], n, c, w)
        for i, ((n, c), w) in enumerate(zip(counts, weights, strict=True))
    ]
    return experiment_analyze(variants, analysis, runtime_hours=runtime_hours)


def treatment(result: dict[str, Any], index: int = 1) -> dict[str, Any]:
    return result["variants"][index]


def assert_json_ready(value: Any) -> None:
    """Only builtin JSON types (no numpy scalars), and json refuses NaN and infinity."""
    json.dumps(value, allow_nan=False)

    def walk(v: Any) -> None:
        assert type(v) in (dict, list, str, int, float, bool, type(None)), type(v)
        if isinstance(v, dict):
            for item in v.values():
                walk(item)
        elif isinstance(v, list):
            for item in v:
                walk(item)

    walk(value)


# --- GrowthBook's published figures and the issue's -------------------------------------------


def test_fixed_horizon_binomial_matches_growthbook():
    # gbstats test_two_sided_ttest_binom: ProportionStatistic(14, 28) vs (16, 30).
    result = analyze((28, 14), (30, 16), analysis=Analysis(method="fixed", min_exposures=0))
    row = treatment(result)
    assert row["uplift"] == pytest.approx(0.06667, abs=1e-5)
    assert row["ci_low"] == pytest.approx(-0.47767, abs=1e-5)
    assert row["ci_high"] == pytest.approx(0.61101, abs=1e-5)
    assert row["p_value"] == pytest.approx(0.80707, abs=1e-5)
    assert row["significant"] is False
    _, variance = relative_uplift(14, 28, 16, 30)
    assert math.sqrt(variance) == pytest.approx(0.2717, abs=1e-5)


def test_fixed_horizon_building_block_matches_growthbook_sample_means():
    # gbstats test_two_sided_ttest: sample-mean statistics, variance with Bessel's n - 1.
    def moments(total: float, sum_squares: float, n: int) -> tuple[float, float]:
        return total / n, (sum_squares - total**2 / n) / (n - 1)

    (ma, va), na = moments(1396.87, 52377.9767, 3407), 3407
    (mb, vb), nb = moments(2422.7, 134698.29, 3461), 3461
    lift = (mb - ma) / ma
    variance = vb / (nb * ma**2) + va * mb**2 / (na * ma**4)
    result = fixed_horizon(lift, variance, welch_dof(va, na, vb, nb), 0.05)
    assert (result.ci_low, result.ci_high) == pytest.approx((-0.03526, 1.44989), abs=1e-5)
    assert result.p_value == pytest.approx(0.06191, abs=1e-5)


def test_chance_to_win_49_vs_51_of_100():
    row = treatment(analyze((100, 49), (100, 51)))
    assert row["chance_to_win"] == pytest.approx(0.60918, abs=1e-5)
    lift, variance = relative_uplift(49, 100, 51, 100)
    assert chance_to_win(lift, math.sqrt(variance)) == pytest.approx(0.60918, abs=1e-5)


def test_srm_135_vs_115_at_50_50():
    assert srm_p_value([135, 115], [0.5, 0.5]) == pytest.approx(0.205903, abs=1e-6)
    srm = analyze((135, 10), (115, 10))["srm"]
    assert srm["p_value"] == pytest.approx(0.205903, abs=1e-6)
    assert srm["ok"] is True
    assert srm["expected"] == [125.0, 125.0]


def test_sequential_binomial_matches_growthbook():
    # gbstats test_sequential_test_runs_prop: ProportionStatistic(1396, 3000) vs (2422, 3461),
    # default alpha 0.05 and tuning 5000: expected 0.50386, ci (0.40098, 0.60675),
    # stddev 0.03386, p-value 0.0 (to 5 decimals).
    row = treatment(analyze((3000, 1396), (3461, 2422), weights=[3000 / 6461, 3461 / 6461]))
    assert row["uplift"] == pytest.approx(0.50386, abs=1e-5)
    assert row["ci_low"] == pytest.approx(0.40098, abs=1e-5)
    assert row["ci_high"] == pytest.approx(0.60675, abs=1e-5)
    assert round(row["p_value"], 5) == 0.0
    assert row["significant"] is True
    _, variance = relative_uplift(1396, 3000, 2422, 3461)
    assert math.sqrt(variance) == pytest.approx(0.03386, abs=1e-5)


def test_sequential_building_block_matches_growthbook_sample_means():
    # gbstats test_sequential_test_runs: sample means, tuning 1000: ci (-0.55844, 1.56516),
    # stddev 0.33341, p-value 1.
    na, nb = 3000, 3461
    ma, va = 1396.87 / na, (52377.9767 - 1396.87**2 / na) / (na - 1)
    mb, vb = 2422.7 / nb, (134698.29 - 2422.7**2 / nb) / (nb - 1)
    lift = (mb - ma) / ma
    variance = vb / (nb * ma**2) + va * mb**2 / (na * ma**4)
    assert lift == pytest.approx(0.50336, abs=1e-5)
    assert math.sqrt(variance) == pytest.approx(0.33341, abs=1e-5)
    result = sequential(lift, variance, na + nb, 0.05, tuning=1000)
    assert (result.ci_low, result.ci_high) == pytest.approx((-0.55844, 1.56516), abs=1e-5)
    assert result.p_value == 1.0


def test_sequential_figures_derived_by_hand():
    """200/2000 vs 250/2000, alpha 0.05, N* = 5000, each step written out with plain math."""
    pa, pb, na, nb = 200 / 2000, 250 / 2000, 2000, 2000
    lift = (pb - pa) / pa  # 0.25
    variance = pb * (1 - pb) / (nb * pa**2) + pa * (1 - pa) * pb**2 / (na * pa**4)
    n = na + nb
    minus_2_ln_alpha = -2 * math.log(0.05)
    rho_squared = (minus_2_ln_alpha + math.log(minus_2_ln_alpha + 1)) / 5000
    s2 = variance * n
    halfwidth = math.sqrt(s2) * math.sqrt(
        2
        * (n * rho_squared + 1)
        / (n**2 * rho_squared)
        * math.log(math.sqrt(n * rho_squared + 1) / 0.05)
    )
    e_value = math.exp(
        rho_squared * (lift**2 * n / variance) / (2 * (n * rho_squared + 1))
    ) / math.sqrt(n * rho_squared + 1)
    p_value = min(1.0, 1 / e_value)

    assert sequential_rho(0.05, 5000) == pytest.approx(math.sqrt(rho_squared), rel=1e-12)
    assert sequential_rho(0.05, 5000) == pytest.approx(0.0398401, abs=1e-7)
    row = treatment(analyze((2000, 200), (2000, 250)))
    assert row["uplift"] == pytest.approx(0.25, rel=1e-12)
    assert row["ci_low"] == pytest.approx(lift - halfwidth, rel=1e-12)
    assert row["ci_high"] == pytest.approx(lift + halfwidth, rel=1e-12)
    assert row["p_value"] == pytest.approx(p_value, rel=1e-12)
    # The numbers themselves, so a change of formula on both sides still shows up here.
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((-0.0899241, 0.5899241), abs=1e-6)
    assert row["p_value"] == pytest.approx(0.3126918, abs=1e-6)
    assert row["significant"] is False  # the fixed test calls it (p 0.025); sequential waits
    fixed = treatment(analyze((2000, 200), (2000, 250), analysis=Analysis("fixed", 0.05, 0)))
    assert fixed["p_value"] < 0.05


# --- An independent implementation, compared on random experiments ---------------------------


def reference_figures(
    ca: int, na: int, cb: int, nb: int, alpha: float, tuning: float
) -> dict[str, float]:
    """Every figure of a treatment row, computed another way than the engine does."""
    a = np.zeros(na)
    a[:ca] = 1.0
    b = np.zeros(nb)
    b[:cb] = 1.0
    pa, pb = a.mean(), b.mean()
    va, vb = a.var(), b.var()  # ddof=0: the population variance, as gbstats' proportions
    lift = pb / pa - 1
    # Delta method as a quadratic form: the gradient of pb/pa - 1 with respect to (pa, pb)
    # against the diagonal covariance of the two independent means.
    gradient = np.array([-pb / pa**2, 1 / pa])
    variance = float(gradient @ np.diag([va / na, vb / nb]) @ gradient)
    se = math.sqrt(variance)

    # Welch-Satterthwaite in its weight form: 1/dof = c²/(nA-1) + (1-c)²/(nB-1).
    share = (va / na) / (va / na + vb / nb)
    dof = 1 / (share**2 / (na - 1) + (1 - share) ** 2 / (nb - 1))
    t_stat = lift / se
    fixed_p = 2 * min(sps.t.cdf(t_stat, dof), sps.t.sf(t_stat, dof))
    fixed_low, fixed_high = sps.t.interval(1 - alpha, dof, loc=lift, scale=se)

    # The confidence sequence in terms of x = n·rho²:  hw² = Var · (1 + 1/x) · (ln(1+x) - 2 ln a);
    # the p-value is the level a at which it just touches 0, found by root search.
    log_inv_alpha_sq = math.log(1 / alpha**2)
    x = (na + nb) * (log_inv_alpha_sq + math.log1p(log_inv_alpha_sq)) / tuning

    def halfwidth(level: float) -> float:
        return se * math.sqrt((1 + 1 / x) * (math.log1p(x) - 2 * math.log(level)))

    if halfwidth(1.0) >= abs(lift):
        sequential_p = 1.0
    elif halfwidth(1e-300) < abs(lift):
        sequential_p = 0.0
    else:
        sequential_p = optimize.brentq(
            lambda level: halfwidth(level) - abs(lift), 1e-300, 1.0, xtol=1e-15, rtol=1e-14
        )
    credible_low, credible_high = sps.norm.interval(1 - alpha, loc=lift, scale=se)
    return {
        "uplift": lift,
        "fixed_low": fixed_low,
        "fixed_high": fixed_high,
        "fixed_p": fixed_p,
        "sequential_low": lift - halfwidth(alpha),
        "sequential_high": lift + halfwidth(alpha),
        "sequential_p": sequential_p,
        "chance_to_win": sps.norm.sf(0, loc=lift, scale=se),
        "credible_low": credible_low,
        "credible_high": credible_high,
    }


def test_every_figure_agrees_with_an_independent_implementation():
    rng = random.Random(20261120)
    for _ in range(60):
        na, nb = rng.randint(2, 6000), rng.randint(2, 6000)
        ca = rng.randint(1, na - 1)
        cb = rng.randint(0, nb) if rng.random() < 0.2 else rng.randint(1, nb - 1)
        if cb == 0:
            continue  # variance 0: covered by the edge-case tests
        alpha = rng.choice([0.001, 0.01, 0.05, 0.1, 0.2])
        tuning = rng.choice([500, 5000, 20000])
        ref = reference_figures(ca, na, cb, nb, alpha, tuning)
        close = {"rel": 1e-9, "abs": 1e-9}
        for method in METHODS:
            analysis = Analysis(method, alpha, 0, 0.0, tuning)
            row = treatment(analyze((na, ca), (nb, cb), analysis=analysis))
            assert row["rate"] == pytest.approx(cb / nb, **close)
            assert row["uplift"] == pytest.approx(ref["uplift"], **close)
            assert row["ci_low"] == pytest.approx(ref[f"{method}_low"], **close)
            assert row["ci_high"] == pytest.approx(ref[f"{method}_high"], **close)
            assert row["p_value"] == pytest.approx(ref[f"{method}_p"], **close)
            assert row["chance_to_win"] == pytest.approx(ref["chance_to_win"], **close)
            assert row["credible_low"] == pytest.approx(ref["credible_low"], **close)
            assert row["credible_high"] == pytest.approx(ref["credible_high"], **close)


def test_srm_agrees_with_an_independent_chi_square():
    rng = random.Random(7)
    for _ in range(40):
        k = rng.randint(2, 5)
        raw = [rng.random() + 0.05 for _ in range(k)]
        weights = [w / sum(raw) for w in raw]
        exposures = [rng.randint(0, 5000) for _ in range(k)]
        total = sum(exposures)
        if total == 0:
            continue
        statistic = sum(
            (o - total * w) ** 2 / (total * w) for o, w in zip(exposures, weights, strict=True)
        )
        expected_p = sps.chi2.sf(statistic, k - 1)
        assert srm_p_value(exposures, weights) == pytest.approx(expected_p, rel=1e-9, abs=1e-12)


# --- Properties ------------------------------------------------------------------------------

arm = st.integers(min_value=2, max_value=50_000).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(min_value=0, max_value=n))
)


@settings(max_examples=400, deadline=None)
@given(
    control=arm,
    variant=arm,
    alpha=st.sampled_from([0.001, 0.01, 0.05, 0.1, 0.2]),
    method=st.sampled_from(METHODS),
    tuning=st.integers(min_value=100, max_value=1_000_000),
)
def test_p_below_alpha_exactly_when_the_interval_excludes_zero(
    control, variant, alpha, method, tuning
):
    analysis = Analysis(method, alpha, 0, 0.0, tuning)
    row = treatment(analyze(control, variant, analysis=analysis))
    assume(row["p_value"] is not None)
    excludes_zero = row["ci_low"] > 0 or row["ci_high"] < 0
    assert (row["p_value"] < alpha) == excludes_zero == row["significant"]
    assert 0.0 <= row["p_value"] <= 1.0


def test_sequential_interval_is_wider_than_the_fixed_one():
    """Holds for every N* once Welch's dof >= 14 (guaranteed by >= 15 units per arm) and
    alpha >= 0.001: the sequence's width factor √((1 + 1/x)(ln(1 + x) - 2 ln(alpha))), x = n·rho²,
    never drops below 3.03 at alpha 0.05 (4.21 at 0.001), above Welch's t quantile there."""
    rng = random.Random(11)
    checked = 0
    for _ in range(2000):
        na, nb = rng.randint(15, 20_000), rng.randint(15, 20_000)
        ca, cb = rng.randint(1, na), rng.randint(0, nb)
        alpha = rng.choice([0.001, 0.01, 0.05, 0.1, 0.2])
        tuning = round(10 ** rng.uniform(2, 6))
        fixed = treatment(analyze((na, ca), (nb, cb), analysis=Analysis("fixed", alpha, 0)))
        if fixed["p_value"] is None:
            continue
        seq = treatment(
            analyze((na, ca), (nb, cb), analysis=Analysis("sequential", alpha, 0, 0, tuning))
        )
        assert seq["ci_low"] < fixed["ci_low"] and seq["ci_high"] > fixed["ci_high"]
        checked += 1
    assert checked > 1500


def test_fixed_interval_is_the_wider_only_with_a_handful_of_units_in_an_arm():
    """The confidence sequence is normal-based; Welch's t with about one degree of freedom
    (2 units in control, whose variance dominates) has quantile 12.7 against the sequence's
    3.03 near n = N*. Pinned so the limit of "sequential is wider" is documented, not hidden;
    the default min_exposures (100) keeps the decision rule far from it."""
    fixed = treatment(analyze((2, 1), (5000, 2500), analysis=Analysis("fixed", 0.05, 0)))
    seq = treatment(analyze((2, 1), (5000, 2500), analysis=Analysis("sequential", 0.05, 0)))
    assert fixed["ci_high"] - fixed["ci_low"] > seq["ci_high"] - seq["ci_low"]


def test_sequential_p_value_and_halfwidth_agree_at_the_boundary():
    # At |lift| equal to the half-width the p-value is alpha itself.
    rho = sequential_rho(0.05, 5000)
    n, variance = 4000, 0.01
    halfwidth = sequential_interval_halfwidth(variance * n, n, 0.05, rho)
    assert sequential_p_value(halfwidth, variance, n, rho) == pytest.approx(0.05, rel=1e-12)
    assert sequential_p_value(-halfwidth, variance, n, rho) == pytest.approx(0.05, rel=1e-12)
    assert sequential_p_value(0.0, variance, n, rho) == 1.0
    assert sequential_p_value(50.0, variance, n, rho) == 0.0  # e-value beyond float range


def test_credible_interval_and_chance_to_win_are_one_posterior():
    low, high = credible_interval(0.1, 0.05, 0.05)
    assert (low, high) == pytest.approx((0.1 - 1.959964 * 0.05, 0.1 + 1.959964 * 0.05), abs=1e-6)
    assert chance_to_win(0.0, 0.05) == pytest.approx(0.5)
    assert chance_to_win(-0.1, 0.05) == pytest.approx(1 - chance_to_win(0.1, 0.05))


# --- Edge cases: None with a reason, never an exception or NaN -------------------------------


def test_zero_conversion_control():
    result = analyze((500, 0), (500, 12))
    row = treatment(result)
    assert result["variants"][0]["rate"] == 0.0
    assert row["rate"] == pytest.approx(0.024)
    assert row["uplift"] is None and row["p_value"] is None and row["chance_to_win"] is None
    assert row["reason"] == "control has no conversions: relative uplift is undefined"
    assert row["significant"] is False
    assert result["winner"] is None
    assert "control has no conversions" in result["decision"]
    assert_json_ready(result)


def test_zero_exposure_variant():
    result = analyze((300, 30), (300, 33), (0, 0), weights=[0.4, 0.4, 0.2])
    row = treatment(result, 2)
    assert row["rate"] is None
    assert row["uplift"] is None and row["ci_low"] is None and row["p_value"] is None
    assert row["reason"] == "no exposures yet"
    assert treatment(result, 1)["p_value"] is not None  # the other treatment is unaffected
    assert_json_ready(result)


def test_no_exposures_at_all():
    result = analyze((0, 0), (0, 0))
    control, row = result["variants"]
    assert control["rate"] is None and control["reason"] == "control: no exposures yet"
    assert row["rate"] is None and row["reason"] == "no exposures yet"
    assert result["srm"] == {
        "p_value": None,
        "ok": True,
        "expected": [0.0, 0.0],
        "reason": "no exposures yet",
    }
    assert result["winner"] is None
    assert_json_ready(result)


def test_all_converted_arms():
    result = analyze((200, 200), (200, 200))
    row = treatment(result)
    assert row["rate"] == 1.0
    assert row["uplift"] == 0.0  # defined; only its variance is zero
    assert row["ci_low"] is None and row["p_value"] is None and row["credible_low"] is None
    assert "variance is zero" in row["reason"]
    assert_json_ready(result)


def test_treatment_without_conversions_has_zero_variance():
    result = analyze((200, 20), (200, 0), analysis=Analysis("fixed", 0.05, 0))
    row = treatment(result)
    assert row["uplift"] == -1.0
    assert row["p_value"] is None and row["reason"].startswith("no conversions yet")
    assert_json_ready(result)


@pytest.mark.parametrize(
    ("control", "variant", "reason"),
    [
        ((1, 1), (50, 10), "control has fewer than 2 exposures"),
        ((50, 10), (1, 1), "fewer than 2 exposures"),
    ],
)
def test_fewer_than_two_units(control, variant, reason):
    for method in METHODS:
        result = analyze(control, variant, analysis=Analysis(method, 0.05, 0))
        row = treatment(result)
        assert row["p_value"] is None and row["reason"].startswith(reason)
        assert_json_ready(result)


def test_no_variants_and_control_only():
    empty = experiment_analyze([], Analysis(), runtime_hours=1)
    assert empty["winner"] is None and empty["variants"] == []
    assert_json_ready(empty)
    alone = analyze((500, 50), weights=[1.0])
    assert alone["winner"] is None and "no treatment" in alone["decision"]
    assert alone["srm"]["p_value"] is None and alone["srm"]["ok"] is True
    assert_json_ready(alone)


def test_srm_with_a_zero_weight_variant():
    assert srm_p_value([100, 100, 0], [0.5, 0.5, 0.0]) == pytest.approx(1.0)
    assert srm_p_value([100, 100, 3], [0.5, 0.5, 0.0]) == 0.0  # units where none belong
    assert srm_p_value([0, 0], [0.5, 0.5]) is None
    assert srm_p_value([10, 0], [1.0, 0.0]) is None  # one arm with traffic: nothing to test


@pytest.mark.parametrize(
    "bad",
    [
        {"exposures": 10, "conversions": 11, "weight": 0.5},
        {"exposures": -1, "conversions": 0, "weight": 0.5},
        {"exposures": 10, "conversions": 1, "weight": float("nan")},
        {"exposures": 10, "conversions": 1, "weight": -0.5},
    ],
)
def test_impossible_counts_are_refused(bad):
    with pytest.raises(ValueError):
        VariantCounts("b", **bad)


def test_invalid_analysis_is_refused():
    for bad in ({"method": "bayes"}, {"alpha": 0.0}, {"alpha": 1.0}, {"sequential_tuning": 0}):
        with pytest.raises(ValueError):
            Analysis(**bad)


def test_results_are_json_ready_for_random_counts():
    rng = random.Random(3)
    for _ in range(200):
        counts = []
        for _ in range(rng.randint(1, 4)):
            n = rng.choice([0, 1, 2, 3, rng.randint(0, 10_000)])
            counts.append((n, rng.choice([0, n, rng.randint(0, n)])))
        method = rng.choice(METHODS)
        assert_json_ready(analyze(*counts, analysis=Analysis(method, 0.05, rng.randint(0, 50))))


# --- The decision rule -----------------------------------------------------------------------


def test_srm_blocks_a_winner():
    result = analyze((5000, 500), (4000, 800), analysis=Analysis(), runtime_hours=100)
    assert treatment(result)["significant"] is True  # a winner on the statistics alone
    assert result["srm"]["ok"] is False and result["srm"]["p_value"] < 0.001
    assert result["winner"] is None
    assert result["decision"].startswith("SRM detected (p=")
    assert result["decision"].endswith("no winner while exposures do not match the weights")


def test_min_exposures_blocks_a_winner():
    fixed = Analysis(method="fixed", min_exposures=100)
    result = analyze((99, 5), (99, 60), analysis=fixed)
    assert treatment(result)["significant"] is True
    assert result["winner"] is None
    assert result["decision"] == (
        "no winner yet: waiting for 100 exposures per variant ('control' has 99)"
    )
    assert analyze((100, 5), (100, 60), analysis=fixed)["winner"] == "b"
    # The same gate under the default sequential method, at a larger threshold.
    sequential_1000 = Analysis(min_exposures=1000)
    assert analyze((999, 100), (999, 200), analysis=sequential_1000)["winner"] is None
    assert analyze((1000, 100), (1000, 200), analysis=sequential_1000)["winner"] == "b"


def test_min_runtime_blocks_a_winner():
    analysis = Analysis(min_runtime_hours=48)
    early = analyze((1000, 50), (1000, 150), analysis=analysis, runtime_hours=47.5)
    assert early["winner"] is None and "minimum runtime of 48 hours" in early["decision"]
    later = analyze((1000, 50), (1000, 150), analysis=analysis, runtime_hours=48)
    assert later["winner"] == "b"


def test_clear_winner_among_three_variants():
    result = analyze((2000, 200), (2000, 300), (2000, 320), analysis=Analysis())
    b, c = treatment(result, 1), treatment(result, 2)
    assert b["significant"] and c["significant"]
    assert result["winner"] == "c"  # the significant one with the largest uplift
    assert result["decision"].startswith("'c' wins")


def test_a_larger_but_not_significant_uplift_does_not_win():
    # c's point uplift (+40%) beats b's (+30%), but on 200 units it is far from significant.
    weights = [5000 / 10200, 5000 / 10200, 200 / 10200]
    result = analyze((5000, 500), (5000, 650), (200, 28), weights=weights, analysis=Analysis())
    b, c = treatment(result, 1), treatment(result, 2)
    assert c["uplift"] > b["uplift"] and not c["significant"] and b["significant"]
    assert result["winner"] == "b"


def test_control_wins_when_the_only_treatment_is_significantly_worse():
    result = analyze((2000, 300), (2000, 200), analysis=Analysis())
    assert treatment(result)["significant"] is True and treatment(result)["uplift"] < 0
    assert result["winner"] == "control"
    assert "every treatment is significantly worse" in result["decision"]


def test_no_winner_when_one_is_worse_and_another_is_inconclusive():
    result = analyze((2000, 300), (2000, 200), (2000, 310), analysis=Analysis())
    assert treatment(result, 1)["significant"] and not treatment(result, 2)["significant"]
    assert result["winner"] is None
    assert "not every treatment is significantly worse" in result["decision"]


def test_no_winner_without_significance():
    result = analyze((2000, 200), (2000, 210), analysis=Analysis())
    assert result["winner"] is None
    assert result["decision"] == (
        "no winner: no treatment differs significantly from control (sequential test, alpha=0.05)"
    )


def test_sequential_waits_where_fixed_horizon_declares():
    counts = ((2000, 200), (2000, 250))
    assert analyze(*counts, analysis=Analysis(method="fixed"))["winner"] == "b"
    assert analyze(*counts, analysis=Analysis(method="sequential"))["winner"] is None
