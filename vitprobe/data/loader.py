"""Seeded, resumable mini-batches: the permutation of epoch e and the augmentation of batch
s depend on (seed, e, s) alone, so a restarted run sees exactly the batches of an
uninterrupted one."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import torch

from .augment import Augment, RandAugmentImages, crop_flip, crop_flip_batch
from .sources import ImageData


def _step_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    digest = hashlib.blake2b(f"{seed}/{epoch}/{step}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


class _Steps(torch.utils.data.Dataset):
    """One epoch's batches from ``start`` on, each prepared on the CPU by index: what the
    ``torch.utils.data.DataLoader`` workers of a ``Loader`` compute."""

    def __init__(self, loader: Loader, epoch: int, start: int) -> None:
        self.loader, self.epoch, self.start = loader, epoch, start
        self.order = loader.order(epoch)

    def __len__(self) -> int:
        return len(self.loader) - self.start

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(i)  # also ends plain iteration over the steps
        step = self.start + i
        b = self.loader.batch_size
        return self.loader.cpu_batch(self.order[step * b:(step + 1) * b], self.epoch, step)


class Loader:
    """Seeded mini-batches of normalised float images: epoch ``e`` visits a permutation drawn
    from (seed, e), and batch ``s`` of it is augmented with a generator drawn from
    (seed, e, s). So ``iterate(epoch, start=s)`` after a restart yields exactly the batches an
    uninterrupted run would have seen (the resume guarantee of ``train.fit``).

    ``workers`` > 0 prepares the batches (RandAugment, crops, flips) in that many
    ``torch.utils.data.DataLoader`` worker processes, ahead of the training step, as a GPU
    needs; each batch still depends only on (seed, e, s), so they are the same batches.
    """

    def __init__(self, data: ImageData, batch_size: int, shuffle: bool = False,
                 augment: Augment | None = None, seed: int = 0, drop_last: bool = False,
                 device: str | torch.device = "cpu", rank: int = 0,
                 world_size: int = 1, workers: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        if workers < 0:
            raise ValueError(f"workers must be >= 0; got {workers}")
        self.workers = workers
        if len(data) == 0:
            raise ValueError("the data set is empty")
        self.data, self.batch_size, self.shuffle = data, batch_size, shuffle
        self.augment = augment or Augment()
        self.seed, self.drop_last, self.device = seed, drop_last, torch.device(device)
        # data parallel: every rank draws the same global batch, augments it identically and
        # keeps its slice, so N ranks see exactly what one process with the same batch sees
        self.rank, self.world_size = rank, world_size
        self._randaug = (RandAugmentImages(data.images, self.augment.randaugment)
                         if self.augment.randaugment else None)
        self._crop_flip = crop_flip(tuple(data.images.shape[-2:]), self.augment.crop_padding,
                                    self.augment.flip)
        self._mixup = None
        if self.augment.mixup > 0 or self.augment.cutmix > 0:
            from timm.data import Mixup

            self._mixup = Mixup(mixup_alpha=self.augment.mixup, cutmix_alpha=self.augment.cutmix,
                                label_smoothing=self.augment.label_smoothing,
                                num_classes=data.info.num_classes)

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def soft_targets(self) -> bool:
        return self._mixup is not None

    def order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(len(self.data))
        return torch.randperm(len(self.data), generator=_step_generator(self.seed, epoch, -1))

    def iterate(self, epoch: int = 0,
                start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.workers and len(self) > start:
            pin = self.device.type == "cuda"
            batches = torch.utils.data.DataLoader(
                _Steps(self, epoch, start), batch_size=None, num_workers=self.workers,
                pin_memory=pin, prefetch_factor=2)
        else:
            batches = _Steps(self, epoch, start)
        for cpu in batches:
            yield self.finish(*cpu)

    def __iter__(self):
        return self.iterate(0)

    def cpu_batch(self, idx: torch.Tensor, epoch: int, step: int):
        """Batch ``step`` of ``epoch`` (its indices ``idx``) augmented on the CPU: images,
        targets and the seed of its mixup draw, all from the generator of (seed, epoch,
        step), in a fixed order."""
        g = _step_generator(self.seed, epoch, step)
        if self._randaug is not None:
            import random

            # timm's RandAugment draws from both global generators: seed both per batch
            seed = int(torch.randint(0, 2**31, (1,), generator=g))
            random.seed(seed)
            np.random.seed(seed)
            images = torch.stack([self._randaug[int(i)] for i in idx])
        else:
            images = self.data.images[idx]
        if self._crop_flip is not None:
            seed = int(torch.randint(0, 2**31, (1,), generator=g))
            images = crop_flip_batch(images, self._crop_flip, seed)
        mix_seed = (int(torch.randint(0, 2**31, (1,), generator=g))
                    if self._mixup is not None else -1)
        return images, self.data.targets[idx], mix_seed

    def finish(self, images: torch.Tensor, targets: torch.Tensor, mix_seed: int):
        """A CPU batch on the device: normalised, this rank's slice, mixed."""
        x = self.data.normalize(images.to(self.device, non_blocking=True))
        y = targets.to(self.device, non_blocking=True)
        if self.world_size > 1:
            x, y = x[self.rank::self.world_size], y[self.rank::self.world_size]
        if self._mixup is not None and len(y) % 2 == 0:
            # timm's Mixup draws from numpy's global generator: seed it per batch.
            np.random.seed(mix_seed)
            x, y = self._mixup(x, y)
        return x, y
