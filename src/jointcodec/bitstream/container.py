"""The ``.jcc`` container: a small header, one range-coded payload per image, and a CRC32.

Layout (``docs/bitstream.md``); "varint" is unsigned LEB128 (7 bits a byte, low bits first, at most
5 bytes, no redundant trailing zero bytes)::

    magic        3 bytes   b"JCC"
    version      1 byte    FORMAT_VERSION
    fingerprint  8 bytes   the model's fingerprint (context-model weights and quantizer centers)
    levels       varint    L, the number of quantizer centers
    channels     varint    latent shape C, H, W
    height       varint
    width        varint
    count        varint    number of images (>= 1)
    lengths      count varints, each image's payload length in bytes
    payloads     the payloads, concatenated in image order
    crc32        4 bytes   little-endian zlib.crc32 of every byte before it

The parser checks, in order: magic, version, that the header and the declared payloads and CRC are
all present (else ``TruncatedBitstreamError``) and nothing follows them, the CRC, then the values.
Whether the fingerprint matches the loaded model is the reader's check (``WrongModelError``).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from jointcodec.bitstream.errors import (
    BitstreamError,
    CorruptBitstreamError,
    TruncatedBitstreamError,
    UnsupportedVersionError,
)

MAGIC = b"JCC"
FORMAT_VERSION = 1
FINGERPRINT_BYTES = 8
CRC_BYTES = 4
MAX_VARINT_BYTES = 5
MAX_LEVELS = 256
MAX_SYMBOLS_PER_IMAGE = 1 << 24
SUFFIX = ".jcc"


@dataclass(frozen=True)
class Container:
    """What a ``.jcc`` file holds."""

    fingerprint: bytes
    levels: int
    latent_shape: tuple[int, int, int]
    payloads: tuple[bytes, ...]

    @property
    def count(self) -> int:
        return len(self.payloads)

    def header_bytes(self) -> int:
        """Bytes of the file that are not payload: fixed header, per-image lengths and the CRC."""
        return len(pack(self)) - sum(map(len, self.payloads))


def _varint(value: int) -> bytes:
    if value < 0 or value >= 1 << (7 * MAX_VARINT_BYTES):
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pack(container: Container) -> bytes:
    """Serialize a container (the writer validates what the reader will check)."""
    if len(container.fingerprint) != FINGERPRINT_BYTES:
        raise ValueError(f"fingerprint must be {FINGERPRINT_BYTES} bytes")
    if not container.payloads:
        raise ValueError("a bitstream holds at least one image")
    if not 2 <= container.levels <= MAX_LEVELS:
        raise ValueError(f"levels must be in [2, {MAX_LEVELS}]")
    channels, height, width = container.latent_shape
    parts = [MAGIC, bytes([FORMAT_VERSION]), container.fingerprint,
             *(_varint(v) for v in (container.levels, channels, height, width, len(container.payloads))),
             *(_varint(len(p)) for p in container.payloads), *container.payloads]
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body))


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int, what: str) -> bytes:
        if self.pos + size > len(self.data):
            raise TruncatedBitstreamError(f"truncated bitstream: the file ends inside the {what} "
                                          f"({len(self.data)} bytes)")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def varint(self, what: str) -> int:
        value = 0
        for i in range(MAX_VARINT_BYTES):
            byte = self.take(1, what)[0]
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if byte == 0 and i > 0:
                    raise CorruptBitstreamError(f"corrupt bitstream: over-long encoding of the {what}")
                return value
        raise CorruptBitstreamError(f"corrupt bitstream: the {what} is not a valid number")


def unpack(data: bytes) -> Container:
    """Parse a ``.jcc`` file. Raises only ``BitstreamError`` subclasses, each naming the cause."""
    try:
        return _unpack(bytes(data))
    except BitstreamError:
        raise
    except Exception as err:  # a parser bug must still surface as the project's error
        raise CorruptBitstreamError(f"corrupt bitstream: {err}") from err


def image_count(data: bytes) -> int:
    """The image count a bitstream's header declares, read without the payloads or the CRC.

    For a server, to refuse a request holding too many images before parsing it; ``unpack`` still checks
    everything. Raises the same errors as ``unpack`` for what it reads.
    """
    try:
        return _header(bytes(data[:64]))[-1][3]
    except BitstreamError:
        raise
    except Exception as err:
        raise CorruptBitstreamError(f"corrupt bitstream: {err}") from err


def _header(data: bytes) -> tuple[_Reader, tuple[bytes, int, tuple[int, int, int], int]]:
    """Magic, version, then (fingerprint, levels, latent shape, image count)."""
    if len(data) < len(MAGIC) and MAGIC.startswith(data):
        raise TruncatedBitstreamError(f"truncated bitstream: only {len(data)} bytes")
    if data[:len(MAGIC)] != MAGIC:
        raise CorruptBitstreamError("not a jointcodec bitstream (the file does not start with b'JCC')")
    reader = _Reader(data)
    reader.pos = len(MAGIC)
    version = reader.take(1, "format version")[0]
    if version != FORMAT_VERSION:
        raise UnsupportedVersionError(f"bitstream format version {version} is not supported "
                                      f"(this jointcodec reads version {FORMAT_VERSION})")
    fingerprint = reader.take(FINGERPRINT_BYTES, "model fingerprint")
    levels = reader.varint("number of levels")
    shape = tuple(reader.varint(f"latent {name}") for name in ("channels", "height", "width"))
    count = reader.varint("image count")
    return reader, (fingerprint, levels, shape, count)


def _unpack(data: bytes) -> Container:
    reader, (fingerprint, levels, shape, count) = _header(data)
    lengths = [reader.varint("payload lengths") for _ in range(count)]
    needed = reader.pos + sum(lengths) + CRC_BYTES
    if len(data) < needed:
        raise TruncatedBitstreamError(f"truncated bitstream: {len(data)} bytes, but its header declares "
                                      f"{needed} ({count} image payloads and a CRC)")
    if len(data) > needed:
        raise CorruptBitstreamError(f"corrupt bitstream: {len(data) - needed} unexpected bytes after the CRC")
    (stored,) = struct.unpack("<I", data[-CRC_BYTES:])
    if zlib.crc32(data[:-CRC_BYTES]) != stored:
        raise CorruptBitstreamError("corrupt bitstream: CRC32 mismatch (the file was damaged)")
    channels, height, width = shape
    if not 2 <= levels <= MAX_LEVELS or min(shape) < 1 or channels * height * width > MAX_SYMBOLS_PER_IMAGE:
        raise CorruptBitstreamError(f"corrupt bitstream: impossible header values (levels {levels}, "
                                    f"latent {channels}x{height}x{width})")
    if count < 1:
        raise CorruptBitstreamError("corrupt bitstream: it holds no images")
    payloads, pos = [], reader.pos
    for length in lengths:
        payloads.append(data[pos:pos + length])
        pos += length
    return Container(fingerprint, levels, (channels, height, width), tuple(payloads))


def split(container: Container, indices: Sequence[int]) -> Container:
    """A container holding only some of the images (each payload decodes on its own)."""
    return Container(container.fingerprint, container.levels, container.latent_shape,
                     tuple(container.payloads[i] for i in indices))
