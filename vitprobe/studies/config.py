"""Typed study configurations and results.

A study is ``run(config: XConfig) -> XResult``. Its options are the fields of a frozen
dataclass (``XConfig``): the command line is generated from them — option name, check,
choices, help and default come from the field — and a config turns back into the exact
command that reproduces it (``config.command()``). The same checks run when a config is
built in Python, so the API refuses what the CLI refuses. A result (``XResult``) is the record
a study writes (JSON with the config, seed and provenance, as ``results.save_result``), its
``save(folder)`` / ``load(folder)``, and typed accessors: readers such as the findings never
parse another study's JSON themselves.
"""

import argparse
import dataclasses
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from vitprobe import results
from vitprobe.data import DATASETS
from vitprobe.data.sources import IMAGE_SUFFIXES
from vitprobe.train import PRECISIONS

from . import arguments, cli
from .labels import unmarked
from .presets import PRESETS

C = TypeVar("C", bound="Config")
R = TypeVar("R", bound="StudyResult")


def option(default: Any, help: str, *, check: Callable[[str], Any] | None = None,
           choices: Sequence[str] | None = None, metavar: str | None = None,
           path: bool = False) -> Any:
    """A config field that is also a command-line option: ``check`` parses and validates its
    text (one of ``studies.cli``'s argument types), ``choices`` lists the allowed values,
    ``path`` marks a file or folder (always written out in ``command()``: a printed command
    names every path). A ``bool`` field with default False is a flag."""
    return field(default=default, metadata={"help": help, "check": check, "choices": choices,
                                            "metavar": metavar, "path": path})


def device_option() -> Any:
    """The ``--device`` field every config takes."""
    return option(None, "cpu, cuda, cuda:N (default: cuda if there)", check=cli.device_name)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _argument_type(check: Callable[[str], Any]) -> Callable[[str], Any]:
    """argparse's ``type`` for a field: the check's value (an int, a float, a normalised
    word), or the text itself where the check parses it into a list (the field keeps the
    text the user wrote, e.g. '0.1,0.3,1')."""
    def parse(text: str) -> Any:
        value = check(text)
        return text if isinstance(value, list) else value

    parse.__name__ = getattr(check, "__name__", "value")
    return parse


@dataclass(frozen=True)
class Config:
    """The machinery: options from fields, checks on construction, the command back."""

    STUDY: ClassVar[str] = ""  # the studies.<module> this config runs

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if value is None or isinstance(value, bool) or not meta:
                continue
            if meta["choices"] is not None and value not in meta["choices"]:
                raise ValueError(f"{_flag(f.name)} {value!r} is not allowed; allowed: "
                                 f"{', '.join(map(str, meta['choices']))}")
            if meta["check"] is not None:
                try:
                    meta["check"](str(value))
                except argparse.ArgumentTypeError as e:
                    raise ValueError(f"{_flag(f.name)}: {e}") from None

    @classmethod
    def parser(cls, description: str | None = None) -> cli.ArgumentParser:
        """The study's argument parser, one option per field."""
        p = cli.ArgumentParser(prog=f"vitprobe {cls.STUDY}", description=description)
        for f in dataclasses.fields(cls):
            meta = f.metadata
            if f.default is False:
                p.add_argument(_flag(f.name), action="store_true", help=meta["help"])
                continue
            kwargs = {"default": f.default, "help": meta["help"]}
            if meta["choices"] is not None:
                kwargs["choices"] = meta["choices"]
            if meta["metavar"] is not None:
                kwargs["metavar"] = meta["metavar"]
            if meta["check"] is not None:
                kwargs["type"] = _argument_type(meta["check"])
            p.add_argument(_flag(f.name), **kwargs)
        return p

    @classmethod
    def option_table(cls) -> list[dict]:
        """The options as data, for checking a command line before torch starts
        (``studies.command``): per field its flag, whether it is a flag without value, its
        choices, and its check as ``studies.arguments`` names it (None: a check of the
        study's own, left to its parser)."""
        return [{"flag": _flag(f.name), "switch": f.default is False,
                 "choices": None if f.metadata["choices"] is None else
                 [str(c) for c in f.metadata["choices"]],
                 "check": arguments.check_spec(f.metadata["check"])}
                for f in dataclasses.fields(cls)]

    @classmethod
    def parse(cls: type[C], argv: list[str] | None = None,
              description: str | None = None) -> C:
        """The config a command line asks for (bad input: one line, exit 2)."""
        args = cls.parser(description).parse_args(argv)
        return cls(**vars(args))

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def argv(self) -> list[str]:
        """The options that reproduce this config: every field that differs from its
        default, and every path field given (paths are never left to a default that may
        differ where the command is run)."""
        out: list[str] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == f.default and not (f.metadata.get("path") and value is not None):
                continue
            if value is True:
                out.append(_flag(f.name))
            elif value is not False and value is not None:
                out += [_flag(f.name), str(value)]
        return out

    def command(self) -> str:
        """The shell command that runs this config."""
        return shlex.join(["vitprobe", self.STUDY, *self.argv()])


def check_trainable(data: str, data_dir: str | None) -> None:
    """An image folder a classifier can learn from and be tested on, checked before anything
    is trained: at least two classes (with one, cross-entropy is 0 and the Hessian of NLL +
    l2 is exactly wd·I), and every class with at least one test image."""
    if data != "imagefolder" or not data_dir:
        return
    def classes(split: str) -> dict[str, int]:
        """Images per class folder of DIR/<split>/ (the suffixes the reader takes)."""
        folder = Path(data_dir) / split
        return {d.name: sum(f.suffix.lower() in IMAGE_SUFFIXES
                            for f in d.rglob("*") if f.is_file())
                for d in sorted(folder.iterdir()) if d.is_dir()} if folder.is_dir() else {}

    train = {c: n for c, n in classes("train").items() if n}
    if len(train) < 2:
        raise ValueError(f"--data-dir {data_dir} has {len(train)} class(es) with training "
                         f"images ({', '.join(train) or 'none'}): a classifier needs at least "
                         f"2 (DIR/train/<class>/<image>, one folder per class)")
    test = classes("test")
    untested = sorted(c for c in train if not test.get(c))
    if untested:
        raise ValueError(f"--data-dir {data_dir}: class(es) {', '.join(untested)} have no test "
                         f"image; every class needs at least one in DIR/test/<class>/")


