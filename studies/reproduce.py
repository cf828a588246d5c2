"""Reproduce Park & Kim 2022's findings F1-F10 end to end: every study the findings need,
cached and resumable, then the figures gallery and an honest findings table.

python -m studies.reproduce --preset quick     # Fashion-MNIST, hours on a 2-core CPU
python -m studies.reproduce --preset paper     # CIFAR-100 with the paper's recipe (GPUs)
python -m studies.reproduce --preset smoke     # minutes: checks the pipeline end to end

Each study runs in this process with its result folder under ``--out``; a study that finished
(its arguments unchanged) is not run again, a killed one resumes from the checkpoint cache and
its partial result files. Then the PNGs go to ``--figures-dir`` with a gallery README, and the
findings table (``findings.md`` and ``findings.json``: statistics with 95 % intervals and
three-valued verdicts, ``studies.findings``) is read off the studies' result files. The
models behind F1/F2, F4 and F9/F10 are trained with several seeds (``SEEDS``).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from models.vit import POOLS
from vitprobe import results, stats

from . import cli, findings

log = logging.getLogger("studies.reproduce")


@dataclass(frozen=True)
class Step:
    name: str          # its result folder
    study: str         # the studies.<module> it runs
    args: tuple        # its own arguments (the common ones are added)
    figures: tuple     # (png name, what it shows) pairs for the gallery
    seed_offset: int = 0   # a repetition with another training seed (--seed + offset)

    def argv(self, common: list[str], out: Path) -> list[str]:
        common = list(common)
        if self.seed_offset and "--seed" in common:
            i = common.index("--seed") + 1
            common[i] = str(int(common[i]) + self.seed_offset)
        return [*self.args, *common, "--out", str(out / self.name)]

    def command(self, common_display: str) -> str:
        return f"python -m studies.{self.study} {' '.join(self.args)}{common_display}".strip()


# Training seeds behind the findings that compare trained models (F1/F2, F4, F9/F10): each
# is trained and probed once per seed, and the intervals take the spread between seeds in.
# The quick preset takes two: a seed's repetition trains four models and takes 30 spectra of
# each, about an hour on a 2-core CPU, and a third would take the whole regeneration past the
# four hours it is meant to fit in (the minutes per study are in figures/README.md).
SEEDS = {"smoke": 1, "quick": 2, "paper": 3}
# Every model of the Hessian steps: ViT with a class token and with GAP (F4), the paper's
# post-activation ResNet baseline (its notebooks load ``resnet_50``), AlterNet.
HESSIAN_MODELS = "vit-ti,vit-ti@gap,resnet-18,alternet-18"


def seeded(name: str, offset: int) -> str:
    """The result folder of a step's repetition with seed offset ``offset``."""
    return name if offset == 0 else f"{name}-s{offset}"


