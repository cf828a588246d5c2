"""Data: sets as in-memory uint8 tensors, and seeded, resumable loaders with the presets'
augmentation.

Each data set is one ``DataSource`` in ``SOURCES`` (its shape and normalisation, the files a
split is read from, its reader); ``load`` and ``source_files`` dispatch to it once.
``fashion-mnist`` is the embedded default (Debian's ``dataset-fashion-mnist`` IDX files);
``cifar10``/``cifar100`` come through torchvision's download or a ``--data-dir``;
``synthetic`` is a small learnable set for tests only.

Three files, as timm's ``data/``: ``sources`` (the registry of data sets and their readers),
``augment`` (crops, flips, RandAugment) and ``loader`` (seeded, resumable batches).
"""

from .augment import CROP_FLIP, Augment, RandAugmentImages, crop_flip, crop_flip_batch
from .loader import Loader
from .sources import (
    DATASETS,
    SOURCES,
    SYSTEM_FASHION_MNIST,
    DatasetInfo,
    DataSource,
    ImageData,
    content_identity,
    dataset_info,
    load,
    read_cifar_batch,
    read_idx,
    source,
    source_files,
    stratified_indices,
)

__all__ = ["CROP_FLIP", "DATASETS", "SOURCES", "SYSTEM_FASHION_MNIST", "Augment", "DataSource",
           "DatasetInfo", "ImageData", "Loader", "RandAugmentImages", "content_identity",
           "crop_flip", "crop_flip_batch", "dataset_info", "load", "read_cifar_batch",
           "read_idx", "source", "source_files", "stratified_indices"]
