"""The one interface every classic codec wrapper follows, and where its payload lies in a file.

Measurement rule (docs/baselines.md): a classic codec is reported two ways. ``file_bpp`` counts the whole file;
``payload_bpp`` counts only the entropy-coded data of that image. Everything identical for every image
at a setting (tables, parameter sets, container boxes) is excluded, as are fixed-width length fields
and padding that only restate how long the payload is (jointcodec's own payload excludes its length field
too). Each wrapper says in its docstring how it cuts the payload out of its format, and ``layout`` checks
the format as it cuts: a file it does not understand raises :class:`PayloadCutError` instead of a guess.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from jointcodec.errors import ConfigError, JointCodecError

Setting = int | float
Span = tuple[int, int]  # [start, end) byte offsets in a file


class CodecError(JointCodecError):
    """A codec library failed, or is not installed."""


class PayloadCutError(CodecError):
    """A file is not laid out the way the wrapper's payload cut expects."""


@dataclass(frozen=True)
class Layout:
    """Where the per-image data lies in one encoded file.

    ``payload``: the spans of entropy-coded data of this image (counted in ``payload_bpp``).
    ``framing``: the spans that only restate the payload's length (length fields, padding).
    Everything else is *shared*: identical for every image at a setting, which the tests verify.
    ``exact`` is False where a wrapper, meeting a layout it does not fully parse, counted more than the
    payload (e.g. JPEG XL's rare multi-frame files); the shared part of such a file is then a prefix of
    the exact files' shared part.
    """

    size: int
    payload: tuple[Span, ...]
    framing: tuple[Span, ...] = ()
    exact: bool = True  # False: the cut fell back to counting some constant bytes as payload (never fewer)

    def __post_init__(self) -> None:
        spans = sorted(self.payload + self.framing)
        for (a, b), (c, _) in zip(spans, spans[1:], strict=False):
            if b > c:
                raise PayloadCutError(f"overlapping spans in a layout: [{a}, {b}) and [{c}, ...)")
        if any(a < 0 or b < a or b > self.size for a, b in spans):
            raise PayloadCutError(f"a span lies outside the {self.size}-byte file: {spans}")

    @property
    def payload_bytes(self) -> int:
        return sum(b - a for a, b in self.payload)

    def payload_of(self, data: bytes) -> bytes:
        return b"".join(data[a:b] for a, b in self.payload)

    def shared_of(self, data: bytes) -> bytes:
        """The file without its payload and framing: what a receiver could hold once per setting."""
        keep, cursor = [], 0
        for a, b in sorted(self.payload + self.framing):
            keep.append(data[cursor:a])
            cursor = b
        keep.append(data[cursor:])
        return b"".join(keep)


class ImageCodec(ABC):
    """A classic image codec (JPEG, WebP, ...): encode(image, setting) -> bytes, decode(bytes) -> image, and the
    payload cut of its format.

    Images are ``(H, W, 3)`` uint8 RGB arrays. A *setting* is the codec's own rate knob (quality,
    distance or PSNR target), ``ladder`` the settings the baseline sweep runs by default, ordered from
    the lowest rate to the highest.
    """

    name: ClassVar[str]  # the system name in results: jpeg420, webp, ...
    description: ClassVar[str]
    setting_name: ClassVar[str]  # what the setting means, for messages and tables
    setting_type: ClassVar[type] = int
    setting_range: ClassVar[tuple[float, float]]
    rate_increases: ClassVar[bool] = True  # does a larger setting spend more bits?
    ladder: ClassVar[tuple[Setting, ...]]

    @abstractmethod
    def _encode(self, image: np.ndarray, setting: Setting) -> bytes: ...

    @abstractmethod
    def _decode(self, data: bytes) -> np.ndarray: ...

    @abstractmethod
    def layout(self, data: bytes) -> Layout:
        """Parse ``data`` and locate its payload and framing (raises PayloadCutError if it cannot)."""

    @abstractmethod
    def library(self) -> str:
        """The library and version that does the coding, e.g. ``libjpeg-turbo 3.2.0 (Pillow 13.0.0)``."""

    def encode(self, image: np.ndarray, setting: Setting) -> bytes:
        image = np.ascontiguousarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ConfigError(f"{self.name} encodes (H, W, 3) uint8 images, got {image.shape} {image.dtype}")
        try:
            return self._encode(image, self.check_setting(setting))
        except JointCodecError:
            raise
        except Exception as err:  # libraries raise assorted types (OSError, RuntimeError, their own)
            raise CodecError(f"{self.name} failed to encode at {self.setting_name} {setting}: {err}") from err

    def decode(self, data: bytes) -> np.ndarray:
        try:
            image = self._decode(data)
        except Exception as err:
            raise CodecError(f"{self.name} failed to decode a {len(data)}-byte file: {err}") from err
        return np.ascontiguousarray(image[..., :3], dtype=np.uint8)

    def payload_bits(self, data: bytes) -> int:
        return 8 * self.layout(data).payload_bytes

    def check_setting(self, setting: Setting | str) -> Setting:
        """The setting as the codec's type, or a ConfigError that says what is allowed."""
        lo, hi = self.setting_range
        try:
            value = float(setting)
        except (TypeError, ValueError):
            value = math.nan
        whole = math.isfinite(value) and value == int(value)
        if math.isfinite(value) and lo <= value <= hi and (self.setting_type is float or whole):
            return self.setting_type(value)
        kind = "an integer" if self.setting_type is int else "a number"
        raise ConfigError(f"{self.name}: {self.setting_name} must be {kind} in [{lo:g}, {hi:g}], got {setting!r}")

    def format_setting(self, setting: Setting) -> str:
        """A canonical text form (file names, cache keys, tables): 20, 1.5, 0.75."""
        value = self.check_setting(setting)
        return str(value) if self.setting_type is int else f"{value:g}"
