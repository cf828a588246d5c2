"""The findings table F1-F10 (Park & Kim 2022), decided over independently trained seeds.

Every finding is a claim about architectures, so its replication unit is a training seed:
per seed s the finding's statistic T_s is measured on that seed's models (which share the
seed: paired comparisons), and the decision is made over {T_s} (``RULE``). Within a seed,
the bootstrap standard error over the seed's own units (mini-batches, images) is reported
beside the spread between seeds, but it does not enter the interval. Definitions follow the
paper's code (xxxnell/how-do-vits-work at 9571ff1); each function cites the file it matches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vitprobe import data as vdata
from vitprobe import fourier, stats, summary
from vitprobe.spectra import ape, nep

from . import presets
from .alternet import AlterNetResult
from .cache import run_metrics
from .fourier import FourierResult
from .hessian import HessianResult
from .pipeline import PIPELINE
from .robustness import RobustnessResult
from .runspec import RunSpec
from .subsets import SubsetsResult
from .variance import VarianceResult

CLAIMS = {
    "F1": "ViT's Hessian spectrum has more negative eigenvalues than ResNet's",
    "F2": "ViT's positive eigenvalues are smaller than ResNet's (flatter loss)",
    "F3": "less training data gives ViT more negative eigenvalues",
    "F4": "GAP suppresses negative eigenvalues compared with a class token",
    "F5": "ViT does not overfit small data: its training NLL on small data is not lower than "
          "on large, where ResNet's is (overfitting)",
    "F6": "MSAs reduce high-frequency amplitude (low-pass); convs/MLPs amplify it",
    "F7": "ViT is robust to high-frequency noise and hurt by low-frequency noise; ResNet the "
          "opposite",
    "F8": "MSAs reduce feature-map variance; convs/MLPs increase it; ResNet's variance rises "
          "through a stage and drops at its subsampling block",
    "F9": "AlterNet beats the pre-activation ResNet it is built on and ViT on small data",
    "F10": "AlterNet suppresses large Hessian eigenvalues compared with the pre-activation "
           "ResNet",
}

LEVEL = 0.95
# Holm's family-wise level for "a part is contradicted": one-sided, the tail a two-sided 95 %
# interval leaves on each side, so a one-part finding is contradicted exactly when its
# interval lies wholly on the other side.
HOLM_ALPHA = (1 - LEVEL) / 2
# the smallest feature map (side, tokens or pixels) on which F6 is read (the paper's Fourier
# notebook: CIFAR's 32 px is too small for ImageNet-style analyses; 14x14 is ViT-S/16's grid)
MIN_FOURIER_MAP = 14
# a model converged when, over its last two epochs, its training NLL moved by less than 5 %
# of itself OR by less than 0.005 nats (the absolute floor: a near-zero NLL, such as a 6 %
# subset's 0.0336 -> 0.0360, moves by a large share of itself in noise alone), and its test
# accuracy by less than 0.3 points
CONVERGENCE = {"train_nll_rel": 0.05, "train_nll_abs": 0.005, "test_acc_points": 0.3}

RULE = (
    "How a verdict is decided. The replication unit is a training seed: each finding's "
    "statistic is measured once per seed (its per-seed values are listed), and its 95 % "
    "interval is mean ± t(G−1) · max(between-seed SD, RMS of the seeds' own standard "
    "errors) / √G, never narrower than each seed's own measurement allows. **holds** "
    "(**contradicted**): at least 3 seeds, the interval lies wholly on the paper's side (the "
    "other side) of the boundary, every seed's value lies on that side, and every model "
    "behind it passed the convergence check (training NLL changed < 5 % or < 0.005 nats, and "
    "test accuracy < 0.3 points, over its last two epochs); **not converged**: a model "
    "failed that check (the verdict it would have had is shown beside it); **unresolved**: "
    "otherwise. A finding of several parts holds when every part holds, and is contradicted "
    "when a part is contradicted by a one-sided t test at Holm's family-wise level 2.5 % "
    "across the parts (with every seed on the other side); rows marked *(shown)* are extra "
    "comparisons that do not vote. Beside each interval: the within-seed standard error "
    "(bootstrap over the seed's mini-batches or images, root mean square over seeds) and the "
    "between-seed SD. F6 is read per part on the block changes whose feature maps are at "
    "least 14×14 on both sides (the paper's Fourier notebook); a part with none says **needs "
    "larger maps**. F7 leaves out a noise level where either model's accuracy under "
    "high-frequency noise falls to within a quarter of the way from chance (1 / the data's "
    "number of classes) to its clean accuracy in any seed (`vitprobe.fourier.saturated`). "
    "Spectra are decided on the final weights; those of the early checkpoint (10 % of "
    "training) are reported beside them.")

NOT_MEASURED = "not measured"
NEEDS_LARGER_MAPS = "needs larger maps"
ALL_VERDICTS = (*stats.SEED_VERDICTS, NEEDS_LARGER_MAPS, NOT_MEASURED)


# ---------------------------------------------------------------------------- context
@dataclass(frozen=True)
class Context:
    """Where a reproduction's records are and how its models were trained: ``records`` is
    the preset's records folder, holding ``seed-<s>/<study>/`` (a study's raw results) and
    ``seed-<s>/<run name>/`` (a model's training record) for every seed measured."""

    records: Path
    seeds: tuple[int, ...]
    preset: str
    data: str = "fashion-mnist"
    data_dir: str | None = None
    precision: str | None = None

    @property
    def roster(self) -> dict[str, str]:
        return presets.roster(self.preset)

    @property
    def num_classes(self) -> int:
        """The data set's number of classes: chance accuracy is its inverse (F7)."""
        return vdata.dataset_info(self.data, self.data_dir).num_classes

    def _step(self, study: str, seed: int) -> Path:
        return Path(self.records) / f"seed-{seed}" / study

    def folder(self, study: str, seed: int) -> Path:
        """A finished per-seed study's record (FileNotFoundError if it is not there)."""
        folder = self._step(study, seed)
        if not (folder / "done.json").is_file():
            raise FileNotFoundError(2, "study not recorded", str(folder))
        return folder

    def finished(self, study: str) -> list[int]:
        """The seeds whose ``study`` is recorded; FileNotFoundError when none is."""
        done = [k for k in self.seeds if (self._step(study, k) / "done.json").is_file()]
        if not done:
            raise FileNotFoundError(2, "study not recorded",
                                    f"{self.records}/seed-*/{study}")
        return done

    def spec(self, model: str, seed: int, pool: str | None = None,
             fraction: float = 1.0) -> RunSpec:
        return RunSpec(model=model, data=self.data, preset=self.preset, seed=seed, pool=pool,
                       data_fraction=fraction, data_dir=self.data_dir,
                       equal_steps=fraction < 1, precision=self.precision)

    def convergence(self, model: str, seed: int, pool: str | None = None,
                    fraction: float = 1.0) -> str | None:
        """None when the recorded training passed the convergence check, else why not."""
        spec = self.spec(model, seed, pool, fraction)
        problem = convergence_problem(run_metrics(self.records / f"seed-{seed}" / spec.run_name))
        return None if problem is None else f"{spec.label} seed {seed}: {problem}"


def convergence_problem(metrics: list[dict]) -> str | None:
    """The convergence check of one training run's per-epoch records: its training NLL (the
    epoch's mean on augmented data) changed by less than 5 % or by less than 0.005 nats, and
    its test accuracy by less than 0.3 points, between its last two records of each. None
    when it passed, else what failed, with the numbers."""
    nll = [m["train_loss"] for m in metrics if m.get("train_loss") is not None]
    acc = [m["test_acc"] for m in metrics if m.get("test_acc") is not None]
    if len(nll) < 2 or len(acc) < 2:
        return (f"fewer than two epochs recorded ({len(nll)} training NLLs, {len(acc)} test "
                f"accuracies)")
    problems = []
    moved = abs(nll[-1] - nll[-2])
    rel = moved / abs(nll[-2]) if nll[-2] else math.inf
    if not (rel < CONVERGENCE["train_nll_rel"] or moved < CONVERGENCE["train_nll_abs"]):
        problems.append(f"training NLL moved {100 * rel:.1f} % ({nll[-2]:.4f} → {nll[-1]:.4f})")
    points = 100 * abs(acc[-1] - acc[-2])
    if not points < CONVERGENCE["test_acc_points"]:
        problems.append(f"test accuracy moved {points:.2f} points ({100 * acc[-2]:.2f} → "
                        f"{100 * acc[-1]:.2f} %)")
    return "; ".join(problems) or None


# ------------------------------------------------------------------------------- parts
@dataclass(frozen=True)
class Part:
    """One tested statement of a finding, measured once per seed."""

    statistic: str                # e.g. "NEP vit-mini − resnet-18-mini"
    paper_side: str               # "above" or "below" the boundary
    seeds: tuple[int, ...]
    per_seed: tuple[float, ...]   # T_s, in the order of ``seeds``
    within_se: tuple[float, ...]  # each seed's own standard error of T_s
    problems: tuple[str, ...] = ()  # convergence problems of the models behind it
    boundary: float = 0.0
    fmt: str = "+.3g"
    votes: bool = True            # False: an extra comparison, shown but not voting
    unmeasurable: str = ""        # why the part cannot be read at this scale (F6's map size)

    @property
    def converged(self) -> bool:
        return not self.problems

    @property
    def interval(self) -> stats.Interval:
        return stats.seed_interval(self.per_seed, self.within_se, LEVEL)

    @property
    def within_seed_se(self) -> float:
        se = np.asarray(self.within_se, dtype=float)
        return float(np.sqrt(np.mean(se ** 2))) if se.size else math.nan

    @property
    def between_seed_sd(self) -> float:
        return float(np.std(self.per_seed, ddof=1)) if len(self.per_seed) > 1 else math.nan

    @property
    def verdict(self) -> str:
        if self.unmeasurable:
            return NEEDS_LARGER_MAPS
        return stats.seed_verdict(self.per_seed, self.paper_side, self.boundary,
                                  self.converged, LEVEL, self.within_se)

    @property
    def verdict_if_converged(self) -> str:
        """The verdict this part would have if every model behind it had converged."""
        if self.unmeasurable:
            return NEEDS_LARGER_MAPS
        return stats.measured_verdict(self.per_seed, self.paper_side, self.boundary, LEVEL,
                                      self.within_se)

    @property
    def p_contradicting(self) -> float:
        return stats.p_contradicting(self.per_seed, self.paper_side, self.boundary,
                                     self.within_se)

    def sign_disagreement(self) -> str | None:
        """"seeds disagree in sign: ..." when the seeds fall on both sides of the boundary."""
        v = np.asarray(self.per_seed) - self.boundary
        if np.any(v > 0) and np.any(v < 0):
            return "seeds disagree in sign: " + ", ".join(
                f"{x:{self.fmt}} (s{k})" for k, x in zip(self.seeds, self.per_seed))
        return None

    def text(self) -> str:
        sign = ">" if self.paper_side == "above" else "<"
        if self.unmeasurable:
            return (f"{self.statistic}: not read (paper: {sign} {self.boundary:g}); "
                    f"{self.unmeasurable}")
        iv = self.interval
        return (f"{self.statistic} = {iv.format(self.fmt)} (paper: {sign} {self.boundary:g}; "
                f"n={len(self.seeds)} seeds; per seed "
                + ", ".join(f"{x:{self.fmt}}" for x in self.per_seed)
                + f"; within-seed SE {self.within_seed_se:.2g}, between-seed SD "
                  f"{self.between_seed_sd:.2g})")

    def to_dict(self) -> dict:
        iv = self.interval
        return {"statistic": self.statistic, "boundary": self.boundary,
                "paper_side": self.paper_side, "seeds": list(self.seeds),
                "per_seed": [_finite(x) for x in self.per_seed],
                "interval": [_finite(iv.low), _finite(iv.high)],
                "estimate": _finite(iv.estimate),
                "within_seed_se": _finite(self.within_seed_se),
                "between_seed_sd": _finite(self.between_seed_sd),
                "converged": self.converged, "verdict": self.verdict,
                "verdict_if_converged": self.verdict_if_converged, "votes": self.votes,
                "unmeasurable": self.unmeasurable,
                "convergence_problems": list(self.problems)}


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def measure(statistic: str, paper_side: str, seeds: list[int],
            per_seed: Callable[[int], tuple[float, float]],
            problems: Callable[[int], list[str | None]], fmt: str = "+.3g",
            votes: bool = True) -> Part:
    """A part from ``per_seed(s) -> (T_s, its within-seed SE)`` and the convergence problems
    of the models behind it, ``problems(s)``, over ``seeds``."""
    values = [per_seed(k) for k in seeds]
    found = tuple(p for k in seeds for p in problems(k) if p)
    return Part(statistic, paper_side, tuple(seeds), tuple(float(v) for v, _ in values),
                tuple(float(se) for _, se in values), found, fmt=fmt, votes=votes)


# ---------------------------------------------------------------------------- findings
@dataclass(frozen=True)
class Finding:
    id: str
    claim: str
    parts: tuple[Part, ...]
    verdict: str
    note: str = ""            # computed from the data, or empty
    extra: dict = field(default_factory=dict)

    @property
    def converged(self) -> bool:
        return all(p.converged for p in self.parts)

    def to_dict(self) -> dict:
        """``findings.json``'s record: a one-part finding carries its part's fields at the
        top level; a multi-part one lists them under ``parts`` (its own ``per_seed`` and
        ``interval`` are null: the verdict combines the parts)."""
        d = {"id": self.id, "claim": self.claim, "verdict": self.verdict,
             "converged": self.converged, "note": self.note}
        voting = [p for p in self.parts if p.votes]
        if len(self.parts) == 1:
            d.update({k: v for k, v in self.parts[0].to_dict().items()
                      if k not in ("verdict", "converged")})
            d["part_verdict"] = self.parts[0].verdict
        else:
            seeds = sorted({k for p in self.parts for k in p.seeds})
            d.update({"statistic": f"all of {len(voting)} voting parts (see parts)",
                      "boundary": None, "seeds": seeds, "per_seed": None, "interval": None,
                      "within_seed_se": None, "between_seed_sd": None})
        d["parts"] = [p.to_dict() for p in self.parts]
        return {**d, **self.extra}


def decide(parts: list[Part], converged_only: bool = True) -> str:
    """The finding's verdict from its voting parts (``RULE``): not converged when a model
    behind one failed the check (``converged_only=False``: the verdict it would have had);
    contradicted when a measurable part is contradicted after Holm's correction across the
    measurable parts, with at least ``stats.MIN_SEEDS`` seeds all on the other side; needs
    larger maps when a part cannot be read at this scale; holds when every part holds; else
    unresolved."""
    voting = [p for p in parts if p.votes]
    if not voting:
        return "unresolved"
    if converged_only and not all(p.converged for p in voting):
        return "not converged"
    readable = [p for p in voting if not p.unmeasurable]
    rejected = stats.holm([p.p_contradicting for p in readable], HOLM_ALPHA)
    for p, r in zip(readable, rejected):
        v = np.asarray(p.per_seed) - p.boundary
        other = np.all(v < 0) if p.paper_side == "above" else np.all(v > 0)
        if r and other and len(p.per_seed) >= stats.MIN_SEEDS:
            return "contradicted"
    if len(readable) < len(voting):
        return NEEDS_LARGER_MAPS
    if all(p.verdict_if_converged == "holds" for p in voting):
        return "holds"
    return "unresolved"


def finding(fid: str, parts: list[Part], note: str = "", verdict: str | None = None,
            **extra) -> Finding:
    """A finding from its parts; its note adds what the data shows about an undecided or
    contradicted verdict (seeds that disagree in sign, models that did not converge)."""
    v = verdict or decide(parts)
    notes = [note] if note else []
    if v == "not converged":
        extra = {**extra, "verdict_if_converged": decide(parts, converged_only=False)}
        notes.append(f"verdict if every model had converged: "
                     f"{extra['verdict_if_converged']}")
    if v != "holds":
        for p in parts:
            if p.votes and (d := p.sign_disagreement()):
                notes.append(f"{p.statistic}: {d}")
        problems = sorted({q for p in parts for q in p.problems})
        if problems:
            notes.append("not converged: " + "; ".join(problems))
    return Finding(fid, CLAIMS[fid], tuple(parts), v, "; ".join(notes), extra)


def _pooled(e: np.ndarray) -> np.ndarray:
    return e[np.isfinite(e)]


def _nep(e: np.ndarray) -> float:
    return nep(_pooled(e))


def _log_ape(e: np.ndarray) -> float:
    a = ape(_pooled(e))
    return math.log(a) if a > 0 else math.nan


def _difference(f: Callable[[np.ndarray], float], a: np.ndarray, b: np.ndarray,
                seed: int) -> tuple[float, float]:
    """f(a) − f(b) over two models' spectra (rows: mini-batches), with its bootstrap SE over
    the mini-batches."""
    def stat(x, y):
        return f(x) - f(y)

    return stat(a, b), stats.bootstrap_se(stat, a, b, seed=seed)


def spectra_findings(c: Context) -> list[Finding]:
    """F1, F2, F4, F10 from each seed's hessian step: NEP (share of eigenvalues below 0) and
    APE (mean positive eigenvalue) of the top-5 eigenvalues on 30 mini-batches of 16
    augmented training images, loss NLL + l2 (the paper's ``ops/loss_landscapes`` protocol
    with PyHessian). F2 and F10 are decided on log APE per seed (APE is a mean of
    heavy-tailed eigenvalues); F10 compares AlterNet with the pre-activation ResNet it is
    built on (the paper's ``models/alternet.py`` ``dnn_18`` uses ``preresnet_dnn_block``),
    the post-activation ResNet shown beside it."""
    ro = c.roster
    vit, gap, res, pre, alt = (ro["vit"], f"{ro['vit']} (gap)", ro["resnet"], ro["preresnet"],
                               ro["alternet"])
    seeds = c.finished("hessian")
    loaded = {k: HessianResult.load(c.folder("hessian", k)) for k in seeds}
    spectra = {k: r.eigenvalues for k, r in loaded.items()}
    early = {k: r.early_eigenvalues() for k, r in loaded.items()}

    def at_early(f, *models) -> str:
        """The early checkpoint's values per seed, reported beside the decision."""
        if not all(m in early[k] for k in seeds for m in models):
            return ""
        return "; early checkpoint (10 % of training): " + "; ".join(
            f"{m} " + ", ".join(f"{f(early[k][m]):.3g}" for k in seeds) for m in models)

    def part(statistic, f, a, b, side, problems, votes=True):
        return measure(statistic, side, seeds, lambda k: _difference(f, spectra[k][a],
                                                                       spectra[k][b], k),
                       problems, votes=votes)

    def conv(*models):
        return lambda k: [c.convergence(m, k, pool) for m, pool in models]

    per_seed = {m: ", ".join(f"{_nep(spectra[k][m]):.3f}" for k in seeds) for m in
                (vit, gap, res, pre, alt)}
    apes = {m: ", ".join(f"{ape(_pooled(spectra[k][m])):.4g}" for k in seeds) for m in
            (vit, res, pre, alt)}
    seeds_text = f"seeds {', '.join(map(str, seeds))}"
    return [
        finding("F1", [part(f"NEP {vit} − {res}", _nep, vit, res, "above",
                            conv((ro["vit"], None), (res, None)))],
                f"NEP per seed ({seeds_text}): {vit} {per_seed[vit]}; {res} {per_seed[res]}"
                + at_early(_nep, vit, res)),
        finding("F2", [part(f"log APE {vit} − log APE {res}", _log_ape, vit, res, "below",
                            conv((ro["vit"], None), (res, None)))],
                f"APE per seed ({seeds_text}): {vit} {apes[vit]}; {res} {apes[res]}"
                + at_early(lambda e: ape(_pooled(e)), vit, res)),
        finding("F4", [part(f"NEP {gap} − {vit} (cls)", _nep, gap, vit, "below",
                            conv((ro["vit"], "gap"), (ro["vit"], None)))],
                f"NEP per seed ({seeds_text}): gap {per_seed[gap]}; cls {per_seed[vit]}"
                + at_early(_nep, gap, vit)),
        finding("F10", [part(f"log APE {alt} − log APE {pre}", _log_ape, alt, pre, "below",
                             conv((alt, None), (pre, None))),
                        part(f"log APE {alt} − log APE {res} (shown)", _log_ape, alt, res,
                             "below", conv((alt, None), (res, None)), votes=False)],
                f"APE per seed ({seeds_text}): {alt} {apes[alt]}; {pre} {apes[pre]}; {res} "
                f"{apes[res]}" + at_early(lambda e: ape(_pooled(e)), alt, pre)),
    ]


def subset_findings(c: Context) -> list[Finding]:
    """F3 (ViT's NEP on the smallest fraction minus on the full set, > 0; the paper's Fig. 4
    on a 6 % subset) and F5 in two halves (Fig. 3): ViT's training NLL on the smallest
    fraction is not lower than on the full set (ΔNLL_ViT > 0), and the gap to ResNet
    (ΔNLL_ViT − ΔNLL_ResNet > 0). Every fraction is trained for the full set's number of
    optimiser steps; the NLL is per augmented training image, as the paper reports it."""
    ro = c.roster
    vit, res = ro["vit"], ro["resnet"]
    seeds = c.finished("subsets")
    runs = {k: SubsetsResult.load(c.folder("subsets", k)).runs() for k in seeds}
    small_f, full_f = runs[seeds[0]][vit][0].fraction, runs[seeds[0]][vit][-1].fraction

    def conv(*models):
        return lambda k: [c.convergence(m, k, None, f) for m in models for f in (small_f, full_f)]

    def f3(k):
        small, full = runs[k][vit][0].eigenvalues, runs[k][vit][-1].eigenvalues
        return _difference(_nep, small, full, k)

    def delta(k, model):
        rs = runs[k][model]
        return rs[0].train_nll_per_image, rs[-1].train_nll_per_image

    def mean_gap(a, b):
        return a.mean() - b.mean()

    def f5a(k):
        a, b = delta(k, vit)
        return mean_gap(a, b), stats.bootstrap_se(mean_gap, a, b, seed=k)

    def f5b(k):
        def stat(a, b, x, y):
            return (a.mean() - b.mean()) - (x.mean() - y.mean())

        arrays = (*delta(k, vit), *delta(k, res))
        return stat(*arrays), stats.bootstrap_se(stat, *arrays, seed=k)

    frac = f"{small_f:g} vs {full_f:g} of the training set"
    p3 = measure(f"NEP {vit} at {frac}", "above", seeds, f3, conv(vit))
    # decided on the final weights; the early checkpoint's values are reported beside them
    note3 = f"NEP {vit} {small_f:g}→{full_f:g} per seed ({', '.join(map(str, seeds))}): " + \
        ", ".join(f"{_nep(runs[k][vit][0].eigenvalues):.3g}→"
                  f"{_nep(runs[k][vit][-1].eigenvalues):.3g}" for k in seeds)
    if all(r.early_eigenvalues is not None for k in seeds for r in runs[k][vit]):
        note3 += "; early checkpoint (10 % of training): " + ", ".join(
            f"{_nep(runs[k][vit][0].early_eigenvalues):.3g}→"
            f"{_nep(runs[k][vit][-1].early_eigenvalues):.3g}" for k in seeds)
    p5a = measure(f"ΔNLL {vit} (training NLL at {small_f:g} − at {full_f:g})", "above",
                  seeds, f5a, conv(vit))
    p5b = measure(f"ΔNLL {vit} − ΔNLL {res}", "above", seeds, f5b, conv(vit, res))
    note5 = "; ".join(
        f"{m}: training NLL {small_f:g}→{full_f:g} per seed " + ", ".join(
            f"{runs[k][m][0].train_nll_per_image.mean():.3f}→"
            f"{runs[k][m][-1].train_nll_per_image.mean():.3f}" for k in seeds)
        + ", test error " + ", ".join(
            f"{100 * (1 - runs[k][m][0].test_acc):.1f}→{100 * (1 - runs[k][m][-1].test_acc):.1f} %"
            for k in seeds) for m in (vit, res))
    return [finding("F3", [p3], note3), finding("F5", [p5a, p5b], note5)]


def _from_interval(iv: stats.Interval) -> tuple[float, float]:
    """(estimate, SE) of a 95 % bootstrap interval of a mean of per-image terms (SE read as
    the half-width / 1.96, the normal approximation such a mean follows)."""
    return iv.estimate, (iv.high - iv.low) / (2 * 1.959964)


def fourier_finding(c: Context) -> Finding:
    """F6 from each seed's fourier step (``fourier_analysis.ipynb``: ΔlogAmplitude of the
    residual stream at the highest frequency, its change across each kind of block): MSA
    taps of the ViT (< 0), its MLP taps (> 0), the ResNet's ordinary conv blocks (> 0;
    subsampling blocks shown apart). Each part reads only the block changes whose maps are
    at least ``MIN_FOURIER_MAP`` on a side before and after the block; a part with none
    "needs larger maps"."""
    ro = c.roster
    vit, res = ro["vit"], ro["resnet"]
    seeds = c.finished("fourier")
    loaded = {k: FourierResult.load(c.folder("fourier", k)) for k in seeds}
    four = {k: r.profiles() for k, r in loaded.items()}

    def eligible(model: str) -> list[bool]:
        sides = loaded[seeds[0]].tap_sides(model)
        return [min(a, b) >= MIN_FOURIER_MAP for a, b in zip(sides, sides[1:])]

    def part(statistic, model, group, side, votes=True):
        ok = eligible(model)

        def per_seed(k):
            p = four[k][model]
            return _from_interval(summary.change_interval(p.per_image, p.kinds, group, seed=k,
                                                          eligible=ok))

        kinds = four[seeds[0]][model].kinds
        if summary.group_changes(kinds, group, ok) == 0:
            largest = max(loaded[seeds[0]].tap_sides(model))
            return Part(statistic, side, tuple(seeds), tuple(math.nan for _ in seeds),
                        tuple(math.nan for _ in seeds), votes=votes,
                        unmeasurable=f"{model}'s {group} blocks act on maps under "
                                     f"{MIN_FOURIER_MAP}×{MIN_FOURIER_MAP} (largest "
                                     f"{largest}×{largest})")
        return measure(statistic, side, seeds, per_seed,
                       lambda k: [c.convergence(model, k)], votes=votes)

    parts = [part(f"{vit} MSA ΔlogAmp change", vit, "msa", "below"),
             part(f"{vit} MLP ΔlogAmp change", vit, "mlp", "above"),
             part(f"{res} conv-block ΔlogAmp change", res, "conv", "above"),
             part(f"{res} subsampling-block ΔlogAmp change (shown)", res, "subsample", "above",
                  votes=False)]
    unreadable = [p.unmeasurable for p in parts if p.unmeasurable and p.votes]
    note = ("; ".join(unreadable) + "; decided by `vitprobe reproduce --preset paper` "
            "(CIFAR-100 at 32 px, patch 2: 16×16 tokens)") if unreadable else ""
    return finding("F6", parts, note)


def variance_finding(c: Context) -> Finding:
    """F8 from each seed's variance step, as ``featuremap_variance.ipynb`` draws Fig. 9: the
    variance over positions of each tap's map (mean over images and channels), its log-ratio
    across each kind of block. MSA taps lower it (< 0: ViT and AlterNet), the ViT's MLPs
    raise it (> 0); the ResNet's variance rises through a stage — its ordinary conv blocks
    raise it (> 0) — and drops at the subsampling block that starts the next stage (< 0),
    the blue bands of the paper's Fig. 9."""
    ro = c.roster
    vit, res, alt = ro["vit"], ro["resnet"], ro["alternet"]
    seeds = c.finished("variance")
    var = {k: VarianceResult.load(c.folder("variance", k)).profiles() for k in seeds}

    def part(statistic, model, group, side):
        def per_seed(k):
            p = var[k][model]
            return _from_interval(summary.change_interval(p.per_image, p.kinds, group,
                                                          log_ratio=True, seed=k))

        return measure(statistic, side, seeds, per_seed, lambda k: [c.convergence(model, k)])

    return finding("F8", [
        part(f"{vit} MSA log variance ratio", vit, "msa", "below"),
        part(f"{vit} MLP log variance ratio", vit, "mlp", "above"),
        part(f"{alt} MSA log variance ratio", alt, "msa", "below"),
        part(f"{res} conv-block log variance ratio (rise through a stage)", res, "conv",
             "above"),
        part(f"{res} subsampling-block log variance ratio (drop at a stage start)", res,
             "subsample", "below")])


def robustness_finding(c: Context) -> Finding:
    """F7 from each seed's robustness step (the paper's ``ops/tests`` band-passed noise): at
    each noise level, how much more high- than low-frequency noise hurts the ResNet than the
    ViT (``fourier.robustness_contrast``, points, > 0). Each level is a part; a level where
    either model saturates in any seed is left out (``RULE``)."""
    ro = c.roster
    vit, res = ro["vit"], ro["resnet"]
    seeds = c.finished("robustness")
    rob = {k: RobustnessResult.load(c.folder("robustness", k)).by_eps() for k in seeds}
    levels = [r["eps"] for r in rob[seeds[0]][vit]]
    parts, skipped = [], []
    for i, eps in enumerate(levels):
        if any(fourier.saturated(rob[k][m][i], c.num_classes) for k in seeds
               for m in (vit, res)):
            skipped.append(f"{eps:g}")
            continue
        parts.append(measure(
            f"eps {eps:g}: high−low drop, {res} − {vit} (points)", "above", seeds,
            lambda k, i=i: _from_interval(fourier.robustness_contrast(rob[k][vit][i],
                                                                      rob[k][res][i], seed=k)),
            lambda k: [c.convergence(vit, k), c.convergence(res, k)], fmt="+.2f"))
    note = (f"noise levels left out (saturated in a seed): {', '.join(skipped)}" if skipped
            else "")
    if not parts:
        return Finding("F7", CLAIMS["F7"], (), "unresolved", note + " (every level)")
    return finding("F7", parts, note)


def alternet_finding(c: Context) -> Finding:
    """F9 from each seed's alternet step (the paper's Fig. 12a): test accuracy of AlterNet
    minus the pre-activation ResNet it is built on (``dnn_18``'s blocks) and minus ViT, in
    points (> 0); minus the post-activation ResNet shown beside them. Within a seed the SE is
    the test set's binomial error of the difference."""
    ro = c.roster
    alt = ro["alternet"]
    seeds = c.finished("alternet")
    accs = {k: AlterNetResult.load(c.folder("alternet", k)).accuracies() for k in seeds}
    n = num_test_images(c)

    def part(other, votes=True):
        def per_seed(k):
            p1, p2 = accs[k][alt], accs[k][other]
            return 100 * (p1 - p2), 100 * math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n)

        return measure(f"accuracy {alt} − {other} (points)" + ("" if votes else " (shown)"),
                       "above", seeds, per_seed,
                       lambda k: [c.convergence(alt, k), c.convergence(other, k)], fmt="+.2f",
                       votes=votes)

    note = "test accuracy per seed: " + "; ".join(
        f"{m} " + ", ".join(f"{100 * accs[k][m]:.2f}" for k in seeds) + " %"
        for m in accs[seeds[0]])
    return finding("F9", [part(ro["preresnet"]), part(ro["vit"]),
                          part(ro["resnet"], votes=False)], note)


