"""What every ``python -m studies.<name>`` shares: the common arguments, logging, and the
rule that bad input ends in one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

import torch

from .data import DATASETS
from .presets import PRESETS

EXIT_USAGE = 2


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def base_parser(prog: str, description: str) -> ArgumentParser:
    p = ArgumentParser(prog=prog, description=description)
    p.add_argument("--model", default="vit-ti",
                   help="model name(s), comma-separated (see models.list_models())")
    # models.vit.POOLS, spelt out because vitprobe never imports models (DESIGN.md);
    # tests/test_cli.py keeps the two equal
    p.add_argument("--pool", choices=("cls", "gap", "seqpool", "map"), default=None,
                   help="ViT pooling (default: the model's, cls)")
    p.add_argument("--patch-size", type=int, default=None, help="ViT patch size override")
    p.add_argument("--model-args", default=None,
                   help="more overrides, e.g. 'depth=6,embed_dim=96' or 'msa=(0,1,1,1)'")
    p.add_argument("--data", default="fashion-mnist", help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--data-dir", default=None, help="folder holding the data set files")
    p.add_argument("--download", action="store_true", help="allow a torchvision download")
    p.add_argument("--data-fraction", type=float, default=1.0,
                   help="class-stratified fraction of the training set (e.g. 0.06)")
    p.add_argument("--preset", default="quick", help=f"one of {', '.join(PRESETS)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results", help="folder for result files and figures")
    p.add_argument("--runs-dir", default="runs", help="the checkpoint cache")
    p.add_argument("--checkpoint", default=None,
                   help="use these weights (.safetensors) instead of the cache")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if there)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def parse_model_args(text: str | None) -> dict:
    """'depth=6,msa=(0,1,1,1)' -> {'depth': 6, 'msa': (0, 1, 1, 1)} (Python literals)."""
    import ast

    if not text:
        return {}
    out, depth, key, buf = {}, 0, None, ""
    for ch in text + ",":
        if ch == "," and depth == 0:
            if "=" not in buf:
                raise ValueError(f"--model-args wants key=value pairs; got {buf!r}")
            key, value = buf.split("=", 1)
            try:
                out[key.strip()] = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError):
                out[key.strip()] = value.strip()
            buf = ""
            continue
        depth += ch in "([{"
        depth -= ch in ")]}"
        buf += ch
    return out


def resolve_device(name: str | None) -> str:
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
        return init_distributed(name)
    if not (name == "cpu" or name.startswith("cuda")):
        raise ValueError(f"unknown device {name!r}; allowed: cpu, cuda, cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name} asked for but CUDA is not available; use --device cpu")
    return init_distributed(name)


def init_distributed(device: str, timeout_s: float = 600.0) -> str:
    """Under ``torchrun`` (WORLD_SIZE > 1): join the process group — nccl on CUDA, gloo on
    CPU — and return this rank's device. A rank that dies makes the others fail after
    ``timeout_s`` (VITPROBE_DIST_TIMEOUT) instead of hanging."""
    import datetime
    import os

    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    timeout = float(os.environ.get("VITPROBE_DIST_TIMEOUT", timeout_s))
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo",
                            timeout=datetime.timedelta(seconds=timeout))
    return device


def process_group() -> tuple[int, int, object]:
    """(rank, world size, group) — group is None in a single process."""
    import torch.distributed as dist

    from .train import distributed

    rank, world = distributed()
    return rank, world, dist.group.WORLD if world > 1 else None


def setup_logging(quiet: bool = False) -> None:
    import os

    quiet = quiet or int(os.environ.get("RANK", "0")) > 0  # one rank speaks
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def run(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Call ``main``; turn user errors into one line + exit code 2."""
    from .train import TrainingDiverged

    try:
        code = main(argv)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
