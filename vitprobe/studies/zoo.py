"""The model zoo at a glance (DeiT/CaiT papers' throughput-vs-accuracy view): parameters,
MACs (torch.utils.flop_counter), inference and training images/s on this device, and test
accuracy where the checkpoint cache has the model.

vitprobe zoo [--model all|name,name] [--batch-size 32]
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from vitprobe import data as vdata
from vitprobe import plots, results
from vitprobe.models import list_models

from . import cli
from .cache import run_metrics
from .config import StudyConfig, StudyResult, option
from .runspec import RunSpec, build


def macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    return fc.get_total_flops() // 2


def images_per_second(model, x, y, train: bool, seconds: float = 2.0) -> float:
    model.train(train)
    opt = torch.optim.SGD(model.parameters(), lr=0.0) if train else None

    def step():
        if train:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
        else:
            with torch.no_grad():
                model(x)

    step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += len(x)
    if x.is_cuda:
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


@dataclass(frozen=True)
class ZooConfig(StudyConfig):
    STUDY: ClassVar[str] = "zoo"

    model: str = option("all", "model name(s), comma-separated, or all (the registry)")
    batch_size: int = option(32, "images per timed forward/backward pass",
                             check=cli.positive_int)
    seconds: float = option(2.0, "timing per measurement", check=cli.positive_number)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.refuse(checkpoint="the zoo times untrained models and reads accuracies from the "
                               "cache")


@dataclass(kw_only=True)
class ZooResult(StudyResult):
    """One row per model: parameters, MACs, inference and training images per second, and
    the cached run's test accuracy (None when not trained)."""

    FILE: ClassVar[str] = "zoo.json"


def run(config: ZooConfig) -> ZooResult:
    """Size, cost and speed of every model ``config`` names; saved to ``config.out`` with a table
    and a figure."""
    device = cli.resolve_device(config.device)
    names = list_models() if config.model == "all" else config.model.split(",")
    info = vdata.dataset_info(config.data, config.data_dir)
    x = torch.randn(config.batch_size, info.in_chans, info.img_size, info.img_size, device=device)
    y = torch.randint(0, info.num_classes, (config.batch_size,), device=device)
    rows = []
    for name in names:
        spec = RunSpec.from_config(config, name, device)
        model = build(spec).to(device)
        metrics = run_metrics(spec.run_dir)
        acc = metrics[-1].get("test_acc") if metrics else None
        row = {"model": name, "params": sum(q.numel() for q in model.parameters()),
               "macs": macs(model.eval(), x[:1]),
               "infer_img_s": images_per_second(model, x, y, False, config.seconds),
               "train_img_s": images_per_second(model, x, y, True, config.seconds),
               "test_acc": acc}
        rows.append(row)
        print(f"{name:18s} {row['params'] / 1e6:6.2f} M  {row['macs'] / 1e6:8.1f} MMACs  "
              f"infer {row['infer_img_s']:7.1f} img/s  train {row['train_img_s']:6.1f} img/s  "
              f"acc {'%.2f %%' % (100 * acc) if acc is not None else 'n/a'}")
    out = Path(config.out)
    lines = [f"Device: {device}, batch {config.batch_size}, {config.data} inputs "
             f"({info.in_chans}x{info.img_size}x{info.img_size}), preset {config.preset}", "",
             results.markdown_table(
                 ["model", "params (M)", "MMACs", "inference img/s", "training img/s",
                  "test acc"],
                 ([r["model"], f"{r['params'] / 1e6:.2f}", f"{r['macs'] / 1e6:.1f}",
                   f"{r['infer_img_s']:.1f}", f"{r['train_img_s']:.1f}",
                   f"{100 * r['test_acc']:.2f} %" if r["test_acc"] is not None else "—"]
                  for r in rows))]
    results.atomic_write_bytes(out / "zoo.md", ("\n".join(lines) + "\n").encode())
    result = ZooResult(record=rows, config=config.to_dict())
    path = result.save(out)
    fig = plots.zoo_figure(rows, out / "zoo")
    print(f"table: {out / 'zoo.md'}\nresults: {path}\nfigure: {fig[0]} (+ .pdf)")
    return result


def main(argv: list[str] | None = None) -> int:
    config = ZooConfig.parse(argv, __doc__)
    cli.setup_logging(config.quiet)
    run(config)
    return 0


if __name__ == "__main__":
    cli.run(main)
