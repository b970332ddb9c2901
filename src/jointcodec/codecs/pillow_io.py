"""Pillow plumbing shared by the wrappers that code through Pillow (JPEG, JPEG 2000, WebP)."""

from __future__ import annotations

import io

import numpy as np

from jointcodec.codecs.base import CodecError


def pillow_encode(image: np.ndarray, format: str, **options) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image, "RGB").save(buffer, format, **options)
    return buffer.getvalue()


def pillow_decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def pillow_library(feature: str, name: str) -> str:
    """``name version (Pillow x.y.z)``, or CodecError when this Pillow build lacks the feature."""
    import PIL
    from PIL import features

    if not features.check(feature):
        raise CodecError(f"this Pillow {PIL.__version__} was built without {name}")
    return f"{name} {features.version(feature)} (Pillow {PIL.__version__})"
