"""GAP against the class token on the same data, seed and recipe (Park & Kim 2022, Fig. 6):
Hessian spectra side by side, from Python through the typed study API.

python examples/gap_vs_cls.py                   # smoke preset: tiny models, a minute on CPU
python examples/gap_vs_cls.py --preset quick    # vit-ti on Fashion-MNIST, ~30 min on 2 cores
"""

from __future__ import annotations

import argparse
import tempfile

from vitprobe.studies.hessian import HessianConfig, run


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="smoke", help="smoke or quick (default: smoke)")
    p.add_argument("--data", default="synthetic",
                   help="synthetic (default, generated) or fashion-mnist")
    p.add_argument("--out", default=None, help="results folder (default: a temporary one)")
    p.add_argument("--runs-dir", default="runs", help="the checkpoint cache")
    args = p.parse_args(argv)
    small = args.preset == "smoke"
    config = HessianConfig(model="vit-ti", pool="cls,gap", preset=args.preset, data=args.data,
                           num_batches=3 if small else None, k=3 if small else 5,
                           out=args.out or tempfile.mkdtemp(prefix="vitprobe-gap-"),
                           runs_dir=args.runs_dir, quiet=True)
    print(config.command())
    result = run(config)
    for label in result.labels:
        s = result.spectrum(label)
        print(f"{label}: NEP {s.nep():.3f} (share of negative eigenvalues), APE {s.ape():.4g} "
              f"(mean positive eigenvalue), {int(s.converged.sum())}/{s.converged.size} pairs "
              f"converged")


if __name__ == "__main__":
    main()
