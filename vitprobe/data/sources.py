"""Data sets as in-memory uint8 tensors: each data set is one ``DataSource`` in ``SOURCES``
(its shape and normalisation, the files a split is read from, its reader); ``load`` and
``source_files`` dispatch to it once. ``fashion-mnist`` is the embedded default (Debian's
``dataset-fashion-mnist`` IDX files); ``cifar10``/``cifar100`` come through torchvision's
download or a ``--data-dir``; ``synthetic`` is a small learnable set for tests only."""

from __future__ import annotations

import functools
import gzip
import hashlib
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..results import atomic_write_bytes

SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    in_chans: int
    img_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass
class ImageData:
    """A split of a data set: ``images`` uint8 (N, C, H, W), ``targets`` int64 (N,)."""

    images: torch.Tensor
    targets: torch.Tensor
    info: DatasetInfo

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, index: torch.Tensor) -> ImageData:
        return ImageData(self.images[index], self.targets[index], self.info)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] float images -> standardised float32."""
        x = images.float()
        if images.dtype == torch.uint8:
            x = x / 255.0
        mean = torch.tensor(self.info.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.info.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std


def dataset_info(name: str, data_dir: str | Path | None = None) -> DatasetInfo:
    """Classes, channels, image size and normalisation of a registered data set (an image
    folder's are read from ``data_dir``)."""
    return source(name).describe(Path(data_dir) if data_dir else None)


# ---------------------------------------------------------------------------------- readers
def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzipped or not, into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path} is truncated or corrupt ({type(e).__name__}: {e}); delete it "
                         f"and install or download the data set again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise ValueError(f"{path}: unknown IDX element type 0x{raw[2]:02x}")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=dtypes[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but holds {data.size} values "
                         f"(truncated or corrupt); delete it and get the data set again")
    return data.reshape(shape).astype(data.dtype.newbyteorder("="))


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR python-format batch holds — dicts, lists, strings, bytes,
    numbers (pickle opcodes) and numpy arrays — so a crafted file cannot run code: any other
    global a pickle asks for is refused before it is looked up."""

    ALLOWED = {(core, name) for core in ("numpy.core.multiarray", "numpy._core.multiarray")
               for name in ("_reconstruct", "scalar")} | {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode")}  # protocol-2 pickles from Python 3 write bytes through it

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: a CIFAR batch file holds only arrays, "
                f"lists and strings")
        return super().find_class(module, name)


def read_cifar_batch(path: str | Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR python-format batch file -> (N, 3, 32, 32) uint8, (N,) int64.

    Read with a restricted unpickler (``_CifarUnpickler``: nothing in the file is executed);
    a truncated, corrupt or foreign file is a ValueError naming it. torchvision still does
    the download (its own reader would ``pickle.load`` the files unrestricted).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            entry = _CifarUnpickler(f, encoding="latin1").load()
        entry = {(k.decode() if isinstance(k, bytes) else k): v for k, v in entry.items()}
        images = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry[label_key], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, AttributeError,
            TypeError, IndexError) as e:
        raise ValueError(f"{path} is not a readable CIFAR batch file ({type(e).__name__}: "
                         f"{e}); delete it and download the data set again") from None
    if len(labels) != len(images):
        raise ValueError(f"{path} holds {len(images)} images but {len(labels)} labels")
    return images, labels


# --------------------------------------------------------------------------- the registry
class DataSource:
    """One data set: its ``info`` (classes, shape, normalisation), the files a split is read
    from, and the reader. ``load`` dispatches to the registered source once."""

    info: DatasetInfo

    def describe(self, data_dir: Path | None) -> DatasetInfo:
        """The data set's info (an image folder's depends on its files)."""
        return self.info

    def cache_name(self, data_dir: Path | None) -> str:
        """The folder its runs are cached under in the runs folder."""
        return self.info.name

    def file_key(self, path: Path, data_dir: Path | None) -> str:
        """How ``content_identity`` names a file (unique within a split)."""
        return path.name

    def files(self, split: str, data_dir: Path | None) -> list[Path]:
        """The files ``split`` is read from (``[]`` for generated data); a missing one is a
        FileNotFoundError saying how to get it."""
        raise NotImplementedError

    def read(self, split: str, data_dir: Path | None, download: bool) -> tuple:
        """``split`` as (uint8 images (N, C, H, W), int64 targets (N,))."""
        raise NotImplementedError


class FashionMNIST(DataSource):
    """The embedded default: IDX files (gzipped or not) from ``--data-dir`` (only there: a
    wrong folder is an error, never a silent fall-back to the system's) or Debian's
    ``dataset-fashion-mnist``."""

    info = DatasetInfo("fashion-mnist", 10, 1, 28, (0.2860,), (0.3530,))
    STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

    @staticmethod
    def _find(stem: str, root: Path) -> Path | None:
        for sub in ("", "fashion-mnist", "FashionMNIST/raw"):
            for ext in (".gz", ""):
                p = root / sub / f"{stem}{ext}"
                if p.is_file():
                    return p
        return None

    @staticmethod
    def _missing(data_dir: Path | None) -> FileNotFoundError:
        where = (f"{data_dir} holds no Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz] "
                 f"...), also not under {data_dir}/fashion-mnist or {data_dir}/FashionMNIST/raw"
                 if data_dir else "Fashion-MNIST not found")
        return FileNotFoundError(
            f"{where}: install it with 'apt-get install dataset-fashion-mnist' (files go to "
            f"{SYSTEM_FASHION_MNIST}), pass --data-dir DIR holding the IDX files, or add "
            f"--download where there is internet")

    def files(self, split: str, data_dir: Path | None) -> list[Path]:
        paths = [self._find(s, data_dir or SYSTEM_FASHION_MNIST) for s in self.STEMS[split]]
        if None in paths:
            raise self._missing(data_dir)
        return paths

    def read(self, split: str, data_dir: Path | None, download: bool) -> tuple:
        root = data_dir or SYSTEM_FASHION_MNIST
        if download and None in [self._find(s, root) for s in self.STEMS[split]]:
            import torchvision

            root = data_dir or Path("data")
            torchvision.datasets.FashionMNIST(str(root), train=split == "train", download=True)
        paths = [self._find(s, root) for s in self.STEMS[split]]
        if None in paths:
            raise self._missing(data_dir)
        images = torch.from_numpy(read_idx(paths[0]).copy()).unsqueeze(1)
        targets = torch.from_numpy(read_idx(paths[1]).astype(np.int64))
        return images, targets


@dataclass(frozen=True)
class Cifar(DataSource):
    """CIFAR-10/100's python-format batches under ``--data-dir`` (default ``data/``),
    downloaded by torchvision with ``--download``, read by ``read_cifar_batch``."""

    info: DatasetInfo
    folder: str                      # the archive's folder under the data directory
    split_files: dict                # split -> its batch files
    label_key: str                   # the batches' label field
    torchvision_class: str           # torchvision.datasets' downloader

    def files(self, split: str, data_dir: Path | None) -> list[Path]:
        paths = [(data_dir or Path("data")) / self.folder / f for f in self.split_files[split]]
        if not all(p.is_file() for p in paths):
            raise FileNotFoundError(f"{self.info.name} not found under {paths[0].parent}: pass "
                                    f"--data-dir DIR holding {self.folder}/, or add --download "
                                    f"where there is internet")
        return paths

    def read(self, split: str, data_dir: Path | None, download: bool) -> tuple:
        root = data_dir or Path("data")
        if download and not all((root / self.folder / f).is_file()
                                for f in self.split_files[split]):
            import torchvision

            getattr(torchvision.datasets, self.torchvision_class)(
                str(root), train=split == "train", download=True)
        parts = [read_cifar_batch(p, self.label_key) for p in self.files(split, data_dir)]
        return (torch.from_numpy(np.concatenate([p[0] for p in parts])),
                torch.from_numpy(np.concatenate([p[1] for p in parts])))


class Synthetic(DataSource):
    """Four classes of 28x28 images, a bright square in one quadrant plus noise: a small
    learnable set for tests."""

    info = DatasetInfo("synthetic", 4, 1, 28, (0.5,), (0.25,))

    def files(self, split: str, data_dir: Path | None) -> list[Path]:
        return []

    def read(self, split: str, data_dir: Path | None, download: bool) -> tuple:
        n = 512 if split == "train" else 256
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        targets = torch.arange(n) % 4
        images = torch.rand(n, 1, 28, 28, generator=g) * 0.3
        for c in range(4):
            r, q = divmod(c, 2)
            images[targets == c, :, r * 14 + 3:r * 14 + 11, q * 14 + 3:q * 14 + 11] += 0.6
        return (images.clamp(0, 1) * 255).to(torch.uint8), targets


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class ImageFolder(DataSource):
    """Your own images, in torchvision's ImageFolder layout: ``DIR/train/<class>/<image>`` and
    ``DIR/test/<class>/<image>`` (``--data imagefolder --data-dir DIR``). Classes are the
    training folder's subfolders, sorted; the test folder must hold the same ones. Images are
    read with PIL, in RGB (grayscale when every training image is), center-cropped to a square
    and resized (bicubic, antialiased) to the training images' median side. Mean and standard
    deviation per channel (1 for a constant channel) are computed once over the training
    images and cached by the
    files' content hash (``VITPROBE_CACHE``, default ``~/.cache/vitprobe``); runs are cached
    under ``imagefolder-<hash>``, so two folders never share a run."""

    info = DatasetInfo("imagefolder", 0, 3, 0, (), ())

    @staticmethod
    def _root(data_dir: Path | None) -> Path:
        if data_dir is None:
            raise ValueError("--data imagefolder needs --data-dir DIR holding train/<class>/ "
                             "and test/<class>/ folders of images")
        return Path(data_dir)

    def _samples(self, split: str, data_dir: Path | None) -> tuple[list[str], list]:
        root = self._root(data_dir)
        folder = root / split
        classes = sorted(d.name for d in (root / "train").iterdir() if d.is_dir()) \
            if (root / "train").is_dir() else []
        if not folder.is_dir() or not classes:
            raise FileNotFoundError(f"{folder} is not a folder of class subfolders: "
                                    f"--data imagefolder reads {root}/train/<class>/<image> and "
                                    f"{root}/test/<class>/<image>")
        here = sorted(d.name for d in folder.iterdir() if d.is_dir())
        if here != classes:
            raise ValueError(f"{folder} has classes {here}, the training folder {classes}: "
                             f"both must hold the same class subfolders")
        samples = [(f, c) for c, name in enumerate(classes)
                   for f in sorted((folder / name).rglob("*"))
                   if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        if not samples:
            raise FileNotFoundError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return classes, samples

    def files(self, split: str, data_dir: Path | None) -> list[Path]:
        return [f for f, _ in self._samples(split, data_dir)[1]]

    def file_key(self, path: Path, data_dir: Path | None) -> str:
        return path.relative_to(self._root(data_dir)).as_posix()

    def cache_name(self, data_dir: Path | None) -> str:
        return f"imagefolder-{self._hash(data_dir)[:10]}"

    def _hash(self, data_dir: Path | None) -> str:
        ident = content_identity("imagefolder", str(data_dir))
        return hashlib.sha256(repr(sorted(ident["files"].items())).encode()).hexdigest()

    @functools.lru_cache(maxsize=8)  # noqa: B019 -- one decoding per folder and process
    def _decoded(self, split: str, data_dir: Path | None) -> tuple:
        from PIL import Image

        classes, samples = self._samples(split, data_dir)
        mode, side = self._format(data_dir)
        images = []
        for f, _ in samples:
            with Image.open(f) as im:
                im = im.convert(mode)
                w, h = im.size
                m = min(w, h)
                im = im.crop(((w - m) // 2, (h - m) // 2, (w - m) // 2 + m, (h - m) // 2 + m))
                im = im.resize((side, side), Image.Resampling.BICUBIC, reducing_gap=None)
                a = np.asarray(im, dtype=np.uint8)
            images.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
        return (torch.from_numpy(np.stack(images)),
                torch.tensor([c for _, c in samples], dtype=torch.int64), classes)

    @functools.lru_cache(maxsize=8)  # noqa: B019
    def _format(self, data_dir: Path | None) -> tuple[str, int]:
        """(PIL mode, side) from the training images' headers."""
        from PIL import Image

        modes, sides = set(), []
        for f in self.files("train", data_dir):
            with Image.open(f) as im:
                modes.add(im.mode)
                sides.append(min(im.size))
        return ("L" if modes <= {"L", "1"} else "RGB"), int(np.median(sides))

    def read(self, split: str, data_dir: Path | None, download: bool) -> tuple:
        images, targets, _ = self._decoded(split, data_dir)
        return images, targets

    def describe(self, data_dir: Path | None) -> DatasetInfo:
        import json
        import os

        classes = self._samples("train", data_dir)[0]
        mode, side = self._format(data_dir)
        cache = Path(os.environ.get("VITPROBE_CACHE", Path.home() / ".cache" / "vitprobe"))
        path = cache / f"{self.cache_name(data_dir)}-{mode}{side}.json"
        if path.is_file():
            stats = json.loads(path.read_text())
        else:
            x = self._decoded("train", data_dir)[0].double() / 255.0
            std = x.std(dim=(0, 2, 3))
            # a constant channel is left unscaled (1), not divided by zero
            stats = {"mean": x.mean(dim=(0, 2, 3)).tolist(),
                     "std": torch.where(std > 1e-6, std, torch.ones_like(std)).tolist()}
            atomic_write_bytes(path, json.dumps(stats).encode())
        return DatasetInfo("imagefolder", len(classes), 1 if mode == "L" else 3, side,
                           tuple(stats["mean"]), tuple(stats["std"]))


SOURCES: dict[str, DataSource] = {s.info.name: s for s in (
    FashionMNIST(),
    Cifar(DatasetInfo("cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
          "cifar-10-batches-py",
          {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
          "labels", "CIFAR10"),
    Cifar(DatasetInfo("cifar100", 100, 3, 32, (0.5071, 0.4865, 0.4409),
                      (0.2673, 0.2564, 0.2762)),
          "cifar-100-python", {"train": ["train"], "test": ["test"]}, "fine_labels", "CIFAR100"),
    Synthetic(),
    ImageFolder(),
)}
DATASETS = tuple(SOURCES)


def source(name: str) -> DataSource:
    """The registered source of data set ``name``."""
    if name not in SOURCES:
        raise ValueError(f"unknown data set {name!r}; allowed: {', '.join(DATASETS)}")
    return SOURCES[name]


def source_files(name: str, split: str, data_dir: str | Path | None = None) -> list[Path]:
    """The files a split of a data set is read from (``[]`` for generated data); a missing
    one is a FileNotFoundError saying how to get it."""
    return source(name).files(split, Path(data_dir) if data_dir else None)


@functools.lru_cache(maxsize=16)
def content_identity(name: str, data_dir: str | None = None) -> dict:
    """What identifies the training data a run saw: every training file's name, size and
    SHA-256 (its first 16 hex digits), or ``"generated"`` — so that a run cached on one copy
    of a data set is not reused for another folder holding different files."""
    files = source_files(name, "train", data_dir)
    if not files:
        return {"dataset": name, "files": "generated"}
    key = functools.partial(source(name).file_key, data_dir=Path(data_dir) if data_dir else None)
    return {"dataset": name, "files": {
        key(p): [p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()[:16]]
        for p in files}}


def load(name: str, split: str = "train", data_dir: str | Path | None = None,
         download: bool = False, data_fraction: float = 1.0, seed: int = 0) -> ImageData:
    """Load a split of a data set into memory, optionally a class-stratified fraction."""
    src = source(name)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    if not 0.0 < data_fraction <= 1.0:
        raise ValueError(f"data_fraction must be in (0, 1]; got {data_fraction}")
    folder = Path(data_dir) if data_dir else None
    images, targets = src.read(split, folder, download)
    data = ImageData(images, targets, src.describe(folder))
    if data_fraction < 1.0:
        data = data.subset(stratified_indices(targets, data_fraction, seed))
    return data


def stratified_indices(targets: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """A seeded subset holding ``round(fraction * n_c)`` (at least 1) samples of every class."""
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in torch.unique(targets):
        idx = torch.nonzero(targets == c).flatten()
        k = max(1, round(fraction * len(idx)))
        keep.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    return torch.sort(torch.cat(keep)).values