@dataclass(frozen=True)
class StudyConfig(Config):
    """What every study taking trained models shares: which models, trained how, on what
    data, and where results and checkpoints go."""

    model: str = option("vit-ti", "model name(s), comma-separated (vitprobe models lists "
                                  "them; timm:<name> for any timm model)",
                        check=cli.model_list)
    pool: str | None = option(None, "ViT pooling: cls, gap, seqpool or map; several (--pool "
                                    "cls,gap) run every --model once per pooling, as --model "
                                    "vit-ti@cls,vit-ti@gap (default: the model's, cls)",
                              check=cli.pools)
    patch_size: int | None = option(None, "ViT patch size override", check=cli.positive_int)
    model_args: str | None = option(None, "more overrides, e.g. 'depth=6,embed_dim=96' or "
                                          "'msa=(0,1,1,1)'")
    data: str = option("fashion-mnist", "the data set; imagefolder: your own images, "
                                        "--data-dir DIR holding DIR/train/<class>/<image> and "
                                        "DIR/test/<class>/<image>", choices=DATASETS)
    data_dir: str | None = option(None, "folder holding the data set files (default: the "
                                        "system's Fashion-MNIST)", check=cli.existing_dir,
                                  path=True)
    download: bool = option(False, "allow a torchvision download")
    data_fraction: float = option(1.0, "class-stratified fraction of the training set "
                                       "(e.g. 0.06)", check=cli.fraction)
    preset: str = option("quick", "training recipe and probe sizes", choices=PRESETS)
    seed: int = option(0, "the replication unit: initialisation, data order, augmentation, "
                          "probe mini-batches, images and noise", check=cli.seed)
    precision: str | None = option(None, "training precision (default: the preset's, "
                                         "float32 except paper: bfloat16 autocast)",
                                   choices=PRECISIONS)
    out: str = option("results", "folder for result files and figures",
                      check=cli.writable_dir, path=True)
    runs_dir: str = option("runs", "the checkpoint cache", check=cli.writable_dir, path=True)
    checkpoint: str | None = option(None, "use these weights (.safetensors) instead of the "
                                          "cache", check=cli.existing_file, path=True)
    device: str | None = device_option()
    quiet: bool = option(False, "no progress bars")
    no_wait: bool = option(False, "when another process is training or reading a run this "
                                  "study needs, stop with one line (exit 2) instead of "
                                  "waiting for it")
    tensorboard: str | None = option(None, "TensorBoard logs under DIR: training loss, "
                                           "learning rate and accuracy per run, the study's "
                                           "scalars and figures", check=cli.writable_dir,
                                     metavar="DIR", path=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_trainable(self.data, self.data_dir)
        if self.checkpoint is not None and len(self.model_names()) > 1:
            raise ValueError(f"--checkpoint holds the weights of one model; --model/--pool "
                             f"ask for {len(self.model_names())} "
                             f"({', '.join(self.model_names())}): give one model")

    def model_names(self) -> list[str]:
        """The runs ``model`` and ``pool`` ask for (``cli.model_names``)."""
        return cli.model_names(self)

    def refuse(self, **options: str) -> None:
        """Options this study cannot use, each with what to do instead: an option given
        (not at its default) is refused in one line, never silently ignored."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name, instead in options.items():
            if getattr(self, name) != defaults[name]:
                raise ValueError(f"{_flag(name)} is not used by vitprobe {self.STUDY}: "
                                 f"{instead}")


@dataclass(frozen=True)
class FeatureConfig(StudyConfig):
    """A study that probes trained models with clean test images."""

    num_images: int = option(256, "test images to probe with", check=cli.at_least_two)


@dataclass(kw_only=True)
class StudyResult:
    """What a study measured: ``record``, the payload of its result file (as written since
    the first release: figures and readers see the same numbers), and ``config``, the
    config that computed it. Subclasses name the file and add typed accessors."""

    FILE: ClassVar[str] = ""  # the result file's name in the study's folder

    record: object  # the payload of the result file
    config: dict = field(default_factory=dict)
    path: Path | None = None  # where it was saved or loaded from

    @property
    def data(self) -> Any:
        """``record`` as its file holds it (JSON types: lists, dicts, numbers) with the labels
        as ``load`` gives them (no smoke mark): what the typed accessors read, so a result
        reads the same fresh from ``run`` and loaded from its file."""
        import json

        return unmarked(json.loads(results.to_json(self.record)))

    def save(self, folder: str | Path) -> Path:
        """Write the result file (atomic) into ``folder``; returns its path."""
        self.path = results.save_result(Path(folder) / self.FILE, self.record, self.config,
                                        self.config.get("seed"))
        return self.path

    @classmethod
    def load(cls: type[R], folder: str | Path) -> R:
        """The result a study saved into ``folder`` (labels without the smoke preset's
        mark, so readers find the same names at every preset)."""
        path = Path(folder) / cls.FILE
        raw = results.load_json(path)
        return cls(record=unmarked(raw["results"]), config=raw.get("config") or {}, path=path)


if __name__ == "__main__":
    raise SystemExit("studies.config is a library module, not a command; see: vitprobe --help")
