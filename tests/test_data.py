"""Data: the IDX reader on files the test writes, the CIFAR reader on CIFAR-format pickles
the test writes, stratified fractions, deterministic resumable loaders, clear errors."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from vitprobe import data as vdata


def write_idx(path, array, gz=True):
    codes = {np.uint8: 0x08, np.int32: 0x0C}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if gz else open)(path, "wb").write(raw)


def test_idx_reader_reads_what_was_written(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "a.gz", imgs)
    np.testing.assert_array_equal(vdata.read_idx(tmp_path / "a.gz"), imgs)
    ints = np.arange(6, dtype=np.int32).reshape(2, 3) - 3
    write_idx(tmp_path / "b", ints, gz=False)
    np.testing.assert_array_equal(vdata.read_idx(tmp_path / "b"), ints)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03")
    with pytest.raises(ValueError, match="not an IDX file"):
        vdata.read_idx(tmp_path / "bad")


def test_fashion_mnist_from_a_data_dir(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("t10k", 10)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz",
                  (np.arange(n) % 10).astype(np.uint8))
    d = vdata.load("fashion-mnist", "test", data_dir=tmp_path)
    assert d.images.shape == (10, 1, 28, 28) and d.images.dtype == torch.uint8
    assert d.targets.tolist() == list(range(10))


def test_cifar_loader_reads_cifar_format_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                 "labels": [0, 1, 2, 3]}
        (folder / name).write_bytes(pickle.dumps(entry))
    train = vdata.load("cifar10", "train", data_dir=tmp_path)
    assert train.images.shape == (20, 3, 32, 32) and train.info.num_classes == 10
    raw = pickle.loads((folder / "test_batch").read_bytes())["data"][1].reshape(3, 32, 32)
    test = vdata.load("cifar10", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(test.images[1].numpy(), raw)
    c100 = tmp_path / "cifar-100-python"
    c100.mkdir()
    for name in ("train", "test"):
        (c100 / name).write_bytes(pickle.dumps({"data": np.zeros((3, 3072), np.uint8),
                                                "fine_labels": [5, 50, 99]}))
    assert vdata.load("cifar100", "test", data_dir=tmp_path).targets.tolist() == [5, 50, 99]


class _Exploit:
    """A pickle that runs a shell command when loaded with plain ``pickle.load``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _cifar10_folder(tmp_path, protocol=2):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir(exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=protocol))
    return folder


def test_a_crafted_cifar_pickle_is_refused_and_nothing_runs(tmp_path):
    folder = _cifar10_folder(tmp_path)
    marker = tmp_path / "pwned"
    bad = {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1], "x": _Exploit(marker)}
    (folder / "data_batch_1").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_1 is not a readable CIFAR batch file "
                                         r"\(UnpicklingError: refused to load posix.system"):
        vdata.load("cifar10", "train", data_dir=tmp_path)
    assert not marker.exists()
    # the same payload through plain pickle would have run: the test's payload is real
    pickle.loads((folder / "data_batch_1").read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "empty", "not a pickle"])
def test_a_damaged_cifar_file_is_named(tmp_path, damage):
    folder = _cifar10_folder(tmp_path, protocol=4)
    raw = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes({"truncated": raw[: len(raw) // 2], "empty": b"",
                                         "not a pickle": b"hello world"}[damage])
    with pytest.raises(ValueError, match="test_batch is not a readable CIFAR batch file"):
        vdata.load("cifar10", "test", data_dir=tmp_path)


@pytest.mark.parametrize("damage", ["truncated gzip", "not gzip"])
def test_a_damaged_fashion_mnist_file_is_named(tmp_path, damage):
    n = 10
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((n, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(n).astype(np.uint8))
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2] if damage == "truncated gzip" else b"plain bytes")
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz is truncated or corrupt"):
        vdata.load("fashion-mnist", "test", data_dir=tmp_path)


def test_missing_data_set_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        vdata.load("cifar10", "train", data_dir=tmp_path)
    # a --data-dir without the files is an error, not a silent read of the system's copy
    with pytest.raises(FileNotFoundError, match=f"{tmp_path} holds no Fashion-MNIST"):
        vdata.load("fashion-mnist", "test", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="holds no Fashion-MNIST"):
        vdata.source_files("fashion-mnist", "train", tmp_path)
    with pytest.raises(ValueError, match="allowed: fashion-mnist, cifar10"):
        vdata.load("imagenet")


