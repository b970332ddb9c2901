"""AVIF (AV1 intra, libaom encoder, through imagecodecs and libavif), 4:2:0, speed 6, one thread.

**Payload cut.** The AV1 OBUs of the coded frame (``OBU_FRAME``, or frame header and tile group OBUs),
whole: OBU header, size field, frame header (which carries per-image choices such as loop-filter and
CDEF strengths) and tile data. Excluded: the container (ftyp, meta with av1C, ispe, pixi, colr, ipma,
iinf, pitm), the temporal delimiter and sequence header OBUs inside the item data, the iloc extent
length and the mdat size (framing).
"""

from __future__ import annotations

import numpy as np

from jointcodec.codecs.base import CodecError, ImageCodec, Layout, PayloadCutError, Setting
from jointcodec.codecs.isobmff import primary_item

SHARED_OBUS = {1: "sequence header", 2: "temporal delimiter"}
SPEED = 6


def read_leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        if pos + i >= len(data):
            break
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise PayloadCutError(f"AV1: bad leb128 size at byte {pos}")


def av1_layout(data: bytes) -> Layout:
    item = primary_item(data)
    if "av1C" not in item.properties:
        raise PayloadCutError("AVIF: the primary item has no av1C configuration")
    payload = []
    for start, end in item.extents:
        pos = start
        while pos < end:
            header = data[pos]
            kind, has_extension, has_size = (header >> 3) & 15, header >> 2 & 1, header >> 1 & 1
            if header & 0x80:
                raise PayloadCutError(f"AV1: forbidden bit set in the OBU header at byte {pos}")
            body = pos + 1 + has_extension
            size, body = read_leb128(data, body) if has_size else (end - body, body)
            if body + size > end:
                raise PayloadCutError(f"AV1: OBU at byte {pos} runs past its extent")
            if kind not in SHARED_OBUS:
                payload.append((pos, body + size))
            pos = body + size
    if not payload:
        raise PayloadCutError("AVIF: the primary item holds no coded frame")
    return Layout(len(data), tuple(payload), item.framing)


class Avif(ImageCodec):
    name = "avif"
    description = "AVIF, AV1 intra 4:2:0 (libaom via libavif, speed 6)"
    setting_name = "quality"
    setting_type = int
    setting_range = (0, 100)
    ladder = (8, 20, 30, 37, 48, 58)

    def __init__(self) -> None:
        import imagecodecs

        if not imagecodecs.AVIF.available:
            raise CodecError("this imagecodecs build has no AVIF support")
        self._ic = imagecodecs

    def _encode(self, image: np.ndarray, setting: Setting) -> bytes:
        return bytes(self._ic.avif_encode(image, level=int(setting), speed=SPEED, pixelformat="420", codec="aom",
                                          numthreads=1))

    def _decode(self, data: bytes) -> np.ndarray:
        return self._ic.avif_decode(data, numthreads=1)

    def layout(self, data: bytes) -> Layout:
        return av1_layout(data)

    def library(self) -> str:
        return f"{self._ic.avif_version()} with libaom (imagecodecs {self._ic.__version__})"
