"""The findings table F1-F10 (Park & Kim 2022), read off the typed summaries of
``studies.reproduce``'s steps (each study's ``read_summary``): per finding, the paper's
claim, our statistic with its 95 % interval, and a three-valued verdict (``vitprobe.stats``):

- holds: the interval lies on the paper's side of the boundary;
- contradicted: it lies on the other side;
- unresolved: it covers the boundary.

Intervals: bootstrap over mini-batches (spectra; seeds on top where a model was trained more
than once), over images (Fourier, variance, noise robustness, training NLL), Welch's t over
seeds (accuracies). Definitions follow the paper's code (xxxnell/how-do-vits-work), see each
function.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vitprobe import fourier, results, stats, summary
from vitprobe.spectra import ape, nep
from vitprobe.stats import Interval

from . import alternet as alternet_study
from . import fourier as fourier_study
from . import hessian as hessian_study
from . import robustness as robustness_study
from . import subsets as subsets_study
from . import variance as variance_study

CLAIMS = {
    "F1": "ViT's Hessian spectrum has more negative eigenvalues than ResNet's",
    "F2": "ViT's positive eigenvalues are smaller than ResNet's (flatter loss)",
    "F3": "less training data gives ViT more negative eigenvalues",
    "F4": "GAP suppresses negative eigenvalues compared with a class token",
    "F5": "ViT does not overfit small data: its training NLL rises with its test error as "
          "data shrinks, where ResNet's falls (overfitting)",
    "F6": "MSAs reduce high-frequency amplitude (low-pass); convs/MLPs amplify it",
    "F7": "ViT is robust to high-frequency noise and hurt by low-frequency noise; ResNet the "
          "opposite",
    "F8": "MSAs reduce feature-map variance; convs/MLPs increase it; ResNet's peaks at stage "
          "ends",
    "F9": "AlterNet beats ResNet and ViT on small data",
    "F10": "AlterNet suppresses large Hessian eigenvalues compared with ResNet",
}

# Why a finding may not hold at the quick scale (28-px Fashion-MNIST, one epoch for CNNs,
# two for ViTs), shown only where the verdict is not "holds".
CAVEATS = {
    "F1": "after one (ResNet) or two (ViT) epochs both models are far from a minimum, where "
          "the paper's spectra are taken after 300 epochs.",
    "F2": "two epochs leave the ViT early in training, where its curvature is still high.",
    "F3": "a few epochs on a small subset, even at equal steps, are far from the paper's "
          "converged small-data ViT.",
    "F4": "after two epochs the pooling variants differ little, and their spectra by less than "
          "the spread between mini-batches and seeds.",
    "F5": "one or two epochs' worth of steps are too few for a ResNet to overfit even 6 % of "
          "the data.",
    "F6": "28-px inputs give 7×7 ViT maps (highest frequency 6/7·π) and 4×4 maps in ResNet's "
          "last stage (0.5π), where one block's change is small.",
    "F7": "Fashion-MNIST's images have little high-frequency content, and models trained for "
          "one or two epochs rely on coarse shape.",
    "F8": "the variance of a model trained for one or two epochs is dominated by the growing "
          "residual stream.",
    "F9": "AlterNet's MSAs help in the paper after long training on CIFAR; after one epoch on "
          "Fashion-MNIST the convolutional baseline is already close to its best.",
    "F10": "the curvature of models trained for one or two epochs is far from the converged "
           "one.",
}


@dataclass(frozen=True)
class Part:
    """One tested statement of a finding: its statistic's interval and verdict."""

    what: str               # e.g. "NEP vit-ti − resnet-18"
    interval: Interval
    paper_side: str          # "above" or "below" the boundary
    boundary: float = 0.0
    fmt: str = "+.3g"

    @property
    def verdict(self) -> str:
        return stats.verdict(self.interval, self.paper_side, self.boundary)

    def text(self) -> str:
        sign = ">" if self.paper_side == "above" else "<"
        return (f"{self.what} = {self.interval.format(self.fmt)} (paper: {sign} "
                f"{self.boundary:g}; n={self.interval.n})")


