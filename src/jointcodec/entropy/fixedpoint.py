"""The context model in exact fixed-point arithmetic: the same integers on every machine.

The arithmetic decoder must see exactly the probabilities the encoder used, or it decodes garbage. Float
convolutions do not guarantee that: their summation order changes with batch size, thread count, CPU and
library version. So the coder never sees the float network, but an integer version of it. The scheme and
its evaluation live in ``jointcodec.entropy.integer`` (numpy only, shared with the torch-free edge client);
this module builds that integer network from a trained float context model:

* the symbols enter as integer codes ``round(center * 2**IN_BITS)``;
* weights are ``round(w * 2**WEIGHT_BITS)`` (masked taps zero), biases are rounded to the accumulator's scale
  plus half an output unit, so the requantization's floor rounds to nearest;
* the decoding order is the context model's ``decoding_steps``, checked against the masks.

``docs/bitstream.md`` describes the whole scheme.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch

from jointcodec.entropy.integer import (  # noqa: F401 - the scheme's names, also importable from here
    ACT_BITS,
    EXACT_LIMIT,
    EXP_BITS,
    FREQ_BITS,
    FREQ_TOTAL,
    IN_BITS,
    LOGIT_BITS,
    SCHEME,
    WEIGHT_BITS,
    WORKING_SET_BYTES,
    IncrementalContext,
    IntegerContext,
    IntLayer,
    Step,
    code_length_bits,
    exp_table,
    frequencies,
    to_int,
)
from jointcodec.models.context import ContextModel3D, MaskedConv3d


def _to_int(values: torch.Tensor, bits: int) -> np.ndarray:
    """round(values * 2**bits) in float64, from a torch tensor."""
    return to_int(values.detach().to(torch.float64).cpu().numpy(), bits)


def requantize(acc: torch.Tensor, shift: int) -> torch.Tensor:
    """floor(acc / 2**shift), exact for integer-valued float64 (in place; the torch form, for references)."""
    return acc.mul_(2.0**-shift).floor_()


def _per_class(conv: torch.nn.Module) -> list[MaskedConv3d]:
    return list(conv.per_class) if hasattr(conv, "per_class") else [conv]


class FixedPointContext(IntegerContext):
    """The integer twin of a trained context model (and the quantizer's centers), for the coder."""

    def __init__(self, context: ContextModel3D, centers: torch.Tensor) -> None:
        convs = _layers(context)
        scales = [IN_BITS] + [ACT_BITS] * (len(convs) - 1)
        out_scales = [ACT_BITS] * (len(convs) - 1) + [LOGIT_BITS]
        layers = []
        for conv, scale, out_scale in zip(convs, scales, out_scales, strict=True):
            shift = scale + WEIGHT_BITS - out_scale
            parts = _per_class(conv)
            # The bias carries half an output unit, so the floor of the requantization rounds to nearest.
            layers.append(IntLayer(
                weights=[_to_int(c.weight * c.mask, WEIGHT_BITS) for c in parts],
                biases=[_to_int(c.bias, scale + WEIGHT_BITS) + 2.0 ** (shift - 1) for c in parts],
                masks=[c.mask.bool().cpu().numpy() for c in parts], shift=shift))
        decoding_steps = context.decoding_steps

        def schedule(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
            return tuple(t.cpu().numpy() for t in decoding_steps(shape))

        super().__init__(levels=int(context.levels), kind=context.kind, kernel=int(context.kernel),
                         width=int(context.width), codes=_to_int(centers, IN_BITS), layers=layers,
                         fingerprint=fingerprint(context, centers), schedule=schedule)


def _layers(context: ContextModel3D) -> list[torch.nn.Module]:
    return [context.first, *context.hidden, context.last]


def fingerprint(context: ContextModel3D, centers: torch.Tensor) -> bytes:
    """The bitstream fingerprint of a context model and the quantizer's centers: SHA-256 (first 8 bytes) of the
    scheme, the context's kind and size, its weights and the centers. Every ``.jcc`` file carries it, and
    ``FixedPointContext.fingerprint`` is this value; computing it needs no integer model."""
    digest = hashlib.sha256()
    meta = {"scheme": SCHEME, "kind": context.kind, "levels": int(context.levels),
            "kernel": int(context.kernel), "width": int(context.width), "layers": len(_layers(context))}
    digest.update(json.dumps(meta, sort_keys=True).encode())
    digest.update(centers.detach().cpu().to(torch.float32).contiguous().numpy().tobytes())
    for name, tensor in sorted(context.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().to(torch.float32).contiguous().numpy().tobytes())
    return digest.digest()[:8]


def model_fingerprint(model) -> str:
    """A JointModel's (or a split part's) bitstream fingerprint, hex: what its ``.jcc`` files, its split parts
    and its decoders carry."""
    return fingerprint(model.context, model.quantizer.centers).hex()
