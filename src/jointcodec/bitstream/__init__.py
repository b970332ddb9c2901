"""The ``.jcc`` container format (``docs/bitstream.md``) and its errors."""

from jointcodec.bitstream.container import FORMAT_VERSION, MAGIC, SUFFIX, Container, image_count, pack, split, unpack
from jointcodec.bitstream.errors import (
    BitstreamError,
    CorruptBitstreamError,
    TruncatedBitstreamError,
    UnsupportedVersionError,
    WrongModelError,
)

__all__ = ["FORMAT_VERSION", "MAGIC", "SUFFIX", "Container", "image_count", "pack", "split", "unpack", "BitstreamError",
           "CorruptBitstreamError", "TruncatedBitstreamError", "UnsupportedVersionError", "WrongModelError"]