@dataclass(frozen=True)
class Finding:
    id: str
    claim: str
    parts: tuple[Part, ...]
    verdict: str
    note: str = ""            # extra measured context (accuracies, skipped noise levels)
    caveat: str = ""          # only where the verdict is not "holds"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["parts"] = [{**asdict(p), "verdict": p.verdict, "text": p.text()} for p in self.parts]
        return d


def finding(fid: str, parts: list[Part], note: str = "", combine=stats.all_of) -> Finding:
    v = combine([p.verdict for p in parts])
    return Finding(fid, CLAIMS[fid], tuple(parts), v, note,
                   "" if v == "holds" else CAVEATS[fid])


# ------------------------------------------------------------------------------- inputs
def _finished(out: Path, step: str) -> Path:
    """The result folder of a finished step (its ``done.json`` written)."""
    folder = out / step
    if not (folder / "done.json").is_file():
        path = folder / f"{step.split('-s')[0]}.json"
        raise FileNotFoundError(2, "study not finished", str(path))
    return folder


def seed_steps(out: Path, step: str) -> list[str]:
    """The result folders of ``step`` and its seed repetitions that exist under ``out``."""
    names = [step] + sorted(p.name for p in out.glob(f"{step}-s*") if p.is_dir())
    return [n for n in names if (out / n / "done.json").is_file()] or [step]


def spectra_by_seed(out: Path) -> dict[str, list[np.ndarray]]:
    """Per model label, one (mini-batches, k) eigenvalue array per training seed."""
    found: dict[str, list[np.ndarray]] = {}
    for step in seed_steps(out, "hessian"):
        for label, e in hessian_study.read_summary(_finished(out, step)).eigenvalues.items():
            found.setdefault(label, []).append(e)
    return found


# ------------------------------------------------------------------- spectrum statistics
def _pooled(e: np.ndarray) -> np.ndarray:
    return e[np.isfinite(e)]


def nep_difference(a, b, seed: int = 0) -> Interval:
    """NEP(a) − NEP(b): two models' shares of negative eigenvalues (units: mini-batches,
    within seeds when a list of per-seed arrays is given)."""
    return stats.bootstrap(lambda x, y: nep(_pooled(x)) - nep(_pooled(y)), a, b, seed=seed)


def ape_log_ratio(a, b, seed: int = 0) -> Interval:
    """log(APE(a) / APE(b)): below 0 where a's positive eigenvalues are smaller."""
    def stat(x, y):
        pa, pb = ape(_pooled(x)), ape(_pooled(y))
        return math.log(pa / pb) if pa > 0 and pb > 0 else math.nan

    return stats.bootstrap(stat, a, b, seed=seed)


# ----------------------------------------------------------------------------- findings
def spectra_findings(out: Path) -> list[Finding]:
    """F1, F2, F4, F10 from the Hessian steps (every seed)."""
    sp = spectra_by_seed(out)
    vit, res, alt, gap = sp["vit-ti"], sp["resnet-18"], sp["alternet-18"], sp["vit-ti (gap)"]
    seeds = f"{len(vit)} seed(s), {sum(len(e) for e in vit)} mini-batches for vit-ti"
    return [
        finding("F1", [Part("NEP vit-ti − resnet-18", nep_difference(vit, res), "above")],
                f"NEP vit-ti {nep(np.concatenate(vit)):.3f}, resnet-18 "
                f"{nep(np.concatenate(res)):.3f}; {seeds}"),
        finding("F2", [Part("log(APE vit-ti / APE resnet-18)", ape_log_ratio(vit, res),
                            "below")],
                f"APE vit-ti {ape(np.concatenate(vit)):.4g}, resnet-18 "
                f"{ape(np.concatenate(res)):.4g}"),
        finding("F4", [Part("NEP vit-ti (gap) − vit-ti (cls)", nep_difference(gap, vit),
                            "below")],
                f"NEP gap {nep(np.concatenate(gap)):.3f}, cls {nep(np.concatenate(vit)):.3f}"),
        finding("F10", [Part("log(APE alternet-18 / APE resnet-18)", ape_log_ratio(alt, res),
                             "below")],
                f"APE alternet-18 {ape(np.concatenate(alt)):.4g}, resnet-18 "
                f"{ape(np.concatenate(res)):.4g}; largest magnitude "
                f"{np.abs(np.concatenate(alt)).max():.4g} vs "
                f"{np.abs(np.concatenate(res)).max():.4g}"),
    ]


