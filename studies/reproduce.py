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
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from models.vit import POOLS
from vitprobe import results
from vitprobe.train import PRECISIONS

from . import cli, findings, presets

log = logging.getLogger("studies.reproduce")


@dataclass(frozen=True)
class Step:
    name: str          # its result folder
    study: str         # the studies.<module> it runs
    args: tuple        # its own arguments (the common ones and --seed are added)
    figures: tuple     # (png name, what it shows) pairs for the gallery
    seed: int = 0      # the training seed: the replication unit of the findings

    def argv(self, common: list[str], out: Path) -> list[str]:
        return [*self.args, *common, "--seed", str(self.seed), "--out", str(out / self.name)]

    def command(self, common_display: str) -> str:
        return (f"python -m studies.{self.study} {' '.join(self.args)}{common_display} "
                f"--seed {self.seed}").strip()


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
    hess = ("--num-batches", "3", "--k", "2", "--tol", "0.1") if smoke else ()
    sub_hess = ("--num-batches", "3") if smoke else ()
    # each fraction trains for the full set's number of steps: the paper's 6 % subset (F3,
    # F5) against the full set
    fractions = "0.5,1.0" if smoke else "0.06,1.0"
    images = ("--num-images", "32") if smoke else ("--num-images", "1000")
    land = ("--steps", "3", "--num-images", "32") if smoke else \
        ("--steps", "9", "--num-images", "128")
    three = f"{vit},{res},{alt}"
    pools = "cls,gap" if preset in ("quick", "small") else ",".join(POOLS)

    def per_seed(k: int) -> list[Step]:
        first = k == first_seed
        return [
            Step(seeded("hessian", k), "hessian",
                 ("--model", f"{vit},{vit}@gap,{res},{pre},{alt}", *hess), (
                     ("hessian.png", "Hessian max-eigenvalue spectra (top-5 by magnitude per "
                                     "mini-batch of 16 augmented training images, NLL + l2), "
                                     "negative and positive panels; seed " + str(k) +
                                     " (Figs. 1c, 4, 6, 12c)"),) if first else (), k),
            Step(seeded("alternet", k), "alternet", ("--model", f"{alt},{pre},{res},{vit}"),
                 (), k),
            Step(seeded("fourier", k), "fourier", ("--model", three, *images), (
                ("fourier.png", f"ΔlogAmplitude of the residual stream against frequency, one "
                                f"curve per tap coloured by depth; seed {k} (Fig. 2a)"),)
                 if first else (), k),
            Step(seeded("variance", k), "variance", ("--model", three, *images), (), k),
            Step(seeded("robustness", k), "robustness", (
                "--model", f"{vit},{res}", *images,
                *(("--num-frequencies", "4", "--eps", "0.3,1") if smoke else ())), (), k),
            Step(seeded("subsets", k), "subsets", (
                "--model", f"{vit},{res}", "--fractions", fractions, "--hessian-models", vit,
                *sub_hess, *(images if smoke else ())), (
                ("subsets_hessian.png", f"{vit}'s Hessian spectra per training-set fraction; "
                                        f"seed {k} (Fig. 4; F3)"),) if first else (), k),
        ]

    once = [
        Step("landscape", "landscape", ("--model", f"{vit},{res}", *land, "--trajectory"), (
            ("landscape.png", "2-D loss surfaces and 1-D slices along filter-normalised "
                              "directions, NLL + 0.05·Σ‖W‖ on augmented training data "
                              "(Fig. 1a)"),
            ("trajectory.png", "training trajectory from the cached checkpoints: the paper's "
                               "polar view and Li et al.'s PCA projection (Fig. 1b)")),
             first_seed),
        Step("attention", "attention", ("--model", vit, "--num-images", "32" if smoke else "256",
                                        *(("--show", "2") if smoke else ())), (
            (f"attention_{vit}.png", "rollout, Integrated Gradients and occlusion maps on test "
                                     "images"),
            ("attention_distance.png", "mean attention distance of every head against depth "
                                       "(ViT Fig. 7)"),
            (f"position_{vit}.png", "cosine similarity of the learned position embeddings "
                                    "(ViT Fig. 7)")), first_seed),
        Step("pooling", "pooling", ("--model", vit, "--pools", pools, *land,
                                    *(("--num-batches", "3") if smoke else ())), (
            ("pooling_landscape.png", f"{vit}'s loss landscapes with a class token and GAP "
                                      f"(and SeqPool, MAP at the paper preset) on the same "
                                      f"directions' normalisation (Fig. 6)"),
            ("pooling_hessian.png", "the same models' Hessian spectra (Fig. 6)")), first_seed),
    ]
    if preset not in ("small",):  # the build rule trains many AlterNets: not at small
        once.append(Step("alternet_search", "alternet", (
            "--search", "--data-fraction", "0.5" if smoke else "0.1"), (
            ("alternet_search.png", "the build rule: MSA replacements from the end of the "
                                    "network, kept (blue) while accuracy improves (Fig. 11)"),),
            first_seed))
    steps = [st for k in seeds for st in per_seed(k)]
    return steps + (once if first_seed in seeds else [])


def run_steps(steps: list[Step], common: list[str], out: Path) -> None:
    """Run every step whose done-marker is missing or was written for other arguments; the
    marker records its arguments, minutes, where it ran and the code that ran it
    (``results.code_identity``)."""
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


