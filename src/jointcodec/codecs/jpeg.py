"""JPEG (baseline, Huffman) through Pillow and libjpeg-turbo, chroma 4:2:0 or 4:4:4.

**Payload cut.** The entropy-coded scan data: the bytes after the SOS segment up to the EOI marker
(byte stuffing and any restart markers inside the scan included). Excluded: SOI, the JFIF APP0 segment,
the quantisation tables (DQT, fixed by the quality), the Huffman tables (DHT: the standard tables of
JPEG Annex K, because the encoder runs with ``optimize=False``; optimised tables would be per image and
would have to be counted), SOF and SOS headers (fixed by the image size and the sampling) and EOI.
These are the same for every 32x32 image at a quality; ``tests/test_codecs.py`` checks it. The reference
payload rates of 4:2:0 (``JPEG420_REFERENCE_BPP``) are reproduced by ``jointcodec ladder`` (docs/baselines.md).
"""

from __future__ import annotations

import numpy as np

from jointcodec.codecs.base import ImageCodec, Layout, PayloadCutError, Setting
from jointcodec.codecs.pillow_io import pillow_decode, pillow_encode, pillow_library

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
# Reference payload bpp of JPEG 4:2:0 by quality (Pillow/libjpeg-turbo, standard Huffman tables, the first 2,000
# CIFAR-10 test images): the rates that this payload cut reproduces, a check that it counts the scan data and
# nothing else. `jointcodec ladder` prints its measurement beside them (docs/measurement.md, docs/baselines.md).
JPEG420_REFERENCE_BPP = {5: 0.36, 10: 0.58, 15: 0.76, 20: 0.91, 25: 1.04, 50: 1.57, 75: 2.31}
RESTART = frozenset(range(0xD0, 0xD8))
STANDALONE = RESTART | {0x01}  # RST0-7 and TEM carry no length field


def scan_spans(data: bytes) -> tuple[tuple[int, int], ...]:
    """The entropy-coded data of every scan in a JPEG file (checks the marker structure on the way)."""
    if data[:2] != b"\xff\xd8":
        raise PayloadCutError("not a JPEG file (no SOI marker)")
    spans, pos, n = [], 2, len(data)
    while True:
        if pos + 2 > n or data[pos] != 0xFF:
            raise PayloadCutError(f"JPEG: expected a marker at byte {pos}")
        while pos + 1 < n and data[pos + 1] == 0xFF:  # fill bytes before a marker
            pos += 1
        marker = data[pos + 1]
        if marker == EOI:
            if pos + 2 != n:
                raise PayloadCutError(f"JPEG: {n - pos - 2} bytes after EOI")
            break
        if marker in STANDALONE:
            pos += 2
            continue
        if pos + 4 > n:
            raise PayloadCutError("JPEG: truncated marker segment")
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if end > n:
            raise PayloadCutError(f"JPEG: segment {marker:#04x} runs past the end of the file")
        pos = end
        if marker == SOS:
            start = pos
            # The scan ends at the first marker that is neither stuffing (FF 00) nor a restart marker.
            while True:
                pos = data.find(b"\xff", pos)
                if pos < 0 or pos + 1 >= n:
                    raise PayloadCutError("JPEG: the scan has no end marker")
                if data[pos + 1] != 0x00 and data[pos + 1] not in RESTART:
                    break
                pos += 2
            spans.append((start, pos))
    if not spans:
        raise PayloadCutError("JPEG: no scan (SOS) in the file")
    return tuple(spans)


class _Jpeg(ImageCodec):
    setting_name = "quality"
    setting_type = int
    setting_range = (1, 100)
    subsampling: int  # Pillow's code: 0 = 4:4:4, 2 = 4:2:0

    def _encode(self, image: np.ndarray, setting: Setting) -> bytes:
        return pillow_encode(image, "JPEG", quality=setting, subsampling=self.subsampling, optimize=False,
                             progressive=False)

    def _decode(self, data: bytes) -> np.ndarray:
        return pillow_decode(data)

    def layout(self, data: bytes) -> Layout:
        return Layout(len(data), scan_spans(data))

    def library(self) -> str:
        return pillow_library("libjpeg_turbo", "libjpeg-turbo")


class Jpeg420(_Jpeg):
    name = "jpeg420"
    description = "JPEG 4:2:0 (libjpeg-turbo, standard Huffman tables)"
    subsampling = 2
    ladder = (5, 10, 15, 22, 35, 60)


class Jpeg444(_Jpeg):
    name = "jpeg444"
    description = "JPEG 4:4:4 (libjpeg-turbo, standard Huffman tables)"
    subsampling = 0
    ladder = (3, 8, 12, 17, 30, 50)
