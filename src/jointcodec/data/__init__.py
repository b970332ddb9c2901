"""Data: CIFAR and ImageFolder loading into memory, validation splits, tensor augmentation."""

from jointcodec.data.augment import flip_and_translate, normalize
from jointcodec.data.datasets import ImageSet, default_data_dir, load_split, train_val_split

__all__ = ["ImageSet", "default_data_dir", "load_split", "train_val_split", "flip_and_translate", "normalize"]
