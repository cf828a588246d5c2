"""What the feature-probe studies share: trained models for a ``--model`` list, and a batch
of clean test images."""

from __future__ import annotations

import torch

from vitprobe import cli
from vitprobe import data as vdata

from .cache import RunSpec, trained_model


def feature_parser(prog: str, doc: str) -> cli.ArgumentParser:
    p = cli.base_parser(prog, doc.splitlines()[0])
    p.add_argument("--num-images", type=int, default=256, help="test images to probe with")
    return p


def models_and_images(args) -> tuple[dict[str, torch.nn.Module], torch.Tensor, torch.Tensor,
                                     dict[str, dict]]:
    device = cli.resolve_device(args.device)
    if args.num_images < 2:
        raise ValueError(f"--num-images must be >= 2; got {args.num_images}")
    models, infos = {}, {}
    for name in [m for m in args.model.split(",") if m]:
        spec = RunSpec.from_args(args, name, device)
        label = spec.model + (f" ({spec.pool})" if spec.pool else "")
        models[label], infos[label] = trained_model(spec, args.checkpoint)
    test = vdata.load(args.data, "test", args.data_dir, args.download)
    g = torch.Generator().manual_seed(args.seed)
    idx = torch.randperm(len(test), generator=g)[:args.num_images]
    x = test.normalize(test.images[idx]).to(device)
    return models, x, test.targets[idx].to(device), infos