def plan(preset: str) -> list[Step]:
    """The studies behind F1-F10, sized for the preset."""
    smoke = preset == "smoke"
    hess = ("--num-batches", "3", "--k", "2", "--tol", "0.1") if smoke else ()
    sub_hess = ("--num-batches", "3") if smoke else ()
    # each fraction trains for the full set's number of steps (~12 min per model at quick):
    # the paper's 6 % subset (F3) against the full set
    fractions = "0.5,1.0" if smoke else "0.06,1.0"
    images = ("--num-images", "32") if smoke else ("--num-images", "1000")
    land = ("--steps", "3", "--num-images", "32") if smoke else \
        ("--steps", "9", "--num-images", "128")
    search_fraction = "0.5" if smoke else "0.1"
    three = "vit-ti,resnet-18,alternet-18"
    # every pooling variant is a full vit-ti training (~13 min at quick scale): the quick
    # preset compares the class token with GAP (the paper's Fig. 6), the others add
    # CCT's SeqPool and MAP
    pools = "cls,gap" if preset == "quick" else ",".join(POOLS)
    hessian_fig = (("hessian.png", "Hessian max-eigenvalue spectra (top-5 by magnitude per "
                                   "mini-batch of 16 augmented training images, NLL + l2), "
                                   "negative and positive panels; NEP/APE in the legend (Figs. "
                                   "1c, 4, 6, 12c; F1, F2, F4, F10)"),)
    alternet_fig = (("alternet_seeds.png", "test accuracy of AlterNet-18, ResNet-18 and "
                                           "ViT-Ti, each trained with its family's recipe of "
                                           "the preset: mean over the seeds with its 95 % "
                                           "interval, one dot per seed (Fig. 12a; F9)"),)
    # seed 0 first, then every study on its models, then the other seeds' repetitions
    first, repeats = [], []
    for k in range(SEEDS[preset]):
        (first if k == 0 else repeats).extend([
            Step(seeded("hessian", k), "hessian", ("--model", HESSIAN_MODELS, *hess),
                 hessian_fig if k == 0 else (), k),
            Step(seeded("alternet", k), "alternet", ("--model", "alternet-18,resnet-18,vit-ti"),
                 alternet_fig if k == 0 else (), k)])
    steps = first + [
        Step("subsets", "subsets", ("--model", "vit-ti,resnet-18", "--fractions", fractions,
                                    "--hessian-models", "vit-ti", *sub_hess,
                                    *(images if smoke else ())), (
            ("subsets.png", "training NLL (augmented) and test error against the fraction of "
                            "the training set, every fraction trained for the full set's "
                            "number of steps (Fig. 3; F5)"),
            ("subsets_hessian.png", "vit-ti's Hessian spectra per training-set fraction "
                                    "(Fig. 4; F3)"))),
        Step("pooling", "pooling", ("--model", "vit-ti", "--pools", pools, *land,
                                    *(("--num-batches", "3") if smoke else ())), (
            ("pooling_landscape.png", "vit-ti's loss landscapes with a class token and GAP "
                                      "(and SeqPool, MAP except at the quick preset) on the "
                                      "same directions' normalisation (Fig. 6)"),
            ("pooling_hessian.png", "the same models' Hessian spectra (Fig. 6; F4)"))),
        Step("fourier", "fourier", ("--model", three, *images), (
            ("fourier.png", "ΔlogAmplitude of the residual stream against frequency, one curve "
                            "per tap coloured by depth (Fig. 2a)"),
            ("fourier_depth.png", "high-frequency ΔlogAmplitude against depth, MSA taps shaded "
                                  "(Figs. 2a, 8; F6)"))),
        Step("variance", "variance", ("--model", three, *images), (
            ("variance.png", "feature-map variance against depth, MSA taps shaded "
                             "(Fig. 9; F8)"),)),
        Step("robustness", "robustness", ("--model", "vit-ti,resnet-18", *images,
                                          *(("--num-frequencies", "4", "--eps", "0.3,1")
                                            if smoke else ())), (
            ("robustness.png", "accuracy change under the paper's band-passed random noise "
                               "against its frequency, one panel per noise level (Fig. 2b; "
                               "F7)"),)),
        Step("alternet_search", "alternet", ("--search", "--data-fraction", search_fraction), (
            ("alternet_search.png", "the build rule: MSA replacements from the end of the "
                                    "network, kept (blue) while accuracy improves (Fig. 11)"),)),
        Step("landscape", "landscape", ("--model", "vit-ti,resnet-18", *land, "--trajectory"), (
            ("landscape.png", "2-D loss surfaces and 1-D slices along filter-normalised "
                              "directions, NLL + 0.05·Σ‖W‖ on augmented training data "
                              "(Fig. 1a)"),
            ("trajectory.png", "training trajectory from the cached checkpoints: the paper's "
                               "polar view and Li et al.'s PCA projection (Fig. 1b)"))),
        Step("attention", "attention", ("--model", "vit-ti",
                                        "--num-images", "32" if smoke else "256",
                                        *(("--show", "2") if smoke else ())), (
            ("attention_vit-ti.png", "rollout, Integrated Gradients and occlusion maps on test "
                                     "images"),
            ("attention_distance.png", "mean attention distance of every head against depth "
                                       "(ViT Fig. 7)"),
            ("position_vit-ti.png", "cosine similarity of the learned position embeddings "
                                    "(ViT Fig. 7)"))),
    ]
    # the studies on the cached seed-0 models before those that train more models; the
    # other seeds' repetitions before the studies no finding reads (pooling's figures of
    # Fig. 6, the build rule of Fig. 11): a run stopped part way has the most findings
    order = ("hessian", "alternet", "fourier", "variance", "robustness", "attention",
             "landscape", "subsets", "pooling", "alternet_search")
    steps = sorted(steps, key=lambda st: order.index(st.name))
    cut = order.index("pooling")
    return steps[:cut] + repeats + steps[cut:]


