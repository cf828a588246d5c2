"""Train a model into the checkpoint cache and print its test accuracy.

python -m studies.train --model vit-ti --data fashion-mnist --preset quick
"""

from __future__ import annotations

import time

from . import cli
from .cache import RunSpec, trained_model


def main(argv: list[str] | None = None) -> int:
    p = cli.base_parser("studies.train", __doc__)
    p.add_argument("--teacher", default=None, help="distil from this model (DeiT)")
    p.add_argument("--distill", choices=("hard", "soft"), default="soft")
    p.add_argument("--alpha", type=float, default=0.5, help="soft distillation weight")
    p.add_argument("--tau", type=float, default=1.0, help="soft distillation temperature")
    args = p.parse_args(argv)
    cli.setup_logging(args.quiet)
    device = cli.resolve_device(args.device)
    t0 = time.monotonic()
    for name in cli.model_names(args):
        spec = RunSpec.from_args(args, name, device)
        spec.teacher, spec.distill, spec.alpha, spec.tau = (args.teacher, args.distill,
                                                            args.alpha, args.tau)
        _, info = trained_model(spec, args.checkpoint)
        last = info.get("metrics", [{}])[-1] if info.get("metrics") else {}
        acc = last.get("test_acc")
        print(f"{name}: test accuracy {acc:.4f}" if acc is not None else f"{name}: trained",
              f"({spec.run_dir}, {time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    cli.run(main)
