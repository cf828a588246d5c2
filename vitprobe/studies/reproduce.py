"""Reproduce Park & Kim 2022's findings F1-F10 end to end: every study the findings need,
once per training seed, cached and resumable, then the figures gallery and the findings table.

vitprobe reproduce --preset small --seeds 0          # train (or restore) and probe seed 0
vitprobe reproduce --preset small --report-only --out DIR   # decide from the records alone
vitprobe reproduce --preset small --reprobe          # re-probe the recorded weights
vitprobe reproduce --preset small --report-only --figures-dir figures   # the committed gallery
vitprobe reproduce --preset paper                    # CIFAR-100, the paper's recipe (GPUs)
vitprobe reproduce --preset smoke                    # a pipeline check

The seed is the replication unit: each study behind a finding (hessian, alternet, fourier,
variance, robustness, subsets) runs once per seed, and the seed fixes initialisation, data
order, augmentation, the spectra's mini-batches, the probe images and the noise. What lasts
is the **records** folder (``figures/records/<preset>`` for the small preset, committed):
per seed, each model's training record and weights (``vitprobe seeds``) and each study's raw
results (``seed-<s>/<study>/``). A model whose record is there is restored into the
checkpoint cache instead of being trained; a study whose record is there (same settings) is
not run again. The findings, the table and the figures are computed from the records alone
(``studies.findings``: its ``RULE``), so a report needs no ``runs/`` and seeds made on
different machines add up. A record computed by other probe code than this one is refused
(``--reprobe`` recomputes it on the recorded weights; ``--allow-mixed`` renders anyway and
says so); a model trained by other training code is refused (the training identity is pinned).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from vitprobe import identity, results
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
    illustrations,
    landscape,
    pooling,
    presets,
    report,
    robustness,
    seedplots,
    subsets,
    variance,
)
from . import seeds as seeds_mod
from .alternet import AlterNetConfig
from .arguments import parse_seeds, seed_list
from .attention import AttentionConfig
from .config import Config, StudyConfig, StudyResult, device_option, option
from .fourier import FourierConfig
from .hessian import HessianConfig
from .landscape import LandscapeConfig
from .pipeline import PER_SEED, PIPELINE, Stage
from .pooling import PoolingConfig
from .robustness import RobustnessConfig
from .seeds import training_specs
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


def seeded(name: str, seed: int) -> str:
    """The result folder of a per-seed step: ``hessian-s0``, ``hessian-s1`` ..."""
    return f"{name}-s{seed}"


def sizes(name: str, preset: str) -> tuple:
    """A stage's study options besides its models, sized for the preset: (field, value)."""
    smoke = preset == "smoke"
    images = (("num_images", 32 if smoke else 1000),)
    land = (("steps", 3), ("num_images", 32)) if smoke else (("steps", 9), ("num_images", 128))
    vit = presets.roster(preset)["vit"]
    return {
        "hessian": (("early", True), *((("num_batches", 3), ("k", 2), ("tol", 0.1))
                                       if smoke else ())),
        "alternet": (),
        "fourier": images,
        "variance": images,
        "robustness": (*images, *((("num_frequencies", 4), ("eps", "0.3,1")) if smoke else ())),
        # each fraction trains for the full set's number of steps: the paper's 6 % subset (F3,
        # F5) against the full set
        "subsets": (("fractions", f"{seeds_mod.subset_fraction(preset):g},1.0"),
                    ("hessian_models", vit), ("early", True),
                    *((("num_batches", 3), *images) if smoke else ())),
        "landscape": (*land, ("trajectory", True)),
        "attention": (("num_images", 32 if smoke else 256), *((("show", 2),) if smoke else ())),
        "pooling": (("pools", "cls,gap" if preset in ("quick", "small") else ",".join(POOLS)),
                    *land, *((("num_batches", 3),) if smoke else ())),
        "alternet_search": (("search", True), ("data_fraction", 0.5 if smoke else 0.1)),
    }[name]


