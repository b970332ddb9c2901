"""Range coding round trips: bit-exact for every L and context kind, batch size and thread count."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from functools import cache

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jointcodec.entropy import FixedPointContext, PayloadDecodeError, coder, decode_latents, encode_latents
from jointcodec.entropy.integer import FREQ_TOTAL, frequencies
from jointcodec.entropy.torch_payloads import encode_latents_with_bits
from jointcodec.models import create_context

KINDS = ["3d", "channel", "checkerboard"]


@cache
def fixed_model(kind: str, levels: int) -> FixedPointContext:
    torch.manual_seed(levels)
    context = create_context(levels, {"kind": kind, "width": 8, "layers": 3})
    with torch.no_grad():  # confident predictions, as a trained model makes: long runs of cheap symbols
        for conv in getattr(context.last, "per_class", [context.last]):
            conv.bias.copy_(torch.linspace(3, -3, levels))
    return FixedPointContext(context, torch.linspace(-2, 2, levels))


def random_symbols(levels: int, shape: tuple[int, ...], skew: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    uniform = torch.randint(0, levels, shape, generator=generator)
    keep = torch.rand(shape, generator=generator) < skew
    return torch.where(keep, torch.zeros_like(uniform), uniform)


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(KINDS), levels=st.sampled_from([2, 3, 6]), count=st.integers(1, 4),
       shape=st.tuples(st.integers(1, 6), st.integers(1, 5), st.integers(1, 5)),
       skew=st.sampled_from([0.0, 0.5, 0.95, 1.0]), seed=st.integers(0, 2**31 - 1))
def test_round_trip_is_exact(kind, levels, count, shape, skew, seed) -> None:
    fixed = fixed_model(kind, levels)
    symbols = random_symbols(levels, (count, *shape), skew, seed)
    payloads, bits = encode_latents_with_bits(fixed, symbols)
    assert len(payloads) == count
    assert torch.equal(decode_latents(fixed, payloads, shape), symbols)
    # Each payload is within a few bytes of its ideal code length under the integer frequencies.
    for payload, ideal in zip(payloads, bits, strict=True):
        assert 8 * len(payload) <= ideal + 40


@pytest.mark.parametrize("kind", KINDS)
def test_encode_a_batch_of_64_decode_one_by_one(kind: str) -> None:
    fixed = fixed_model(kind, 2)
    symbols = random_symbols(2, (64, 16, 8, 8), 0.6, seed=1)
    batch = encode_latents(fixed, symbols, batch_size=64)
    singles = [encode_latents(fixed, symbols[i:i + 1], batch_size=1)[0] for i in range(64)]
    assert batch == singles
    one_by_one = torch.cat([decode_latents(fixed, [p], (16, 8, 8), batch_size=1) for p in batch])
    assert torch.equal(one_by_one, symbols)
    assert torch.equal(decode_latents(fixed, batch, (16, 8, 8), batch_size=64), symbols)
    assert torch.equal(decode_latents(fixed, batch, (16, 8, 8), batch_size=7), symbols)


@pytest.mark.parametrize("kind", KINDS)
def test_coding_threads_never_change_the_bytes(kind: str) -> None:
    """Chunks of images coded side by side on threads: the same payloads and symbols as one thread."""
    fixed = fixed_model(kind, 3)
    symbols = random_symbols(3, (200, 6, 4, 4), 0.5, seed=4)
    one = encode_latents(fixed, symbols, batch_size=64, threads=1)
    for threads in (2, 3):
        assert encode_latents(fixed, symbols, batch_size=64, threads=threads) == one
        assert torch.equal(decode_latents(fixed, one, (6, 4, 4), batch_size=64, threads=threads), symbols)


@pytest.mark.parametrize("threads", [1, 2])
def test_progress_counts_every_image_once_and_never_changes_the_bytes(threads: int) -> None:
    fixed = fixed_model("3d", 2)
    symbols = random_symbols(2, (150, 4, 4, 4), 0.5, seed=5)
    encoded_counts: list[int] = []
    payloads = encode_latents(fixed, symbols, batch_size=64, threads=threads, progress=encoded_counts.append)
    assert payloads == encode_latents(fixed, symbols, batch_size=64, threads=threads)
    decoded_counts: list[int] = []
    decoded = decode_latents(fixed, payloads, (4, 4, 4), batch_size=64, threads=threads,
                             progress=decoded_counts.append)
    assert torch.equal(decoded, symbols)
    for counts in (encoded_counts, decoded_counts):  # one call per chunk, with the chunk's image count
        assert sum(counts) == 150 and len(counts) > 1 and all(0 < c <= 64 for c in counts), counts


def test_a_payload_error_on_a_coding_thread_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    """constriction rejects some impossible streams (rare for random bytes): stand in for one such payload."""
    from jointcodec.entropy import payloads as payloads_module

    class Rejecting:
        def decode(self, *args):
            raise AssertionError("impossible stream")

    real_decoder = payloads_module.coder.decoder
    monkeypatch.setattr(payloads_module.coder, "decoder",
                        lambda payload: Rejecting() if payload == b"bad" else real_decoder(payload))
    fixed = fixed_model("3d", 3)
    payloads = encode_latents(fixed, random_symbols(3, (130, 3, 4, 4), 0.0, seed=5), batch_size=64)
    payloads[129] = b"bad"  # in the last of three chunks, decoded on a worker thread
    with pytest.raises(PayloadDecodeError, match="impossible stream"):
        decode_latents(fixed, payloads, (3, 4, 4), batch_size=64, threads=3)


THREAD_SCRIPT = textwrap.dedent("""
    import hashlib, sys, torch
    torch.set_num_threads(int(sys.argv[1]))
    from jointcodec.entropy import FixedPointContext, decode_latents, encode_latents
    from jointcodec.models import create_context
    torch.manual_seed(0)
    context = create_context(3, {"kind": sys.argv[2], "width": 16, "layers": 3})
    fixed = FixedPointContext(context, torch.tensor([-1.5, 0.2, 1.7]))
    symbols = torch.randint(0, 3, (24, 8, 8, 8)) * (torch.rand(24, 8, 8, 8) < 0.5)
    payloads = encode_latents(fixed, symbols)
    decoded = decode_latents(fixed, payloads, (8, 8, 8))
    assert torch.equal(decoded, symbols)
    print(torch.get_num_threads(), hashlib.sha256(b"".join(payloads)).hexdigest(), fixed.logits(symbols).sum().item())