def run_steps(steps: list[Step], common: list[str], out: Path) -> None:
    """Run every step whose done-marker is missing or was written for other arguments; the
    marker records its arguments, minutes and where it ran (``done_markers``)."""
    for i, step in enumerate(steps, 1):
        argv = step.argv(common, out)
        marker = out / step.name / "done.json"
        if marker.is_file() and results.load_json(marker).get("argv") == argv:
            log.info("[%d/%d] %s: done before, reused", i, len(steps), step.name)
            continue
        print(f"[{i}/{len(steps)}] python -m studies.{step.study} {' '.join(argv)}", flush=True)
        t = time.perf_counter()
        code = import_module(f"studies.{step.study}").main(argv)
        if code:
            raise RuntimeError(f"studies.{step.study} exited with {code}")
        prov = results.provenance()
        results.save_json(marker, {"argv": argv, "seconds": time.perf_counter() - t,
                                   "ran_on": {k: prov[k] for k in ("device", "torch",
                                                                   "git_commit")}})


def done_markers(steps: list[Step], out: Path) -> dict[str, dict]:
    """The done-marker of each finished step, by step name."""
    return {st.name: results.load_json(marker) for st in steps
            if (marker := out / st.name / "done.json").is_file()}


def study_seconds(markers: dict[str, dict]) -> dict[str, float]:
    """Each finished study's wall time, read off its done-marker."""
    return {name: m.get("seconds", 0.0) for name, m in markers.items()}


# Figures made by other commands that the gallery lists when they are there.
EXTRA_FIGURES = (
    ("cct_quick.png", "cct-2-3x2's test accuracy against training minutes on the 2-core CPU "
                      "(CCT's headline; 90 % goal)", "python benchmarks/cct_quick.py"),
)


