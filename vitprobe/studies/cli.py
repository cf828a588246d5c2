"""What every ``vitprobe <study>`` shares: the common arguments, logging, and the
rule that bad input ends in one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import torch

from vitprobe.distributed import join
from vitprobe.distributed import process_group as distributed_group
from vitprobe.identity import identities
from vitprobe.train import TrainingDiverged

# the argument types and the parser live in the torch-free half (studies.arguments); the
# studies name them through this module
from .arguments import (  # noqa: E402,F401
    EXIT_USAGE,
    RUN_TIME,
    ArgumentParser,
    HelpFormatter,
    at_least,
    at_least_two,
    device_name,
    existing_dir,
    existing_file,
    fraction,
    model_list,
    non_negative,
    non_negative_int,
    pools,
    positive_int,
    positive_number,
    positive_numbers,
    seed,
    tolerance,
    writable_dir,
)


def model_names(config) -> list[str]:
    """The runs a study's ``--model`` and ``--pool`` ask for: ``--model vit-ti --pool cls,gap``
    gives ``["vit-ti@cls", "vit-ti@gap"]`` (``name@pool`` entries are kept as given)."""
    names = [m for m in config.model.split(",") if m]
    asked = (getattr(config, "pool", None) or "").split(",")
    if len(asked) < 2:
        return names
    return list(dict.fromkeys(m if "@" in m else f"{m}@{q}" for m in names for q in asked))


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
    """Join torchrun's process group (``vitprobe.distributed.join``); this rank's device.
    timm is imported first: its import of ``torch.distributed.nn`` binds default arguments to
    the world group, and done after joining it would keep gloo's threads running past
    ``destroy_process_group`` (the model registry no longer imports timm on its own)."""
    import timm  # noqa: F401 -- torch is loaded by now: this keeps no fast path slow

    return join(device, timeout_s)


def process_group() -> tuple[int, int, object]:
    """(rank, world size, group) — group is None in a single process."""
    return distributed_group()


class TqdmHandler(logging.Handler):
    """Log records written through ``tqdm.write``: a line never lands on a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never raise
            self.handleError(record)


def setup_logging(quiet: bool = False) -> None:
    """INFO (WARNING with ``quiet`` and on ranks other than 0) to stderr, through tqdm."""
    import os

    quiet = quiet or int(os.environ.get("RANK", "0")) > 0  # one rank speaks
    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s",
                                           datefmt="%H:%M:%S"))
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, handlers=[handler],
                        force=True)
    # third-party chatter that is neither our progress nor a warning we mean: matplotlib's
    # PDF font subsetting (dozens of INFO lines per figure), and timm's note that a cosine
    # schedule of one epoch has nothing to anneal (the smoke preset's, by design)
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    logging.getLogger("timm.scheduler.cosine_lr").setLevel(logging.ERROR)


def run(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Call ``main``; turn user errors into one line + exit code 2. The code identities are
    fixed first (``vitprobe.identity``): what this process computes is labelled with the code
    it started with, whatever is edited while it runs."""
    identities()
    try:
        code = main(argv)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except OSError as e:  # a full disk, a read-only or vanished folder: say which file
        where = f" writing {e.filename}" if e.filename else ""
        print(f"error{where}: {e.strerror or e}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


if __name__ == "__main__":
    raise SystemExit("studies.cli is a library module, not a command; see: vitprobe --help")
