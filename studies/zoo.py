"""The model zoo at a glance (DeiT/CaiT papers' throughput-vs-accuracy view): parameters,
MACs (torch.utils.flop_counter), inference and training images/s on this device, and test
accuracy where the checkpoint cache has the model.

python -m studies.zoo [--model all|name,name] [--batch-size 32]
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from models import list_models
from vitprobe import data as vdata
from vitprobe import plots, results

from . import cli
from .cache import RunSpec, build, run_metrics


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


def main(argv: list[str] | None = None) -> int:
    p = cli.base_parser("studies.zoo", __doc__)
    p.set_defaults(model="all")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seconds", type=float, default=2.0, help="timing per measurement")
    args = p.parse_args(argv)
    cli.setup_logging(args.quiet)
    device = cli.resolve_device(args.device)
    names = list_models() if args.model == "all" else args.model.split(",")
    info = vdata.dataset_info(args.data)
    x = torch.randn(args.batch_size, info.in_chans, info.img_size, info.img_size, device=device)
    y = torch.randint(0, info.num_classes, (args.batch_size,), device=device)
    rows = []
    for name in names:
        spec = RunSpec.from_args(args, name, device)
        model = build(spec).to(device)
        metrics = run_metrics(spec.run_dir)
        acc = metrics[-1].get("test_acc") if metrics else None
        row = {"model": name, "params": sum(q.numel() for q in model.parameters()),
               "macs": macs(model.eval(), x[:1]),
               "infer_img_s": images_per_second(model, x, y, False, args.seconds),
               "train_img_s": images_per_second(model, x, y, True, args.seconds),
               "test_acc": acc}
        rows.append(row)
        print(f"{name:18s} {row['params'] / 1e6:6.2f} M  {row['macs'] / 1e6:8.1f} MMACs  "
              f"infer {row['infer_img_s']:7.1f} img/s  train {row['train_img_s']:6.1f} img/s  "
              f"acc {'%.2f %%' % (100 * acc) if acc is not None else 'n/a'}")
    out = Path(args.out)
    lines = [f"Device: {device}, batch {args.batch_size}, {args.data} inputs "
             f"({info.in_chans}x{info.img_size}x{info.img_size}), preset {args.preset}", "",
             results.markdown_table(
                 ["model", "params (M)", "MMACs", "inference img/s", "training img/s",
                  "test acc"],
                 ([r["model"], f"{r['params'] / 1e6:.2f}", f"{r['macs'] / 1e6:.1f}",
                   f"{r['infer_img_s']:.1f}", f"{r['train_img_s']:.1f}",
                   f"{100 * r['test_acc']:.2f} %" if r["test_acc"] is not None else "—"]
                  for r in rows))]
    results.atomic_write_bytes(out / "zoo.md", ("\n".join(lines) + "\n").encode())
    path = results.save_result(out / "zoo.json", rows, vars(args), args.seed)
    fig = plots.zoo_figure(rows, out / "zoo")
    print(f"table: {out / 'zoo.md'}\nresults: {path}\nfigure: {fig[0]} (+ .pdf)")
    return 0


if __name__ == "__main__":
    cli.run(main)
