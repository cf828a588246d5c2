"""Hessian trace at an equal HVP budget, ours (Hutch++) vs PyHessian (Hutchinson), on the same
trained model and mini-batch (batch 16, Fashion-MNIST): root-mean-square error over seeds
against a many-probe reference.

python -m benchmarks.trace_vs_pyhessian [--models vit-ti,resnet-18] [--preset quick]
    [--budget 30] [--reference 200] [--repeats 5] [--device cpu] [--runs-dir runs]
Goal: a smaller error than PyHessian's at the same budget on every model.
Models come from the training cache (trained first if missing).
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import Headline, add_device, record
from benchmarks.hessian_scale import problem
from vitprobe import hessian
from vitprobe.modes import explicit_attention

HEADLINES = (Headline("trace_vs_pyhessian", "trace at an equal HVP budget: PyHessian's RMS "
                      "error over seeds / ours (Hutch++), worst model",
                      lambda rows: min(r["error ratio"] for r in rows), goal=1,
                      at_least=True),)


def main() -> None:
    from pyhessian import hessian as PyHessian

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="vit-ti,resnet-18")
    p.add_argument("--preset", default="quick")
    p.add_argument("--budget", type=int, default=30, help="HVPs per trace estimate")
    p.add_argument("--reference", type=int, default=200,
                   help="Hutchinson probes for the reference trace")
    p.add_argument("--repeats", type=int, default=5,
                   help="seeds per estimator (RMS error over them)")
    add_device(p)
    p.add_argument("--runs-dir", default="runs", help="the training cache of the models")
    a = p.parse_args()
    torch.manual_seed(0)
    rows = []
    for name in a.models.split(","):
        model, batch = problem(name, device=a.device, runs_dir=a.runs_dir, preset=a.preset)
        # one estimate's error is mostly luck: compare root-mean-square errors over seeds
        ref = hessian.trace(model, F.cross_entropy, batch, num_probes=a.reference,
                            method="hutchinson", seed=123)
        ours_err, peer_err = [], []
        m = copy.deepcopy(model)
        with explicit_attention(m):
            h = PyHessian(m, F.cross_entropy, data=batch, cuda=a.device.type == "cuda")
            for seed in range(a.repeats):
                ours_err.append(hessian.trace(model, F.cross_entropy, batch, num_probes=a.budget,
                                              seed=1000 + seed).estimate - ref.estimate)
                torch.manual_seed(1000 + seed)  # PyHessian draws its probes from torch's RNG
                peer_err.append(float(np.mean(h.trace(maxIter=a.budget, tol=1e-3)))
                                - ref.estimate)
        rms = {k: float(np.sqrt(np.mean(np.square(e))))
               for k, e in (("ours", ours_err), ("peer", peer_err))}
        print(f"{name}: reference {ref.estimate:.4g} +- {ref.stderr:.2g} ({a.reference} probes); "
              f"RMS error over {a.repeats} seeds at {a.budget} HVPs: Hutch++ {rms['ours']:.3g}, "
              f"PyHessian {rms['peer']:.3g}, ratio {rms['peer'] / max(rms['ours'], 1e-12):.2f}x")
        rows.append({"model": name, "reference": ref.estimate, "reference stderr": ref.stderr,
                     "ours RMS error": rms["ours"], "PyHessian RMS error": rms["peer"],
                     "error ratio": rms["peer"] / max(rms["ours"], 1e-12)})
    record("trace_vs_pyhessian", rows, vars(a),
           "Hessian trace estimates at an equal HVP budget, Hutch++ vs PyHessian's "
           "Hutchinson, RMS error over seeds.")


if __name__ == "__main__":
    main()
