"""Entropy coding of the quantized latent: an exact fixed-point context model and constriction range coding.

* ``fixedpoint``: the context model in integer arithmetic, integer frequencies, the decoding order;
* ``coder``: constriction range coding of one image's symbols (with trailing-byte trimming);
* ``codec``: latents -> payloads and back (the batched step-by-step decode loop).
"""

from jointcodec.entropy.codec import PayloadDecodeError, decode_latents, encode_latents, encode_latents_with_bits
from jointcodec.entropy.fixedpoint import FixedPointContext, IncrementalContext, exp_table, frequencies

__all__ = ["FixedPointContext", "IncrementalContext", "PayloadDecodeError", "decode_latents", "encode_latents",
           "encode_latents_with_bits", "exp_table", "frequencies"]
