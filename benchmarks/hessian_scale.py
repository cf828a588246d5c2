"""Top-5 Hessian eigenpairs at scale, and what the solver costs beyond its own HVPs
(recorded as two results: ``eigsh_overhead`` and ``hessian_scale``).

1. Overhead: ``solvers.eigsh`` top-5 (largest magnitude, tol 1e-3 as in the paper's spectra)
   on the quick preset's trained vit-ti and resnet-18 (from the training cache, trained first
   if missing) and a batch of 16 augmented Fashion-MNIST images, with the default solver
   (basis in the model's float32, products kept) and with ``low_memory=True`` (float32
   basis, no kept products).
   The time inside the operator's products is measured around each one; overhead = the
   solve's wall time / that time (1.00 = the solver costs nothing beyond its HVPs). A first
   call (seed 0) pages the solver's buffers in; then one call per start vector (``--seeds``,
   the HVPs a solve needs vary with it) reuses them through a ``solvers.Workspace``, as
   ``spectra.spectrum`` does from one mini-batch to the next. The solver's own time is split
   into Gram-Schmidt, restarts, certification and the rest (the solvers' timing hook,
   ``Workspace(timed=True)``).
2. Scale: vit-b (86 M parameters, patch 4, 28 px, batch 16; at its initialisation, as
   training it on a CPU is out of reach) with no flag (the basis layout the solver picks from
   the free memory, recorded), on ``--device``, in a child process whose peak resident memory
   is read when it ends; its time, HVPs and each pair's residual.

python -m benchmarks.hessian_scale [--models vit-ti,resnet-18 | --models ""] [--skip-vit-b]
                                   [--seeds 0,1,2,3,4] [--ncv 20] [--device cpu] [--runs-dir runs]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.common import Headline, add_device, record
from vitprobe import hessian, solvers, stats
from vitprobe.studies.cache import trained_model
from vitprobe.studies.protocols import spectrum_loader
from vitprobe.studies.runspec import RunSpec, build
from vitprobe.studies.seeds import restore


class TimedOperator:
    """An operator that adds the wall time of each product to ``seconds``."""

    def __init__(self, H, verbose: bool = False) -> None:
        self.H, self.seconds, self.verbose = H, 0.0, verbose
        self.n, self.device, self.dtype = H.n, H.device, H.dtype

    @property
    def num_hvps(self) -> int:
        return self.H.num_hvps

    def _timed(self, fn, *a, **kw):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn(*a, **kw)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - t
        if self.verbose and self.H.num_hvps % 10 == 0:
            print(f"  {self.H.num_hvps} HVPs, {self.seconds:.0f} s inside them", file=sys.stderr,
                  flush=True)
        return out

    def matvec(self, v, out=None):
        return self._timed(self.H.matvec, v, out=out)

    def matmat(self, V):
        return self._timed(self.H.matmat, V)


GOAL = 1.10  # the solver's time over its HVPs' that the overhead rows are read against


def _overhead(rows: list[dict]) -> float:
    """The largest per-model mean overhead of the default layout's reused-workspace calls."""
    by: dict[str, list[float]] = {}
    for r in rows:
        if r.get("mode") == "default" and r["call"] == "workspace reused":
            by.setdefault(r["model"], []).append(r["overhead"])
    return max(sum(v) / len(v) for v in by.values())


HEADLINES = (
    Headline("eigsh_overhead", "top-5 solve's time / its HVPs' time (workspace reused, mean "
             "over start vectors), worst of vit-ti and resnet-18", _overhead, goal=GOAL,
             at_least=False),
    Headline("hessian_scale", "vit-b (86 M parameters) top-5 at tol 1e-3, no flag: peak "
             "resident memory", lambda rows: rows[0]["peak_rss_gib"], goal=12, at_least=False,
             unit=" GiB"),
)

def problem(name: str, trained: bool = True, device="cpu", runs_dir: str = "runs",
            preset: str = "quick", seed: int = 0, records: str | None = None):
    """The model (the preset's, trained or at its initialisation; with ``records``, the
    committed record's weights instead of the training cache's) in eval mode, and one batch
    of 16 augmented training images."""
    spec = RunSpec(model=name, data="fashion-mnist", preset=preset, seed=seed, progress=False,
                   device=str(device), runs_dir=runs_dir)
    if records and not restore(spec, Path(records)):
        raise SystemExit(f"{name}: no record of {spec.run_name} under {records}/{preset}")
    model = trained_model(spec)[0] if trained else build(spec)
    batch = tuple(t.to(device) for t in next(spectrum_loader(spec, 16, clean=False).iterate(0)))
    return model.to(device).eval(), batch


def timed_solve(H, ws: solvers.Workspace, seed: int, low_memory: bool | None = False,
                ncv: int | None = None, tol: float = 1e-3, verbose: bool = False) -> dict:
    """One top-5 solve through ``ws``: its seed, HVPs, wall time, the time inside its HVPs,
    the overhead, the solver's own time by section (the solvers' timing hook,
    ``solvers.timing``), residuals and eigenvalues. ``verbose``: progress lines as the HVPs
    go."""
    ws.timed, ws.low_memory, ws.ncv = True, low_memory, ncv
    r = solvers.eigsh(TimedOperator(H, verbose=verbose) if verbose else H, 5, tol=tol,
                      seed=seed, workspace=ws)
    t = r.timings
    return {"seed": seed, "layout": r.layout, "hvps": r.num_hvps, "seconds": r.seconds,
            "hvp_seconds": t["products"], "overhead": r.seconds / t["products"],
            **{f"{k}_seconds": t[k] for k in ("gram_schmidt", "restarts", "certify", "rest")},
            "max_residual": float(r.residuals.max()), "converged": bool(r.converged.all()),
            "eigenvalues": [round(float(e), 4) for e in r.eigenvalues]}


