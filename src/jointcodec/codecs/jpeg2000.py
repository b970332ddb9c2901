"""JPEG 2000 (OpenJPEG through Pillow): a raw ``.j2k`` codestream, 9/7 irreversible wavelet with the
irreversible colour transform (4:4:4), one quality layer at a target PSNR.

**Setting.** The PSNR target in dB of OpenJPEG's rate allocation (``quality_mode="dB"``): a fixed quality,
so the rate varies per image as it does for every other codec here. Three resolution levels (two wavelet
decompositions) instead of OpenJPEG's six: on the first 200 CIFAR-10 test images six levels spend 35-50 %
more payload at the same PSNR (24-30 dB), because the deep levels of a 32x32 image are a few pixels wide.
Chroma is not subsampled: Pillow and OpenJPEG's encoder offer no 4:2:0 for RGB input, so the paper's
"JPEG 2000 4:2:0" is not reproduced exactly (docs/baselines.md).

**Payload cut.** The tile-part bodies: the packet data after each SOD marker up to the end of its
tile-part (if a tile-part header carries markers between SOT and SOD, they are counted as payload too).
Excluded: SOC, the main header (SIZ, COD, QCD and OpenJPEG's COM comment, fixed by the image size and the
setting), the SOT segments (whose Psot field, the tile-part length, is framing) and EOC.
"""

from __future__ import annotations

import numpy as np

from jointcodec.codecs.base import ImageCodec, Layout, PayloadCutError, Setting
from jointcodec.codecs.pillow_io import pillow_decode, pillow_encode, pillow_library

SOC, SOT, SOD, EOC = b"\xff\x4f", b"\xff\x90", b"\xff\x93", b"\xff\xd9"
RESOLUTIONS = 3


def tile_part_layout(data: bytes) -> Layout:
    if data[:2] != SOC:
        raise PayloadCutError("not a JPEG 2000 codestream (no SOC marker)")
    n, pos = len(data), 2
    while data[pos:pos + 2] != SOT:  # main header: marker segments up to the first tile-part
        if pos + 4 > n or data[pos] != 0xFF:
            raise PayloadCutError(f"JPEG 2000: expected a main-header marker at byte {pos}")
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    payload, framing = [], []
    while data[pos:pos + 2] == SOT:
        if int.from_bytes(data[pos + 2:pos + 4], "big") != 10:
            raise PayloadCutError("JPEG 2000: SOT segment of unexpected length")
        psot = int.from_bytes(data[pos + 6:pos + 10], "big")
        end = pos + psot if psot else n - 2  # Psot = 0: the last tile-part runs up to EOC
        if end <= pos + 12 or end > n - 2:
            raise PayloadCutError(f"JPEG 2000: tile-part length {psot} does not fit the file")
        body = pos + 12
        if data[body:body + 2] == SOD:  # an empty tile-part header: the SOD marker is constant
            body += 2
        framing.append((pos + 6, pos + 10))
        payload.append((body, end))
        pos = end
    if pos != n - 2 or data[pos:] != EOC:
        raise PayloadCutError("JPEG 2000: the codestream does not end with EOC after its tile-parts")
    return Layout(n, tuple(payload), tuple(framing))


class Jpeg2000(ImageCodec):
    name = "jpeg2000"
    description = "JPEG 2000 (OpenJPEG, 9/7 + ICT, 3 resolution levels, PSNR target)"
    setting_name = "PSNR target (dB)"
    setting_type = float
    setting_range = (15.0, 60.0)
    ladder = (21.0, 22.5, 24.0, 25.5, 27.5, 30.0)

    def _encode(self, image: np.ndarray, setting: Setting) -> bytes:
        return pillow_encode(image, "JPEG2000", no_jp2=True, irreversible=True, mct=1,
                             num_resolutions=RESOLUTIONS, quality_mode="dB", quality_layers=[float(setting)])

    def _decode(self, data: bytes) -> np.ndarray:
        return pillow_decode(data)

    def layout(self, data: bytes) -> Layout:
        return tile_part_layout(data)

    def library(self) -> str:
        return pillow_library("jpg_2000", "OpenJPEG")
