"""Latent symbols <-> range-coded payloads, in numpy: the one implementation the server and the edge share.

Encoding knows every symbol, so one full integer pass gives every distribution (``FullPass``); the symbols are
then range-coded in *coding order*: the decoding steps of ``IntegerContext.coding_order`` one after the
other, raster order within a step. Decoding runs a batch of images together: per step it evaluates the
integer network only at that step's positions (``IncrementalContext``), turns the logits into
frequencies, and pulls that step's symbols out of each image's stream with one constriction call.
No torch here (``jointcodec.entropy.torch_payloads`` wraps these functions for torch tensors).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from jointcodec.entropy import coder
from jointcodec.entropy.integer import IncrementalContext, IntegerContext, Shape, code_length_bits, frequencies


class PayloadDecodeError(ValueError):
    """A payload could not be decoded (only possible for damaged data)."""



@functools.cache
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, built once: building it walks every loaded library
    (about 1.3 ms, as much as coding one image), limiting through it costs 0.07 ms (measured)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def one_blas_thread(fn: Callable) -> Callable:
    """Run ``fn`` with numpy's BLAS capped at one thread. The integer context's matrix products are small:
    extra BLAS threads only spin, and with another process on the cores they made a 10,000-image decode
    several times slower (measured). Without threadpoolctl the environment (OPENBLAS_NUM_THREADS) decides."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        controller = _blas_controller()
        limit = controller.limit(limits=1, user_api="blas") if controller else contextlib.nullcontext()
        with limit:
            return fn(*args, **kwargs)
    return wrapper


CODING_THREADS_ENV = "JOINTCODEC_CODING_THREADS"


def coding_threads() -> int:
    """Threads that code batches of images side by side: $JOINTCODEC_CODING_THREADS, else the usable cores.

    Each image's stream depends only on its own symbols, so the bytes never depend on this number (tested).
    Threads pay off because the integer network's gathers and matrix products release the GIL, and BLAS runs
    one thread per call (``one_blas_thread``)."""
    value = os.environ.get(CODING_THREADS_ENV)
    if value:
        return max(1, int(value))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


Progress = Callable[[int], object]  # called with the image count of each finished chunk (e.g. a tqdm's update)


def _map_chunks(fn: Callable[[int, int], object], count: int, batch_size: int, threads: int | None,
                progress: Progress | None = None) -> list:
    """``fn(start, stop)`` over consecutive chunks of ``count`` images, on ``threads`` threads, results in order.

    Chunks are at most ``batch_size`` images, and small enough that every thread gets one."""
    threads = coding_threads() if threads is None else max(1, threads)
    size = max(1, min(batch_size, max(64, math.ceil(count / threads))))
    starts = range(0, count, size)

    def chunk(start: int) -> object:
        stop = min(start + size, count)
        result = fn(start, stop)
        if progress is not None:
            progress(stop - start)
        return result

    if threads == 1 or len(starts) <= 1:
        return [chunk(start) for start in starts]
    with ThreadPoolExecutor(min(threads, len(starts)), thread_name_prefix="jointcodec-coding") as pool:
        return list(pool.map(chunk, starts))


def coding_permutation(fixed: IntegerContext, shape: Shape) -> np.ndarray:
    """Raster index of each symbol in coding order: the decoding steps one after another (read-only)."""
    return fixed.coding_permutation(shape)


def encode_latents(fixed: IntegerContext, symbols: np.ndarray, batch_size: int | None = None,
                   threads: int | None = None, progress: Progress | None = None) -> list[bytes]:
    """Symbols (N, C, H, W) in [0, L) -> one range-coded payload per image. ``batch_size``: images per chunk
    (default: auto); ``threads``: see ``coding_threads`` (the bytes never depend on either); ``progress``: called
    with the image count of each chunk coded."""
    return _encode(fixed, symbols, batch_size, threads, with_bits=False, progress=progress)[0]


