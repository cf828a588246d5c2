"""What every ``vitprobe <study>`` shares: the common arguments, logging, and the
rule that bad input ends in one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
from collections.abc import Callable

import torch

from vitprobe.distributed import join
from vitprobe.distributed import process_group as distributed_group
from vitprobe.identity import identities
from vitprobe.models.registry import POOLS
from vitprobe.train import TrainingDiverged

EXIT_USAGE = 2


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written (the study's whole docstring) and every option's default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        # help is plain text ("10 % of training"): every % but argparse's own %(name)s
        # placeholders is literal
        text = re.sub(r"%(?!\()", "%%", action.help or "")
        # a flag's False and an unset None say nothing; 0 is a default (0 == False in Python)
        if action.option_strings and "%(default)" not in text and \
                action.default is not None and action.default is not False and \
                action.default is not argparse.SUPPRESS:
            text += " (default: %(default)s)"
        return text


# How long a study takes, for every --help (the epilog).
RUN_TIME = ("run time on a 2-core CPU: --preset smoke (tiny models: a pipeline check), up to "
            "a minute per study and about 2 minutes for reproduce; --preset quick, minutes per "
            "probe on a cached model, and 10-13 min for each model it must train first (cached "
            "in --runs-dir); --preset paper, GPU hours (300 CIFAR-100 epochs per model).")


class ArgumentParser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("epilog", RUN_TIME)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        if not kwargs.get("help") and kwargs.get("default") is not None and \
                kwargs.get("default") is not False:
            kwargs["help"] = "(default: %(default)s)"  # every default shown, help or not
        return super().add_argument(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, not usage + message
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


# ------------------------------------------------------------------- argument types
# Each checks one argument where argparse reads it, so bad input costs no compute and ends in
# one line naming the argument, what it got and what is allowed.
def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def at_least(low: int) -> Callable[[str], int]:
    """An argument type: an integer >= ``low``."""
    def check(text: str) -> int:
        v = _integer(text)
        if v < low:
            raise argparse.ArgumentTypeError(f"{v} is not allowed: it must be >= {low}")
        return v

    check.__name__ = f"integer >= {low}"
    return check


positive_int = at_least(1)


non_negative_int = at_least(0)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def positive_number(text: str) -> float:
    """A finite number > 0."""
    v = _number(text)
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"{v:g} is not allowed: it must be a finite number > 0")
    return v


def fraction(text: str) -> float:
    """A number in (0, 1]."""
    v = _number(text)
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"{v:g} is not allowed: it must be in (0, 1]")
    return v


def non_negative(text: str) -> float:
    """A finite number >= 0 (a weight decay, an l2 coefficient)."""
    v = _number(text)
    if not 0 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"{v:g} is not allowed: it must be a finite number "
                                         f">= 0")
    return v


def tolerance(text: str) -> float:
    """A number in (0, 1)."""
    v = fraction(text)
    if v == 1:
        raise argparse.ArgumentTypeError("1 is not allowed: it must be in (0, 1)")
    return v


at_least_two = at_least(2)


def device_name(text: str) -> str:
    """cpu, cuda or cuda:N (whether CUDA is there is checked where the device is opened)."""
    head, _, index = text.partition(":")
    if not (text == "cpu" or (head == "cuda" and (not index or index.isdigit()))):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; allowed: cpu, cuda, cuda:N")
    return text


def positive_numbers(text: str) -> list[float]:
    """Comma-separated numbers > 0, e.g. '0.1,0.3,1'."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) <= 0 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: it must be comma-separated "
                                         f"numbers > 0, e.g. 0.1,0.3,1")
    return values


def seed(text: str) -> int:
    """An integer in [0, 2**32): every generator we seed (torch, numpy) takes it."""
    v = _integer(text)
    if not 0 <= v < 2 ** 32:
        raise argparse.ArgumentTypeError(f"{v} is not allowed: it must be in [0, 2**32)")
    return v


def existing_dir(text: str) -> str:
    from pathlib import Path

    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not an existing folder")
    return text


def existing_file(text: str) -> str:
    from pathlib import Path

    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text} is not an existing file")
    return text


def writable_dir(text: str) -> str:
    """A folder we can create (or that exists) and write into; checked by writing a
    temporary file in it or in its nearest existing parent (root ignores permission bits,
    a read-only file system does not)."""
    import tempfile
    from pathlib import Path

    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise argparse.ArgumentTypeError(f"{text} lies below the file {probe}")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise argparse.ArgumentTypeError(f"{text} is not writable ({e.strerror})") from None
    return text


def pools(text: str) -> str:
    """One pooling or a comma-separated list of them."""
    names = [q for q in text.split(",") if q]
    bad = [q for q in names if q not in POOLS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"invalid pooling {','.join(bad) or text!r}; allowed: "
                                         f"{', '.join(POOLS)} (or several, comma-separated)")
    return ",".join(names)


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
