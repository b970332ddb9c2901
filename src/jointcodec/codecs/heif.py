"""HEVC intra in HEIF (x265 encoder, libde265 decoder, through pillow-heif and libheif): the padded libheif path.

The system ``heif``: the same HEVC Main-profile intra coding as ``hevc`` (x265), but through libheif, which
wraps the bitstream in an ISO-BMFF container (the payload cut below removes it) and pads the picture. 4:2:0
chroma, x265 through libheif's defaults (preset ``slow``) at a libheif quality of 0-100 (100 best). It was
the BPG stand-in before ``hevc`` (x265 called at the image's size through PyAV) replaced it; it stays as the
libheif/HEIF data point.

Measured caveat: libheif pads images smaller than 64x64 to 64x64 before x265 sees them (the ``ispe``
box says 64x64 and a ``clap`` crop restores 32x32), so the HEVC stream codes a 64x64 picture whose
padding costs bits that BPG, coding 32x32 directly, would not spend: measured in docs/baselines.md
(``experiments/hevc_padding.py``), this curve understates HEVC/BPG at 32x32; ``hevc`` does not pad.

**Payload cut.** The VCL NAL units (the coded slices, with their 2-byte NAL headers) of the primary
item. Excluded: the container (ftyp, meta with hvcC parameter sets VPS/SPS/PPS, ispe, clap, colr, pixi,
ipma, iinf, pitm), non-VCL NAL units inside the item data, the 4-byte NAL length prefixes, the iloc
extent length and the mdat size (framing).
"""

from __future__ import annotations

import io

import numpy as np

from jointcodec.codecs.base import CodecError, ImageCodec, Layout, PayloadCutError, Setting
from jointcodec.codecs.isobmff import primary_item

CHROMA = 420


def hevc_layout(data: bytes) -> Layout:
    item = primary_item(data)
    config = item.properties.get("hvcC")
    if config is None or len(config) < 23:
        raise PayloadCutError("HEIF: the primary item has no hvcC configuration")
    prefix = (config[21] & 3) + 1  # lengthSizeMinusOne
    payload, framing = [], list(item.framing)
    for start, end in item.extents:
        pos = start
        while pos < end:
            length = int.from_bytes(data[pos:pos + prefix], "big")
            nal = pos + prefix
            if length < 2 or nal + length > end:
                raise PayloadCutError(f"HEIF: NAL unit at byte {pos} runs past its extent")
            framing.append((pos, nal))
            if (data[nal] >> 1) & 0x3F < 32:  # VCL NAL unit types are 0-31
                payload.append((nal, nal + length))
            pos = nal + length
    if not payload:
        raise PayloadCutError("HEIF: the primary item holds no coded slice")
    return Layout(len(data), tuple(payload), tuple(framing))


class Heif(ImageCodec):
    name = "heif"
    description = "HEVC intra 4:2:0 in HEIF (x265 via libheif, padded to 64x64)"
    setting_name = "quality"
    setting_type = int
    setting_range = (0, 100)
    ladder = (5, 15, 22, 27, 35, 42)

    def __init__(self) -> None:
        try:
            import pillow_heif
        except ImportError as err:
            raise CodecError("heif needs pillow-heif: pip install 'jointcodec[codecs]'") from err
        pillow_heif.options.DECODE_THREADS = 1  # one image at a time; the protocol runs images in parallel
        self._heif = pillow_heif

    def _encode(self, image: np.ndarray, setting: Setting) -> bytes:
        heif = self._heif.from_bytes(mode="RGB", size=(image.shape[1], image.shape[0]), data=image.tobytes())
        buffer = io.BytesIO()
        heif.save(buffer, quality=int(setting), chroma=CHROMA)
        return buffer.getvalue()

    def _decode(self, data: bytes) -> np.ndarray:
        return np.asarray(self._heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True))

    def layout(self, data: bytes) -> Layout:
        return hevc_layout(data)

    def library(self) -> str:
        info = self._heif.libheif_info()
        return (f"{info['encoders'].get('x265', 'x265 (missing)')} + {info['decoders'].get('libde265', 'libde265')}"
                f" (libheif {info['libheif']}, pillow-heif {self._heif.__version__})")
