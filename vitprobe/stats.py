"""Confidence intervals and three-valued verdicts for the findings (F1-F10).

A finding's statistic is judged by its 95 % interval, not its point value:

- **holds**: the interval lies wholly on the side of the boundary the paper claims;
- **contradicted**: it lies wholly on the other side;
- **unresolved**: it covers the boundary — the data cannot tell, so a finding that would flip
  with the seed or the mini-batches is not called either way.

Intervals come from the percentile bootstrap (Efron & Tibshirani 1993, §13) over the units
that vary between repetitions of the experiment: mini-batches for Hessian spectra, images for
Fourier, variance and robustness, and training seeds on top where a model was trained more
than once (a two-level bootstrap: seeds, then units within each drawn seed). Accuracies
measured once per seed use Student's t interval over seeds (Welch's for a difference).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .serial import Serialised

VERDICTS = ("holds", "contradicted", "unresolved")


@dataclass(frozen=True)
class Interval(Serialised):
    """A statistic's point estimate and its ``level`` confidence interval [low, high]."""

    estimate: float
    low: float
    high: float
    level: float = 0.95
    method: str = "bootstrap"
    n: int = 0               # resampling units of the smallest sample (mini-batches, images,
    #                          seeds), every seed's units counted

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high

    def format(self, fmt: str = ".3g") -> str:
        """``0.123 [0.101, 0.145]``"""
        return f"{self.estimate:{fmt}} [{self.low:{fmt}}, {self.high:{fmt}}]"


Sample = np.ndarray | Sequence[np.ndarray]


def _draw(sample: Sample, rng: np.random.Generator) -> np.ndarray:
    """One bootstrap resample: units of an array (axis 0) with replacement; for a list of
    groups (seeds), groups with replacement, then units within each drawn group."""
    if isinstance(sample, np.ndarray):
        return sample[rng.integers(0, len(sample), len(sample))]
    groups = [sample[i] for i in rng.integers(0, len(sample), len(sample))]
    return np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])


def _as_sample(sample) -> Sample:
    """An array of units, or a list of arrays (one per seed) kept as groups."""
    if isinstance(sample, list) and sample and all(isinstance(g, np.ndarray) for g in sample):
        if any(len(g) == 0 for g in sample):
            raise ValueError("every group (seed) needs at least one unit")
        return sample
    arr = np.asarray(sample, dtype=float)
    if arr.ndim == 0 or len(arr) == 0:
        raise ValueError("a bootstrap sample needs at least one unit")
    return arr


def _replicates(statistic: Callable[..., float], samples: list, paired: bool,
                num_resamples: int, seed: int) -> np.ndarray:
    """``statistic`` on ``num_resamples`` bootstrap resamples drawn from ``seed``: the same
    unit indices for every sample when ``paired``, else each sample on its own
    (``_draw``: units of an array, or seeds then units for a list of groups)."""
    rng = np.random.default_rng(seed)
    values = np.empty(num_resamples)
    for b in range(num_resamples):
        if paired:
            idx = rng.integers(0, len(samples[0]), len(samples[0]))
            values[b] = statistic(*(s[idx] for s in samples))
        else:
            values[b] = statistic(*(_draw(s, rng) for s in samples))
    return values


