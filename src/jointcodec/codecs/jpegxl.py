"""JPEG XL (libjxl through imagecodecs), lossy VarDCT at a Butteraugli distance, effort 7, one thread.

**Setting.** libjxl's distance (1.0 is "visually lossless", larger is coarser, so the rate *falls* as
the setting grows).

**Payload cut.** The frame's section data after its table of contents (TOC). A 32x32 frame has one
group and one pass, so it is coded as a single section whose byte length is the TOC's one entry.
Excluded: the signature, the size header and the image metadata, the frame header (per setting: frame
type, encoding, quantiser-matrix scales, upsampling, restoration filters) and the TOC, whose entry is
the section's length (framing). The bit-packed headers are parsed here (ISO/IEC 18181-1 section A and C:
size header, image metadata and frame header bundles, U32/U64 fields) and the parse is checked by the TOC
entry ending exactly at the end of the file. At effort 7 libjxl adds a reference frame (patches) to a
few per cent of CIFAR images; such a file is counted whole from its first frame header on (headers and
TOCs included: a few bytes more for JPEG XL, never fewer). Image headers other than libjxl's default for
an 8-bit sRGB image raise PayloadCutError rather than being guessed at.
"""

from __future__ import annotations

import numpy as np

from jointcodec.codecs.base import CodecError, ImageCodec, Layout, PayloadCutError, Setting

EFFORT = 7
MAX_SINGLE_GROUP = 256  # VarDCT group size: larger images have several sections, not cut here


