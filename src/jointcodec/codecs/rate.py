"""Rate control for the classic codecs: measure a ladder of settings, or search the setting that hits a
target mean payload bpp (the sweep uses it to place each codec's points at 0.4, 0.6, ... bpp)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from jointcodec.codecs.base import ImageCodec, Setting
from jointcodec.codecs.batch import code_images


@dataclass
class Search:
    """The outcome of :func:`find_setting`: the chosen setting, its measured rate and every probe."""

    codec: str
    target_bpp: float
    setting: Setting
    payload_bpp: float
    reached: bool  # False: the target lies outside the codec's range (by > tolerance); the nearest end is returned
    probes: list[tuple[Setting, float]] = field(default_factory=list)


def find_setting(codec: ImageCodec, images: np.ndarray, target_bpp: float, tolerance: float = 0.02,
                 max_probes: int = 14, workers: int = 1) -> Search:
    """Bisect the codec's setting range for the mean payload bpp of ``images`` closest to ``target_bpp``.

    Integer settings are bisected to adjacent values and the closer one is kept; real-valued settings
    stop within ``tolerance`` bpp (geometrically for a distance, whose effect is roughly logarithmic).
    The rate need not be strictly monotone in the setting; bisection still brackets a crossing.
    """
    cache: dict[Setting, float] = {}

    def rate(setting: Setting) -> float:
        setting = codec.check_setting(setting)
        if setting not in cache:
            cache[setting] = code_images(codec, images, setting, workers).payload_bpp
        return cache[setting]

    lo, hi = (codec.check_setting(v) for v in codec.setting_range)
    sign = 1 if codec.rate_increases else -1  # bisect on sign * rate, which grows with the setting
    if sign * (rate(lo) - target_bpp) >= 0 or sign * (rate(hi) - target_bpp) <= 0:
        end = min((lo, hi), key=lambda s: abs(rate(s) - target_bpp))
        reached = abs(rate(end) - target_bpp) <= tolerance
        return Search(codec.name, target_bpp, end, rate(end), reached, list(cache.items()))
    while len(cache) < max_probes:
        if codec.setting_type is int:
            if hi - lo <= 1:
                break
            mid = (lo + hi) // 2
        else:
            mid = round(math.sqrt(lo * hi) if lo > 0 and not codec.rate_increases else (lo + hi) / 2, 2)
            if mid in (lo, hi):
                break
        if abs(rate(mid) - target_bpp) <= tolerance and codec.setting_type is float:
            break
        if sign * (rate(mid) - target_bpp) < 0:
            lo = mid
        else:
            hi = mid
    best = min(cache, key=lambda s: abs(cache[s] - target_bpp))
    # Bracketed: the target lies within the codec's range, so the closest setting counts as reaching it even
    # where integer steps are coarser than the tolerance.
    return Search(codec.name, target_bpp, best, cache[best], True, sorted(cache.items()))


def measure_ladder(codec: ImageCodec, images: np.ndarray, settings: tuple[Setting, ...] | None = None,
                   workers: int = 1, progress: bool = False) -> list[dict]:
    """Rate, PSNR and timings of each setting of the ladder (default: the codec's own) on ``images``."""
    rows = []
    for setting in settings or codec.ladder:
        coded = code_images(codec, images, setting, workers, progress)
        rows.append({**coded.summary(), "psnr_db": coded.psnr(images)})
    return rows
