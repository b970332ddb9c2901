"""Latents <-> payloads: the encode pass and the step-by-step decode loop.

Encoding knows every symbol, so one full integer pass gives every distribution; the symbols are then
range-coded in *coding order*: the decoding steps of ``FixedPointContext.coding_order`` one after the
other, raster order within a step. Decoding runs a batch of images together: per step it evaluates the
integer network only at that step's positions (``IncrementalContext``), turns the logits into
frequencies, and pulls that step's symbols out of each image's stream with one constriction call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from jointcodec.entropy import coder
from jointcodec.entropy.fixedpoint import FixedPointContext, IncrementalContext, code_length_bits, frequencies


class PayloadDecodeError(ValueError):
    """A payload could not be decoded (only possible for damaged data)."""


def coding_permutation(fixed: FixedPointContext, shape: tuple[int, int, int]) -> torch.Tensor:
    """Raster index of each symbol in coding order: the decoding steps one after another."""
    return torch.cat([step.raster for step in fixed.coding_order(shape)])


def encode_latents(fixed: FixedPointContext, symbols: torch.Tensor, batch_size: int | None = None) -> list[bytes]:
    """Symbols (N, C, H, W) in [0, L) -> one range-coded payload per image."""
    payloads, _ = encode_latents_with_bits(fixed, symbols, batch_size)
    return payloads


def encode_latents_with_bits(fixed: FixedPointContext, symbols: torch.Tensor,
                             batch_size: int | None = None) -> tuple[list[bytes], np.ndarray]:
    """As ``encode_latents``, plus each image's ideal code length (bits) under the integer frequencies."""
    symbols = torch.as_tensor(symbols, dtype=torch.int64)
    if symbols.ndim != 4:
        raise ValueError(f"symbols must be (N, C, H, W), got {tuple(symbols.shape)}")
    if symbols.numel() and (symbols.min() < 0 or symbols.max() >= fixed.levels):
        raise ValueError(f"symbols must lie in [0, {fixed.levels})")
    shape = tuple(symbols.shape[1:])
    order = coding_permutation(fixed, shape).numpy()
    batch_size = batch_size or fixed.decode_batch_size(shape)
    payloads, bits = [], []
    for start in range(0, len(symbols), batch_size):
        chunk = symbols[start:start + batch_size]
        freq = frequencies(fixed.logits(chunk, batch_size).numpy()).reshape(len(chunk), -1, fixed.levels)
        flat = chunk.reshape(len(chunk), -1).numpy()
        freq, flat = freq[:, order], flat[:, order]
        probs = coder.probabilities(freq)
        payloads.extend(coder.encode(flat[i], probs[i]) for i in range(len(chunk)))
        bits.append(code_length_bits(freq, flat))
    return payloads, (np.concatenate(bits) if bits else np.zeros(0))


@torch.no_grad()
def decode_latents(fixed: FixedPointContext, payloads: Sequence[bytes], shape: tuple[int, int, int],
                   batch_size: int | None = None) -> torch.Tensor:
    """Payloads -> symbols (N, C, H, W) int64, decoding ``batch_size`` images together (default: auto)."""
    channels, height, width = shape
    batch_size = batch_size or fixed.decode_batch_size(shape)
    steps = fixed.coding_order(shape)
    family = coder.model_family()
    out = torch.zeros(len(payloads), channels * height * width, dtype=torch.int64)
    states: dict[int, IncrementalContext] = {}
    for start in range(0, len(payloads), batch_size):
        chunk = payloads[start:start + batch_size]
        if len(chunk) not in states:
            states[len(chunk)] = IncrementalContext(fixed, len(chunk), shape)
        state = states[len(chunk)]
        decoders = [coder.decoder(payload) for payload in chunk]
        for step in steps:
            probs = coder.probabilities(frequencies(state.step_logits(step).numpy()))
            try:
                decoded = np.stack([d.decode(family, p) for d, p in zip(decoders, probs, strict=True)])
            except Exception as err:  # constriction rejects an impossible stream with an AssertionError
                raise PayloadDecodeError(f"{type(err).__name__}: {err}") from err
            decoded = torch.from_numpy(decoded).to(torch.int64)
            out[start:start + len(chunk), step.raster] = decoded
            state.set_symbols(step, decoded)
    return out.view(len(payloads), channels, height, width)
