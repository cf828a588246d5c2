"""Intervals and verdicts: bootstrap coverage on distributions with a known answer, and each
verdict outcome on constructed intervals."""

import math

import numpy as np
import pytest

from vitprobe import stats
from vitprobe.stats import Interval


def test_bootstrap_interval_of_a_mean_covers_the_true_mean_95_percent_of_the_time():
    """Exponential(1) samples of 60: the true mean is 1. Over 300 repetitions the 95 %
    percentile interval covers it in 0.90-0.98 of them (the percentile bootstrap runs a
    little under nominal on a skewed distribution), and its width matches 2·1.96·σ/√n."""
    rng = np.random.default_rng(0)
    hits, widths = 0, []
    for rep in range(300):
        x = rng.exponential(1.0, 60)
        iv = stats.bootstrap(np.mean, x, num_resamples=400, seed=rep)
        hits += iv.covers(1.0)
        widths.append(iv.high - iv.low)
    assert 0.90 <= hits / 300 <= 0.98
    assert np.mean(widths) == pytest.approx(2 * 1.96 / math.sqrt(60), rel=0.1)


def test_bootstrap_of_a_share_below_zero_covers_the_true_share():
    """NEP-like statistic: the share of N(0.5, 1) draws below zero is Φ(-0.5) = 0.3085."""
    rng = np.random.default_rng(1)
    truth = 0.30853753872598688
    hits = 0
    for rep in range(300):
        batches = rng.normal(0.5, 1.0, (40, 5))  # 40 mini-batches of top-5
        iv = stats.bootstrap(lambda e: float((e < 0).mean()), batches, num_resamples=400,
                             seed=rep)
        hits += iv.covers(truth)
    assert 0.88 <= hits / 300 <= 0.98


def test_paired_bootstrap_cancels_what_two_samples_share():
    """Two models on the same images: a shared per-image effect cancels in the paired
    difference, whose interval is then much narrower than the unpaired one."""
    rng = np.random.default_rng(2)
    shared = rng.normal(0, 5, 200)
    a, b = shared + rng.normal(0.3, 0.1, 200), shared + rng.normal(0.0, 0.1, 200)
    diff = lambda u, v: float(u.mean() - v.mean())  # noqa: E731
    paired = stats.bootstrap(diff, a, b, paired=True, seed=0)
    unpaired = stats.bootstrap(diff, a, b, seed=0)
    assert paired.covers(0.3) and paired.low > 0
    assert paired.high - paired.low < 0.1 * (unpaired.high - unpaired.low)
    with pytest.raises(ValueError, match="same number of units"):
        stats.bootstrap(diff, a, b[:10], paired=True)


def test_two_level_bootstrap_widens_with_the_spread_between_seeds():
    """Seeds that disagree (means 0, 1, 2) give a wider interval than seeds that agree,
    with the same units inside each seed; one seed reduces to the one-level bootstrap."""
    rng = np.random.default_rng(3)
    noise = [rng.normal(0, 0.2, 30) for _ in range(3)]
    agree = [n + 1.0 for n in noise]
    disagree = [n + m for n, m in zip(noise, (0.0, 1.0, 2.0))]
    w = lambda iv: iv.high - iv.low  # noqa: E731
    assert w(stats.bootstrap(np.mean, disagree)) > 5 * w(stats.bootstrap(np.mean, agree))
    one = stats.bootstrap(np.mean, [noise[0]], seed=4)
    flat = stats.bootstrap(np.mean, noise[0], seed=4)
    assert (one.low, one.high) == pytest.approx((flat.low, flat.high), rel=0.2)


