"""WebP, lossy (VP8 key frame, 4:2:0) through Pillow and libwebp, ``method=6`` (the slowest, smallest).

**Payload cut.** The VP8 frame: its 3-byte frame tag (key-frame flag, version and the size of the first
partition, which is per-image) and everything after the 7-byte key-frame header (start code and the
image size), i.e. the first partition (frame header, probabilities and modes, arithmetic coded) and the
token partitions. Excluded: the RIFF header and the ``VP8 `` chunk header (their two size fields and the
pad byte that evens an odd chunk are framing: they restate the payload length), the start code
``9d 01 2a`` and the dimensions. Only the simple format (one ``VP8 `` chunk, no VP8X/ALPH/metadata
chunks) is accepted: Pillow writes it for RGB images without metadata.
"""

from __future__ import annotations

import numpy as np

from jointcodec.codecs.base import ImageCodec, Layout, PayloadCutError, Setting
from jointcodec.codecs.pillow_io import pillow_decode, pillow_encode, pillow_library

START_CODE = b"\x9d\x01\x2a"


def vp8_layout(data: bytes) -> Layout:
    n = len(data)
    if n < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise PayloadCutError("not a WebP file (no RIFF/WEBP header)")
    if int.from_bytes(data[4:8], "little") != n - 8:
        raise PayloadCutError("WebP: the RIFF size does not match the file")
    if data[12:16] != b"VP8 ":
        raise PayloadCutError(f"WebP: expected one lossy 'VP8 ' chunk, found {data[12:16]!r}")
    size = int.from_bytes(data[16:20], "little")
    start, end = 20, 20 + size
    if end + (size & 1) != n:
        raise PayloadCutError("WebP: the file holds more than one chunk (only the simple lossy format is cut)")
    tag = int.from_bytes(data[start:start + 3], "little")
    if tag & 1 or data[start + 3:start + 6] != START_CODE:
        raise PayloadCutError("WebP: the VP8 chunk is not a key frame")
    if (tag >> 5) > size - 10:
        raise PayloadCutError("WebP: the first VP8 partition runs past the chunk")
    framing = [(4, 8), (16, 20)] + ([(end, end + 1)] if size & 1 else [])
    return Layout(n, ((start, start + 3), (start + 10, end)), tuple(framing))


class WebP(ImageCodec):
    name = "webp"
    description = "WebP lossy (libwebp, method 6)"
    setting_name = "quality"
    setting_type = int
    setting_range = (0, 100)
    ladder = (0, 4, 10, 25, 45, 60)

    def _encode(self, image: np.ndarray, setting: Setting) -> bytes:
        return pillow_encode(image, "WEBP", quality=setting, method=6, lossless=False)

    def _decode(self, data: bytes) -> np.ndarray:
        return pillow_decode(data)

    def layout(self, data: bytes) -> Layout:
        return vp8_layout(data)

    def library(self) -> str:
        return pillow_library("webp", "libwebp")