def subset_findings(out: Path) -> list[Finding]:
    """F3 (vit-ti's NEP on the smallest fraction vs the full set) and F5 (the contrast of
    ViT's and ResNet's training NLL as data shrinks), every fraction at equal steps."""
    runs = subsets_study.read_summary(_finished(out, "subsets"))
    vit, res = runs["vit-ti"], runs["resnet-18"]
    small, full = vit[0], vit[-1]
    f3 = Part(f"NEP vit-ti at {small.fraction:g} − at {full.fraction:g} of the data",
              nep_difference(small.eigenvalues, full.eigenvalues), "above")
    # ΔNLL: training NLL on the smallest fraction minus on the full set, ViT's minus ResNet's
    f5 = Part("ΔNLL vit-ti − ΔNLL resnet-18 (ΔNLL: training NLL on the smallest fraction − "
              "on the full set)",
              stats.bootstrap(lambda a, b, c, d: (a.mean() - b.mean()) - (c.mean() - d.mean()),
                              vit[0].train_nll_per_image, vit[-1].train_nll_per_image,
                              res[0].train_nll_per_image, res[-1].train_nll_per_image), "above")
    note = "; ".join(
        f"{label}: NLL {rs[0].train_nll:.3f}→{rs[-1].train_nll:.3f}, test error "
        f"{100 * (1 - rs[0].test_acc):.1f}→{100 * (1 - rs[-1].test_acc):.1f} % "
        f"(fraction {rs[0].fraction:g}→{rs[-1].fraction:g}, "
        f"{rs[0].steps} vs {rs[-1].steps} steps)"
        for label, rs in (("vit-ti", vit), ("resnet-18", res)))
    return [finding("F3", [f3], "NEP by fraction: " + ", ".join(
                f"{r.fraction:g}: {nep(r.eigenvalues):.3f}" for r in vit
                if r.eigenvalues is not None)),
            finding("F5", [f5], note)]


def fourier_finding(out: Path) -> Finding:
    """F6: mean change of the highest-frequency ΔlogAmplitude across MSA taps (< 0), MLP taps
    of the ViT (> 0) and ordinary conv blocks of the ResNet (> 0; stride-2 blocks apart)."""
    four = fourier_study.read_summary(_finished(out, "fourier"))
    vk, vm = four["vit-ti"].kinds, four["vit-ti"].per_image
    rk, rm = four["resnet-18"].kinds, four["resnet-18"].per_image
    parts = [Part("vit-ti MSA ΔlogAmp change", summary.change_interval(vm, vk, "msa"), "below"),
             Part("vit-ti MLP ΔlogAmp change", summary.change_interval(vm, vk, "mlp"), "above"),
             Part("resnet-18 conv-block ΔlogAmp change", summary.change_interval(rm, rk, "conv"),
                  "above")]
    sub = summary.change_interval(rm, rk, "subsample")
    freqs = sorted({round(f / math.pi, 2) for f in four["resnet-18"].highest_frequency})
    vf = sorted({round(f / math.pi, 2) for f in four["vit-ti"].highest_frequency})
    note = (f"resnet-18 subsampling blocks (reported apart) {sub.format('+.3g')}; highest "
            f"frequency read: vit-ti {', '.join(f'{f:g}π' for f in vf)}; resnet-18 "
            f"{', '.join(f'{f:g}π' for f in freqs)} (maps under 7×7 stop lower)")
    return finding("F6", parts, note)


