"""Train a model into the checkpoint cache and print its test accuracy.

python -m studies.train --model vit-ti --data fashion-mnist --preset quick
"""

from __future__ import annotations

import time

from vitprobe import cli

from .cache import RunSpec, trained_model


def main(argv: list[str] | None = None) -> int:
    p = cli.base_parser("studies.train", __doc__.splitlines()[0])
    args = p.parse_args(argv)
    cli.setup_logging(args.quiet)
    device = cli.resolve_device(args.device)
    t0 = time.monotonic()
    for name in args.model.split(","):
        spec = RunSpec(model=name, data=args.data, preset=args.preset, seed=args.seed,
                       pool=args.pool, data_fraction=args.data_fraction, data_dir=args.data_dir,
                       download=args.download, runs_dir=args.runs_dir, device=device,
                       progress=not args.quiet)
        _, info = trained_model(spec, args.checkpoint)
        last = info.get("metrics", [{}])[-1] if info.get("metrics") else {}
        acc = last.get("test_acc")
        print(f"{name}: test accuracy {acc:.4f}" if acc is not None else f"{name}: trained",
              f"({spec.run_dir}, {time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    cli.run(main)
