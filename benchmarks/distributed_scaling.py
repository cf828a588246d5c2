"""HVP throughput with 1 and 2 processes (torchrun) on the same data: each rank holds half
the batch and the HVPs are all-reduced. On the CPU: gloo, one thread per process; with
``--device cuda``: NCCL, one GPU per process (two GPUs needed).

python -m benchmarks.distributed_scaling [--model vit-ti] [--images 64] [--hvps 10]
                                         [--device cpu]
Goal: >= 1.6x for 2 processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from benchmarks.common import Headline, add_device, record

HEADLINES = (Headline("distributed_scaling", "HVPs per second, 2 processes / 1 (torchrun, "
                      "half the batch per rank)",
                      lambda rows: min(r["speed-up"] for r in rows), goal=1.6, at_least=True),)

WORKER = textwrap.dedent("""
    import json, os, sys, time, torch, torch.distributed as dist, torch.nn.functional as F
    torch.set_num_threads(1)
    from vitprobe.models import create_model, family
    from vitprobe import hessian
    name, n, hvps, kind = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    dist.init_process_group("nccl" if kind == "cuda" else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    dev = torch.device(f"cuda:{rank}" if kind == "cuda" else "cpu")
    torch.manual_seed(0)
    kw = {"patch_size": 4} if family(name) == "vit" else {}
    model = create_model(name, num_classes=10, in_chans=1, img_size=28, **kw).to(dev).eval()
    x, y = torch.randn(n, 1, 28, 28).to(dev), torch.randint(0, 10, (n,)).to(dev)
    spec = hessian.OperatorSpec(model, F.cross_entropy, (x[rank::world], y[rank::world]),
                                group=dist.group.WORLD)
    with spec.open() as H:
        v = torch.randn(H.n, generator=torch.Generator().manual_seed(1)).to(dev)
        H.matvec(v)
        dist.barrier()
        t = time.perf_counter()
        for _ in range(hvps):
            v = H.matvec(v)
            v = v / v.norm()
        dist.barrier()
        if kind == "cuda":
            torch.cuda.synchronize(dev)
        dt = time.perf_counter() - t
    if rank == 0:
        json.dump({"seconds": dt}, open(sys.argv[1], "w"))
    del H  # it holds the group: gloo's threads would outlive destroy_process_group
    dist.destroy_process_group()
""")


def run(nproc: int, args) -> float:
    with tempfile.TemporaryDirectory() as d:
        script, out = os.path.join(d, "w.py"), os.path.join(d, "out.json")
        open(script, "w").write(WORKER)
        env = {**os.environ, "OMP_NUM_THREADS": "1",
               "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        f"--nproc_per_node={nproc}", script, out, args.model, str(args.images),
                        str(args.hvps), args.device.type], check=True, env=env,
                       capture_output=True)
        return json.load(open(out))["seconds"]


def torch_cuda_count() -> int:
    import torch

    return torch.cuda.device_count()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vit-ti")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--hvps", type=int, default=10)
    add_device(p)
    a = p.parse_args()
    if a.device.type == "cuda" and torch_cuda_count() < 2:
        p.error("--device cuda runs one process per GPU: this machine has fewer than 2 GPUs")
    t1 = run(1, a)
    t2 = run(2, a)
    print(f"{a.model}, {a.images} images, {a.hvps} HVPs, "
          f"{'one GPU' if a.device.type == 'cuda' else 'one thread'} per process")
    print(f"1 process: {a.hvps / t1:.2f} HVP/s   2 processes: {a.hvps / t2:.2f} HVP/s   "
          f"speed-up {t1 / t2:.2f}x")
    record("distributed_scaling", [{"model": a.model, "images": a.images,
                                    "1 process HVP/s": a.hvps / t1,
                                    "2 processes HVP/s": a.hvps / t2, "speed-up": t1 / t2}],
           vars(a), "HVPs under torchrun with 2 processes against 1, one thread each.")


if __name__ == "__main__":
    main()
