"""jointcodec: compress images for machines.

A small learned encoder turns an image into a quantized latent; a learned context model gives
each symbol's probability; a server-side classifier reads the latent without reconstructing the image.
"""

__version__ = "0.1.0"

from jointcodec.errors import CheckpointError, ConfigError, DataError, JointCodecError  # noqa: E402

__all__ = ["__version__", "JointCodecError", "DataError", "CheckpointError", "ConfigError"]
