"""Latent symbols <-> range-coded payloads, in numpy: the one implementation the server and the edge share.

Encoding knows every symbol, so one full integer pass gives every distribution; the symbols are then
range-coded in *coding order*: the decoding steps of ``IntegerContext.coding_order`` one after the
other, raster order within a step. Decoding runs a batch of images together: per step it evaluates the
integer network only at that step's positions (``IncrementalContext``), turns the logits into
frequencies, and pulls that step's symbols out of each image's stream with one constriction call.
No torch here (``jointcodec.entropy.codec`` wraps these functions for torch tensors).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence

import numpy as np

from jointcodec.entropy import coder
from jointcodec.entropy.integer import IncrementalContext, IntegerContext, Shape, code_length_bits, frequencies


class PayloadDecodeError(ValueError):
    """A payload could not be decoded (only possible for damaged data)."""



def one_blas_thread(fn: Callable) -> Callable:
    """Run ``fn`` with numpy's BLAS capped at one thread. The integer context's matrix products are small:
    extra BLAS threads only spin, and with another process on the cores they made a 10,000-image decode
    several times slower (measured). Without threadpoolctl the environment (OPENBLAS_NUM_THREADS) decides."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            limit = contextlib.nullcontext()
        else:
            limit = threadpool_limits(limits=1, user_api="blas")
        with limit:
            return fn(*args, **kwargs)
    return wrapper


def coding_permutation(fixed: IntegerContext, shape: Shape) -> np.ndarray:
    """Raster index of each symbol in coding order: the decoding steps one after another."""
    return np.concatenate([step.raster for step in fixed.coding_order(shape)])


@one_blas_thread
def encode_latents_with_bits(fixed: IntegerContext, symbols: np.ndarray,
                             batch_size: int | None = None) -> tuple[list[bytes], np.ndarray]:
    """Symbols (N, C, H, W) in [0, L) -> one range-coded payload per image, and each image's ideal code
    length (bits) under the integer frequencies."""
    symbols = np.asarray(symbols, dtype=np.int64)
    if symbols.ndim != 4:
        raise ValueError(f"symbols must be (N, C, H, W), got {tuple(symbols.shape)}")
    if symbols.size and (symbols.min() < 0 or symbols.max() >= fixed.levels):
        raise ValueError(f"symbols must lie in [0, {fixed.levels})")
    shape = tuple(symbols.shape[1:])
    order = coding_permutation(fixed, shape)
    batch_size = batch_size or fixed.decode_batch_size(shape)
    payloads, bits = [], []
    for start in range(0, len(symbols), batch_size):
        chunk = symbols[start:start + batch_size]
        freq = frequencies(fixed.logits(chunk, batch_size)).reshape(len(chunk), -1, fixed.levels)
        flat = chunk.reshape(len(chunk), -1)
        freq, flat = freq[:, order], flat[:, order]
        probs = coder.probabilities(freq)
        payloads.extend(coder.encode(flat[i], probs[i]) for i in range(len(chunk)))
        bits.append(code_length_bits(freq, flat))
    return payloads, (np.concatenate(bits) if bits else np.zeros(0))


@one_blas_thread
def decode_latents(fixed: IntegerContext, payloads: Sequence[bytes], shape: Shape,
                   batch_size: int | None = None) -> np.ndarray:
    """Payloads -> symbols (N, C, H, W) int64, decoding ``batch_size`` images together (default: auto)."""
    channels, height, width = shape
    batch_size = batch_size or fixed.decode_batch_size(shape)
    steps = fixed.coding_order(shape)
    family = coder.model_family()
    out = np.zeros((len(payloads), channels * height * width), dtype=np.int64)
    states: dict[int, IncrementalContext] = {}
    for start in range(0, len(payloads), batch_size):
        chunk = payloads[start:start + batch_size]
        if len(chunk) not in states:
            states[len(chunk)] = IncrementalContext(fixed, len(chunk), shape)
        state = states[len(chunk)]
        decoders = [coder.decoder(payload) for payload in chunk]
        for step in steps:
            probs = coder.probabilities(frequencies(state.step_logits(step)))
            try:
                decoded = np.stack([d.decode(family, p) for d, p in zip(decoders, probs, strict=True)])
            except Exception as err:  # constriction rejects an impossible stream with an AssertionError
                raise PayloadDecodeError(f"{type(err).__name__}: {err}") from err
            decoded = decoded.astype(np.int64)
            out[start:start + len(chunk), step.raster] = decoded
            state.set_symbols(step, decoded)
    return out.reshape(len(payloads), channels, height, width)