def solve(name: str, low_memory: bool | None, ncv: int | None, tol: float,
          seeds: tuple[int, ...] = (), device: str = "cpu", runs_dir: str = "runs") -> list[dict]:
    """Solves of the same problem through one ``solvers.Workspace``: the first (seed 0) pages
    its buffers in, one more per seed in ``seeds`` reuses them (as the paper's spectrum does
    per mini-batch). ``low_memory=None``: the layout the solver picks from the free memory."""
    model, batch = problem(name, trained=name != "vit-b", device=device, runs_dir=runs_dir)
    rows, ws = [], solvers.Workspace()
    with hessian.OperatorSpec(model, F.cross_entropy, batch).open() as H:
        for call, seed in enumerate((0, *seeds)):
            row = timed_solve(H, ws, seed, low_memory, ncv, tol, verbose=name == "vit-b")
            rows.append({"model": name, "parameters": H.n,
                         "mode": {None: "auto", True: "low_memory", False: "default"}[low_memory],
                         "call": "first" if call == 0 else "workspace reused", **row})
    return rows


def child(name: str, ncv: int | None, tol: float, device: str) -> dict:
    """Run one solve on ``device`` in a fresh process, in the layout the solver picks (no
    flag); its peak resident memory included (and on a GPU its peak device memory)."""
    cmd = [sys.executable, "-m", "benchmarks.hessian_scale", "--child", name, "--tol", str(tol),
           "--device", str(device)]
    cmd += ["--ncv", str(ncv)] if ncv else []
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    row = json.loads(out.strip().splitlines()[-1])
    row["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="vit-ti,resnet-18")
    p.add_argument("--skip-vit-b", action="store_true")
    p.add_argument("--seeds", default="0,1,2,3,4",
                   help="start vectors of the calls that reuse the workspace")
    p.add_argument("--ncv", type=int, default=None, help="basis size (default: the solver's)")
    p.add_argument("--tol", type=float, default=1e-3)
    add_device(p)
    p.add_argument("--runs-dir", default="runs", help="the training cache of the models")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    a.device = str(a.device)  # RunSpec and the child's command line take the name
    if a.child:
        row = solve(a.child, None, a.ncv, a.tol, device=a.device)[0]
        if torch.device(a.device).type == "cuda":
            row["peak_device_gib"] = torch.cuda.max_memory_allocated() / 2**30
        print(json.dumps(row))
        return
    print(f"{torch.get_num_threads()} threads; top-5 by magnitude, tol {a.tol:g}, batch 16")
    rows = []
    models = [m for m in a.models.split(",") if m]  # --models "": vit-b alone
    seeds = tuple(int(x) for x in a.seeds.split(","))
    for name in models:
        for low in (False, True):
            for row in solve(name, low, a.ncv, a.tol, seeds, device=a.device,
                             runs_dir=a.runs_dir):
                rows.append(row)
                print(f"{name:10s} {row['mode']:10s}, {row['call']:16s}, seed {row['seed']}: "
                      f"{row['seconds']:6.1f} s for {row['hvps']} HVPs ({row['hvp_seconds']:.1f} "
                      f"s inside them): overhead {row['overhead']:.3f}x (Gram-Schmidt "
                      f"{row['gram_schmidt_seconds']:.2f} s, restarts "
                      f"{row['restarts_seconds']:.2f} s, certify {row['certify_seconds']:.2f} s, "
                      f"rest {row['rest_seconds']:.2f} s), max residual "
                      f"{row['max_residual']:.1e}")
    def ratios(model, mode, call):
        return [r["overhead"] for r in rows
                if (r["model"], r["mode"], r["call"]) == (model, mode, call)]

    def reused(mode):  # mean and 95 % t interval over the seeds, against the 1.10x goal
        out = []
        for m in models:
            iv = stats.t_interval(ratios(m, mode, "workspace reused"))
            out.append(f"{m} {iv.format('.3f')}x (<= {GOAL:.2f}x: "
                       f"{stats.verdict(iv, 'below', GOAL)})")
        return ", ".join(out)

    if models:
        record("eigsh_overhead", rows, vars(a),
               summary=f"eigsh's time over its own HVPs', workspace reused as the spectrum does, "
                       f"mean [95 % interval] over seeds {a.seeds}: {reused('default')}; first "
                       f"call " + ", ".join(f"{m} {ratios(m, 'default', 'first')[0]:.3f}x"
                                            for m in models)
                       + f"; low_memory {reused('low_memory')}")
    if not a.skip_vit_b:
        row = child("vit-b", a.ncv, a.tol, a.device)
        print(f"vit-b ({row['parameters'] / 1e6:.1f} M parameters), {row['layout']}: peak "
              f"{row['peak_rss_gib']:.2f} GiB resident, {row['seconds']:.0f} s for "
              f"{row['hvps']} HVPs (overhead {row['overhead']:.3f}x), max residual "
              f"{row['max_residual']:.1e}, converged {row['converged']}")
        record("hessian_scale", [row], vars(a),
               summary=f"vit-b top-5, no flag ({row['layout']}): {row['peak_rss_gib']:.1f} GiB "
                       f"peak resident on {a.device}, max "
                       f"residual {row['max_residual']:.1e}")


if __name__ == "__main__":
    main()