def variance_finding(out: Path) -> Finding:
    """F8: mean log-ratio of feature-map variance across MSA taps (< 0: vit-ti and
    alternet-18), MLP taps (> 0), and per ResNet stage log(var at its last block / the
    stage's largest other) (> 0: the peak at the stage end)."""
    var = variance_study.read_summary(_finished(out, "variance"))
    vk, vm = var["vit-ti"].kinds, var["vit-ti"].per_image
    ak, am = var["alternet-18"].kinds, var["alternet-18"].per_image
    rk, rm = var["resnet-18"].kinds, var["resnet-18"].per_image
    parts = [Part("vit-ti MSA log variance ratio",
                  summary.change_interval(vm, vk, "msa", log_ratio=True), "below"),
             Part("vit-ti MLP log variance ratio",
                  summary.change_interval(vm, vk, "mlp", log_ratio=True), "above"),
             Part("alternet-18 MSA log variance ratio",
                  summary.change_interval(am, ak, "msa", log_ratio=True), "below")]
    for i, iv in enumerate(summary.stage_end_peaks(rm, rk)):
        parts.append(Part(f"resnet-18 stage {i + 1} log(var at end / other max)", iv, "above"))
    conv = summary.change_interval(rm, rk, "conv", log_ratio=True)
    sub = summary.change_interval(rm, rk, "subsample", log_ratio=True)
    return finding("F8", parts, f"resnet-18 conv blocks {conv.format('+.3g')}, subsampling "
                                f"blocks {sub.format('+.3g')} (log-ratios)")


def robustness_finding(out: Path, num_classes: int = 10) -> Finding:
    """F7: at each noise level, how much more high- than low-frequency noise hurts resnet-18
    than vit-ti (``fourier.robustness_contrast``, > 0); noise levels that saturate either
    model are reported but do not vote; the verdict must agree across the others."""
    rob = robustness_study.read_summary(_finished(out, "robustness"))
    parts, skipped = [], []
    for v, r in zip(rob["vit-ti"], rob["resnet-18"]):
        if fourier.saturated(v, num_classes) or fourier.saturated(r, num_classes):
            skipped.append(f"{v['eps']:g}")
            continue
        parts.append(Part(f"eps {v['eps']:g}: high−low drop, resnet-18 − vit-ti (points)",
                          fourier.robustness_contrast(v, r), "above", fmt="+.2f"))
    note = (f"saturated noise levels left out: {', '.join(skipped)}" if skipped else
            "no noise level saturated")
    if not parts:
        return Finding("F7", CLAIMS["F7"], (), "unresolved", note + " (every level saturated)",
                       CAVEATS["F7"])
    return finding("F7", parts, note, combine=stats.consistent)


def alternet_finding(out: Path) -> Finding:
    """F9: test accuracy of alternet-18 minus resnet-18 and minus vit-ti (> 0), Welch's t
    interval over the training seeds."""
    accs = accuracies_by_seed(out)
    alt = accs["alternet-18"]
    if len(alt) > 1:  # the spread between seeds
        parts = [Part(f"accuracy alternet-18 − {o} (points)", stats.welch_interval(alt, accs[o]),
                      "above", fmt="+.2f") for o in ("resnet-18", "vit-ti")]
        how = f"Welch's t over {len(alt)} seeds"
    else:  # one seed: the test set's sampling error only
        n = _test_images(out)
        parts = [Part(f"accuracy alternet-18 − {o} (points)", _scaled(
            stats.proportion_difference(alt[0] / 100, n, accs[o][0] / 100, n), 100),
            "above", fmt="+.2f") for o in ("resnet-18", "vit-ti")]
        how = (f"one seed: interval over the {n} test images only, the spread between seeds "
               f"not included")
    note = "test accuracy (mean over seeds) " + ", ".join(
        f"{k} {np.mean(v):.2f} %" for k, v in accs.items()) + f"; {how}"
    return finding("F9", parts, note)


def _scaled(iv: Interval, factor: float) -> Interval:
    return Interval(iv.estimate * factor, iv.low * factor, iv.high * factor, iv.level,
                    iv.method, iv.n)