def test_stratified_fraction_keeps_class_balance_and_is_seeded():
    targets = torch.arange(1000) % 10
    a = vdata.stratified_indices(targets, 0.06, seed=1)
    assert len(a) == 60 and torch.bincount(targets[a]).tolist() == [6] * 10
    assert torch.equal(a, vdata.stratified_indices(targets, 0.06, seed=1))
    assert not torch.equal(a, vdata.stratified_indices(targets, 0.06, seed=2))


def test_loader_is_deterministic_and_resumes_mid_epoch():
    d = vdata.load("synthetic", "train")
    L = vdata.Loader(d, 32, shuffle=True, augment=vdata.Augment(2, True), seed=3)
    full = list(L.iterate(epoch=1))
    tail = list(L.iterate(epoch=1, start=5))
    for (xa, ya), (xb, yb) in zip(full[5:], tail):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(full[0][0], next(L.iterate(epoch=2))[0])
    assert sum(len(y) for _, y in full) == len(d)


@pytest.mark.parametrize("augment", [
    vdata.Augment(2, True),
    vdata.Augment(1, True, randaugment="rand-m9-n2-mstd0.5", mixup=0.8, cutmix=1.0,
                  label_smoothing=0.1)])
def test_worker_processes_give_the_same_batches_and_resume_the_same(augment):
    # RandAugment, crops, flips in two DataLoader workers, mixup after: bit for bit the
    # batches of the main process, from the start and from a mid-epoch step
    d = vdata.load("synthetic", "train").subset(slice(0, 200))
    main = vdata.Loader(d, 32, shuffle=True, augment=augment, seed=5)
    workers = vdata.Loader(d, 32, shuffle=True, augment=augment, seed=5, workers=2)
    for start in (0, 3):
        a, b = list(main.iterate(1, start)), list(workers.iterate(1, start))
        assert len(a) == len(b) == len(main) - start
        for (xa, ya), (xb, yb) in zip(a, b):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    with pytest.raises(ValueError, match="workers must be >= 0"):
        vdata.Loader(d, 32, workers=-1)


def test_crop_flip_moves_pixels_exactly_and_depends_on_the_seed_alone():
    x = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    t = vdata.crop_flip((4, 4), 1, True)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    out = vdata.crop_flip_batch(x, t, seed=0)
    assert torch.equal(torch.rand(3), before)  # the caller's random state is untouched
    assert torch.equal(out, vdata.crop_flip_batch(x, t, seed=0))
    assert not torch.equal(out, vdata.crop_flip_batch(x, t, seed=1))
    padded = torch.nn.functional.pad(x[0, 0], (1, 1, 1, 1))
    crops = {tuple(padded[i:i + 4, j:j + 4].flatten().tolist()) for i in range(3)
             for j in range(3)}
    crops |= {tuple(torch.tensor(c).view(4, 4).flip(-1).flatten().tolist()) for c in crops}
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert all(tuple(o.flatten().tolist()) in crops for o in out)
    # 64 independent draws among 18 crops x flips: many distinct ones, flipped and not
    assert len({tuple(o.flatten().tolist()) for o in out}) > 8
    assert vdata.crop_flip((4, 4), 0, False) is None


def test_normalisation_uses_the_data_sets_mean_and_std():
    d = vdata.load("synthetic", "train")
    x = d.normalize(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8))
    assert x[0, 0, 0, 0].item() == pytest.approx((1 - 0.5) / 0.25)


def _image_folder(root, colours, per_class=(6, 3), sizes=((16, 16), (20, 16))):
    """root/{train,test}/<class>/<i>.png, each image one solid colour, sizes alternating."""
    from PIL import Image

    for split, n in zip(("train", "test"), per_class):
        for name, colour in colours.items():
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", sizes[i % len(sizes)], colour).save(
                    root / split / name / f"{i}.png")
    return root