def num_test_images(c: Context) -> int:
    """How many test images the preset evaluates its models on."""
    n = len(vdata.load(c.data, "test", c.data_dir))
    limit = presets.recipe(c.preset, c.roster["alternet"]).test_limit
    return min(n, limit) if limit else n


# what decides the findings of each stage of ``pipeline.PIPELINE`` that feeds some
BUILDERS: dict[str, Callable[[Context], Finding | list[Finding]]] = {
    "hessian": spectra_findings, "subsets": subset_findings, "fourier": fourier_finding,
    "variance": variance_finding, "robustness": robustness_finding,
    "alternet": alternet_finding,
}


def findings(c: Context) -> list[Finding]:
    """F1-F10 in order. A finding whose study has not finished for any seed is listed as
    "not measured", naming what is missing."""
    rows: dict[str, Finding] = {}
    groups = [(BUILDERS[st.name], st.findings) for st in PIPELINE if st.findings]
    for build, ids in groups:
        try:
            made = build(c)
        except (FileNotFoundError, KeyError) as e:
            missing = e.filename if isinstance(e, FileNotFoundError) else f"model {e}"
            for fid in ids:
                rows[fid] = Finding(fid, CLAIMS[fid], (), NOT_MEASURED,
                                    f"its study has not finished ({missing} missing)")
            continue
        for f in made if isinstance(made, list) else [made]:
            rows[f.id] = f
    return [rows[f"F{i}"] for i in range(1, 11)]


if __name__ == "__main__":
    raise SystemExit("studies.findings is a library module, not a command; see: vitprobe --help")
