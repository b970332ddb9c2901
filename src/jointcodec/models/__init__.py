"""Models: encoders, the learned quantizer, the 3D context model, classifiers, and the preset registry."""

from jointcodec.models.context import (
    ChannelContextModel,
    CheckerboardContextModel,
    ContextModel3D,
    MaskedConv3d,
    causal_mask,
)
from jointcodec.models.joint import JointModel, JointOutput
from jointcodec.models.quantizer import LearnedQuantizer, Quantized
from jointcodec.models.registry import (
    CONTEXTS,
    PRESETS,
    Preset,
    create_context,
    create_model,
    get_preset,
    preset_from_dict,
    receiver_count,
    with_receivers,
)

__all__ = [
    "ChannelContextModel", "CheckerboardContextModel", "CONTEXTS", "ContextModel3D", "MaskedConv3d", "causal_mask",
    "JointModel", "JointOutput", "LearnedQuantizer", "Quantized", "PRESETS", "Preset", "create_context",
    "create_model", "get_preset", "preset_from_dict", "receiver_count", "with_receivers",
]