def plan(preset: str, seeds: tuple[int, ...] = (0,), first_seed: int | None = 0) -> list[Step]:
    """The steps of ``pipeline.PIPELINE`` for the preset: the per-seed studies for each of
    ``seeds``, then (when ``first_seed`` is among them) the figure-only studies on it."""
    ro = presets.roster(preset)

    def step(st: Stage, k: int) -> Step:
        models = (("model", st.models.format(**ro)),) if st.models else ()
        figures = tuple((png.format(**ro), what.format(seed=k, **ro))
                        for png, what in st.figures) if k == first_seed else ()
        return Step(seeded(st.name, k) if st.per_seed else st.name, st.runs,
                    models + sizes(st.name, preset), figures, k)

    stages = [st for st in PIPELINE if preset not in st.not_at]
    steps = [step(st, k) for k in seeds for st in stages if st.per_seed]
    if first_seed in seeds:
        steps += [step(st, first_seed) for st in stages if not st.per_seed]
    return steps


def record_dir(records: Path, step: Step) -> Path:
    """A step's record: ``<records>/seed-<s>/<study folder>`` (``hessian``, ``landscape`` ...)."""
    return records / f"seed-{step.seed}" / step.name.removesuffix(f"-s{step.seed}")


# what of a study's output folder its record keeps: its result files (JSON) and the numbers
# behind an illustration (a landscape's grids, NPZ), each under this size; figures are redrawn
RECORDED = (".json", ".npz")
RECORD_LIMIT = 2_000_000


def record_step(step: Step, out: Path, records: Path) -> Path:
    """Copy a finished step's results from ``out/<name>`` into its record, done.json last."""
    src, dest = out / step.name, record_dir(records, step)
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        if f.suffix in RECORDED and f.name != "done.json" and f.stat().st_size <= RECORD_LIMIT:
            results.atomic_write_bytes(dest / f.name, f.read_bytes())
    results.atomic_write_bytes(dest / "done.json", (src / "done.json").read_bytes())
    return dest


# config fields that say where and how verbosely a study ran, not what it computed: a record
# made elsewhere (another machine's data folder, runs folder, device) is the same record
NOT_RESULTS = ("quiet", "out", "runs_dir", "data_dir", "device", "download")


def _asked(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in NOT_RESULTS}


def run_steps(steps: list[Step], common: dict, out: Path, records: Path,
              reprobe: bool = False) -> None:
    """Run every step whose record is missing or was made with other settings (with
    ``reprobe``: or by other probe code), then record it; the marker records its config,
    command, minutes, where it ran and the code that ran it (``vitprobe.identity``)."""
    probe = identity.identities()["probe"]
    for i, step in enumerate(steps, 1):
        config = step.config(common, out)
        marker = record_dir(records, step) / "done.json"
        done = results.load_json(marker) if marker.is_file() else None
        if done is not None and _asked(done.get("config", {})) == _asked(config.to_dict()) \
                and not (reprobe and step.name == seeded(step.study, step.seed)
                         and _probe_identity(done) != probe):
            log.info("[%d/%d] %s: recorded before, reused", i, len(steps), step.name)
            continue
        print(f"[{i}/{len(steps)}] {config.command()}", flush=True)
        t = time.perf_counter()
        STUDIES[step.study][1](config)
        prov = results.provenance()
        results.save_json(out / step.name / "done.json", {
            "config": config.to_dict(), "command": config.command(),
            "seconds": time.perf_counter() - t,
            "ran_on": {k: prov[k] for k in ("device", "torch", "git_commit", "identities")}})
        record_step(step, out, records)


def _probe_identity(marker: dict) -> str | None:
    return (marker.get("ran_on", {}).get("identities") or {}).get("probe")


def done_markers(steps: list[Step], records: Path) -> dict[str, dict]:
    """The marker of each recorded step, by its record (``seed-0/hessian``)."""
    return {record_dir(records, st).relative_to(records).as_posix(): results.load_json(marker)
            for st in steps if (marker := record_dir(records, st) / "done.json").is_file()}