def test_an_image_folder_loads_with_its_own_classes_and_normalisation(tmp_path, monkeypatch):
    """Solid red and blue images: every pixel of a class is its colour after the centre crop
    and resize, so the per-channel mean and standard deviation are known exactly."""
    from vitprobe import data as vdata

    monkeypatch.setenv("VITPROBE_CACHE", str(tmp_path / "cache"))
    root = _image_folder(tmp_path / "pets", {"blue": (0, 0, 255), "red": (255, 0, 0)})
    train = vdata.load("imagefolder", "train", root)
    assert train.images.shape == (12, 3, 16, 16) and train.images.dtype == torch.uint8
    assert train.targets.tolist() == [0] * 6 + [1] * 6  # classes sorted: blue, red
    assert torch.all(train.images[:6, 2] == 255) and torch.all(train.images[6:, 0] == 255)
    info = train.info
    n = 12 * 16 * 16  # pixels per channel; torch's std is the unbiased one
    assert (info.num_classes, info.in_chans, info.img_size) == (2, 3, 16)
    np.testing.assert_allclose(info.mean, (0.5, 0.0, 0.5), atol=1e-12)
    half = 0.5 * (n / (n - 1)) ** 0.5
    np.testing.assert_allclose(info.std, (half, 1.0, half), rtol=1e-12)  # green is constant
    cached = list((tmp_path / "cache").glob("imagefolder-*-RGB16.json"))
    assert len(cached) == 1  # computed once, then read from the cache
    assert vdata.load("imagefolder", "test", root).images.shape == (6, 3, 16, 16)
    # the same files elsewhere share the cache name; other content does not
    import shutil

    twin = shutil.copytree(root, tmp_path / "twin")
    other = _image_folder(tmp_path / "other", {"blue": (0, 0, 250), "red": (255, 0, 0)})
    src = vdata.source("imagefolder")
    assert src.cache_name(twin) == src.cache_name(root) != src.cache_name(other)


def test_a_bad_image_folder_is_one_clear_error(tmp_path):
    from vitprobe import data as vdata

    with pytest.raises(ValueError, match="needs --data-dir DIR holding train/<class>/"):
        vdata.load("imagefolder", "train")
    root = _image_folder(tmp_path / "d", {"a": (1, 2, 3), "b": (4, 5, 6)})
    shutil_rm = __import__("shutil").rmtree
    shutil_rm(root / "test" / "b")
    with pytest.raises(ValueError, match=r"has classes \['a'\], the training folder \['a', 'b'\]"):
        vdata.load("imagefolder", "test", root)
    with pytest.raises(FileNotFoundError, match="is not a folder of class subfolders"):
        vdata.load("imagefolder", "train", tmp_path)


def test_the_cli_trains_on_an_image_folder_into_its_own_cache_folder(tmp_path):
    import subprocess
    import sys

    root = _image_folder(tmp_path / "pets", {"blue": (0, 0, 255), "red": (255, 0, 0)},
                         per_class=(16, 4))
    r = subprocess.run([sys.executable, "-m", "studies.train", "--model", "resnet-18",
                        "--preset", "smoke", "--data", "imagefolder", "--data-dir", str(root),
                        "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "o"),
                        "--quiet"], capture_output=True, text=True, timeout=600,
                       env={**__import__("os").environ, "VITPROBE_CACHE": str(tmp_path / "c")})
    assert r.returncode == 0, r.stderr
    runs = list((tmp_path / "runs").glob("imagefolder-*/resnet-18-smoke-s0/model.safetensors"))
    assert len(runs) == 1 and "test accuracy" in r.stdout


def test_an_image_folder_that_cannot_train_is_refused_before_any_training(tmp_path):
    """One class (cross-entropy 0, the Hessian wd·I), or a class with no test image: one
    line, exit 2, nothing trained."""
    import shutil
    import subprocess
    import sys

    from vitprobe.studies.hessian import HessianConfig

    one = _image_folder(tmp_path / "one", {"cats": (1, 2, 3)})
    with pytest.raises(ValueError, match="has 1 class.*cats.*at least 2"):
        HessianConfig(data="imagefolder", data_dir=str(one))
    two = _image_folder(tmp_path / "two", {"cats": (1, 2, 3), "dogs": (4, 5, 6)})
    shutil.rmtree(two / "test" / "dogs")
    (two / "test" / "dogs").mkdir()
    with pytest.raises(ValueError, match="dogs have no test image"):
        HessianConfig(data="imagefolder", data_dir=str(two))
    r = subprocess.run([sys.executable, "-m", "studies.train", "--data", "imagefolder",
                        "--data-dir", str(one), "--runs-dir", str(tmp_path / "runs")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "runs").exists()
