"""jointcodec: compress images for machines.

A small learned encoder turns an image into a quantized latent; a learned context model gives
each symbol's probability; a server-side classifier reads the latent without reconstructing the image.

Python API (imported lazily, so ``import jointcodec`` stays cheap)::

    import jointcodec
    model, config = jointcodec.load_model("default")          # shipped CIFAR-10 model
    test = jointcodec.load_split("cifar10", "test")            # $JOINTCODEC_DATA or --download
    print(jointcodec.evaluate_model(model, test)["top1"])
"""

from __future__ import annotations

from jointcodec.errors import CheckpointError, ConfigError, DataError, JointCodecError, TrainingDiverged

__version__ = "0.1.0"

_LAZY = {
    "load_model": "jointcodec.checkpoint",
    "save_model": "jointcodec.checkpoint",
    "Codec": "jointcodec.serve.codec",
    "create_model": "jointcodec.models",
    "PRESETS": "jointcodec.models",
    "load_split": "jointcodec.data",
    "evaluate_model": "jointcodec.evaluation",
    "Recipe": "jointcodec.training",
    "RunSettings": "jointcodec.training",
    "TrainConfig": "jointcodec.training",
    "train": "jointcodec.training",
}

__all__ = ["__version__", "JointCodecError", "DataError", "CheckpointError", "ConfigError", "TrainingDiverged",
           *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jointcodec' has no attribute {name!r}")