def gallery(steps: list[Step], table: str, figures_dir: Path, out: Path, preset: str,
            common_display: str, markers: dict[str, dict], extra: list[tuple[str, str]],
            seeds: tuple[int, ...], mixed: bool) -> Path:
    """Copy every PNG to ``figures_dir`` and write its README: a header naming the commit,
    code and preset behind it, figure by figure what it shows and the command that
    regenerates it, the findings table and the minutes per study. ``extra``: (png, what)
    figures ``reproduce`` drew itself into ``figures_dir``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    seeds_text = ",".join(map(str, seeds))
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
             "```bash", f"python -m studies.reproduce --preset {preset} --seeds {seeds_text}",
             "```", "",
             f"The numbers behind each figure are in `{out}/<study>-s<seed>/*.json` (config, "
             "seed, versions, git commit), the findings in `findings.json` beside this file. "
             "Models are trained on 28-px Fashion-MNIST, not the paper's 300 CIFAR-100 "
             "epochs: read the magnitudes as this scale's, not the paper's.", ""]
    rows = [(png, what, "`python -m studies.reproduce --preset "
                        f"{preset} --seeds {seeds_text}` (drawn from every seed)")
            for png, what in extra]
    for step in steps:
        for png, what in step.figures:
            src = out / step.name / png
            if src.is_file():
                shutil.copyfile(src, figures_dir / png)
                rows.append((png, what, f"`{step.command(common_display)}`"))
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


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="studies.reproduce", description=__doc__)
    p.add_argument("--preset", default="quick", choices=presets.PRESETS,
                   help="smoke: pipeline check; quick: minutes per model; small: the "
                        "findings over seeds on a 2-core CPU; paper: GPUs")
    p.add_argument("--seeds", type=parse_seeds, default=None,
                   help="training seeds, e.g. 0,1,2 or 0-4; one at a time (--seeds 0, then "
                        "--seeds 1 ...) spreads a run over sittings, then --report-only "
                        "--seeds 0,1,2 decides the findings (default: the preset's: "
                        "smoke 0, quick 0,1, small and paper 0,1,2)")
    p.add_argument("--data", default=None,
                   help="data set (default: fashion-mnist; cifar100 for --preset paper)")
    p.add_argument("--data-dir", default=None, type=cli.existing_dir,
                   help="folder holding the data set's files (default: the system's)")
    p.add_argument("--download", action="store_true", help="allow a torchvision download")
    p.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="training precision (default: the preset's)")
    p.add_argument("--runs-dir", default="runs", type=cli.writable_dir)
    p.add_argument("--out", default=None, type=cli.writable_dir,
                   help="default: results/reproduce-<preset>")
    p.add_argument("--figures-dir", default=None,
                   help="default: the committed gallery figures/ for the small preset "
                        "without --out, <out>/figures otherwise")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if there)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: rebuild the gallery and the findings table from the "
                        "studies finished so far (the others are listed as not measured)")
    p.add_argument("--allow-mixed", action="store_true",
                   help="render a gallery from studies computed by different code (the "
                        "header says so); refused otherwise")
    args = p.parse_args(argv)
    cli.setup_logging(args.quiet)
    seeds = args.seeds or SEEDS[args.preset]
    data = args.data or ("cifar100" if args.preset == "paper" else "fashion-mnist")
    out = Path(args.out or f"results/reproduce-{args.preset}")
    # everything lands under --out when it is given: the committed gallery is written only
    # by the small preset's default run (or by an explicit --figures-dir)
    figures_dir = Path(args.figures_dir or ("figures" if args.preset == "small" and not args.out
                                            else out / "figures"))
    common = ["--preset", args.preset, "--data", data, "--runs-dir", args.runs_dir]
    common += ["--data-dir", args.data_dir] if args.data_dir else []
    common += ["--download"] if args.download else []
    common += ["--precision", args.precision] if args.precision else []
    common += ["--device", args.device] if args.device else []
    common += ["--quiet"] if args.quiet else []
    shown = f" --preset {args.preset}" + (f" --data {data}" if data != "fashion-mnist" else "")
    shown += f" --precision {args.precision}" if args.precision else ""
    steps = plan(args.preset, seeds)
    t = time.perf_counter()
    if not args.report_only:
        run_steps(steps, common, out)
    markers = done_markers(steps, out)
    check_one_code(markers, args.allow_mixed)
    mixed = len(code_identities(markers)) > 1
    context = findings.Context(out, seeds, args.preset, data, args.runs_dir, args.data_dir,
                               args.precision)
    rows = findings.findings(context)
    verdicts = args.preset != "smoke"  # smoke models are too small to say anything
    text = findings.markdown(rows, verdicts=verdicts)
    extra = findings.figures(context, rows, figures_dir)
    record = {"findings": [r.to_dict() for r in rows], "verdicts": verdicts,
              "rule": findings.RULE, "preset": args.preset, "seeds": list(seeds),
              "precision": args.precision or "the preset's",
              "study_seconds": {k: m.get("seconds") for k, m in markers.items()},
              "computed_by": {k: m.get("ran_on") for k, m in markers.items()},
              "mixed_code": mixed}
    results.atomic_write_bytes(out / "findings.md", (text + "\n").encode())
    for folder in {out, figures_dir}:
        results.save_result(folder / "findings.json", record, {**vars(args), "data": data,
                                                               "seeds": list(seeds)}, None)
    readme = gallery(steps, text, figures_dir, out, args.preset, shown, markers, extra, seeds,
                     mixed)
    print(text)
    counts = {v: sum(r.verdict == v for r in rows) for v in findings.ALL_VERDICTS}
    print(("verdicts: " if verdicts else "pipeline check (smoke preset), no verdicts: ") +
          ", ".join(f"{n} {v}" for v, n in counts.items() if n) +
          f"; {time.perf_counter() - t:.0f} s this run")
    print(f"findings: {figures_dir / 'findings.json'}\ngallery:  {readme}")
    print("minutes per study: " + ", ".join(f"{k} {m.get('seconds', 0) / 60:.1f}"
                                            for k, m in markers.items()))
    return 0


if __name__ == "__main__":
    cli.run(main)
