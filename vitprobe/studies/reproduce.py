"""Reproduce Park & Kim 2022's findings F1-F10 end to end: every study the findings need,
once per training seed, cached and resumable, then the figures gallery and the findings table.

python -m studies.reproduce --preset small                 # the findings: 3 seeds, 2-core CPU
python -m studies.reproduce --preset small --seeds 0       # one seed per sitting, then 1, 2
python -m studies.reproduce --preset small --report-only   # decide from what has finished
python -m studies.reproduce --preset paper                 # CIFAR-100, the paper's recipe (GPUs)
python -m studies.reproduce --preset smoke                 # a pipeline check

The seed is the replication unit: each study behind a finding (hessian, alternet, fourier,
variance, robustness, subsets) runs once per seed into ``<out>/<study>-s<seed>``, and the
seed fixes initialisation, data order, augmentation, the spectra's mini-batches, the probe
images and the noise. A study that finished (its arguments unchanged) is not run again; a
killed one resumes from the checkpoint cache. Then ``studies.findings`` decides each finding
over the seeds (Student's t, sign agreement, convergence; its ``RULE``), writes
``findings.json`` and ``findings.md``, and the gallery README with the figures. A gallery is
rendered only from results of one code (``--allow-mixed`` overrides, and says so).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from vitprobe import results
from vitprobe.data import DATASETS
from vitprobe.models.registry import POOLS
from vitprobe.train import PRECISIONS

from . import (
    alternet,
    attention,
    cli,
    findings,
    fourier,
    hessian,
    landscape,
    pooling,
    presets,
    robustness,
    subsets,
    variance,
)
from .alternet import AlterNetConfig
from .attention import AttentionConfig
from .config import Config, StudyConfig, StudyResult, device_option, option
from .fourier import FourierConfig
from .hessian import HessianConfig
from .landscape import LandscapeConfig
from .pooling import PoolingConfig
from .robustness import RobustnessConfig
from .subsets import SubsetsConfig
from .variance import VarianceConfig

log = logging.getLogger("studies.reproduce")


# Each study the plan runs: its config type and its run function.
STUDIES: dict[str, tuple[type[StudyConfig], Callable[[Any], StudyResult]]] = {
    "hessian": (HessianConfig, hessian.run), "alternet": (AlterNetConfig, alternet.run),
    "fourier": (FourierConfig, fourier.run), "variance": (VarianceConfig, variance.run),
    "robustness": (RobustnessConfig, robustness.run), "subsets": (SubsetsConfig, subsets.run),
    "landscape": (LandscapeConfig, landscape.run), "attention": (AttentionConfig, attention.run),
    "pooling": (PoolingConfig, pooling.run),
}


@dataclass(frozen=True)
class Step:
    name: str          # its result folder
    study: str         # a key of STUDIES
    options: tuple     # (field, value) pairs of its own config (common ones and seed added)
    figures: tuple     # (png name, what it shows) pairs for the gallery
    seed: int = 0      # the training seed: the replication unit of the findings

    def config(self, common: dict, out: Path) -> StudyConfig:
        """The study's config: ``common`` (preset, data, runs folder ...), its own options,
        its seed, and its result folder ``out/<name>``."""
        kind, _ = STUDIES[self.study]
        return kind(**common, **dict(self.options), seed=self.seed, out=str(out / self.name))


# Seeds each preset's findings are decided over (--seeds overrides): every study behind a
# finding runs once per seed, and a finding's interval is Student's t over the seeds.
SEEDS = {"smoke": (0,), "quick": (0, 1), "small": (0, 1, 2), "paper": (0, 1, 2)}
# the studies that feed a finding, run once per seed; the others once, on the first seed
PER_SEED = ("hessian", "alternet", "fourier", "variance", "robustness", "subsets")


def seeded(name: str, seed: int) -> str:
    """The result folder of a per-seed step: ``hessian-s0``, ``hessian-s1`` ..."""
    return f"{name}-s{seed}"


def parse_seeds(text: str) -> tuple[int, ...]:
    """'0,1,2' or '0-4' -> (0, 1, 2) / (0, 1, 2, 3, 4): distinct seeds in [0, 2**32)."""
    import argparse

    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        lo, _, hi = part.partition("-")
        try:
            span = range(int(lo), int(hi or lo) + 1)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: seeds are integers, e.g. 0,1,2 or "
                                             f"0-4") from None
        seeds += [k for k in span if k not in seeds]
    if not seeds or any(not 0 <= k < 2 ** 32 for k in seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: give at least one seed in [0, 2**32)")
    return tuple(seeds)


def plan(preset: str, seeds: tuple[int, ...] = (0,), first_seed: int = 0) -> list[Step]:
    """The studies behind F1-F10, sized for the preset: the per-seed studies for each of
    ``seeds``, then (when ``first_seed`` is among them) the figure-only studies on it."""
    smoke = preset == "smoke"
    ro = presets.roster(preset)
    vit, res, pre, alt = ro["vit"], ro["resnet"], ro["preresnet"], ro["alternet"]
    hess = (("num_batches", 3), ("k", 2), ("tol", 0.1)) if smoke else ()
    sub_hess = (("num_batches", 3),) if smoke else ()
    # each fraction trains for the full set's number of steps: the paper's 6 % subset (F3,
    # F5) against the full set
    fractions = "0.5,1.0" if smoke else "0.06,1.0"
    images = (("num_images", 32 if smoke else 1000),)
    land = (("steps", 3), ("num_images", 32)) if smoke else (("steps", 9), ("num_images", 128))
    three = f"{vit},{res},{alt}"
    pools = "cls,gap" if preset in ("quick", "small") else ",".join(POOLS)

    def per_seed(k: int) -> list[Step]:
        first = k == first_seed
        return [
            Step(seeded("hessian", k), "hessian",
                 (("model", f"{vit},{vit}@gap,{res},{pre},{alt}"), *hess), (
                     ("hessian.png", "Hessian max-eigenvalue spectra (top-5 by magnitude per "
                                     "mini-batch of 16 augmented training images, NLL + l2), "
                                     "negative and positive panels; seed " + str(k) +
                                     " (Figs. 1c, 4, 6, 12c)"),) if first else (), k),
            Step(seeded("alternet", k), "alternet", (("model", f"{alt},{pre},{res},{vit}"),),
                 (), k),
            Step(seeded("fourier", k), "fourier", (("model", three), *images), (
                ("fourier.png", f"ΔlogAmplitude of the residual stream against frequency, one "
                                f"curve per tap coloured by depth; seed {k} (Fig. 2a)"),)
                 if first else (), k),
            Step(seeded("variance", k), "variance", (("model", three), *images), (), k),
            Step(seeded("robustness", k), "robustness", (
                ("model", f"{vit},{res}"), *images,
                *((("num_frequencies", 4), ("eps", "0.3,1")) if smoke else ())), (), k),
            Step(seeded("subsets", k), "subsets", (
                ("model", f"{vit},{res}"), ("fractions", fractions), ("hessian_models", vit),
                *sub_hess, *(images if smoke else ())), (
                ("subsets_hessian.png", f"{vit}'s Hessian spectra per training-set fraction; "
                                        f"seed {k} (Fig. 4; F3)"),) if first else (), k),
        ]

    once = [
        Step("landscape", "landscape", (("model", f"{vit},{res}"), *land, ("trajectory", True)), (
            ("landscape.png", "2-D loss surfaces and 1-D slices along filter-normalised "
                              "directions, NLL + 0.05·Σ‖W‖ on augmented training data "
                              "(Fig. 1a)"),
            ("trajectory.png", "training trajectory from the cached checkpoints: the paper's "
                               "polar view and Li et al.'s PCA projection (Fig. 1b)")),
             first_seed),
        Step("attention", "attention", (("model", vit), ("num_images", 32 if smoke else 256),
                                        *((("show", 2),) if smoke else ())), (
            (f"attention_{vit}.png", "rollout, Integrated Gradients and occlusion maps on test "
                                     "images"),
            ("attention_distance.png", "mean attention distance of every head against depth "
                                       "(ViT Fig. 7)"),
            (f"position_{vit}.png", "cosine similarity of the learned position embeddings "
                                    "(ViT Fig. 7)")), first_seed),
        Step("pooling", "pooling", (("model", vit), ("pools", pools), *land,
                                    *((("num_batches", 3),) if smoke else ())), (
            ("pooling_landscape.png", f"{vit}'s loss landscapes with a class token and GAP "
                                      f"(and SeqPool, MAP at the paper preset) on the same "
                                      f"directions' normalisation (Fig. 6)"),
            ("pooling_hessian.png", "the same models' Hessian spectra (Fig. 6)")), first_seed),
    ]
    if preset not in ("small",):  # the build rule trains many AlterNets: not at small
        once.append(Step("alternet_search", "alternet", (
            ("search", True), ("data_fraction", 0.5 if smoke else 0.1)), (
            ("alternet_search.png", "the build rule: MSA replacements from the end of the "
                                    "network, kept (blue) while accuracy improves (Fig. 11)"),),
            first_seed))
    steps = [st for k in seeds for st in per_seed(k)]
    return steps + (once if first_seed in seeds else [])


def run_steps(steps: list[Step], common: dict, out: Path) -> None:
    """Run every step whose done-marker is missing or was written for another config; the
    marker records its config, command, minutes, where it ran and the code that ran it
    (``results.code_identity``)."""
    for i, step in enumerate(steps, 1):
        config = step.config(common, out)
        marker = out / step.name / "done.json"
        asked = {k: v for k, v in config.to_dict().items() if k != "quiet"}  # not results
        done = results.load_json(marker).get("config", {}) if marker.is_file() else None
        if done is not None and {k: v for k, v in done.items() if k != "quiet"} == asked:
            log.info("[%d/%d] %s: done before, reused", i, len(steps), step.name)
            continue
        print(f"[{i}/{len(steps)}] {config.command()}", flush=True)
        t = time.perf_counter()
        STUDIES[step.study][1](config)
        prov = results.provenance()
        results.save_json(marker, {"config": config.to_dict(), "command": config.command(),
                                   "seconds": time.perf_counter() - t,
                                   "ran_on": {k: prov[k] for k in ("device", "torch",
                                                                   "git_commit", "code")}})


def done_markers(steps: list[Step], out: Path) -> dict[str, dict]:
    """The done-marker of each finished step, by step name."""
    return {st.name: results.load_json(marker) for st in steps
            if (marker := out / st.name / "done.json").is_file()}


def code_identities(markers: dict[str, dict]) -> dict[str, list[str]]:
    """Code identity -> the steps it computed (``"unknown"``: a marker from before the
    identity was recorded)."""
    found: dict[str, list[str]] = {}
    for name, m in markers.items():
        found.setdefault(m.get("ran_on", {}).get("code") or "unknown", []).append(name)
    return found


def check_one_code(markers: dict[str, dict], allow_mixed: bool) -> None:
    """The code-identity rule of the training cache, for results: a gallery comes from one
    code's results, unless ``allow_mixed`` (then its header says so)."""
    ids = code_identities(markers)
    if len(ids) > 1 and not allow_mixed:
        raise ValueError("the finished studies were computed by different code (" + "; ".join(
            f"{c}: {', '.join(names)}" for c, names in ids.items()) + "): rerun them with "
            "this code (delete their done.json) or pass --allow-mixed")