def model_records(preset: str, seeds: tuple[int, ...], common: dict,
                  records: Path) -> dict[str, dict]:
    """The training record (record.json) of every model of ``seeds`` that has one, by
    ``seed-<s>/<run name>``."""
    found = {}
    for k in seeds:
        for spec in training_specs(preset, k, **common):
            path = seeds_mod.record_dir(records.parent, spec) / "record.json"
            if path.is_file():
                found[f"seed-{k}/{spec.run_name}"] = results.load_json(path)
    return found


def stale(markers: dict[str, dict], models: dict[str, dict]) -> list[str]:
    """What a finding rests on that was computed by other code than this process's: studies
    behind a finding (``PER_SEED``) by another probe identity, models by another training
    identity. An illustration (a landscape, attention maps) of older code is not refused:
    its trajectory needs checkpoints that only the training machine had."""
    now = identity.identities()
    out = [f"{name} (probe code {_probe_identity(m) or 'unknown'})"
           for name, m in markers.items() if name.rsplit("/", 1)[-1] in PER_SEED
           and _probe_identity(m) != now["probe"]]
    for name, rec in models.items():
        trained = (rec.get("provenance", {}).get("identities") or {}).get("training")
        if trained != now["training"]:
            out.append(f"{name} (training code {trained or 'unknown'})")
    return out


def check_one_code(old: list[str], allow_mixed: bool) -> None:
    """A report comes from records of this code (``old``: what ``stale`` found), unless
    ``allow_mixed`` (its header says so)."""
    if old and not allow_mixed:
        now = identity.identities()
        raise ValueError(f"{len(old)} records were computed by other code than this checkout's "
                         f"(probe {now['probe']}, training {now['training']}): "
                         f"{', '.join(old[:4])}{' ...' if len(old) > 4 else ''}; re-probe the "
                         f"recorded weights with --reprobe (a model trained by other code "
                         f"must be retrained), or pass --allow-mixed")


def restore_models(preset: str, seeds: tuple[int, ...], common: dict, records: Path) -> int:
    """Every recorded model of ``seeds`` put back into the checkpoint cache (not trained
    again); how many were."""
    return sum(seeds_mod.restore(spec, records.parent)
               for k in seeds for spec in training_specs(preset, k, **common))


def record_models(preset: str, seeds: tuple[int, ...], common: dict, records: Path) -> None:
    """A training record for every model of ``seeds`` the cache has finished and the
    records lack (trained by this run, or by an earlier one)."""
    for k in seeds:
        for spec in training_specs(preset, k, **common):
            final = spec.run_dir / "model.safetensors"
            if final.is_file() and not (seeds_mod.record_dir(records.parent, spec) /
                                        "record.json").is_file():
                seeds_mod.export(spec, records.parent)


def missing(steps: list[Step], markers: dict[str, dict], models: dict[str, dict],
            preset: str, seeds: tuple[int, ...], common: dict, records: Path) -> list[str]:
    """The (study, seed) and (model, seed) the records still lack (``markers`` and
    ``models``: what they hold)."""
    lack = [name for st in steps
            if (name := record_dir(records, st).relative_to(records).as_posix()) not in markers]
    lack += [f"seed-{k}/{spec.run_name}" for k in seeds
             for spec in training_specs(preset, k, **common)
             if f"seed-{k}/{spec.run_name}" not in models]
    return lack


def recorded_seeds(preset: str, common: dict, records: Path) -> tuple[int, ...]:
    """The seeds whose records (``<records>/seed-<s>``) hold every model and every per-seed
    study of the plan: what a report decides over when no seeds are named. A seed still
    training or being probed is left out until it is whole."""
    found = []
    for folder in records.glob("seed-*"):
        if not (k := folder.name.removeprefix("seed-")).isdigit():
            continue
        seed = (int(k),)
        steps = plan(preset, seed, first_seed=None)
        if not missing(steps, done_markers(steps, records),
                       model_records(preset, seed, common, records), preset, seed, common,
                       records):
            found.append(seed[0])
    return tuple(sorted(found))


