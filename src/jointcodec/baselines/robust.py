"""The codec-robust training pool: every training image decoded by a few random (codec, setting) pairs.

Protocol v2 trains one receiver for all codecs: in each epoch each training image comes from a random
codec and setting of the ladders (or, with a small probability, is the clean image). Coding all 50,000
training images at all ~47 settings would cost hours of CPU; instead each image is coded at ``versions``
distinct settings drawn uniformly (``plan_pool``), and each epoch picks one of them per image
(``RobustSource``). Every setting still contributes about ``versions / len(entries)`` of the images, so the
receiver sees every codec and setting in every epoch.
"""

from __future__ import annotations

import numpy as np
import torch

from jointcodec.baselines.cache import coded_cached
from jointcodec.codecs import ImageCodec, Setting
from jointcodec.errors import ConfigError

Entry = tuple[ImageCodec, Setting]


def ladder_entries(codecs: list[ImageCodec]) -> list[Entry]:
    """Every (codec, setting) of the codecs' ladders, in a fixed order."""
    return [(codec, setting) for codec in codecs for setting in codec.ladder]


def plan_pool(n_images: int, n_entries: int, versions: int, seed: int) -> np.ndarray:
    """(versions, n_images) entry indices; an image's versions are distinct entries, drawn uniformly."""
    if not 1 <= versions <= n_entries:
        raise ConfigError(f"pool versions must be in [1, {n_entries}] (the ladder settings), got {versions}")
    rng = np.random.default_rng(seed)
    # argsort of uniform noise = a uniform random permutation per image; its first columns are distinct.
    return np.argsort(rng.random((n_images, n_entries)), axis=1)[:, :versions].T.copy()


def build_pool(images: np.ndarray, entries: list[Entry], plan: np.ndarray, cache_dir=None, workers: int = 1,
               progress: bool = False, log=print) -> tuple[torch.Tensor, list[dict]]:
    """Decode each image at its planned entries: (versions, N, 3, H, W) uint8 and a rate row per entry.

    ``images`` are (N, H, W, 3) uint8. Each entry codes the images planned for it in one cached batch.
    """
    versions, n = plan.shape
    if n != len(images):
        raise ConfigError(f"pool plan is for {n} images, got {len(images)}")
    pool = torch.empty((versions, n, images.shape[3], images.shape[1], images.shape[2]), dtype=torch.uint8)
    rows = []
    for e, (codec, setting) in enumerate(entries):
        version_idx, image_idx = np.nonzero(plan == e)
        if len(image_idx) == 0:
            continue
        coded, _, hit = coded_cached(codec, np.ascontiguousarray(images[image_idx]), setting, cache_dir, workers,
                                     progress, f"pool {codec.name} {codec.format_setting(setting)}")
        decoded = torch.from_numpy(coded.decoded).permute(0, 3, 1, 2)
        pool[torch.from_numpy(version_idx), torch.from_numpy(image_idx)] = decoded
        cpu = coded.encode_cpu_s, coded.decode_cpu_s
        rows.append({"codec": codec.name, "setting": setting, "n_images": len(image_idx),
                     "payload_bpp": coded.payload_bpp, "file_bpp": coded.file_bpp,
                     "cpu_s": float(sum(np.sum(c) for c in cpu)) if all(c is not None for c in cpu) else None})
        log(f"pool {codec.name} {codec.format_setting(setting)}: {len(image_idx)} images, payload "
            f"{coded.payload_bpp:.3f} bpp ({'cached' if hit else 'coded'})")
    return pool, rows


class RobustSource:
    """An :data:`~jointcodec.baselines.receiver_training.ImageSource`: per epoch and image, one of its
    pool versions at random, or the clean image with probability ``p_clean``."""

    def __init__(self, pool: torch.Tensor, clean: torch.Tensor, labels: torch.Tensor, p_clean: float) -> None:
        if pool.shape[1:] != clean.shape or len(labels) != len(clean):
            raise ConfigError(f"pool {tuple(pool.shape)}, clean {tuple(clean.shape)} and {len(labels)} labels differ")
        if not 0.0 <= p_clean < 1.0:
            raise ConfigError(f"p_clean must be in [0, 1), got {p_clean}")
        self.pool, self.clean, self.labels, self.p_clean = pool, clean, labels, p_clean

    def __call__(self, epoch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.labels)
        version = torch.randint(0, self.pool.shape[0], (n,), generator=generator)
        images = self.pool[version, torch.arange(n)]
        use_clean = torch.rand(n, generator=generator) < self.p_clean
        images[use_clean] = self.clean[use_clean]
        return images, self.labels


__all__ = ["Entry", "RobustSource", "build_pool", "ladder_entries", "plan_pool"]
