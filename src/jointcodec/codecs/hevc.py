"""HEVC intra (x265 encoder, FFmpeg's HEVC decoder, both bundled in PyAV's wheel), coded at the image's size.

The BPG stand-in without padding: x265 codes the 32x32 picture itself (CTU 32; HEVC pads only to the
8x8 minimum coding-block grid, which 32x32 meets), one intra picture, 4:2:0, 8 bit, as a raw Annex-B byte
stream (VPS, SPS, PPS, one slice). The file is that byte stream, closed by an end-of-bitstream NAL unit that
the wrapper appends (5 bytes, the same for every image): Annex B has no length field, and without the
terminator a truncated file would parse as a whole one. The x265 settings follow BPG's
``x265_glue.c``: preset ``veryslow``, tune ``ssim`` (which, at a constant QP, leaves psy-rd and psy-rdoq
off, i.e. plain rate-distortion decisions), ``keyint=1`` and one frame (so the stream is signalled as Main
Still Picture, whose compatibility flags include Main), no info SEI. Unlike BPG, ``ipratio=1``: x265 codes
an I picture ``6 log2(ipratio)`` below the requested QP (3 below at its default 1.4), and with 1 the
setting is the QP the slice is coded at. One thread (``pools=none``, ``frame-threads=1``): deterministic
files, and the protocol runs images in parallel processes. The setting is the QP, 0-51 (a larger QP spends
fewer bits).

Colour: RGB to Y'CbCr 4:2:0 and back by swscale through PyAV (BT.601 matrix, limited range, bilinear
chroma filter), signalled in the SPS's VUI (``colormatrix=smpte170m``, ``range=limited``).

**Payload cut.** The VCL NAL units (NAL types 0-31, here the one coded slice), whole: the 2-byte NAL
header, the slice header and the slice data, emulation-prevention bytes included. Excluded: the non-VCL
NAL units (VPS, SPS, PPS, the end of bitstream; any SEI or access-unit delimiter) with their start codes,
identical for every image of a size at a QP, and the start codes in front of the VCL NAL units (framing:
they only delimit). ``layout`` refuses a stream that does not end with the end-of-bitstream NAL unit.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

import numpy as np

from jointcodec.codecs.base import CodecError, ImageCodec, Layout, PayloadCutError, Setting

START = b"\x00\x00\x01"
END_OF_BITSTREAM = 37
EOB = START + bytes([END_OF_BITSTREAM << 1, 1])  # an end-of-bitstream NAL unit: header only
PRESET, TUNE = "veryslow", "ssim"
X265_PARAMS = ("log-level=none:info=0:ctu=32:keyint=1:min-keyint=1:total-frames=1:bframes=0:ipratio=1"
               ":pools=none:frame-threads=1:colormatrix=smpte170m:range=limited")
COLOUR = {"colorspace": "ITU601", "color_range": "MPEG"}  # BT.601, limited range


def annexb_nal_units(data: bytes) -> list[tuple[int, int, int]]:
    """``(start code start, NAL start, NAL end)`` of each NAL unit of an Annex-B byte stream.

    Start codes are ``00 00 01`` or ``00 00 00 01``; any other run of zero bytes, or bytes before the first
    start code, raises PayloadCutError (x265 writes neither). Emulation prevention keeps ``00 00 01`` out of
    the NAL units themselves.
    """
    starts, pos = [], data.find(START)
    while pos >= 0:
        starts.append(pos)
        pos = data.find(START, pos + 3)
    if not starts:
        raise PayloadCutError("HEVC: no Annex-B start code in the stream")
    units = []
    for i, pos in enumerate(starts):
        code = pos - 1 if pos > 0 and data[pos - 1] == 0 else pos
        previous_end = units[-1][2] if units else 0
        if code != previous_end:
            raise PayloadCutError(f"HEVC: {code - previous_end} unexpected bytes before the start code at byte {pos}")
        end = starts[i + 1] if i + 1 < len(starts) else len(data)
        if end < len(data) and data[end - 1] == 0:
            end -= 1  # the zero byte of a 4-byte start code
        if end - (pos + 3) < 2:
            raise PayloadCutError(f"HEVC: the NAL unit at byte {pos + 3} is shorter than its 2-byte header")
        if data[end - 1] == 0:
            raise PayloadCutError(f"HEVC: the NAL unit at byte {pos + 3} ends in a zero byte (truncated stream?)")
        units.append((code, pos + 3, end))
    return units


def hevc_annexb_layout(data: bytes) -> Layout:
    payload, framing, kind = [], [], -1
    for code, start, end in annexb_nal_units(data):
        header = int.from_bytes(data[start:start + 2], "big")
        kind = (header >> 9) & 0x3F
        if header & 0x8000 or not header & 7:
            raise PayloadCutError(f"HEVC: bad NAL unit header {header:#06x} at byte {start}")
        if kind < 32:  # VCL NAL unit types are 0-31
            payload.append((start, end))
            framing.append((code, start))
    if not payload:
        raise PayloadCutError("HEVC: the stream holds no coded slice (VCL NAL unit)")
    if kind != END_OF_BITSTREAM:
        raise PayloadCutError("HEVC: the stream does not end with an end-of-bitstream NAL unit (truncated?)")
    return Layout(len(data), tuple(payload), tuple(framing))


@functools.cache
def x265_version() -> str:
    """x265's version, read from the info SEI it writes when asked (libavcodec does not report it)."""
    data = _x265_encode(np.zeros((32, 32, 3), np.uint8), 30, X265_PARAMS.replace("info=0", "info=1"))
    found = re.search(rb"x265 \(build (\d+)\) - ([0-9][^\s:]*)", data)
    return found.group(2).decode() if found else "(version unknown)"


