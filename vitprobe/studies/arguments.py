"""The command line's torch-free half: the parser class (one-line errors, exit 2; every
default in the help) and the argument types, each checking one argument where argparse reads
it. ``vitprobe <study>`` checks a command line with these before anything starts torch
(``studies.command``), from each study's shipped option table; ``studies.cli`` uses the same
ones once the study runs."""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable

from vitprobe.models.registry import POOLS, ModelId

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
    check.spec = ("at_least", low)  # how an option table names this check
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
    v = _number(text)
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"{v:g} is not allowed: it must be in (0, 1)")
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


def parse_seeds(text: str) -> tuple[int, ...]:
    """'0,1,2' or '0-4' -> (0, 1, 2) / (0, 1, 2, 3, 4): distinct seeds in [0, 2**32)."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        lo, _, hi = part.partition("-")
        try:
            span = range(int(lo), int(hi or lo) + 1)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: seeds are integers, e.g. 0,1,2 or "
                                             f"0-4") from None
        seeds += [k for k in span if k not in seeds]
    if not seeds or any(not 0 <= k < 2 ** 32 for k in seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: give at least one seed in [0, 2**32)")
    return tuple(seeds)


def parse_epochs(text: str | None, error: type[Exception] = ValueError) -> list[int] | None:
    """'0,1,2' -> [0, 1, 2]: epochs of a training cache (0 = initialisation); None stays None
    (the final model)."""
    if text is None:
        return None
    try:
        epochs = [int(e) for e in text.split(",") if e.strip()]
    except ValueError:
        epochs = []
    if not epochs or min(epochs) < 0:
        raise error(f"{text!r} is not allowed: it must be comma-separated epochs >= 0 "
                    f"(0 = initialisation), e.g. 0,1")
    return epochs


def parse_fractions(text: str, error: type[Exception] = ValueError) -> list[float]:
    """'0.25,0.02' -> [0.02, 0.25]: distinct training-set fractions in (0, 1], ascending."""
    try:
        fractions = sorted({float(f) for f in text.split(",") if f.strip()})
    except ValueError:
        fractions = []
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise error(f"{text!r} is not allowed: it must be comma-separated numbers in (0, 1], "
                    f"e.g. 0.06,1")
    return fractions


def epoch_list(text: str) -> str:
    """Epochs as ``parse_epochs`` reads them ('0,1'); the text is kept."""
    parse_epochs(text, argparse.ArgumentTypeError)
    return text


def fraction_list(text: str) -> str:
    """Training-set fractions as ``parse_fractions`` reads them ('0.06,1'); the text is kept."""
    parse_fractions(text, argparse.ArgumentTypeError)
    return text


def seed_list(text: str) -> str:
    """Training seeds as ``parse_seeds`` reads them ('0,1,2' or '0-4'); the text is kept."""
    parse_seeds(text)
    return text


def model_list(text: str) -> str:
    """Model names, comma-separated, each registered (``vitprobe models``) or timm:<name>,
    optionally ``name@pool`` (``registry.ModelId``, as the study reads them)."""
    names = [m for m in text.split(",") if m]
    if not names:
        raise argparse.ArgumentTypeError("give at least one model name (vitprobe models "
                                         "lists them)")
    for m in names:
        try:
            ModelId.parse(m)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return text


# The argument types an option table may name (``check`` specs): a name, or a factory's
# name and its argument (``("at_least", 2)``).
CHECKS: dict[str, Callable] = {
    f.__name__: f for f in (positive_number, fraction, non_negative, tolerance, device_name,
                           positive_numbers, seed, existing_dir, existing_file, writable_dir,
                           pools, model_list, seed_list, epoch_list, fraction_list)
}
FACTORIES = {"at_least": at_least}


def check_spec(check: Callable | None) -> list | None:
    """How an option table names ``check``: [name] or [factory, argument]; None for a check
    defined elsewhere (the table then leaves that option to the study's own parser)."""
    if check is None:
        return None
    if hasattr(check, "spec"):
        return list(check.spec)
    name = getattr(check, "__name__", "")
    return [name] if CHECKS.get(name) is check else None


def check_from_spec(spec: list | None) -> Callable | None:
    """The argument type a table's spec names (None: any text)."""
    if not spec:
        return None
    return FACTORIES[spec[0]](*spec[1:]) if spec[0] in FACTORIES else CHECKS[spec[0]]