# Figures made by other commands that the gallery lists when they are there.
EXTRA_FIGURES = (
    ("cct_quick.png", "cct-2-3x2's test accuracy against training minutes on the 2-core CPU "
                      "(CCT's headline; 90 % goal)", "python -m benchmarks.cct_quick"),
)


def gallery(steps: list[Step], table: str, figures_dir: Path, out: Path, records: Path,
            config: ReproduceConfig, markers: dict[str, dict], models: dict[str, dict],
            extra: list[tuple[str, str]], lack: list[str], mixed: bool,
            context: findings.Context) -> Path:
    """Draw every figure into ``figures_dir`` and write its README: a header naming the code and
    machines behind the records, figure by figure what it shows and the command that
    regenerates it, the findings table, what the records still lack, and the minutes per
    study and per model. ``extra``: (png, what) figures drawn from every seed; the
    illustrations are drawn from their records (``illustrations``) with ``context``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    preset, seeds_text, command = config.preset, config.seeds, config.command()
    now = identity.identities()
    where = sorted({"{device}, torch {torch}".format(**m["ran_on"]) for m in markers.values()
                    if "ran_on" in m} | {rec["provenance"]["device"] for rec in models.values()
                                         if "provenance" in rec})
    lines = ["# Figures gallery", "",
             f"**Preset `{preset}`, seeds {seeds_text}; training code {now['training']}, probe "
             f"code {now['probe']}, findings code {now['findings']}"
             + (" — MIXED CODE: --allow-mixed was given" if mixed else "")
             + f"; computed on {'; '.join(where) or '?'}.**", "",
             "Every number and figure here is computed from the committed records "
             f"(`{records}`: per seed, each model's training record and weights and each "
             "study's raw results) by one command, with no `runs/` and no training:", "",
             "```bash", command, "```", "",
             "`vitprobe seeds --preset small --seed N` trains a missing seed and records it; "
             "`vitprobe reproduce --preset small --seeds N` probes it. Models are trained on "
             "28-px Fashion-MNIST, not the paper's 300 CIFAR-100 epochs: read the magnitudes "
             "as this scale's, not the paper's.", ""]
    rows = [(png, what, f"`{command}` (drawn from every seed)") for png, what in extra]
    undrawn = []
    for step in steps:
        for png, what in step.figures:
            # drawn from the record, so a report from the records shows what the run did;
            # what the record cannot draw is taken from this run's output, if it made it
            src = out / step.name / png
            study = f"`{step.config(config.common(), out).command()}`"
            drawn = illustrations.draw(png, record_dir(records, step), figures_dir, context)
            if not drawn and src.is_file():
                drawn = shutil.copyfile(src, figures_dir / png)
            if not drawn:
                undrawn.append(f"`{png}` ({study})")
                continue
            seed, only = f"seed {step.seed}", f"an illustration: seed {step.seed} only"
            rows.append((png, what.replace(seed, only) if seed in what else f"{what} ({only})",
                         study))
    rows += [(png, what, f"`{command}`") for png, what, command in EXTRA_FIGURES
             if (figures_dir / png).is_file()]
    lines.append(results.markdown_table(["figure", "what it shows", "command"], (
        [f"![{png}]({png}) `{png}`", what, command] for png, what, command in rows)))
    if undrawn:
        lines += ["", "Not drawn: their records lack what they need (a trajectory needs 3 "
                  "checkpoints; an attention record of older probe code has no overlays) and "
                  "this run did not make them; their studies draw them: "
                  + ", ".join(undrawn) + "."]
    seconds = {name: m.get("seconds", 0.0) for name, m in markers.items()}
    lines += ["", "## Findings (Park & Kim 2022, F1-F10)", ""]
    if lack:
        lines += [f"**The records are incomplete**: {len(lack)} missing — "
                  f"{', '.join(lack)}. A finding is decided only from what is recorded.", ""]
    lines += [findings.RULE, "", table, "",
              f"Minutes per study ({sum(seconds.values()) / 60:.0f} in all): "
              + ", ".join(f"{k} {v / 60:.1f}" for k, v in seconds.items()) + ".",
              "", "Minutes of training per model (its last process): "
              + ", ".join(f"{k} {rec.get('train_minutes', float('nan')):.1f}"
                          for k, rec in models.items()) + "."]
    path = figures_dir / "README.md"
    results.atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return path


@dataclass(frozen=True)
class ReproduceConfig(Config):
    STUDY: ClassVar[str] = "reproduce"

    preset: str = option("quick", "smoke: pipeline check; quick: minutes per model; small: the "
                                  "findings over seeds on a 2-core CPU; paper: GPUs",
                         choices=presets.PRESETS)
    seeds: str | None = option(None, "training seeds, e.g. 0,1,2 or 0-4; one at a time (--seeds "
                                     "0, then --seeds 1 ...) spreads a run over sittings "
                                     "(default: the preset's: smoke 0, quick 0,1, small and "
                                     "paper 0,1,2; with --report-only, every seed the records "
                                     "hold in full)", check=seed_list)
    data: str | None = option(None, "data set (default: fashion-mnist; cifar100 for --preset "
                                    "paper)", choices=DATASETS)
    data_dir: str | None = option(None, "folder holding the data set's files (default: the "
                                        "system's Fashion-MNIST)", check=cli.existing_dir,
                                  path=True)
    download: bool = option(False, "allow a torchvision download")
    precision: str | None = option(None, "training precision (default: the preset's)",
                                   choices=PRECISIONS)
    runs_dir: str = option("runs", "the checkpoint cache", check=cli.writable_dir, path=True)
    out: str | None = option(None, "folder for every study's full results and figures "
                                   "(default: results/reproduce-<preset>)",
                             check=cli.writable_dir, path=True)
    records: str | None = option(None, "the per-seed records (default: figures/records for "
                                       "the small preset, <out>/records otherwise)",
                                 check=cli.writable_dir, path=True)
    figures_dir: str | None = option(None, "the gallery's folder (default: <out>/figures; the "
                                           "committed gallery is written only when this says "
                                           "figures)", check=cli.writable_dir, path=True)
    device: str | None = device_option()
    quiet: bool = option(False, "no progress bars")
    report_only: bool = option(False, "run nothing: the findings, table and figures from the "
                                      "records alone (what they lack is listed)")
    reprobe: bool = option(False, "re-run every study whose record was computed by other probe "
                                  "code, on the recorded weights (nothing is trained)")
    allow_mixed: bool = option(False, "render from records computed by different code (the "
                                      "header says so); refused otherwise")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.report_only and self.reprobe:
            raise ValueError("--report-only runs nothing and --reprobe runs studies: pass one")

    def seed_list(self) -> tuple[int, ...]:
        return parse_seeds(self.seeds) if self.seeds else SEEDS[self.preset]

    def data_set(self) -> str:
        return self.data or ("cifar100" if self.preset == "paper" else "fashion-mnist")

    def out_dir(self) -> Path:
        return Path(self.out or f"results/reproduce-{self.preset}")

    def records_dir(self) -> Path:
        """The preset's records: ``<records>/<preset>``."""
        root = self.records or ("figures/records" if self.preset == "small"
                                else self.out_dir() / "records")
        return Path(root) / self.preset

    def gallery_dir(self) -> Path:
        """Under ``out`` unless ``figures_dir`` names a folder: a partial run never
        overwrites the committed gallery."""
        return Path(self.figures_dir or self.out_dir() / "figures")

    def common(self) -> dict:
        """The options every study of the plan shares."""
        return {"preset": self.preset, "data": self.data_set(), "runs_dir": self.runs_dir,
                "data_dir": self.data_dir, "download": self.download,
                "precision": self.precision, "device": self.device, "quiet": self.quiet}

    def training(self) -> dict:
        """What a seed's training specs share (``seeds.training_specs``)."""
        return {"data": self.data_set(), "data_dir": self.data_dir, "runs_dir": self.runs_dir,
                "device": cli.resolve_device(self.device), "precision": self.precision}


