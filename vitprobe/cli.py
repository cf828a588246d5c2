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
    p.add_argument("--pool", choices=("cls", "gap", "seqpool", "map"), default=None,
                   help="ViT pooling (default: the model's, cls)")
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


def resolve_device(name: str | None) -> str:
    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not (name == "cpu" or name.startswith("cuda")):
        raise ValueError(f"unknown device {name!r}; allowed: cpu, cuda, cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name} asked for but CUDA is not available; use --device cpu")
    return name


def setup_logging(quiet: bool = False) -> None:
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