def _x265_encode(image: np.ndarray, qp: int, params: str = X265_PARAMS) -> bytes:
    import av

    height, width = image.shape[:2]
    if height % 2 or width % 2:
        raise CodecError(f"hevc codes 4:2:0, which needs an even width and height, got {width}x{height}")
    context = av.CodecContext.create("libx265", "w")
    context.width, context.height, context.pix_fmt = width, height, "yuv420p"
    context.time_base = Fraction(1, 25)
    context.options = {"preset": PRESET, "tune": TUNE, "x265-params": f"qp={qp}:{params}"}
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
        format="yuv420p", dst_colorspace=COLOUR["colorspace"], dst_color_range=COLOUR["color_range"], threads=1)
    frame.pts = 0
    packets = context.encode(frame) + context.encode(None)
    return b"".join(bytes(packet) for packet in packets) + EOB


class Hevc(ImageCodec):
    name = "hevc"
    description = "HEVC intra 4:2:0 at the image's size (x265 via PyAV, CTU 32, veryslow; the BPG stand-in)"
    setting_name = "QP"
    setting_type = int
    setting_range = (0, 51)
    rate_increases = False
    ladder = (41, 38, 35, 33, 29, 25)

    def __init__(self) -> None:
        try:
            import av
        except ImportError as err:
            raise CodecError("hevc needs PyAV: pip install 'jointcodec[codecs]'") from err
        try:
            av.codec.Codec("libx265", "w")
            av.codec.Codec("hevc", "r")
        except Exception as err:
            raise CodecError(f"this PyAV {av.__version__} build lacks libx265 or the HEVC decoder: {err}") from err
        self._av = av

    def _encode(self, image: np.ndarray, setting: Setting) -> bytes:
        return _x265_encode(image, int(setting))

    def _decode(self, data: bytes) -> np.ndarray:
        context = self._av.CodecContext.create("hevc", "r")
        context.thread_count = 1
        frames = []
        for packet in context.parse(data) + context.parse(None):
            frames += context.decode(packet)
        frames += context.decode(None)
        if len(frames) != 1:
            raise CodecError(f"decoded {len(frames)} pictures from the stream, expected one")
        return frames[0].to_ndarray(format="rgb24", src_colorspace=COLOUR["colorspace"],
                                    src_color_range=COLOUR["color_range"], threads=1)

    def layout(self, data: bytes) -> Layout:
        return hevc_annexb_layout(data)

    def library(self) -> str:
        av = self._av
        avcodec = ".".join(map(str, av.library_versions.get("libavcodec", ())))
        ffmpeg = getattr(av, "ffmpeg_version_info", "")
        return (f"x265 {x265_version()} + FFmpeg {ffmpeg} hevc decoder (PyAV {av.__version__}, "
                f"libavcodec {avcodec})")
