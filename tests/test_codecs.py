"""Classic codec wrappers on real CIFAR-10 images: round trips, payload cuts, ladders and the rate search."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jointcodec.codecs import CODECS, CodecError, PayloadCutError, get_codec
from jointcodec.codecs.batch import code_images
from jointcodec.codecs.jpeg import JPEG420_REFERENCE_BPP
from jointcodec.codecs.rate import find_setting
from jointcodec.data import load_split
from jointcodec.errors import ConfigError

NAMES = list(CODECS)
# A setting near the top of each codec's range: decoding must come close to the original there.
HIGH = {"jpeg420": 95, "jpeg444": 95, "jpeg2000": 50.0, "webp": 100, "hevc": 10, "heif": 95, "avif": 95,
        "jpegxl": 0.3}
SAMPLE = 24


@pytest.fixture(scope="module")
def test_images(data_dir: Path) -> np.ndarray:
    """The first 200 CIFAR-10 test images as (N, 32, 32, 3) uint8."""
    data = load_split("cifar10", "test", data_dir).subset(slice(0, 200))
    return np.ascontiguousarray(data.images.permute(0, 2, 3, 1).numpy())


def mid(name: str):
    ladder = get_codec(name).ladder
    return ladder[len(ladder) // 2]


@pytest.mark.parametrize("name", NAMES)
def test_round_trip(name: str, test_images: np.ndarray) -> None:
    codec = get_codec(name)
    image = test_images[0]
    decoded = codec.decode(codec.encode(image, mid(name)))
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    high = code_images(codec, test_images[:SAMPLE], HIGH[name])
    low = code_images(codec, test_images[:SAMPLE], codec.ladder[0])
    assert high.psnr(test_images[:SAMPLE]) > 34.0  # near identity at high quality
    assert high.psnr(test_images[:SAMPLE]) > low.psnr(test_images[:SAMPLE]) + 8


@pytest.mark.parametrize("name", NAMES)
def test_payload_differs_between_images(name: str, test_images: np.ndarray) -> None:
    codec = get_codec(name)
    first, second = (codec.encode(test_images[i], mid(name)) for i in (0, 1))
    assert codec.layout(first).payload_of(first) != codec.layout(second).payload_of(second)
    assert 0 < codec.payload_bits(first) < 8 * len(first)


@pytest.mark.parametrize("name", NAMES)
def test_excluded_part_is_identical_across_images(name: str, test_images: np.ndarray) -> None:
    """Everything but the payload and the length fields is the same for every image at a setting."""
    codec = get_codec(name)
    for setting in (codec.ladder[0], codec.ladder[-1]):
        files = [codec.encode(image, setting) for image in test_images[:SAMPLE]]
        layouts = [codec.layout(f) for f in files]
        for f, layout in zip(files, layouts, strict=True):
            framing = sum(b - a for a, b in layout.framing)
            assert layout.payload_bytes + framing + len(layout.shared_of(f)) == len(f)
            assert all(b - a <= 4 for a, b in layout.framing)  # length fields and pad bytes, nothing bigger
        exact = {layout.shared_of(f) for f, layout in zip(files, layouts, strict=True) if layout.exact}
        assert len(exact) == 1, f"{name} at {setting}: {len(exact)} different shared parts"
        shared = exact.pop()
        for f, layout in zip(files, layouts, strict=True):
            if not layout.exact:  # counted more than the payload: its shared part is a prefix of the rest
                assert shared.startswith(layout.shared_of(f))
        assert sum(not layout.exact for layout in layouts) <= SAMPLE // 4


@pytest.mark.parametrize("name", NAMES)
def test_ladder_rate_increases(name: str, test_images: np.ndarray) -> None:
    codec = get_codec(name)
    rates = [code_images(codec, test_images[:SAMPLE], s).payload_bpp for s in codec.ladder]
    assert all(a < b for a, b in zip(rates, rates[1:], strict=False)), rates
    assert len(codec.ladder) >= 4


@pytest.mark.parametrize("name", NAMES)
def test_damaged_files_are_refused(name: str, test_images: np.ndarray) -> None:
    codec = get_codec(name)
    data = codec.encode(test_images[0], mid(name))
    for damaged in (b"not an image file at all", data[: len(data) // 2]):
        with pytest.raises(PayloadCutError):
            codec.layout(damaged)
    with pytest.raises(CodecError):
        codec.decode(b"not an image file at all")


def test_jpeg420_payload_matches_the_reference(test_images: np.ndarray) -> None:
    """The reference payload rates (measured on the first 2,000 test images; docs/baselines.md), here on the
    first 200 test images: Q 5 / 10 / 20 -> 0.36 / 0.58 / 0.91 bpp."""
    codec = get_codec("jpeg420")
    assert {q: JPEG420_REFERENCE_BPP[q] for q in (5, 10, 20)} == {5: 0.36, 10: 0.58, 20: 0.91}
    for quality in (5, 10, 20):
        assert abs(code_images(codec, test_images, quality).payload_bpp - JPEG420_REFERENCE_BPP[quality]) < 0.03


def test_ladder_records_the_reference_beside_its_measurement(cli_env: dict[str, str], tmp_path: Path) -> None:
    """`jointcodec ladder --json` stores each JPEG 4:2:0 row's reference rate as ``reference_bpp``."""
    out = tmp_path / "ladders.json"
    proc = subprocess.run([sys.executable, "-m", "jointcodec.cli.main", "ladder", "--dataset", "cifar10",
                           "--limit", "20", "--codec", "jpeg420", "--setting", "5", "7", "--workers", "1",
                           "--no-progress", "--json", str(out)], env=cli_env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {r["setting"]: r for r in json.loads(out.read_text())["codecs"]["jpeg420"]["rows"]}
    assert rows[5]["reference_bpp"] == JPEG420_REFERENCE_BPP[5] and "reference_bpp" not in rows[7]
    assert "0.36 in the reference table" in proc.stdout


def _nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B stream, split at its start codes (an independent, simpler parse)."""
    parts = data.split(b"\x00\x00\x01")
    assert parts[0] in (b"", b"\x00")  # the stream opens with a start code
    return [part[:-1] if part.endswith(b"\x00") else part for part in parts[1:]]  # the 4-byte codes' zero


def _sps_size(sps: bytes) -> tuple[int, int]:
    """pic_width/height_in_luma_samples of an HEVC SPS with one sub-layer (ITU-T H.265 7.3.2.2)."""
    rbsp = sps[2:].replace(b"\x00\x00\x03", b"\x00\x00")  # drop emulation prevention
    bits = "".join(f"{b:08b}" for b in rbsp)
    assert int(bits[4:7], 2) == 0  # sps_max_sub_layers_minus1: the profile_tier_level is then 96 bits
    pos = 8 + 96

    def ue() -> int:
        nonlocal pos
        zeros = bits.index("1", pos) - pos
        value = int(bits[pos + zeros:pos + 2 * zeros + 1], 2) - 1
        pos += 2 * zeros + 1
        return value

    ue()  # sps_seq_parameter_set_id
    assert ue() == 1  # chroma_format_idc: 4:2:0
    return ue(), ue()


def test_hevc_codes_32x32_unpadded_and_cuts_the_vcl_nal_units(test_images: np.ndarray) -> None:
    """hevc: the picture is coded at 32x32 (no padding to 64x64 as through libheif); the payload is the VCL NAL
    units whole, the parameter sets are the same for every image at a QP, the start code before a slice is
    framing, and the stream is deterministic."""
    codec = get_codec("hevc")
    for qp in (codec.ladder[0], 22):
        files = [codec.encode(image, qp) for image in test_images[:SAMPLE]]
        assert codec.encode(test_images[0], qp) == files[0]  # one thread: the same bytes every time
        shared = set()
        for data in files:
            units = _nal_units(data)
            kinds = [(unit[0] >> 1) & 0x3F for unit in units]
            assert kinds[:3] == [32, 33, 34] and kinds[-1] == 37  # VPS, SPS, PPS ... end of bitstream
            vcl = [unit for unit, kind in zip(units, kinds, strict=True) if kind < 32]
            assert len(vcl) == 1 and kinds[3] in (19, 20)  # one slice, an IDR picture
            layout = codec.layout(data)
            assert layout.payload_bytes == sum(len(unit) for unit in vcl)
            assert layout.payload_of(data) == vcl[0]
            assert [b - a for a, b in layout.framing] == [3]
            shared.add(b"".join(unit for unit, kind in zip(units, kinds, strict=True) if kind >= 32))
            assert _sps_size(units[1]) == (32, 32)
        assert len(shared) == 1


def test_hevc_round_trip_rate_and_damaged_streams(test_images: np.ndarray) -> None:
    codec = get_codec("hevc")
    images = test_images[:SAMPLE]
    assert codec.setting_name == "QP" and not codec.rate_increases
    fine = code_images(codec, images, 10)
    assert fine.decoded.shape == images.shape and fine.decoded.dtype == np.uint8
    assert fine.psnr(images) > 34.0
    rates = [code_images(codec, images, qp).payload_bpp for qp in (10, 20, 30, 40, 51)]
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False)), rates  # the rate falls as the QP rises
    data = codec.encode(test_images[0], 30)
    for cut in range(1, len(data)):  # a truncated stream lacks its end-of-bitstream NAL unit, or ends in a zero
        with pytest.raises(PayloadCutError):
            codec.layout(data[:cut])
    noise = np.random.default_rng(0).integers(0, 256, 600, dtype=np.uint8).tobytes()
    for damaged in (b"\x00\x00\x01garbage", noise, b"", b"\x00\x00\x01" + b"\xff" * 40):
        with pytest.raises(PayloadCutError):
            codec.layout(damaged)
        with pytest.raises(CodecError):
            codec.decode(damaged)
    with pytest.raises(ConfigError, match="hevc"):
        codec.check_setting(52)


def test_rate_search_hits_targets(test_images: np.ndarray) -> None:
    images = test_images[:100]
    jpeg = find_setting(get_codec("jpeg420"), images, 0.8)
    assert jpeg.reached and abs(jpeg.payload_bpp - 0.8) < 0.03 and isinstance(jpeg.setting, int)
    assert abs(code_images("jpeg420", images, jpeg.setting).payload_bpp - jpeg.payload_bpp) < 1e-9
    jxl = find_setting(get_codec("jpegxl"), images, 1.5, tolerance=0.03)  # rate falls as the distance grows
    assert jxl.reached and abs(jxl.payload_bpp - 1.5) <= 0.03
    out_of_reach = find_setting(get_codec("jpegxl"), images, 0.2)
    assert not out_of_reach.reached and out_of_reach.setting == 25.0


def test_settings_and_names_are_checked() -> None:
    assert get_codec("jpeg420").check_setting("20") == 20
    assert get_codec("jpegxl").check_setting("1.5") == 1.5
    for name, bad in (("jpeg420", "0"), ("jpeg420", "20.5"), ("jpeg420", "x"), ("jpegxl", "30"),
                      ("jpeg2000", "nan"), ("webp", "101")):
        with pytest.raises(ConfigError, match=name):
            get_codec(name).check_setting(bad)
    with pytest.raises(ConfigError, match="unknown codec 'bpg'"):
        get_codec("bpg")
