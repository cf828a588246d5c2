"""The thick restart's column groups, side by side in whole solves (recorded as
``restart_groups``).

At a restart, ``lanczos._combine_rows_`` forms the kept Ritz vectors (and their kept HVPs)
``group`` column blocks at a time: a batched product into a buffer, then a copy into place.
Small groups count on the buffer still being in cache for the copy; large groups make fewer,
larger calls. Which side wins depends on the state the machine is in, and a bench of the
combine alone does not see the state that the solve's HVPs leave behind. So this times whole
top-5 solves as ``hessian_scale.py`` does (tol 1e-3, batch 16, one ``Workspace``), one per
seed and group size in turn, and reports per group the restarts' seconds and the solver's
overhead (its time over its HVPs') with the mean and 95 % t interval over the seeds.

python benchmarks/restart_groups.py [--model resnet-18] [--groups 8,32,64,128]
                                    [--seeds 0,1,2,3,4] [--runs-dir runs]
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import record  # noqa: E402
from hessian_scale import problem, timed_solve  # noqa: E402

from vitprobe import hessian, solvers, stats  # noqa: E402
from vitprobe.solvers import lanczos  # noqa: E402


def solve_with_group(H, ws: solvers.Workspace, group: int, seed: int) -> dict:
    """One timed top-5 solve whose restarts combine ``group`` column blocks at a time."""
    combine = lanczos._combine_rows_
    lanczos._combine_rows_ = functools.partial(combine, group=group)
    try:
        return {"group": group, **timed_solve(H, ws, seed)}
    finally:
        lanczos._combine_rows_ = combine


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet-18")
    p.add_argument("--groups", default="8,32,64,128")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--runs-dir", default="runs", help="the training cache of the model")
    args = p.parse_args()
    groups = [int(g) for g in args.groups.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"{torch.get_num_threads()} threads; {args.model}, top-5, tol 0.001, batch 16; "
          f"groups {groups} in turn per seed", flush=True)
    model, batch = problem(args.model, trained=True, runs_dir=args.runs_dir)
    rows, ws = [], solvers.Workspace()
    with hessian.operator(model, F.cross_entropy, batch) as H:
        solvers.eigsh(H, 5, tol=1e-3, seed=seeds[0], workspace=ws)  # pages the buffers in
        for seed in seeds:
            for group in groups:
                row = {"model": args.model, "parameters": H.n,
                       **solve_with_group(H, ws, group, seed)}
                rows.append(row)
                print(f"seed {seed}, group {group:4d}: {row['hvps']} HVPs, overhead "
                      f"{row['overhead']:.3f}x, restarts {row['restarts_seconds']:.2f} s, "
                      f"max residual {row['max_residual']:.1e}", flush=True)
    parts = []
    for group in groups:
        mine = [r for r in rows if r["group"] == group]
        ci = stats.t_interval([r["overhead"] for r in mine])
        restarts = np.mean([r["restarts_seconds"] for r in mine])
        parts.append(f"group {group}: {ci.format('.3f')}x, restarts {restarts:.2f} s")
    spread = max(np.ptp([r["eigenvalues"] for r in rows if r["seed"] == s], axis=0).max()
                 for s in seeds)
    summary = (f"{args.model}: eigsh's time over its own HVPs' by the restart's column group, "
               f"mean [95 % interval] over seeds {args.seeds} (workspace reused): "
               + "; ".join(parts)
               + f"; largest difference of an eigenvalue between groups {spread:.1e}")
    print(summary)
    record("restart_groups", rows, vars(args), summary)


if __name__ == "__main__":
    main()
