"""Statistics of A/B tests on a conversion metric: a pure engine, no Django and no database.

The estimators follow GrowthBook's open-source engine, gbstats (`packages/stats/gbstats` in
github.com/growthbook/growthbook, MIT): relative uplift with a delta-method variance, a Welch t
test for fixed-horizon analyses, the always-valid confidence sequences of Waudby-Smith et al. for
sequential analyses, a normal posterior for the chance to win, and a chi-square sample ratio
mismatch (SRM) check. The code is our own; each formula names its source where it is used.

A conversion metric is binomial: each exposed unit converted (1) or not (0), so a variant's mean
is its conversion rate p = c/n and the per-unit variance is p(1 - p), as in gbstats'
`ProportionStatistic` (the population variance, without Bessel's n - 1).

`experiment_analyze` is the entry point; the building blocks are public because the tests pin
them one by one against published figures and an independent implementation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats as sps

METHODS = ("sequential", "fixed")

# GrowthBook's default tuning parameter N* of the sequential test: the confidence sequence is
# narrowest when about N* units (both arms together) have been exposed.
DEFAULT_SEQUENTIAL_TUNING = 5000

# GrowthBook flags a sample ratio mismatch below this p-value (its default `srmThreshold`):
# strict, because the check runs on every refresh and a false alarm blocks a real result.
SRM_P_THRESHOLD = 0.001


@dataclass(frozen=True)
class VariantCounts:
    """One variant's aggregate counts: every exposed unit counts once in `exposures`, and once
    more in `conversions` if it converted. `weight` is the configured traffic share."""

    key: str
    exposures: int
    conversions: int
    weight: float

    def __post_init__(self) -> None:
        # Counts like these cannot come out of a running experiment; analysing them would
        # produce rates above 1 or negative variances, so the caller's bug surfaces here.
        if self.exposures < 0 or self.conversions < 0:
            raise ValueError(f"variant {self.key!r}: counts must not be negative")
        if self.conversions > self.exposures:
            raise ValueError(
                f"variant {self.key!r}: {self.conversions} conversions exceed "
                f"{self.exposures} exposures (each unit converts at most once)"
            )
        if not math.isfinite(self.weight) or self.weight < 0:
            raise ValueError(f"variant {self.key!r}: weight must be a finite number >= 0")


@dataclass(frozen=True)
class Analysis:
    """How an experiment is analysed and when a winner may be declared."""

    method: str = "sequential"  # "sequential" | "fixed"
    alpha: float = 0.05
    min_exposures: int = 100  # per variant, before a winner may be declared
    min_runtime_hours: float = 0.0
    sequential_tuning: int = DEFAULT_SEQUENTIAL_TUNING  # GrowthBook's N*

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {self.method!r}")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be between 0 and 1")
        if self.sequential_tuning <= 0:
            raise ValueError("sequential_tuning must be positive")
        if self.min_exposures < 0 or not self.min_runtime_hours >= 0:
            raise ValueError("min_exposures and min_runtime_hours must not be negative")


@dataclass(frozen=True)
class FrequentistResult:
    """A two-sided test of "uplift = 0": the interval and the p-value agree by construction,
    p < alpha exactly when the interval excludes 0."""

    lift: float
    ci_low: float
    ci_high: float
    p_value: float


# --- Building blocks -----------------------------------------------------------------------


def bernoulli_variance(rate: float) -> float:
    """Per-unit variance s² = p(1 - p) of a 0/1 outcome with mean p (gbstats
    `ProportionStatistic.variance`)."""
    return rate * (1.0 - rate)


def relative_uplift(ca: int, na: int, cb: int, nb: int) -> tuple[float, float]:
    """Relative uplift of B (treatment) over A (control) and its variance.

    lift = (pB - pA) / pA, and by the delta method for the ratio pB / pA of two independent
    means (gbstats `utils.variance_of_ratios` with zero covariance, as in its `TTest.variance`):

        Var = sB² / (nB · pA²) + sA² · pB² / (nA · pA⁴)      with s² = p(1 - p).

    Raises ValueError when the uplift is undefined (an arm without exposures, or pA = 0).
    """
    if na <= 0 or nb <= 0:
        raise ValueError("both arms need exposures")
    pa, pb = ca / na, cb / nb
    if pa == 0:
        raise ValueError("control rate is 0: relative uplift is undefined")
    var_a, var_b = bernoulli_variance(pa), bernoulli_variance(pb)
    lift = (pb - pa) / pa
    variance = var_b / (nb * pa**2) + var_a * pb**2 / (na * pa**4)
    return lift, variance


def welch_dof(var_a: float, na: int, var_b: float, nb: int) -> float:
    """Welch-Satterthwaite degrees of freedom from the per-unit variances (gbstats `TTest.dof`):

        dof = (sA²/nA + sB²/nB)² / ((sA²/nA)² / (nA - 1) + (sB²/nB)² / (nB - 1)).

    Like gbstats it uses the variances of the two means, not the delta-method terms of the
    relative uplift. Needs nA, nB >= 2 and at least one positive variance.
    """
    if na < 2 or nb < 2:
        raise ValueError("Welch's dof needs at least 2 units per arm")
    term_a, term_b = var_a / na, var_b / nb
    denominator = term_a**2 / (na - 1) + term_b**2 / (nb - 1)
    if denominator <= 0:
        raise ValueError("Welch's dof needs a positive variance in at least one arm")
    return (term_a + term_b) ** 2 / denominator


def fixed_horizon(lift: float, variance: float, dof: float, alpha: float) -> FrequentistResult:
    """Two-sided Welch t test of the uplift (gbstats `TwoSidedTTest`).

    t = lift / √Var; p = 2 · P(T_dof > |t|); CI = lift ± t_{1-alpha/2, dof} · √Var. Both come from
    the same t distribution, so p < alpha exactly when the CI excludes 0. The survival function
    keeps small p-values accurate where gbstats' `1 - cdf` rounds them to 0.
    """
    se = _standard_error(variance)
    halfwidth = float(sps.t.ppf(1 - alpha / 2, dof)) * se
    p_value = float(2 * sps.t.sf(abs(lift) / se, dof))
    return FrequentistResult(lift, lift - halfwidth, lift + halfwidth, min(p_value, 1.0))


def sequential_rho(alpha: float, tuning: float = DEFAULT_SEQUENTIAL_TUNING) -> float:
    """Mixing parameter rho of the normal-mixture confidence sequence, tuned so the sequence is
    narrowest near `tuning` = N* units (Waudby-Smith et al. 2023, arXiv:2103.06476, eq. 161;
    gbstats `utils.sequential_rho`, two-sided):

        rho = √( (-2 ln(alpha) + ln(-2 ln(alpha) + 1)) / N* ).
    """
    if not 0 < alpha < 1 or tuning <= 0:
        raise ValueError("need 0 < alpha < 1 and a positive tuning parameter")
    minus_2_ln_alpha = -2 * math.log(alpha)
    return math.sqrt((minus_2_ln_alpha + math.log(minus_2_ln_alpha + 1)) / tuning)


def sequential_interval_halfwidth(s2: float, n: int, alpha: float, rho: float) -> float:
    """Half-width of the two-sided asymptotic confidence sequence (Waudby-Smith et al. 2023,
    eq. 9; gbstats `utils.sequential_interval_halfwidth`):

        halfwidth = √s2 · √( 2(n·rho² + 1) / (n²·rho²) · ln(√(n·rho² + 1) / alpha) )

    where `s2` is a per-unit variance, for two arms Var(uplift) · n with n = nA + nB.
    """
    n_rho2 = n * rho**2
    return math.sqrt(s2) * math.sqrt(
        2 * (n_rho2 + 1) / (n * n_rho2) * math.log(math.sqrt(n_rho2 + 1) / alpha)
    )


def sequential_p_value(lift: float, variance: float, n: int, rho: float) -> float:
    """Always-valid p-value matching `sequential_interval_halfwidth` (gbstats
    `SequentialTwoSidedTTest.p_value`, from Waudby-Smith et al. 2023, eq. 155):

        st2 = lift² · n / Var
        e = exp(rho² · st2 / (2(n·rho² + 1))) / √(n·rho² + 1)
        p = min(1, 1/e)

    e is the mixture e-value, and p < alpha ⇔ ln e > ln(1/alpha)
    ⇔ lift² > Var · 2(n·rho² + 1)/(n·rho²) · ln(√(n·rho² + 1)/alpha) ⇔ |lift| > halfwidth:
    with the same rho, the p-value and the interval always agree. Computed on the log scale,
    because e overflows a float long before p stops being meaningful.
    """
    st2 = lift**2 * n / variance
    n_rho2_plus_1 = n * rho**2 + 1
    log_e = rho**2 * st2 / (2 * n_rho2_plus_1) - 0.5 * math.log(n_rho2_plus_1)
    return math.exp(-log_e) if log_e > 0 else 1.0


def sequential(
    lift: float,
    variance: float,
    n: int,
    alpha: float,
    tuning: float = DEFAULT_SEQUENTIAL_TUNING,
) -> FrequentistResult:
    """Two-sided sequential test of the uplift (gbstats `SequentialTwoSidedTTest`): valid
    however often the results are looked at, at the price of a wider interval than the fixed
    test's. `n` is the units of both arms together; rho comes from this alpha and N*, and the
    p-value uses that same rho, so p < alpha exactly when the interval excludes 0.

    The sequence is an asymptotic (normal) one: with arms of a handful of units, where Welch's
    t has very few degrees of freedom, the fixed t interval can be the wider of the two.
    """
    _standard_error(variance)  # validates
    rho = sequential_rho(alpha, tuning)
    halfwidth = sequential_interval_halfwidth(variance * n, n, alpha, rho)
    p_value = sequential_p_value(lift, variance, n, rho)
    return FrequentistResult(lift, lift - halfwidth, lift + halfwidth, p_value)


def chance_to_win(lift: float, se: float) -> float:
    """Bayesian chance that the treatment beats control, P(uplift > 0), under a flat prior:
    the posterior of the uplift is then N(lift, se²), so P = Φ(lift / se). gbstats computes
    its chance to win the same way, `norm.sf(0, mean, sd)` of a normal posterior (its effect
    test optionally adds a normal prior; the flat prior is the no-prior case)."""
    if not se > 0:
        raise ValueError("the standard error must be positive")
    return float(sps.norm.cdf(lift / se))


def credible_interval(lift: float, se: float, alpha: float) -> tuple[float, float]:
    """Equal-tailed credible interval of the N(lift, se²) posterior: lift ± z_{1-alpha/2} · se
    (gbstats `utils.gaussian_credible_interval`)."""
    if not se > 0:
        raise ValueError("the standard error must be positive")
    halfwidth = float(sps.norm.ppf(1 - alpha / 2)) * se
    return lift - halfwidth, lift + halfwidth


def srm_p_value(exposures: Sequence[int], weights: Sequence[float]) -> float | None:
    """p-value of the sample ratio mismatch test (gbstats `utils.check_srm`): Pearson's
    chi-square goodness of fit of the exposures against expected_i = total · w_i / Σw, with
    k - 1 degrees of freedom (`scipy.stats.chisquare`).

    None when there is nothing to test: no exposures yet, or fewer than two variants with a
    positive weight. A variant with weight 0 expects no units; like gbstats it is left out of
    the test, but a unit exposed to it is a certain mismatch, so the p-value is then 0.
    """
    if len(exposures) != len(weights):
        raise ValueError("one weight per variant")
    if any(e < 0 for e in exposures):
        raise ValueError("exposures must not be negative")
    if any(not math.isfinite(w) or w < 0 for w in weights) or not sum(weights) > 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    total = sum(exposures)
    if total == 0:
        return None
    if any(w == 0 and e > 0 for e, w in zip(exposures, weights, strict=True)):
        return 0.0
    weight_sum = sum(weights)
    observed = [e for e, w in zip(exposures, weights, strict=True) if w > 0]
    expected = [total * w / weight_sum for w in weights if w > 0]
    if len(observed) < 2:
        return None
    return float(sps.chisquare(observed, expected).pvalue)


# --- The analysis ----------------------------------------------------------------------------


def experiment_analyze(
    variants: list[VariantCounts], analysis: Analysis, *, runtime_hours: float
) -> dict[str, Any]:
    """Analyse an experiment whose first variant is the control.

    Returns a JSON-ready dict (only str, int, float, bool, None, lists and dicts; never NaN or
    infinity): per-variant rates and, for each treatment against control, the uplift with the
    interval and p-value of `analysis.method`, the Bayesian chance to win and credible
    interval; the SRM check; the winner (a variant key, or None) and one sentence saying why.
    A statistic that cannot be computed is None, with the reason in the row's `reason`.
    """
    if not math.isfinite(runtime_hours):
        raise ValueError("runtime_hours must be a finite number")
    if variants and not sum(v.weight for v in variants) > 0:
        raise ValueError("the variants' weights must not all be zero")

    rows: list[dict[str, Any]] = []
    if variants:
        control = variants[0]
        rows.append(_control_row(control))
        rows.extend(_treatment_row(control, v, analysis) for v in variants[1:])
    srm = _srm_summary(variants)
    winner, decision = _decide(variants, rows, srm, analysis, runtime_hours)
    return {
        "method": analysis.method,
        "alpha": float(analysis.alpha),
        "variants": rows,
        "srm": srm,
        "winner": winner,
        "decision": decision,
    }


def _standard_error(variance: float) -> float:
    if not (variance > 0 and math.isfinite(variance)):
        raise ValueError("the variance must be positive and finite")
    return math.sqrt(variance)


def _empty_row(v: VariantCounts) -> dict[str, Any]:
    return {
        "key": v.key,
        "exposures": int(v.exposures),
        "conversions": int(v.conversions),
        "rate": float(v.conversions / v.exposures) if v.exposures else None,
        "uplift": None,
        "ci_low": None,
        "ci_high": None,
        "p_value": None,
        "chance_to_win": None,
        "credible_low": None,
        "credible_high": None,
        "significant": False,
        "reason": None,
    }


def _control_row(control: VariantCounts) -> dict[str, Any]:
    row = _empty_row(control)
    row["reason"] = "control" if control.exposures else "control: no exposures yet"
    return row


def _unavailable_reason(control: VariantCounts, treatment: VariantCounts) -> str | None:
    """Why the uplift cannot be tested for this treatment, or None when it can."""
    if treatment.exposures == 0:
        return "no exposures yet"
    if control.exposures == 0:
        return "control has no exposures yet"
    if control.conversions == 0:
        return "control has no conversions: relative uplift is undefined"
    if treatment.exposures < 2:
        return "fewer than 2 exposures: the variance cannot be estimated"
    if control.exposures < 2:
        return "control has fewer than 2 exposures: the variance cannot be estimated"
    return None


def _zero_variance_reason(control: VariantCounts, treatment: VariantCounts) -> str:
    # With pA > 0 the delta-method variance is 0 only when sB² = 0 and the control term
    # vanishes: pB = 0, or pA = pB = 1.
    if treatment.conversions == 0:
        return "no conversions yet: the uplift's variance is zero, so it cannot be tested"
    return "every unit converted in both arms: the variance is zero, so there is nothing to test"


def _treatment_row(
    control: VariantCounts, treatment: VariantCounts, analysis: Analysis
) -> dict[str, Any]:
    row = _empty_row(treatment)
    reason = _unavailable_reason(control, treatment)
    if reason is not None:
        row["reason"] = reason
        if control.exposures and treatment.exposures and control.conversions:
            row["uplift"], _ = relative_uplift(
                control.conversions, control.exposures, treatment.conversions, treatment.exposures
            )
        return row

    na, nb = control.exposures, treatment.exposures
    lift, variance = relative_uplift(control.conversions, na, treatment.conversions, nb)
    row["uplift"] = float(lift)
    if not (variance > 0 and math.isfinite(variance)):
        row["reason"] = _zero_variance_reason(control, treatment)
        return row

    if analysis.method == "fixed":
        dof = welch_dof(
            bernoulli_variance(control.conversions / na),
            na,
            bernoulli_variance(treatment.conversions / nb),
            nb,
        )
        test = fixed_horizon(lift, variance, dof, analysis.alpha)
    else:
        test = sequential(lift, variance, na + nb, analysis.alpha, analysis.sequential_tuning)
    se = math.sqrt(variance)
    credible_low, credible_high = credible_interval(lift, se, analysis.alpha)
    figures = {
        "ci_low": test.ci_low,
        "ci_high": test.ci_high,
        "p_value": test.p_value,
        "chance_to_win": chance_to_win(lift, se),
        "credible_low": credible_low,
        "credible_high": credible_high,
    }
    if not all(math.isfinite(x) for x in figures.values()):
        # Not reachable with counts a float can hold; kept so NaN can never reach the JSON.
        row["reason"] = "the figures are numerically unstable for these counts"
        return row
    row.update({name: float(value) for name, value in figures.items()})
    row["significant"] = test.p_value < analysis.alpha
    return row


def _srm_summary(variants: list[VariantCounts]) -> dict[str, Any]:
    exposures = [v.exposures for v in variants]
    weights = [v.weight for v in variants]
    total = sum(exposures)
    weight_sum = sum(weights) or 1.0
    expected = [float(total * w / weight_sum) for w in weights]
    if len(variants) < 2:
        return {
            "p_value": None,
            "ok": True,
            "expected": expected,
            "reason": "the sample ratio check needs at least two variants",
        }
    p_value = srm_p_value(exposures, weights)
    if p_value is None:
        reason = (
            "no exposures yet"
            if total == 0
            else "the sample ratio check needs at least two variants with traffic"
        )
        return {"p_value": None, "ok": True, "expected": expected, "reason": reason}
    ok = p_value >= SRM_P_THRESHOLD
    reason = None if ok else "exposures do not match the configured weights"
    return {"p_value": float(p_value), "ok": ok, "expected": expected, "reason": reason}


def _format_p(p: float) -> str:
    return f"{p:.2g}"


def _decide(
    variants: list[VariantCounts],
    rows: list[dict[str, Any]],
    srm: dict[str, Any],
    analysis: Analysis,
    runtime_hours: float,
) -> tuple[str | None, str]:
    """The decision rule: a winner only with enough exposures in every variant, enough runtime,
    no SRM, and a treatment significantly different from control under the analysis' method.
    SRM is checked first: it means the data are wrong, which matters more than waiting."""
    if not variants:
        return None, "no winner: the experiment has no variants"
    if len(variants) < 2:
        return None, "no winner: there is no treatment to compare with control"
    if not srm["ok"]:
        return None, (
            f"SRM detected (p={_format_p(srm['p_value'])}): "
            "no winner while exposures do not match the weights"
        )
    fewest = min(variants, key=lambda v: v.exposures)
    if fewest.exposures < analysis.min_exposures:
        return None, (
            f"no winner yet: waiting for {analysis.min_exposures} exposures per variant "
            f"({fewest.key!r} has {fewest.exposures})"
        )
    if runtime_hours < analysis.min_runtime_hours:
        return None, (
            f"no winner yet: waiting for the minimum runtime of {analysis.min_runtime_hours:g} "
            f"hours ({runtime_hours:g} so far)"
        )

    test = f"{analysis.method} test, alpha={analysis.alpha:g}"
    treatments = rows[1:]
    tested = [r for r in treatments if r["p_value"] is not None]
    if not tested:
        return None, f"no winner: {treatments[0]['reason']}"
    better = [r for r in tested if r["significant"] and r["uplift"] > 0]
    if better:
        best = max(better, key=lambda r: r["uplift"])
        return best["key"], (
            f"{best['key']!r} wins: its uplift of {best['uplift']:+.1%} over control is "
            f"significant (p={_format_p(best['p_value'])}, {test})"
        )
    if len(tested) == len(treatments) and all(r["significant"] and r["uplift"] < 0 for r in tested):
        return variants[0].key, (
            f"control {variants[0].key!r} wins: every treatment is significantly worse "
            f"than control ({test})"
        )
    if any(r["significant"] for r in tested):
        return None, (
            "no winner: no treatment significantly beats control, and not every treatment "
            f"is significantly worse ({test})"
        )
    untested = len(treatments) - len(tested)
    note = f"; {untested} treatment(s) could not be tested" if untested else ""
    return None, f"no winner: no treatment differs significantly from control ({test}){note}"
