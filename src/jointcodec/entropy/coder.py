"""Range coding of symbols with ``constriction``, driven by integer frequencies.

Each image is its own range-coded stream (``constriction.stream.queue.RangeEncoder``, 32-bit words).
The probabilities handed to constriction are ``freq / 2**16``: dyadic rationals, exact in float32 and
float64, summing to exactly 1. Constriction's fast (``perfect=False``) quantizer turns them into its
24-bit fixed-point model with ``cdf_i = floor(F_i * (2**24 - L) / 2**16) + i`` (``F_i`` the cumulative
frequency); every operand is exact, so no rounding happens and both sides build the same model.

Streams are written as big-endian words, so trailing bytes are the least significant; the encoder then
drops as many trailing bytes as it can while the stream, padded back with 0xFF bytes to whole words,
still decodes to the same symbols (``trim``). That saves about 1.7 bytes per image. The decoder pads
the same way. The encoder finds the same cut without decoding (``trim_by_interval``): a stream decodes exactly
when the number it spells lies in the encoder's final interval, one integer comparison per candidate.
"""

from __future__ import annotations

import functools

import constriction
import numpy as np

from jointcodec.entropy.integer import FREQ_TOTAL

PAD_BYTE = b"\xff"


@functools.lru_cache(maxsize=1)
def model_family() -> constriction.stream.model.Categorical:
    """Categorical family with per-symbol probabilities; ``perfect=False`` is the exact, fast quantizer."""
    return constriction.stream.model.Categorical(perfect=False)


def probabilities(freq: np.ndarray) -> np.ndarray:
    """Integer frequencies (summing to 2**16) -> the exact float64 probabilities constriction gets."""
    return np.ascontiguousarray(freq, dtype=np.float64) / FREQ_TOTAL


def words(payload: bytes) -> np.ndarray:
    """A payload -> the uint32 words a RangeDecoder reads (big-endian, padded with 0xFF bytes)."""
    padded = payload + PAD_BYTE * (-len(payload) % 4)
    return np.frombuffer(padded, dtype=">u4").astype(np.uint32)


def decoder(payload: bytes) -> constriction.stream.queue.RangeDecoder:
    return constriction.stream.queue.RangeDecoder(words(payload))


def _decodes_to(payload: bytes, symbols: np.ndarray, probs: np.ndarray) -> bool:
    try:
        return bool(np.array_equal(decoder(payload).decode(model_family(), probs), symbols))
    except Exception:  # constriction rejects some impossible streams: this candidate is not valid
        return False


def encode(symbols: np.ndarray, probs: np.ndarray) -> bytes:
    """Range-code one image's symbols (S,) under per-symbol probabilities (S, L), in coding order; trimmed."""
    stream, position, lower, width = range_code(symbols, probs)
    trimmed = trim_by_interval(stream, position, lower, width)
    return trim(stream, symbols, probs) if trimmed is None else trimmed


def range_code(symbols: np.ndarray, probs: np.ndarray) -> tuple[bytes, int, int, int]:
    """One constriction call: the whole stream (big-endian words) and the encoder's final word count and state
    (``lower``, ``width``: ``RangeEncoder.pos``)."""
    encoder = constriction.stream.queue.RangeEncoder()
    symbols = np.ascontiguousarray(symbols, dtype=np.int32)
    if len(symbols):
        encoder.encode(symbols, model_family(), probs)
    position, (lower, width) = encoder.pos()
    return encoder.get_compressed().astype(">u4").tobytes(), position, lower, width


def trim(stream: bytes, symbols: np.ndarray, probs: np.ndarray) -> bytes:
    """Drop trailing bytes while the 0xFF-padded rest still decodes to ``symbols`` (the definition: decodes)."""
    best = stream
    for cut in range(len(stream) - 1, -1, -1):
        candidate = stream[:cut]
        if not _decodes_to(candidate, symbols, probs):
            break
        best = candidate
    return best


def trim_by_interval(stream: bytes, position: int, lower: int, width: int) -> bytes | None:
    """``trim``'s result without decoding: the encoder's final interval says which candidates decode.

    A range decoder reproduces every symbol exactly when the number its words spell (zeros after the end) lies in
    the encoder's final interval [start, start + width): each symbol narrows the interval to its sub-interval, and
    the decoder picks the sub-interval that number lies in. ``position`` and ``lower``, ``width`` are the encoder's
    word count and 64-bit state after the last symbol (``RangeEncoder.pos``), so values are counted in units of the
    state's last bit, ``position + 2`` words in. The whole stream decodes, which places ``start`` below its value
    by ``(value - lower) mod 2**64``. None where the stream does not fit that frame (``trim`` then decodes).
    """
    if not stream:  # no symbols, nothing to trim
        return stream
    frame = 4 * (position + 2)
    if len(stream) > frame:
        return None

    def value(data: bytes) -> int:
        padded = data + PAD_BYTE * (-len(data) % 4)
        return int.from_bytes(padded, "big") << 8 * (frame - len(padded))

    full = value(stream)
    start = full - (full - lower) % 2**64
    if full >= start + width:
        return None
    best = stream
    for cut in range(len(stream) - 1, -1, -1):
        candidate = stream[:cut]
        if not start <= value(candidate) < start + width:
            break
        best = candidate
    return best
