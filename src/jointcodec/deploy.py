"""Old import paths of the split deployment, kept for code written against them.

The split export is ``jointcodec.edge.split``, the loader of full checkpoints and parts is
``jointcodec.checkpoint.load_model``, and the fingerprint is ``jointcodec.entropy.fixedpoint.model_fingerprint``.
"""

from __future__ import annotations

from jointcodec.checkpoint import ALL_PARTS, PARTS, MissingPart
from jointcodec.checkpoint import load_model as load_codec_model
from jointcodec.edge.split import export_split
from jointcodec.entropy.fixedpoint import model_fingerprint as fingerprint

__all__ = ["ALL_PARTS", "PARTS", "MissingPart", "export_split", "fingerprint", "load_codec_model"]
