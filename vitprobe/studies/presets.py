"""The studies' training recipes (``vitprobe.train.Recipe``) and architecture settings by
preset: ``smoke`` (a pipeline check: seconds to a minute per study, about 2 minutes for
reproduce), ``quick`` (minutes on a 2-core CPU, Fashion-MNIST), ``small`` (the ``-mini``
members of each family trained to a plateau on a 2-core CPU: the findings, over seeds),
``paper`` (Park & Kim 2022's CIFAR recipe, their App. A, for GPUs). The precision is part
of the recipe: float32 everywhere but ``paper`` (bf16 autocast on a GPU); ``--precision``
overrides it."""

from __future__ import annotations

from dataclasses import replace

from vitprobe.data import Augment
from vitprobe.models import CNN_FAMILIES, family
from vitprobe.train import Recipe

PRESETS = ("smoke", "quick", "small", "paper")

# The models each preset's findings compare (``studies.reproduce``): a ViT with a class token
# (and its GAP variant), the post-activation ResNet, the pre-activation ResNet that AlterNet
# is built on (the paper's ``dnn_18`` baseline), and AlterNet.
ROSTERS = {
    "small": {"vit": "vit-mini", "resnet": "resnet-18-mini", "preresnet": "preresnet-18-mini",
              "alternet": "alternet-18-mini"},
}
DEFAULT_ROSTER = {"vit": "vit-ti", "resnet": "resnet-18", "preresnet": "preresnet-18",
                  "alternet": "alternet-18"}


def roster(preset: str) -> dict[str, str]:
    """Role ("vit", "resnet", "preresnet", "alternet") -> model name at ``preset``."""
    return ROSTERS.get(preset, DEFAULT_ROSTER)


def recipe(preset: str, model: str) -> Recipe:
    """The preset's recipe, adjusted per model family where the preset says so."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; allowed: {', '.join(PRESETS)}")
    if preset == "smoke":
        return Recipe(epochs=1, batch_size=32, lr=1e-3, warmup_epochs=0.0, train_fraction=0.005,
                      test_limit=256, eval_batch_size=256, hessian_batches=2,
                      augment=Augment(crop_padding=2, flip=True))
    if preset == "quick":
        # Minutes on a 2-core CPU; a short warm-up, then cosine decay to zero. CNNs: one
        # epoch, batch 128, lr 2e-3. ViTs: two epochs at batch 64, lr 1e-3, crops with 1-px
        # padding, the first epoch on batches resized to 20 px (26 tokens instead of 50:
        # twice the images per second, so two epochs fit the time of ~1.5 at 28 px; the
        # recipes compared are in benchmarks/MEASUREMENTS.md).
        cnn = family(model) in CNN_FAMILIES
        vit = family(model) == "vit"
        # AlterNet's MSA blocks: the paper's gradient clipping (max-norm 5, its CIFAR config)
        return Recipe(epochs=2 if vit else 1, batch_size=128 if cnn else 64,
                      lr=2e-3 if cnn else 1e-3, weight_decay=0.05,
                      grad_clip=5.0 if family(model) == "alternet" else None,
                      warmup_epochs=0.05 if cnn else 0.03, hessian_batches=30,
                      progressive=((1.0, 20),) if vit else (),
                      augment=Augment(crop_padding=1 if vit else 2, flip=True,
                                      label_smoothing=0.0))
    if preset == "small":
        # Each -mini model trained to a plateau on a 2-core CPU (float32), cosine to zero:
        # CNNs 10 epochs, ViTs 12, each with its first epochs on batches resized to 20 px (a
        # CNN's convolutions and a ViT's 5x5 tokens cost about half as much there). Whether
        # each model plateaued is checked per run (``studies.findings``: the convergence
        # rule); the time it takes is in the gallery header.
        cnn = family(model) != "vit"
        return Recipe(epochs=10 if cnn else 12, batch_size=128, lr=2e-3 if cnn else 1e-3,
                      weight_decay=0.05, warmup_epochs=0.1 if cnn else 0.3,
                      grad_clip=5.0 if family(model) == "alternet" else None,
                      hessian_batches=30, progressive=((3.0, 20),) if cnn else ((6.0, 20),),
                      augment=Augment(crop_padding=2, flip=True, label_smoothing=0.0))
    return Recipe(epochs=305, batch_size=96, lr=1.25e-4, weight_decay=0.05, warmup_epochs=5,
                  grad_clip=5.0, drop_path_rate=0.1, hessian_batches=100, precision="bfloat16",
                  augment=Augment(crop_padding=4, flip=True, randaugment="rand-m9-n2-mstd0.5",
                                  mixup=0.8, cutmix=1.0, label_smoothing=0.1))


def snap_progressive(r: Recipe, img_size: int, patch_size: int | None = None) -> Recipe:
    """``r`` with its progressive-resizing sizes rounded to a multiple of the model's patch
    (a ViT with patch 7 at 28 px trains at 21 px, not 20) and stages at or above the native
    ``img_size`` dropped."""
    p = patch_size or 1
    stages = tuple((u, max(p, round(sz / p) * p)) for u, sz in r.progressive)
    return replace(r, progressive=tuple(st for st in stages if st[1] < img_size))


def architecture_overrides(preset: str, model: str, img_size: int) -> dict:
    """Architecture settings a preset implies: patch 4 for ViTs at 28 px (49 tokens) so the
    quick preset trains in CPU minutes; the paper's patch 2 at 32 px. ``smoke`` shrinks every
    family (2-block ViTs on a 4x4 grid, ResNet/AlterNet widths 16-128 and one head per MSA)
    so a whole pipeline runs in a few CPU minutes; it is for tests, not for findings."""
    if preset == "smoke":
        if family(model) == "vit":
            return {"patch_size": max(1, img_size // 4), "depth": 2}
        if family(model) in CNN_FAMILIES:
            kw = {"widths": (16, 32, 64, 128)}
            return {**kw, "heads": (1, 1, 1, 1)} if family(model) == "alternet" else kw
        return {}
    if family(model) == "vit":
        return {"patch_size": vit_patch(img_size)}
    return {}


def vit_patch(img_size: int) -> int:
    """A ViT's patch at a data set's image size: 4 at 28 px (7 x 7 tokens), the paper's 2 at
    32 px; otherwise the divisor of ``img_size`` nearest img_size / 8 (about 8 x 8 tokens)."""
    if img_size in (28, 32):
        return 4 if img_size == 28 else 2
    divisors = [d for d in range(1, img_size + 1) if img_size % d == 0]
    return min(divisors, key=lambda d: (abs(d - img_size / 8), d))


if __name__ == "__main__":
    raise SystemExit("studies.presets is a library module, not a command; see: vitprobe --help")
