"""Classic image codecs behind one interface, with their payload cut (the measurement rules, docs/baselines.md).

``get_codec("jpeg420")`` returns a wrapper with ``encode(image, setting) -> bytes``,
``decode(bytes) -> image``, ``layout(bytes)`` (where the payload lies) and ``payload_bits(bytes)``.
Rate control: every codec has a default ``ladder`` of settings, and :func:`find_setting` searches the
setting that hits a target mean payload bpp.
"""

from __future__ import annotations

from jointcodec.codecs.avif import Avif
from jointcodec.codecs.base import CodecError, ImageCodec, Layout, PayloadCutError, Setting
from jointcodec.codecs.heif import Heif
from jointcodec.codecs.hevc import Hevc
from jointcodec.codecs.jpeg import Jpeg420, Jpeg444
from jointcodec.codecs.jpeg2000 import Jpeg2000
from jointcodec.codecs.jpegxl import JpegXL
from jointcodec.codecs.webp import WebP
from jointcodec.errors import ConfigError

CODECS: dict[str, type[ImageCodec]] = {
    c.name: c for c in (Jpeg420, Jpeg444, Jpeg2000, WebP, Hevc, Heif, Avif, JpegXL)
}


def get_codec(name: str) -> ImageCodec:
    """The wrapper for a system name (``jpeg420``, ``jpeg444``, ``jpeg2000``, ``webp``, ``hevc`` (x265 at the
    image's size, the BPG stand-in), ``heif`` (x265 through libheif, padded to 64x64), ``avif``, ``jpegxl``);
    ConfigError for an unknown name, CodecError when its library is missing."""
    if name not in CODECS:
        raise ConfigError(f"unknown codec {name!r}; choose from {', '.join(CODECS)}")
    return CODECS[name]()


__all__ = ["CODECS", "ImageCodec", "CodecError", "Layout", "PayloadCutError", "Setting", "get_codec"]
