"""Entropy coding of the quantized latent: an exact fixed-point context model and constriction range coding.

* ``integer``: the context model in integer arithmetic (numpy), integer frequencies, the decoding order;
* ``coder``: constriction range coding of one image's symbols (with trailing-byte trimming);
* ``payloads``: latents -> payloads and back (the batched step-by-step decode loop), numpy;
* ``fixedpoint``: builds the integer model from a trained torch context model, and the model's fingerprint;
* ``torch_payloads``: the ``payloads`` functions for torch tensors.

``integer``, ``coder`` and ``payloads`` import no torch (the edge client ``jointcodec.edge`` uses them), so the
names below are imported lazily.
"""

from __future__ import annotations

_LAZY = {
    "FixedPointContext": "jointcodec.entropy.fixedpoint",
    "model_fingerprint": "jointcodec.entropy.fixedpoint",
    "IncrementalContext": "jointcodec.entropy.integer",
    "IntegerContext": "jointcodec.entropy.integer",
    "exp_table": "jointcodec.entropy.integer",
    "frequencies": "jointcodec.entropy.integer",
    "PayloadDecodeError": "jointcodec.entropy.payloads",
    "decode_latents": "jointcodec.entropy.torch_payloads",
    "encode_latents": "jointcodec.entropy.torch_payloads",
    "encode_latents_with_bits": "jointcodec.entropy.torch_payloads",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jointcodec.entropy' has no attribute {name!r}")
