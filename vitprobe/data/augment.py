"""What the training loader does to a batch: torchvision's crops and flips (seeded per
batch), timm's RandAugment per image, and the preset's ``Augment`` settings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# how the loader crops and flips; part of a cached run's identity, with ``train.SCHEDULE``
CROP_FLIP = "torchvision.transforms.v2 RandomCrop + RandomHorizontalFlip per image, " \
            "global RNG seeded per batch"


def crop_flip(img_size: tuple[int, int], padding: int, flip: bool):
    """torchvision's per-image random crop (zero padding) and horizontal flip, or None."""
    from torchvision.transforms import v2

    steps = ([v2.RandomCrop(img_size, padding=padding)] if padding else []) + \
        ([v2.RandomHorizontalFlip()] if flip else [])
    return v2.Compose(steps) if steps else None


def crop_flip_batch(images: torch.Tensor, transform, seed: int) -> torch.Tensor:
    """``transform`` applied to each image of a (B, C, H, W) batch on its own draw. torchvision
    draws from the global generator: it is seeded with ``seed`` here and restored after, so
    the batch depends on ``seed`` alone and the caller's random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.stack([transform(x) for x in images])


class RandAugmentImages(torch.utils.data.Dataset):
    """Per-sample timm RandAugment (PIL) for the ``paper`` preset; returns uint8 tensors."""

    def __init__(self, images: torch.Tensor, config: str = "rand-m9-n2-mstd0.5") -> None:
        from timm.data.auto_augment import rand_augment_transform

        self.images = images
        # the fill of rotations and shears: the CIFAR mean, one value per channel (a
        # three-value fill breaks PIL on one-channel images)
        fill = (124, 116, 104)[:images.shape[1]]
        self.transform = rand_augment_transform(config, {"translate_const": 10,
                                                         "img_mean": fill})

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image

        x = self.images[i]
        mode = "L" if x.shape[0] == 1 else "RGB"
        img = Image.fromarray(x.permute(1, 2, 0).squeeze(-1).numpy() if mode == "L"
                              else x.permute(1, 2, 0).numpy(), mode)
        out = torch.from_numpy(np.asarray(self.transform(img)).copy())
        return out.unsqueeze(0) if out.ndim == 2 else out.permute(2, 0, 1)


@dataclass
class Augment:
    """What the training loader does to each batch (set by the preset)."""

    crop_padding: int = 0
    flip: bool = False
    randaugment: str | None = None  # e.g. "rand-m9-n2-mstd0.5"
    mixup: float = 0.0
    cutmix: float = 0.0
    label_smoothing: float = 0.0