""")


@pytest.mark.parametrize("kind", KINDS)
def test_one_and_two_threads_write_the_same_bytes(kind: str) -> None:
    thread_vars = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in thread_vars}
    outputs = []
    for threads in (1, 2):
        # torch threads (encoder network) and numpy's BLAS threads (the integer context model)
        proc = subprocess.run([sys.executable, "-c", THREAD_SCRIPT, str(threads), kind], capture_output=True,
                              text=True, timeout=300, env={**env, "OPENBLAS_NUM_THREADS": str(threads)})
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout.split())
    assert [o[0] for o in outputs] == ["1", "2"]
    assert outputs[0][1:] == outputs[1][1:]


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=64), kind=st.sampled_from(KINDS))
def test_garbage_payloads_never_crash_or_hang(data: bytes, kind: str) -> None:
    """Damaged payloads (the container's CRC normally catches them) decode to something or fail cleanly."""
    fixed = fixed_model(kind, 3)
    try:
        decoded = decode_latents(fixed, [data], (3, 4, 4))
    except PayloadDecodeError:
        return
    assert decoded.shape == (1, 3, 4, 4) and decoded.min() >= 0 and decoded.max() < 3


def test_trimming_keeps_payloads_short() -> None:
    """Trailing-byte trimming: on average close to the ideal code length (a few bits over)."""
    fixed = fixed_model("3d", 2)
    symbols = random_symbols(2, (100, 16, 8, 8), 0.7, seed=3)
    payloads, bits = encode_latents_with_bits(fixed, symbols)
    overhead = sum(8 * len(p) for p in payloads) / len(payloads) - bits.mean()
    assert -8 < overhead < 12, overhead
    assert hashlib.sha256(b"".join(payloads)).digest() == hashlib.sha256(b"".join(encode_latents(fixed, symbols)))\
        .digest()


@settings(max_examples=300, deadline=None)
@given(levels=st.sampled_from([2, 3, 6]), count=st.integers(0, 300), spread=st.sampled_from([0.1, 1.0, 10.0, 100.0]),
       improbable=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_trimming_by_the_final_interval_equals_trimming_by_decoding(levels, count, spread, improbable, seed) -> None:
    """The encoder's decode-free trim keeps exactly the bytes that trimming by decoding keeps: peaked and flat
    distributions, typical symbols and the least probable ones (long streams with carries)."""
    rng = np.random.default_rng(seed)
    freq = frequencies(np.rint(rng.normal(size=(count, levels)) * spread * 256).astype(np.int64))
    probs = coder.probabilities(freq)
    sampled = (rng.random((count, 1)) * FREQ_TOTAL >= np.cumsum(freq, -1)).sum(-1)  # drawn from the distributions
    symbols = freq.argmin(-1) if improbable else sampled
    stream, position, lower, width = coder.range_code(symbols, probs)
    assert coder.trim_by_interval(stream, position, lower, width) == coder.trim(stream, symbols, probs)


def test_an_impossible_stream_is_a_decode_error() -> None:
    """constriction refuses some streams outright (an AssertionError inside): that must surface as ours."""
    context = create_context(2, {"kind": "channel", "width": 4, "layers": 2})
    with torch.no_grad():
        context.last.bias.copy_(torch.tensor([30.0, -30.0]))  # symbol 0 gets all but the minimum frequency
    fixed = FixedPointContext(context, torch.tensor([-1.0, 1.0]))
    with pytest.raises(PayloadDecodeError):
        decode_latents(fixed, [b"\xff" * 8], (2, 4, 4))