def test_t_and_welch_intervals_match_hand_computed_values():
    # mean 2, sd 1, n 3: half-width t_{0.975, 2} · 1/√3 = 4.302653 / 1.732051 = 2.484138
    iv = stats.t_interval([1.0, 2.0, 3.0])
    assert (iv.low, iv.high) == pytest.approx((2 - 2.484138, 2 + 2.484138), abs=1e-5)
    # equal variances and sizes: Welch's df = 2(n-1) = 4, se = √(2/3)
    w = stats.welch_interval([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    half = 2.776445 * math.sqrt(2 / 3)
    assert (w.estimate, w.low, w.high) == pytest.approx((1.0, 1 - half, 1 + half), abs=1e-5)
    assert not math.isfinite(stats.t_interval([0.8]).low)  # one seed: no interval


@pytest.mark.parametrize("low, high, side, expected", [
    (0.1, 0.3, "above", "holds"), (-0.3, -0.1, "above", "contradicted"),
    (-0.1, 0.2, "above", "unresolved"), (-0.3, -0.1, "below", "holds"),
    (0.1, 0.3, "below", "contradicted"), (-0.1, 0.2, "below", "unresolved"),
    (-math.inf, math.inf, "above", "unresolved")])
def test_verdict_is_three_valued(low, high, side, expected):
    assert stats.verdict(Interval(0.0, low, high), side) == expected


def test_a_verdict_against_another_boundary():
    assert stats.verdict(Interval(1.5, 1.2, 1.8), "above", boundary=1.0) == "holds"
    assert stats.verdict(Interval(1.5, 1.2, 1.8), "below", boundary=2.0) == "holds"
    with pytest.raises(ValueError, match="paper_side"):
        stats.verdict(Interval(0, 0, 0), "left")


def test_conjunctions_and_consistency_of_verdicts():
    assert stats.all_of(["holds", "holds"]) == "holds"
    assert stats.all_of(["holds", "unresolved"]) == "unresolved"
    assert stats.all_of(["holds", "contradicted", "unresolved"]) == "contradicted"
    assert stats.consistent(["holds", "holds", "holds"]) == "holds"
    assert stats.consistent(["contradicted"] * 2) == "contradicted"
    assert stats.consistent(["holds", "contradicted"]) == "unresolved"
    with pytest.raises(ValueError):
        stats.all_of(["maybe"])


def test_proportion_difference_matches_the_hand_computed_wald_interval():
    # 0.9 vs 0.8 on 1000 images each: se = sqrt(.09/1000 + .16/1000) = 0.0158114
    iv = stats.proportion_difference(0.9, 1000, 0.8, 1000)
    half = 1.959964 * math.sqrt(0.25 / 1000)
    assert (iv.estimate, iv.low, iv.high) == pytest.approx((0.1, 0.1 - half, 0.1 + half),
                                                           abs=1e-6)
    assert stats.verdict(iv, "above") == "holds"


def test_the_seed_interval_and_one_sided_tests_match_scipy():
    from scipy import stats as sps

    v = [0.12, -0.03, 0.08, 0.15]
    iv = stats.t_interval(v)
    lo, hi = sps.ttest_1samp(v, 0).confidence_interval(0.95)
    assert (iv.low, iv.high) == (pytest.approx(lo), pytest.approx(hi))
    # hand-computed: mean 0.08, sd 0.07874, t(0.975, 3) = 3.18245
    assert iv.estimate == pytest.approx(0.08)
    assert iv.high - iv.estimate == pytest.approx(3.182446 * 0.0787401 / 2, rel=1e-5)
    assert stats.p_contradicting(v, "above") == pytest.approx(
        sps.ttest_1samp(v, 0, alternative="less").pvalue)
    assert stats.p_contradicting(v, "below", 0.5) == pytest.approx(
        sps.ttest_1samp(v, 0.5, alternative="greater").pvalue)
    assert stats.p_contradicting([1.0, 1.0], "below") == 0.0
    assert stats.p_contradicting([1.0], "below") == 1.0


def test_holm_on_fixed_p_values():
    # m = 4 at 0.05: thresholds 0.0125, 0.0167, 0.025, 0.05 in ascending order of p
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == [True, False, False, True]
    # 0.0125 < 0.013: the smallest is not rejected, so none is
    assert stats.holm([0.013, 0.014, 0.015, 0.016]) == [False] * 4
    assert stats.holm([0.001, 0.02, 0.04]) == [True, True, True]  # .0167, .025, .05
    assert stats.holm([0.03], alpha=0.025) == [False]


def test_seed_verdicts_need_the_interval_the_signs_and_convergence():
    assert stats.seed_verdict([1.0, 1.2, 0.9], "above") == "holds"
    assert stats.seed_verdict([-1.0, -1.2, -0.9], "above") == "contradicted"
    assert stats.seed_verdict([1.0, -1.2, 0.9], "above") == "unresolved"
    assert stats.seed_verdict([1.0, 1.2, 0.9], "above", converged=False) == "not converged"
    assert stats.seed_verdict([1.0], "above") == "unresolved"  # one seed: no interval
    # the interval excludes 0 but one seed sits below it
    many = [3.0] * 9 + [-0.001]
    assert stats.t_interval(many).low > 0 and stats.seed_verdict(many, "above") == "unresolved"


def test_bootstrap_se_of_a_mean_is_the_standard_error():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2.0, 400)
    se = stats.bootstrap_se(np.mean, x, num_resamples=2000, seed=1)
    assert se == pytest.approx(x.std(ddof=1) / 20, rel=0.06)