def _test_images(out: Path) -> int:
    """How many test images the alternet step's models were evaluated on."""
    from vitprobe import data as vdata

    from . import presets

    cfg = results.load_json(out / "alternet" / "alternet.json")["config"]
    n = len(vdata.load(cfg["data"], "test", cfg.get("data_dir")))
    limit = presets.recipe(cfg["preset"], "alternet-18").test_limit
    return min(n, limit) if limit else n


def accuracies_by_seed(out: Path) -> dict[str, list[float]]:
    """Per model label, its test accuracy (points) in each finished alternet step (seed)."""
    accs: dict[str, list[float]] = {}
    for step in seed_steps(out, "alternet"):
        for label, acc in alternet_study.read_summary(_finished(out, step)).items():
            accs.setdefault(label, []).append(100 * acc)
    return accs


def accuracy_figure(out: Path, path: Path) -> list[Path] | None:
    """Fig. 12a with the seeds: each model's test accuracy, mean over the training seeds with
    its 95 % t interval as the error bar and every seed as a dot, on an untruncated axis."""
    from vitprobe import plots

    try:
        accs = accuracies_by_seed(out)
    except FileNotFoundError:
        return None
    fig, ax = plots.plt.subplots(figsize=(4.2, 3.2))
    for i, v in enumerate(accs.values()):
        iv = stats.t_interval(v)
        err = (iv.high - iv.estimate) if math.isfinite(iv.high) else 0.0
        ax.bar(i, iv.estimate, yerr=err, capsize=4, color=plots.PALETTE[i % len(plots.PALETTE)],
               alpha=0.8)
        ax.plot([i] * len(v), v, "k.", ms=4)
        ax.text(i, 2, f"{iv.estimate:.1f}", ha="center", fontsize=7, color="white")
    ax.set_xticks(range(len(accs)), list(accs), fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("test accuracy (%)")
    n = len(next(iter(accs.values()))) if accs else 0
    ax.set_title(f"mean of {n} seeds, 95 % t interval; dots: seeds" if n > 1 else
                 "one training seed: no interval between seeds yet", fontsize=8)
    return plots.save(fig, path)


NOT_MEASURED = "not measured"


def findings(out: Path) -> list[Finding]:
    """F1-F10 in order. A finding whose study has not finished (a run stopped part way) is
    listed as "not measured", naming what is missing."""
    rows: dict[str, Finding] = {}
    groups = ((spectra_findings, ("F1", "F2", "F4", "F10")), (subset_findings, ("F3", "F5")),
              (fourier_finding, ("F6",)), (variance_finding, ("F8",)),
              (robustness_finding, ("F7",)), (alternet_finding, ("F9",)))
    for build, ids in groups:
        try:
            made = build(out)
        except (FileNotFoundError, KeyError) as e:
            missing = e.filename if isinstance(e, FileNotFoundError) else f"model {e}"
            for fid in ids:
                rows[fid] = Finding(fid, CLAIMS[fid], (), NOT_MEASURED,
                                    f"its study has not finished ({missing} missing)")
            continue
        for f in made if isinstance(made, list) else [made]:
            rows[f.id] = f
    return [rows[f"F{i}"] for i in range(1, 11)]


def markdown(rows: list[Finding], verdicts: bool = True) -> str:
    """The findings table. ``verdicts=False`` (the smoke preset): a pipeline check, the
    verdict column says so."""
    cells = []
    for r in rows:
        stat = "<br>".join(f"{p.text()}: {p.verdict}" if len(r.parts) > 1 and verdicts
                           else p.text() for p in r.parts)
        if r.note:
            stat += f"<br>{r.note}" if stat else r.note
        if r.verdict == NOT_MEASURED:
            v = NOT_MEASURED
        elif verdicts:
            v = f"**{r.verdict}**" + (f" — {r.caveat}" if r.caveat else "")
        else:
            v = "pipeline check — no verdicts"
        cells.append([r.id, r.claim, stat, v])
    return results.markdown_table(
        ["#", "the paper's claim", "our statistic [95 % interval]", "verdict"], cells)


if __name__ == "__main__":
    raise SystemExit("studies.findings is a library module, not a command; see: vitprobe --help")