# Figures made by other commands that the gallery lists when they are there.
EXTRA_FIGURES = (
    ("cct_quick.png", "cct-2-3x2's test accuracy against training minutes on the 2-core CPU "
                      "(CCT's headline; 90 % goal)", "python -m benchmarks.cct_quick"),
)


def gallery(steps: list[Step], table: str, figures_dir: Path, out: Path,
            config: ReproduceConfig, markers: dict[str, dict], extra: list[tuple[str, str]],
            mixed: bool) -> Path:
    """Copy every PNG to ``figures_dir`` and write its README: a header naming the commit,
    code and preset behind it, figure by figure what it shows and the command that
    regenerates it (``config``'s, all paths included), the findings table and the minutes
    per study. ``extra``: (png, what) figures ``reproduce`` drew itself into
    ``figures_dir``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    preset, seeds_text, command = config.preset, config.seeds, config.command()
    commits = sorted({str(m.get("ran_on", {}).get("git_commit"))[:12] for m in markers.values()})
    codes = sorted(code_identities(markers))
    where = sorted({"{device}, torch {torch}".format(**m["ran_on"]) for m in markers.values()
                    if "ran_on" in m})
    lines = ["# Figures gallery", "",
             f"**Preset `{preset}`, seeds {seeds_text}; computed at commit "
             f"{', '.join(commits) or '?'} (code {', '.join(codes) or '?'})"
             + (" — MIXED CODE: --allow-mixed was given" if mixed else "")
             + f"; on {'; '.join(where) or '?'}.**", "",
             "Every figure and number here comes from one command (it trains what the "
             "checkpoint cache lacks and skips studies already done; `--seeds 0`, then "
             "`--seeds 1` ... spreads it over sittings):", "",
             "```bash", command, "```", "",
             f"The numbers behind each figure are in `{out}/<study>-s<seed>/*.json` (config, "
             "seed, versions, git commit), the findings in `findings.json` beside this file. "
             "Models are trained on 28-px Fashion-MNIST, not the paper's 300 CIFAR-100 "
             "epochs: read the magnitudes as this scale's, not the paper's.", ""]
    rows = [(png, what, f"`{command}` (drawn from every seed)") for png, what in extra]
    for step in steps:
        for png, what in step.figures:
            src = out / step.name / png
            if src.is_file():
                shutil.copyfile(src, figures_dir / png)
                rows.append((png, what, f"`{step.config(config.common(), out).command()}`"))
    rows += [(png, what, f"`{command}`") for png, what, command in EXTRA_FIGURES
             if (figures_dir / png).is_file()]
    lines.append(results.markdown_table(["figure", "what it shows", "command"], (
        [f"![{png}]({png}) `{png}`", what, command] for png, what, command in rows)))
    seconds = {name: m.get("seconds", 0.0) for name, m in markers.items()}
    missing = [st.name for st in steps if st.name not in seconds]
    lines += ["", "## Findings (Park & Kim 2022, F1-F10)", ""]
    if missing:
        lines += [f"**This table comes from a regeneration stopped part way**: "
                  f"{len(seconds)} of {len(steps)} studies finished; not run: "
                  f"{', '.join(missing)}. Rerunning the command resumes from the cache.", ""]
    lines += [findings.RULE, "", table, "",
              f"Minutes per study ({sum(seconds.values()) / 60:.0f} in all, trainings "
              f"included; a study killed part way and resumed counts only its last process's "
              f"minutes): " + ", ".join(f"{k} {v / 60:.1f}" for k, v in seconds.items()) + "."]
    path = figures_dir / "README.md"
    results.atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return path


def _seeds(text: str) -> str:
    parse_seeds(text)
    return text


@dataclass(frozen=True)
class ReproduceConfig(Config):
    STUDY: ClassVar[str] = "reproduce"

    preset: str = option("quick", "smoke: pipeline check; quick: minutes per model; small: the "
                                  "findings over seeds on a 2-core CPU; paper: GPUs",
                         choices=presets.PRESETS)
    seeds: str | None = option(None, "training seeds, e.g. 0,1,2 or 0-4; one at a time (--seeds "
                                     "0, then --seeds 1 ...) spreads a run over sittings, then "
                                     "--report-only --seeds 0,1,2 decides the findings "
                                     "(default: the preset's: smoke 0, quick 0,1, small and "
                                     "paper 0,1,2)", check=_seeds)
    data: str | None = option(None, "data set (default: fashion-mnist; cifar100 for --preset "
                                    "paper)", choices=DATASETS)
    data_dir: str | None = option(None, "folder holding the data set's files (default: the "
                                        "system's Fashion-MNIST)", check=cli.existing_dir,
                                  path=True)
    download: bool = option(False, "allow a torchvision download")
    precision: str | None = option(None, "training precision (default: the preset's)",
                                   choices=PRECISIONS)
    runs_dir: str = option("runs", "the checkpoint cache", check=cli.writable_dir, path=True)
    out: str | None = option(None, "folder for every study's results (default: "
                                   "results/reproduce-<preset>)", check=cli.writable_dir,
                             path=True)
    figures_dir: str | None = option(None, "the gallery's folder (default: the committed "
                                           "gallery figures/ for the small preset without "
                                           "--out, <out>/figures otherwise)",
                                     check=cli.writable_dir, path=True)
    device: str | None = device_option()
    quiet: bool = option(False, "no progress bars")
    report_only: bool = option(False, "run nothing: rebuild the gallery and the findings "
                                      "table from the studies finished so far (the others are "
                                      "listed as not measured)")
    allow_mixed: bool = option(False, "render a gallery from studies computed by different "
                                      "code (the header says so); refused otherwise")

    def seed_list(self) -> tuple[int, ...]:
        return parse_seeds(self.seeds) if self.seeds else SEEDS[self.preset]

    def data_set(self) -> str:
        return self.data or ("cifar100" if self.preset == "paper" else "fashion-mnist")

    def out_dir(self) -> Path:
        return Path(self.out or f"results/reproduce-{self.preset}")

    def gallery_dir(self) -> Path:
        """Everything lands under ``out`` when it is given: the committed gallery is written
        only by the small preset's default run (or by an explicit ``figures_dir``)."""
        return Path(self.figures_dir or ("figures" if self.preset == "small" and not self.out
                                         else self.out_dir() / "figures"))

    def common(self) -> dict:
        """The options every study of the plan shares."""
        return {"preset": self.preset, "data": self.data_set(), "runs_dir": self.runs_dir,
                "data_dir": self.data_dir, "download": self.download,
                "precision": self.precision, "device": self.device, "quiet": self.quiet}