@dataclass(kw_only=True)
class FindingsResult(StudyResult):
    """The findings F1-F10 decided over the seeds (``findings.Finding.to_dict`` each), the
    rule, preset, seeds, minutes per study and model, and the code identities behind them."""

    FILE: ClassVar[str] = "findings.json"


def run(config: ReproduceConfig) -> FindingsResult:
    """Every study of the plan that is not recorded yet (unless ``report_only``; recorded
    models restored, not retrained), then the findings, the gallery and its README from the
    records."""
    seeds, data, out = config.seed_list(), config.data_set(), config.out_dir()
    records, figures_dir = config.records_dir(), config.gallery_dir()
    common, training = config.common(), config.training()
    if config.report_only and not config.seeds:
        seeds = recorded_seeds(config.preset, training, records) or seeds
    steps = plan(config.preset, seeds)
    t = time.perf_counter()
    if not config.report_only:
        restore_models(config.preset, seeds, training, records)
        run_steps(steps, common, out, records, config.reprobe)
        record_models(config.preset, seeds, training, records)
    markers = done_markers(steps, records)
    models = model_records(config.preset, seeds, training, records)
    old = stale(markers, models)
    check_one_code(old, config.allow_mixed)
    mixed = bool(old)
    lack = missing(steps, markers, models, config.preset, seeds, training, records)
    context = findings.Context(records, seeds, config.preset, data, config.data_dir,
                               config.precision)
    rows = findings.findings(context)
    verdicts = config.preset != "smoke"  # smoke models are too small to say anything
    text = report.markdown(rows, verdicts=verdicts)
    extra = seedplots.figures(context, rows, figures_dir)
    record = {"findings": [r.to_dict() for r in rows], "verdicts": verdicts,
              "rule": findings.RULE, "preset": config.preset, "seeds": list(seeds),
              "precision": config.precision or "the preset's",
              "identities": identity.identities(), "missing": lack,
              "study_seconds": {k: m.get("seconds") for k, m in markers.items()},
              "train_minutes": {k: m.get("train_minutes") for k, m in models.items()},
              "computed_by": {k: m.get("ran_on") for k, m in markers.items()},
              "mixed_code": mixed}
    out.mkdir(parents=True, exist_ok=True)
    results.atomic_write_bytes(out / "findings.md", (text + "\n").encode())
    result = FindingsResult(record=record, config={**config.to_dict(), "data": data,
                                                   "seeds": list(seeds)})
    result.save(figures_dir)
    display = config.replace(report_only=True, reprobe=False, allow_mixed=False, quiet=False,
                             seeds=",".join(map(str, seeds)))
    readme = gallery(steps, text, figures_dir, out, records, display, markers, models, extra,
                     lack, mixed, context)
    print(text)
    counts = {v: sum(r.verdict == v for r in rows) for v in findings.ALL_VERDICTS}
    print(("verdicts: " if verdicts else "pipeline check (smoke preset), no verdicts: ") +
          ", ".join(f"{n} {v}" for v, n in counts.items() if n) +
          f"; {time.perf_counter() - t:.0f} s this run")
    if lack:
        print(f"missing from the records ({len(lack)}): {', '.join(lack)}")
    print(f"findings: {figures_dir / FindingsResult.FILE}\ngallery:  {readme}")
    return result


def main(argv: list[str] | None = None) -> int:
    config = ReproduceConfig.parse(argv, __doc__)
    cli.setup_logging(config.quiet)
    run(config)
    return 0


if __name__ == "__main__":
    cli.run(main)
