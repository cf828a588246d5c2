"""CCT's headline on a CPU: cct-2-3x2 trained on Fashion-MNIST with the quick recipe for a
wall-clock budget (default 10 minutes), then its test accuracy.

python -m benchmarks.cct_quick [--minutes 10] [--model cct-2-3x2] [--runs-dir runs]
                               [--device cpu]
Goal: >= 90 % test accuracy after 10 minutes on the 2-core CPU.

The budget becomes a number of epochs before training starts, so the cosine schedule ends on
time: a calibration pass (2 % of the training set, same recipe) measures images/s, and
epochs = floor(budget x images/s / training-set size), at least 1. Per-epoch test accuracy
and wall time go to ``<run>/metrics.jsonl``; the figure (accuracy against minutes) to
``--out``. Rerunning the same command resumes an interrupted run.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.common import Headline, add_device, record
from vitprobe import results
from vitprobe.studies import cache, runspec
from vitprobe.train import TrainConfig, fit

HEADLINES = (Headline("cct_quick", "cct-2-3x2's Fashion-MNIST test accuracy after a 10-minute "
                      "training budget", lambda rows: rows[0]["test accuracy %"], goal=90,
                      at_least=True, unit=" %"),)


def calibrate(spec: runspec.RunSpec, recipe) -> float:
    """Training images/s of ``spec``'s model under ``recipe`` (2 % of the data, no test)."""
    probe = replace(spec, data_fraction=0.02)
    train_loader, _ = runspec.loaders(probe)
    model = runspec.build(probe)
    t = time.perf_counter()
    fit(model, train_loader, None, TrainConfig(replace(recipe, epochs=1), progress=False,
                                               device=spec.device))
    return len(train_loader) * recipe.batch_size / (time.perf_counter() - t)


def figure(metrics: list[dict], label: str, path: Path) -> list[Path]:
    from vitprobe.plots import plt, save

    minutes = [sum(m["epoch_seconds"] for m in metrics[:i + 1]) / 60 for i in range(len(metrics))]
    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.plot(minutes, [100 * m["test_acc"] for m in metrics], "o-", label=label)
    ax.axhline(90, color="gray", ls="--", lw=0.8, label="goal 90 %")
    ax.set_xlabel("training minutes (2-core CPU)")
    ax.set_ylabel("Fashion-MNIST test accuracy (%)")
    ax.legend(fontsize=7)
    return save(fig, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--model", default="cct-2-3x2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--out", default="results/cct_quick")
    add_device(p)
    a = p.parse_args()
    spec = runspec.RunSpec(model=a.model, seed=a.seed, runs_dir=a.runs_dir, device=str(a.device))
    run_dir = spec.run_dir.with_name(f"{spec.run_name}-{a.minutes:g}min")
    plan_path = run_dir / "config.json"
    recipe = spec.recipe()
    config = runspec.run_config(spec)
    try:  # a run made with another recipe or an unseeded initialisation is not resumed
        cache._check_cached_recipe(run_dir, config)
    except ValueError as e:
        print(f"cct_quick: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    train_loader, test_loader = runspec.loaders(spec)
    if plan_path.is_file():  # a resumed run keeps the plan it started with
        plan = results.load_json(plan_path)["results"]
    else:
        ips = calibrate(spec, recipe)
        n_train = len(train_loader.data)
        epochs = max(1, math.floor(a.minutes * 60 * ips / n_train))
        plan = {"images_per_s": ips, "epochs": epochs, "minutes": a.minutes}
        results.save_result(plan_path, plan, config, a.seed)
    print(f"{a.model}: calibrated {plan['images_per_s']:.0f} images/s -> {plan['epochs']} "
          f"epochs of the quick recipe in {a.minutes:g} min", flush=True)
    recipe = replace(recipe, epochs=plan["epochs"])
    model = runspec.build(spec)
    metrics = fit(model, train_loader, test_loader,
                  TrainConfig(recipe, seed=a.seed, device=spec.device), run_dir)
    minutes = sum(m["epoch_seconds"] for m in metrics) / 60
    for m in metrics:
        print(f"  epoch {m['epoch']}: test accuracy {100 * m['test_acc']:.2f} %")
    acc = metrics[-1]["test_acc"]
    out = Path(a.out)
    results.save_result(out / "cct_quick.json", {"metrics": metrics, "test_acc": acc,
                                                 "train_minutes": minutes, **plan},
                        {"spec": spec, "recipe": recipe}, a.seed)
    files = figure(metrics, a.model, out / "cct_quick")
    print(f"{a.model}: test accuracy {100 * acc:.2f} % after {minutes:.1f} min of training "
          f"({plan['epochs']} epochs); goal >= 90 %: {'met' if acc >= 0.9 else 'NOT met'}")
    print(f"figure: {files[0]}")
    record("cct_quick", [{"model": a.model, "epochs": plan["epochs"],
                          "train minutes": minutes, "test accuracy %": 100 * acc,
                          "goal 90 % met": acc >= 0.9}], vars(a),
           f"{a.model}'s test accuracy after a {a.minutes:g}-minute training budget on "
           f"Fashion-MNIST (the CCT paper's headline at this scale; goal >= 90 %).")


if __name__ == "__main__":
    main()
