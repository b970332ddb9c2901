"""Data: CIFAR and ImageFolder loading (into memory, or streamed from disk when large), validation splits,
tensor augmentation."""

from jointcodec.data.augment import cutout, downscale, flip_and_translate, normalize
from jointcodec.data.datasets import ImageSet, default_data_dir, load_split, train_val_split
from jointcodec.data.streaming import LazyImages, prefetched

__all__ = ["ImageSet", "LazyImages", "default_data_dir", "load_split", "train_val_split", "cutout", "downscale",
           "flip_and_translate", "normalize", "prefetched"]
