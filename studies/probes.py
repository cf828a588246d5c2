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
        models[spec.label], infos[spec.label] = trained_model(spec, args.checkpoint)
    test = vdata.load(args.data, "test", args.data_dir, args.download)
    g = torch.Generator().manual_seed(args.seed)
    idx = torch.randperm(len(test), generator=g)[:args.num_images]
    x = test.normalize(test.images[idx]).to(device)
    return models, x, test.targets[idx].to(device), infos


def profile_models(models: dict, x: torch.Tensor, infos: dict, profile, value: str,
                   what: str, fmt: str) -> tuple[dict, dict]:
    """Run a per-tap ``profile`` (fourier.profile, variance.profile) on every model in eval
    mode, print how ``value`` changes across MSA vs conv/MLP taps, and return the profiles
    and the result record."""
    from vitprobe.summary import change_by_kind

    profiles, record = {}, {}
    for label, model in models.items():
        with torch.no_grad():
            prof = profile(model.eval(), x)
        profiles[label] = prof
        s = change_by_kind(prof, value)
        record[label] = {"taps": prof, "summary": s, "run": infos[label]}
        print(f"{label}: mean change of {what(prof)} — MSA taps {s['msa']:{fmt}} "
              f"(n={s['n_msa']}), conv/MLP taps {s['conv_mlp']:{fmt}} (n={s['n_conv_mlp']})")
    return profiles, record