def bootstrap(statistic: Callable[..., float], *samples, paired: bool = False,
              num_resamples: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of ``statistic(*samples)``.

    Each sample is an array whose axis 0 holds the resampling units (mini-batches, images),
    or a *list* of such arrays, one per training seed (resampled at both levels and
    concatenated). ``paired=True`` draws the same unit indices for every sample (arrays of
    equal length: two models on the same images). Resamples where the statistic is not
    finite are dropped; if more than 5 % are, the interval is (-inf, inf).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}")
    if num_resamples < 100:
        raise ValueError(f"num_resamples must be >= 100; got {num_resamples}")
    samples = [_as_sample(s) for s in samples]
    if paired:
        if not all(isinstance(s, np.ndarray) for s in samples) or \
                len({len(s) for s in samples}) != 1:
            raise ValueError("paired resampling needs arrays with the same number of units")
    estimate = float(statistic(*(s if isinstance(s, np.ndarray) else np.concatenate(s)
                                 for s in samples)))
    values = _replicates(statistic, samples, paired, num_resamples, seed)
    # units per sample (all seeds' units for a list of groups): the smallest sample's
    n = min(len(s) if isinstance(s, np.ndarray) else sum(len(g) for g in s) for s in samples)
    finite = values[np.isfinite(values)]
    if finite.size < 0.95 * num_resamples or not math.isfinite(estimate):
        return Interval(estimate, -math.inf, math.inf, level, "bootstrap", n)
    a = (1 - level) / 2
    low, high = np.quantile(finite, [a, 1 - a])
    return Interval(estimate, float(low), float(high), level, "bootstrap", n)


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Student's t interval of the mean of ``values`` (e.g. one accuracy per seed); a single
    value has no spread to estimate: (-inf, inf)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if v.size < 2:
        return Interval(m, -math.inf, math.inf, level, "t", int(v.size))
    half = stats.t.ppf((1 + level) / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return Interval(m, m - half, m + half, level, "t", int(v.size))


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Interval:
    """Welch's t interval of mean(a) - mean(b) (e.g. two models' accuracies over seeds); with
    fewer than two values on either side: (-inf, inf)."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = float(a.mean() - b.mean())
    n = int(min(a.size, b.size))
    if a.size < 2 or b.size < 2:
        return Interval(d, -math.inf, math.inf, level, "welch", n)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(d, d, d, level, "welch", n)
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    half = stats.t.ppf((1 + level) / 2, df) * se
    return Interval(d, d - half, d + half, level, "welch", n)


def proportion_difference(p1: float, n1: int, p2: float, n2: int,
                          level: float = 0.95) -> Interval:
    """Wald interval of p1 - p2 for two accuracies measured on n1 and n2 independent images:
    the test set's sampling error only (what one training seed can show; the spread between
    seeds needs several, see ``welch_interval``)."""
    from scipy import stats

    d = p1 - p2
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    half = stats.norm.ppf((1 + level) / 2) * se
    return Interval(d, d - half, d + half, level, "wald", int(min(n1, n2)))


def verdict(interval: Interval, paper_side: str, boundary: float = 0.0) -> str:
    """``"holds"`` when the whole interval lies on ``paper_side`` (``"above"`` or ``"below"``)
    of ``boundary``, ``"contradicted"`` when it lies wholly on the other side, else
    ``"unresolved"`` (it covers the boundary, or is undefined)."""
    if paper_side not in ("above", "below"):
        raise ValueError(f"paper_side must be 'above' or 'below'; got {paper_side!r}")
    lo, hi = interval.low, interval.high
    if not (math.isfinite(lo) and math.isfinite(hi)) or math.isnan(interval.estimate):
        return "unresolved"
    above, below = lo > boundary, hi < boundary
    if paper_side == "above":
        return "holds" if above else "contradicted" if below else "unresolved"
    return "holds" if below else "contradicted" if above else "unresolved"


def all_of(verdicts: Sequence[str]) -> str:
    """The verdict of a claim made of several parts that must all hold: it holds when every
    part holds, is contradicted when any part is, and is unresolved otherwise."""
    bad = [v for v in verdicts if v not in VERDICTS]
    if bad or not verdicts:
        raise ValueError(f"verdicts must be some of {VERDICTS}; got {list(verdicts)}")
    if all(v == "holds" for v in verdicts):
        return "holds"
    return "contradicted" if "contradicted" in verdicts else "unresolved"


def consistent(verdicts: Sequence[str]) -> str:
    """The verdict of one claim measured under several settings (noise levels): it holds
    (or is contradicted) only when every setting says so, and is unresolved otherwise."""
    if not verdicts or any(v not in VERDICTS for v in verdicts):
        raise ValueError(f"verdicts must be some of {VERDICTS}; got {list(verdicts)}")
    return verdicts[0] if len(set(verdicts)) == 1 else "unresolved"


def bootstrap_se(statistic: Callable[..., float], *samples, paired: bool = False,
                 num_resamples: int = 1000, seed: int = 0) -> float:
    """The bootstrap standard error of ``statistic(*samples)``: the standard deviation of
    its value over resamples of the units (axis 0 of each array; the same indices for every
    sample with ``paired``). Non-finite resamples are dropped; nan when none is left."""
    samples = [np.asarray(s, dtype=float) for s in samples]
    if any(len(s) == 0 for s in samples):
        raise ValueError("a bootstrap sample needs at least one unit")
    if paired and len({len(s) for s in samples}) != 1:
        raise ValueError("paired resampling needs arrays with the same number of units")
    values = _replicates(statistic, samples, paired, num_resamples, seed)
    finite = values[np.isfinite(values)]
    return float(finite.std(ddof=1)) if finite.size > 1 else math.nan


# --------------------------------------------------------------- decisions over seeds
# A finding's replication unit is an independently trained model (a seed): its statistic is
# measured once per seed (T_s), and the decision is made over {T_s}.
SEED_VERDICTS = ("holds", "contradicted", "unresolved", "not converged")


# no verdict (holds or contradicted) from fewer seeds than this: two seeds' spread is no
# estimate of the spread between trainings
MIN_SEEDS = 3


def seed_scale(values: Sequence[float], within_se: Sequence[float] | None = None) -> float:
    """The spread a mean over seeds is judged by: max(between-seed SD, root mean square of
    the seeds' own standard errors). The floor keeps the interval from being narrower than
    each seed's own measurement allows: seeds whose values tie (a share that moves in steps of
    1/150, say) still leave that error."""
    v = np.asarray(values, dtype=float)
    sd = float(v.std(ddof=1)) if v.size > 1 else math.nan
    se = np.asarray([] if within_se is None else within_se, dtype=float)
    se = se[np.isfinite(se)]
    rms = float(np.sqrt(np.mean(se ** 2))) if se.size else 0.0
    return max(sd, rms) if math.isfinite(sd) else sd


def seed_interval(values: Sequence[float], within_se: Sequence[float] | None = None,
                  level: float = 0.95) -> Interval:
    """The interval of a mean over G seeds: mean ± t_{(1+level)/2, G−1} · ``seed_scale`` / √G
    (Student's t interval when the between-seed SD dominates); one seed: (-inf, inf)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if v.size < 2:
        return Interval(m, -math.inf, math.inf, level, "t", int(v.size))
    half = stats.t.ppf((1 + level) / 2, v.size - 1) * seed_scale(v, within_se) / \
        math.sqrt(v.size)
    return Interval(m, m - half, m + half, level, "t", int(v.size))


def p_contradicting(values: Sequence[float], paper_side: str, boundary: float = 0.0,
                    within_se: Sequence[float] | None = None) -> float:
    """One-sided p-value of a t test (G-1 degrees of freedom) against the null "the mean lies
    on the paper's side of ``boundary`` (or on it)": small when the seeds say the other side.
    Its scale is ``seed_scale`` (Student's t test, ``scipy.stats.ttest_1samp``, when the
    between-seed SD dominates). With no spread at all: 0 when every value is on the other
    side, else 1; with one seed: 1 (nothing to test)."""
    from scipy import stats

    _side(paper_side)
    v = np.asarray(values, dtype=float)
    if v.size < 2 or not np.all(np.isfinite(v)):
        return 1.0
    scale = seed_scale(v, within_se)
    if scale == 0:
        wrong = v[0] < boundary if paper_side == "above" else v[0] > boundary
        return 0.0 if wrong else 1.0
    tstat = (v.mean() - boundary) / (scale / math.sqrt(v.size))
    cdf = stats.t.cdf(tstat, v.size - 1)
    return float(cdf if paper_side == "above" else 1 - cdf)


def holm(pvalues: Sequence[float], alpha: float = 0.05) -> list[bool]:
    """Holm's step-down procedure (Holm 1979): which of the hypotheses to reject at family-wise
    level ``alpha``. Sorted ascending, the j-th smallest p (j from 0) is rejected while
    p ≤ alpha / (m - j); the first that is not stops it."""
    p = np.asarray(pvalues, dtype=float)
    reject = [False] * p.size
    for j, i in enumerate(np.argsort(p, kind="stable")):
        if not p[i] <= alpha / (p.size - j):
            break
        reject[i] = True
    return reject


def _side(paper_side: str) -> None:
    if paper_side not in ("above", "below"):
        raise ValueError(f"paper_side must be 'above' or 'below'; got {paper_side!r}")


def seed_verdict(values: Sequence[float], paper_side: str, boundary: float = 0.0,
                 converged: bool = True, level: float = 0.95,
                 within_se: Sequence[float] | None = None) -> str:
    """The verdict over seeds: ``"holds"`` (``"contradicted"``) only when at least
    ``MIN_SEEDS`` seeds were measured **and** ``seed_interval`` lies wholly on the paper's
    (the other) side of ``boundary`` **and** every seed's value lies on that side **and**
    every model behind them ``converged``; ``"not converged"`` when one did not; else
    ``"unresolved"``."""
    _side(paper_side)
    if not converged:
        return "not converged"
    return measured_verdict(values, paper_side, boundary, level, within_se)


def measured_verdict(values: Sequence[float], paper_side: str, boundary: float = 0.0,
                     level: float = 0.95, within_se: Sequence[float] | None = None) -> str:
    """``seed_verdict`` as if every model had converged: what a "not converged" finding would
    read."""
    v = np.asarray(values, dtype=float)
    if v.size < MIN_SEEDS:
        return "unresolved"
    side = verdict(seed_interval(v, within_se, level), paper_side, boundary)
    if side == "unresolved":
        return side
    above = bool(np.all(v > boundary))
    below = bool(np.all(v < boundary))
    on_paper_side = above if paper_side == "above" else below
    on_other_side = below if paper_side == "above" else above
    if side == "holds" and on_paper_side or side == "contradicted" and on_other_side:
        return side
    return "unresolved"


__all__ = ["Interval", "MIN_SEEDS", "SEED_VERDICTS", "VERDICTS", "all_of", "bootstrap",
           "bootstrap_se", "consistent", "holm", "measured_verdict", "p_contradicting",
           "proportion_difference", "seed_interval", "seed_scale", "seed_verdict",
           "t_interval", "verdict", "welch_interval"]