@dataclass(kw_only=True)
class FindingsResult(StudyResult):
    """The findings F1-F10 decided over the seeds (``findings.Finding.to_dict`` each), the
    rule, preset, seeds, minutes per study and the code that computed each."""

    FILE: ClassVar[str] = "findings.json"


def run(config: ReproduceConfig) -> FindingsResult:
    """Every study of the plan that is not done yet (unless ``report_only``), then the
    findings, the gallery and its README."""
    seeds, data, out = config.seed_list(), config.data_set(), config.out_dir()
    figures_dir = config.gallery_dir()
    common = config.common()
    steps = plan(config.preset, seeds)
    t = time.perf_counter()
    if not config.report_only:
        run_steps(steps, common, out)
    markers = done_markers(steps, out)
    check_one_code(markers, config.allow_mixed)
    mixed = len(code_identities(markers)) > 1
    context = findings.Context(out, seeds, config.preset, data, config.runs_dir,
                               config.data_dir, config.precision)
    rows = findings.findings(context)
    verdicts = config.preset != "smoke"  # smoke models are too small to say anything
    text = findings.markdown(rows, verdicts=verdicts)
    extra = findings.figures(context, rows, figures_dir)
    record = {"findings": [r.to_dict() for r in rows], "verdicts": verdicts,
              "rule": findings.RULE, "preset": config.preset, "seeds": list(seeds),
              "precision": config.precision or "the preset's",
              "study_seconds": {k: m.get("seconds") for k, m in markers.items()},
              "computed_by": {k: m.get("ran_on") for k, m in markers.items()},
              "mixed_code": mixed}
    results.atomic_write_bytes(out / "findings.md", (text + "\n").encode())
    result = FindingsResult(record=record, config={**config.to_dict(), "data": data,
                                                   "seeds": list(seeds)})
    for folder in {out, figures_dir}:
        result.save(folder)
    display = config.replace(report_only=False, allow_mixed=False, quiet=False,
                             seeds=",".join(map(str, seeds)))
    readme = gallery(steps, text, figures_dir, out, display, markers, extra, mixed)
    print(text)
    counts = {v: sum(r.verdict == v for r in rows) for v in findings.ALL_VERDICTS}
    print(("verdicts: " if verdicts else "pipeline check (smoke preset), no verdicts: ") +
          ", ".join(f"{n} {v}" for v, n in counts.items() if n) +
          f"; {time.perf_counter() - t:.0f} s this run")
    print(f"findings: {figures_dir / FindingsResult.FILE}\ngallery:  {readme}")
    print("minutes per study: " + ", ".join(f"{k} {m.get('seconds', 0) / 60:.1f}"
                                            for k, m in markers.items()))
    return result


def main(argv: list[str] | None = None) -> int:
    config = ReproduceConfig.parse(argv, __doc__)
    cli.setup_logging(config.quiet)
    run(config)
    return 0


if __name__ == "__main__":
    cli.run(main)