def gallery(steps: list[Step], table: str, figures_dir: Path, out: Path, preset: str,
            common_display: str, markers: dict[str, dict]) -> Path:
    """Copy every PNG to ``figures_dir`` and write its README: figure, what it shows, the
    command that regenerates it, where and how long the studies ran (their ``markers``), and
    the findings table."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# Figures gallery", "",
             f"Every figure and number here comes from one command (preset `{preset}`; it "
             f"trains what the checkpoint cache lacks and skips studies already done):", "",
             "```bash", f"python -m studies.reproduce --preset {preset}", "```", "",
             f"The numbers behind each figure are in `{out}/<study>/*.json` (config, seed, "
             "versions, git commit). The `quick` preset trains CNNs for one epoch and ViTs "
             "for two on Fashion-MNIST, not the paper's 300 CIFAR-100 epochs: read the "
             "magnitudes as this scale's, not the paper's.", ""]
    ran_on: dict[str, dict[str, list[str]]] = {}  # device and torch -> commit -> studies
    for name, m in markers.items():
        if "ran_on" in m:
            where = "{device}, torch {torch}".format(**m["ran_on"])
            commit = str(m["ran_on"]["git_commit"])[:12]
            ran_on.setdefault(where, {}).setdefault(commit, []).append(name)
    if ran_on:
        lines += ["The studies ran on: " + "; ".join(
            f"{where}, " + ", ".join(f"commit {c} ({', '.join(names)})"
                                     for c, names in commits.items())
            for where, commits in ran_on.items()) + ".", ""]
    rows = []
    for step in steps:
        for png, what in step.figures:
            src = out / step.name / png
            if src.is_file():
                shutil.copyfile(src, figures_dir / png)
                rows.append((png, what, step.command(common_display)))
    rows += [(png, what, command) for png, what, command in EXTRA_FIGURES
             if (figures_dir / png).is_file()]
    lines.append(results.markdown_table(["figure", "what it shows", "command"], (
        [f"![{png}]({png}) `{png}`", what, f"`{command}`"] for png, what, command in rows)))
    seconds = study_seconds(markers)
    total = sum(seconds.values()) / 60
    missing = [st.name for st in steps if st.name not in seconds]
    lines += ["", "## Findings (Park & Kim 2022, F1-F10)", ""]
    if missing:
        lines += [f"**This table comes from a regeneration stopped part way**: "
                  f"{len(seconds)} of {len(steps)} studies finished; not run: "
                  f"{', '.join(missing)}. Findings that need them are listed as not measured; "
                  f"rerunning the command resumes from the cache.", ""]
    lines += [f"Preset `{preset}`, {total:.0f} min of wall time in the processes that finished "
              f"the studies (trainings included; a study killed part way and resumed counts "
              f"only its last process's minutes); "
              f"verdicts from 95 % intervals: **holds** (the interval lies on the paper's "
              f"side), **contradicted** (on the other side), **unresolved** (it covers the "
              f"boundary).", "", table, "",
              "Minutes per study in the run that made them: " + ", ".join(
                  f"{k} {v / 60:.1f}" for k, v in seconds.items()) + "."]
    path = figures_dir / "README.md"
    results.atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return path


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="studies.reproduce", description=__doc__)
    p.add_argument("--preset", default="quick", choices=("smoke", "quick", "paper"))
    p.add_argument("--data", default=None,
                   help="data set (default: fashion-mnist; cifar100 for --preset paper)")
    p.add_argument("--data-dir", default=None, type=cli.existing_dir)
    p.add_argument("--download", action="store_true")
    p.add_argument("--seed", type=cli.seed, default=0)
    p.add_argument("--runs-dir", default="runs", type=cli.writable_dir)
    p.add_argument("--out", default=None, type=cli.writable_dir,
                   help="default: results/reproduce-<preset>")
    p.add_argument("--figures-dir", default=None,
                   help="default: figures/ for the quick preset, <out>/figures otherwise")
    p.add_argument("--device", default=None)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: rebuild the gallery and the findings table from the "
                        "studies finished so far (the others are listed as not measured)")
    args = p.parse_args(argv)
    cli.setup_logging(args.quiet)
    data = args.data or ("cifar100" if args.preset == "paper" else "fashion-mnist")
    out = Path(args.out or f"results/reproduce-{args.preset}")
    figures_dir = Path(args.figures_dir or ("figures" if args.preset == "quick"
                                            else out / "figures"))
    common = ["--preset", args.preset, "--data", data, "--seed", str(args.seed),
              "--runs-dir", args.runs_dir]
    common += ["--data-dir", args.data_dir] if args.data_dir else []
    common += ["--download"] if args.download else []
    common += ["--device", args.device] if args.device else []
    common += ["--quiet"] if args.quiet else []
    shown = f" --preset {args.preset}" + (f" --data {data}" if data != "fashion-mnist" else "")
    steps = plan(args.preset)
    t = time.perf_counter()
    if not args.report_only:
        run_steps(steps, common, out)
    markers = done_markers(steps, out)
    seconds = study_seconds(markers)
    findings.accuracy_figure(out, out / "alternet" / "alternet_seeds")
    rows = findings.findings(out)
    verdicts = args.preset != "smoke"  # smoke models are too small to say anything
    text = findings.markdown(rows, verdicts=verdicts)
    results.atomic_write_bytes(out / "findings.md", (text + "\n").encode())
    results.save_result(out / "findings.json", {"findings": [r.to_dict() for r in rows],
                                                "verdicts": verdicts,
                                                "study_seconds": seconds},
                        {**vars(args), "data": data}, args.seed)
    readme = gallery(steps, text, figures_dir, out, args.preset, shown, markers)
    print(text)
    if verdicts:
        counts = {v: sum(r.verdict == v for r in rows) for v in stats.VERDICTS}
        print(", ".join(f"{n} {v}" for v, n in counts.items()) +
              f"; {time.perf_counter() - t:.0f} s this run")
    else:
        print(f"pipeline check (smoke preset): no verdicts; {time.perf_counter() - t:.0f} s")
    print(f"findings: {out / 'findings.md'}\ngallery:  {readme}")
    print(json.dumps({k: round(v / 60, 1) for k, v in seconds.items()}))
    return 0


if __name__ == "__main__":
    cli.run(main)
