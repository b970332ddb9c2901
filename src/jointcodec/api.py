"""Python API for real bitstreams: ``compress(images) -> bytes``, ``decompress(bytes)``, ``classify(bytes)``.

    import jointcodec.api as jc
    model, config = jointcodec.load_model("default")
    data = jc.compress(model, images)          # uint8 (N, 3, H, W) -> one .jcc bitstream
    latent = jc.decompress(model, data)        # the decoded symbols and center values
    labels = jc.classify(model, data)          # decoded and classified, no image reconstruction

A ``Codec`` (``jointcodec.serve.codec``, also ``jointcodec.Codec``) holds the model and its fixed-point context
model; build one to code many batches. The functions accept a ``JointModel`` or a ``Codec``. The edge part of a
split deployment (``export --split``) can compress, the server part can decompress and classify.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from jointcodec.bitstream import Container
from jointcodec.errors import ConfigError
from jointcodec.models import JointModel
from jointcodec.serve.codec import Codec, Encoded, Latent, prediction_entries

__all__ = ["Codec", "Encoded", "Latent", "classify", "compress", "concatenate", "decompress", "prediction_entries"]


def _codec(model: JointModel | Codec) -> Codec:
    return model if isinstance(model, Codec) else Codec(model)


def compress(model: JointModel | Codec, images: torch.Tensor) -> bytes:
    """uint8 images (N, 3, H, W) -> one ``.jcc`` bitstream."""
    return _codec(model).compress(images)


def decompress(model: JointModel | Codec, data: bytes) -> Latent:
    """A ``.jcc`` bitstream -> its decoded latent (symbols and center values)."""
    return _codec(model).decompress(data)


def classify(model: JointModel | Codec, data: bytes) -> torch.Tensor:
    """A ``.jcc`` bitstream -> predicted labels (N,), from the decoded latent only."""
    return _codec(model).classify(data)


def concatenate(containers: Sequence[Container]) -> Container:
    """Several containers of one model and latent shape -> one (image order kept)."""
    first = containers[0]
    if any((c.fingerprint, c.levels, c.latent_shape) != (first.fingerprint, first.levels, first.latent_shape)
           for c in containers):
        raise ConfigError("cannot join bitstreams of different models or latent shapes")
    return Container(first.fingerprint, first.levels, first.latent_shape,
                     tuple(p for c in containers for p in c.payloads))
