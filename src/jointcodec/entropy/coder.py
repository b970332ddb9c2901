"""Range coding of symbols with ``constriction``, driven by integer frequencies.

Each image is its own range-coded stream (``constriction.stream.queue.RangeEncoder``, 32-bit words).
The probabilities handed to constriction are ``freq / 2**16``: dyadic rationals, exact in float32 and
float64, summing to exactly 1. Constriction's fast (``perfect=False``) quantizer turns them into its
24-bit fixed-point model with ``cdf_i = floor(F_i * (2**24 - L) / 2**16) + i`` (``F_i`` the cumulative
frequency); every operand is exact, so no rounding happens and both sides build the same model.

Streams are written as big-endian words, so trailing bytes are the least significant; the encoder then
drops as many trailing bytes as it can while the stream, padded back with 0xFF bytes to whole words,
still decodes to the same symbols (``trim``). That saves about 1.7 bytes per image. The decoder pads
the same way; any payload is therefore decoded by exactly the check the encoder ran.
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
    """Range-code one image's symbols (S,) under per-symbol probabilities (S, L), in coding order."""
    encoder = constriction.stream.queue.RangeEncoder()
    symbols = np.ascontiguousarray(symbols, dtype=np.int32)
    if len(symbols):
        encoder.encode(symbols, model_family(), probs)
    return trim(encoder.get_compressed().astype(">u4").tobytes(), symbols, probs)


def trim(stream: bytes, symbols: np.ndarray, probs: np.ndarray) -> bytes:
    """Drop trailing bytes while the 0xFF-padded rest still decodes to ``symbols``."""
    best = stream
    for cut in range(len(stream) - 1, -1, -1):
        candidate = stream[:cut]
        if not _decodes_to(candidate, symbols, probs):
            break
        best = candidate
    return best