class BitReader:
    """LSB-first bit reader, as JPEG XL packs its headers."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.bit = data, 8 * pos

    def u(self, n: int) -> int:
        value = 0
        for i in range(n):
            byte, shift = divmod(self.bit + i, 8)
            if byte >= len(self.data):
                raise PayloadCutError("JPEG XL: header runs past the end of the file")
            value |= ((self.data[byte] >> shift) & 1) << i
        self.bit += n
        return value

    def u32(self, *dist: tuple[int, int]) -> int:
        """U32 with four (bits, offset) choices; ``(0, v)`` is the constant v."""
        bits, offset = dist[self.u(2)]
        return offset + self.u(bits)

    def u64(self) -> int:
        selector = self.u(2)
        if selector == 0:
            return 0
        if selector == 1:
            return 1 + self.u(4)
        if selector == 2:
            return 17 + self.u(8)
        value, shift = self.u(12), 12
        while self.u(1):
            if shift == 60:
                return value | self.u(4) << shift
            value |= self.u(8) << shift
            shift += 8
        return value

    def pad_to_byte(self) -> int:
        """ZeroPadToByte; returns the byte position reached."""
        if self.bit % 8 and self.u(8 - self.bit % 8):
            raise PayloadCutError("JPEG XL: non-zero padding bits")
        return self.bit // 8


def _size_header(r: BitReader) -> tuple[int, int]:
    ratios = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}
    large = ((9, 1), (13, 1), (18, 1), (30, 1))
    small = r.u(1)
    height = (r.u(5) + 1) * 8 if small else r.u32(*large)
    ratio = r.u(3)
    if ratio:
        num, den = ratios[ratio]
        width = height * num // den
    else:
        width = (r.u(5) + 1) * 8 if small else r.u32(*large)
    return width, height


class _NotSingleFrame(Exception):
    """The codestream is not one plain regular frame: counted whole instead of cut (see jxl_layout)."""


def _frame_header(r: BitReader) -> None:
    """Reads a FrameHeader of a single regular frame of an image with default metadata (xyb, no extras);
    raises _NotSingleFrame for anything else."""
    if r.u(1):  # all_default: a regular, last, VarDCT frame
        return
    frame_type, encoding = r.u(2), r.u(1)
    flags = r.u64()
    if frame_type != 0:
        raise _NotSingleFrame(f"JPEG XL: frame type {frame_type}, expected one regular frame")
    if not flags & 32:  # kUseLfFrame
        r.u32((0, 1), (0, 2), (0, 4), (0, 8))  # upsampling (no extra channels, so no ec_upsampling)
    if encoding == 1:
        r.u(2)  # group_size_shift
    else:
        r.u(3), r.u(3)  # x_qm_scale, b_qm_scale (xyb_encoded VarDCT)
    if r.u32((0, 1), (0, 2), (0, 3), (3, 4)) != 1:
        raise _NotSingleFrame("JPEG XL: a progressive frame (several passes) is not cut here")
    if r.u(1):
        raise _NotSingleFrame("JPEG XL: a cropped frame is not cut here")
    if r.u32((0, 0), (0, 1), (0, 2), (2, 3)) != 0:  # blending mode
        raise _NotSingleFrame("JPEG XL: a blended frame is not cut here")
    if not r.u(1):  # is_last
        raise _NotSingleFrame("JPEG XL: more than one frame")
    name_length = r.u32((0, 0), (4, 0), (5, 16), (10, 48))
    r.u(8 * name_length)
    if not r.u(1):  # RestorationFilter.all_default
        if r.u(1) and r.u(1):  # gab, then gab_custom
            raise _NotSingleFrame("JPEG XL: custom Gabor weights are not parsed")
        if r.u(2):  # epf_iters
            if (encoding == 0 and r.u(1)) or r.u(1) or r.u(1):  # sharp (VarDCT), weight, sigma custom
                raise _NotSingleFrame("JPEG XL: custom EPF parameters are not parsed")
            if encoding == 1:
                r.u(16)  # epf_sigma_for_modular (F16)
        if r.u64():
            raise _NotSingleFrame("JPEG XL: restoration-filter extensions are not parsed")
    if r.u64():
        raise _NotSingleFrame("JPEG XL: frame-header extensions are not parsed")


def jxl_layout(data: bytes) -> Layout:
    if data[:2] != b"\xff\x0a":
        raise PayloadCutError("not a bare JPEG XL codestream (no FF 0A signature)")
    r = BitReader(data, 2)
    width, height = _size_header(r)
    if max(width, height) > MAX_SINGLE_GROUP:
        raise PayloadCutError(f"JPEG XL: a {width}x{height} frame has several sections; only one is cut here")
    if not r.u(1):  # ImageMetadata.all_default
        raise PayloadCutError("JPEG XL: non-default image metadata is not parsed")
    if not r.u(1):  # CustomTransformData.all_default
        raise PayloadCutError("JPEG XL: a custom colour transform is not parsed")
    frame_start = r.pad_to_byte()
    try:
        _frame_header(r)
        if r.u(1):
            raise _NotSingleFrame("a permuted TOC")
    except _NotSingleFrame:
        # libjxl at effort 7 adds a reference frame (patches) for a few images: count every frame whole,
        # headers and TOCs included. That overcounts JPEG XL by a few bytes there, never under.
        return Layout(len(data), ((frame_start, len(data)),), exact=False)
    toc_start = r.pad_to_byte()
    size = r.u32((10, 0), (14, 1024), (22, 17408), (30, 4211712))
    start = r.pad_to_byte()
    if start + size != len(data):
        raise PayloadCutError(f"JPEG XL: the TOC says {size} bytes but {len(data) - start} follow it")
    return Layout(len(data), ((start, len(data)),), ((toc_start, start),))


class JpegXL(ImageCodec):
    name = "jpegxl"
    description = "JPEG XL lossy (libjxl VarDCT, effort 7)"
    setting_name = "distance"
    setting_type = float
    setting_range = (0.1, 25.0)
    rate_increases = False
    ladder = (25.0, 11.0, 6.5, 4.0, 2.5)

    def __init__(self) -> None:
        import imagecodecs

        if not imagecodecs.JPEGXL.available:
            raise CodecError("this imagecodecs build has no JPEG XL support")
        self._ic = imagecodecs

    def _encode(self, image: np.ndarray, setting: Setting) -> bytes:
        return bytes(self._ic.jpegxl_encode(image, distance=float(setting), effort=EFFORT, numthreads=1))

    def _decode(self, data: bytes) -> np.ndarray:
        return self._ic.jpegxl_decode(data, numthreads=1)

    def layout(self, data: bytes) -> Layout:
        return jxl_layout(data)

    def library(self) -> str:
        return f"{self._ic.jpegxl_version()} (imagecodecs {self._ic.__version__})"