def encode_latents_with_bits(fixed: IntegerContext, symbols: np.ndarray, batch_size: int | None = None,
                             threads: int | None = None,
                             progress: Progress | None = None) -> tuple[list[bytes], np.ndarray]:
    """As ``encode_latents``, plus each image's ideal code length (bits) under the integer frequencies."""
    payloads, bits = _encode(fixed, symbols, batch_size, threads, with_bits=True, progress=progress)
    return payloads, bits


@one_blas_thread
def _encode(fixed: IntegerContext, symbols: np.ndarray, batch_size: int | None, threads: int | None,
            with_bits: bool, progress: Progress | None = None) -> tuple[list[bytes], np.ndarray | None]:
    """The encoder: every symbol is known, so one full pass of the integer network gives every distribution
    (``IntegerContext.logits``), the frequencies come for the whole chunk at once, and each image is one
    constriction call in coding order."""
    symbols = np.asarray(symbols, dtype=np.int64)
    if symbols.ndim != 4:
        raise ValueError(f"symbols must be (N, C, H, W), got {tuple(symbols.shape)}")
    if symbols.size and (symbols.min() < 0 or symbols.max() >= fixed.levels):
        raise ValueError(f"symbols must lie in [0, {fixed.levels})")
    shape = tuple(symbols.shape[1:])
    order = coding_permutation(fixed, shape)

    def encode_chunk(start: int, stop: int) -> tuple[list[bytes], np.ndarray | None]:
        chunk = symbols[start:stop].reshape(stop - start, -1)[:, order].astype(np.int32)  # what constriction reads
        logits = fixed.logits(symbols[start:stop]).reshape(len(chunk), -1, fixed.levels)[:, order]
        freq = frequencies(logits)
        probs = coder.probabilities(freq)
        payloads = [coder.encode(chunk[i], probs[i]) for i in range(len(chunk))]
        return payloads, code_length_bits(freq, chunk) if with_bits else None

    chunks = _map_chunks(encode_chunk, len(symbols), batch_size or fixed.decode_batch_size(shape), threads, progress)
    payloads = [payload for chunk_payloads, _ in chunks for payload in chunk_payloads]
    if not with_bits:
        return payloads, None
    return payloads, np.concatenate([bits for _, bits in chunks]) if chunks else np.zeros(0)


@one_blas_thread
def decode_latents(fixed: IntegerContext, payloads: Sequence[bytes], shape: Shape,
                   batch_size: int | None = None, threads: int | None = None,
                   progress: Progress | None = None) -> np.ndarray:
    """Payloads -> symbols (N, C, H, W) int64, decoding ``batch_size`` images together (default: auto),
    chunks of images on ``threads`` threads (see ``coding_threads``; the symbols never depend on it);
    ``progress``: called with the image count of each chunk decoded."""
    channels, height, width = shape
    batch_size = batch_size or fixed.decode_batch_size(shape)
    steps = fixed.coding_order(shape)
    family = coder.model_family()
    out = np.zeros((len(payloads), channels * height * width), dtype=np.int64)

    def decode_chunk(start: int, stop: int) -> None:  # writes rows start:stop of ``out`` only
        chunk = payloads[start:stop]
        state = IncrementalContext(fixed, len(chunk), shape)
        decoders = [coder.decoder(payload) for payload in chunk]
        for step in steps:
            probs = coder.probabilities(frequencies(state.step_logits(step)))
            try:
                decoded = np.stack([d.decode(family, p) for d, p in zip(decoders, probs, strict=True)])
            except Exception as err:  # constriction rejects an impossible stream with an AssertionError
                raise PayloadDecodeError(f"{type(err).__name__}: {err}") from err
            decoded = decoded.astype(np.int64)
            out[start:stop, step.raster] = decoded
            state.set_symbols(step, decoded)

    _map_chunks(decode_chunk, len(payloads), batch_size, threads, progress)
    return out.reshape(len(payloads), channels, height, width)
