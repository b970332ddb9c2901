"""The .jcc container: exact round trips; every kind of bad file gets its own clear error, nothing else."""

from __future__ import annotations

import contextlib
import struct
import zlib
from functools import cache

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jointcodec import JointCodecError
from jointcodec.api import Codec, classify, compress, decompress
from jointcodec.bitstream import (
    FORMAT_VERSION,
    BitstreamError,
    Container,
    CorruptBitstreamError,
    TruncatedBitstreamError,
    UnsupportedVersionError,
    WrongModelError,
    pack,
    unpack,
)
from jointcodec.data import normalize
from jointcodec.models import create_model

containers = st.builds(
    Container,
    fingerprint=st.binary(min_size=8, max_size=8),
    levels=st.integers(2, 256),
    latent_shape=st.tuples(st.integers(1, 300), st.integers(1, 300), st.integers(1, 100)),
    payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=6).map(tuple),
)


@settings(max_examples=100, deadline=None)
@given(containers)
def test_pack_unpack_round_trip(container: Container) -> None:
    data = pack(container)
    assert unpack(data) == container
    assert container.header_bytes() == len(data) - sum(map(len, container.payloads))


def _example() -> bytes:
    return pack(Container(b"\x01" * 8, 2, (16, 8, 8), (b"\x10" * 90, b"", b"\x20" * 200)))


def test_header_is_small() -> None:
    """One CIFAR image: 3 magic + 1 version + 8 fingerprint + 5 one-byte varints + 1 length + 4 CRC."""
    container = Container(b"\x00" * 8, 2, (16, 8, 8), (b"\x55" * 100,))
    assert container.header_bytes() == 22


@pytest.mark.parametrize("position", [6, 30, 100, -5, -1], ids=["fingerprint", "payload", "payload2", "crc", "crc2"])
def test_a_damaged_byte_is_reported_as_corruption(position: int) -> None:
    data = bytearray(_example())
    data[position] ^= 0x40
    with pytest.raises(CorruptBitstreamError, match="CRC32"):
        unpack(bytes(data))


def test_a_damaged_length_field_is_an_error_too() -> None:
    """A damaged payload length moves the CRC: reported as truncated or as corrupt, never decoded."""
    data = bytearray(_example())
    data[17] ^= 0x01  # first payload length
    with pytest.raises((CorruptBitstreamError, TruncatedBitstreamError)):
        unpack(bytes(data))


def test_every_truncation_is_reported_as_truncated() -> None:
    data = _example()
    for size in range(len(data)):
        with pytest.raises(TruncatedBitstreamError, match="truncated"):
            unpack(data[:size])


def test_another_format_version_is_reported_as_such() -> None:
    data = bytearray(_example())
    data[3] = FORMAT_VERSION + 1
    with pytest.raises(UnsupportedVersionError, match=f"version {FORMAT_VERSION + 1} is not supported"):
        unpack(bytes(data))


def test_other_files_are_not_bitstreams() -> None:
    with pytest.raises(CorruptBitstreamError, match="not a jointcodec bitstream"):
        unpack(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(CorruptBitstreamError, match="unexpected bytes"):
        unpack(_example() + b"\x00")


def test_impossible_header_values_with_a_valid_crc_are_corrupt() -> None:
    body = b"JCC" + bytes([FORMAT_VERSION]) + b"\x00" * 8 + bytes([1, 16, 8, 8, 1, 0])  # L = 1
    with pytest.raises(CorruptBitstreamError, match="impossible header"):
        unpack(body + struct.pack("<I", zlib.crc32(body)))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_fuzz_random_bytes_raise_only_bitstream_errors(data: bytes) -> None:
    with contextlib.suppress(BitstreamError):
        unpack(data)


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_fuzz_mutated_files_raise_only_bitstream_errors(data) -> None:
    original = bytearray(_example())
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]), label="kind")
        at = data.draw(st.integers(0, max(0, len(original) - 1)), label="at")
        if kind == "flip" and original:
            original[at] ^= data.draw(st.integers(1, 255), label="mask")
        elif kind == "cut":
            del original[at:]
        elif kind == "insert":
            original[at:at] = data.draw(st.binary(min_size=1, max_size=4), label="bytes")
        elif original:
            del original[at]
    with contextlib.suppress(BitstreamError):
        unpack(bytes(original))


# --- through a model ----------------------------------------------------------------------------
@cache
def model(seed: int = 0, levels: int = 2, preset: str = "cifar-v1"):
    torch.manual_seed(seed)
    return create_model(preset, levels, 10).eval()


def images(count: int = 5) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, 32, 32), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


@pytest.mark.parametrize("preset", ["cifar-v1", "cifar-v1-channel", "cifar-v1-checkerboard"])
def test_api_round_trip_matches_the_in_memory_model(preset: str) -> None:
    net = model(preset=preset)
    data = compress(net, images())
    with torch.no_grad():
        reference = net(normalize(images()))
    latent = decompress(net, data)
    assert torch.equal(latent.symbols, reference.symbols)
    assert torch.equal(latent.values, net.quantizer.centers[reference.symbols])
    assert torch.equal(classify(net, data), reference.logits.argmax(1))


def test_a_different_model_is_refused() -> None:
    data = compress(model(0), images(2))
    with pytest.raises(WrongModelError, match="written by model"):
        decompress(model(1), data)
    with pytest.raises(WrongModelError):
        classify(Codec(model(0, levels=3)), data)


def test_a_damaged_payload_behind_a_valid_crc_never_crashes() -> None:
    """Only a deliberately forged file gets here: it decodes to something or fails as corrupt."""
    container = unpack(compress(model(), images(2)))
    forged = Container(container.fingerprint, container.levels, container.latent_shape,
                       (b"\xff" * 3, b"\x00" * 200))
    with contextlib.suppress(CorruptBitstreamError):
        decompress(model(), pack(forged))


def test_bitstream_errors_are_jointcodec_errors() -> None:
    for error in (CorruptBitstreamError, TruncatedBitstreamError, UnsupportedVersionError, WrongModelError):
        assert issubclass(error, BitstreamError) and issubclass(error, JointCodecError)
