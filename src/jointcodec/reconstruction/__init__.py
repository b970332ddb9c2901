"""Optional image reconstruction on the server, from the decoded latent (the bitstream and labels never change).

    model, config = jointcodec.load_model("default")
    decoder, record = load_decoder_for(model, "default")     # default/decoder.safetensors
    images = reconstruct(decoder, model.quantizer.dequantize(symbols))   # float in [0, 1]

* ``decoders``: the decoder networks p(x | z_hat) and ``reconstruct``;
* ``files``: ``decoder.safetensors``, its record and the fingerprint of the model it belongs to;
* ``quality``: PSNR and MS-SSIM of reconstructed images (``evaluate --reconstruct``).

Training a decoder is ``jointcodec.training.decoder`` (``jointcodec train-decoder``).
"""

from __future__ import annotations

from jointcodec.reconstruction.decoders import (
    DECODERS,
    UpsamplingDecoder,
    create_decoder,
    default_decoder_args,
    reconstruct,
    to_uint8,
)
from jointcodec.reconstruction.files import (
    DECODER_FORMAT,
    DECODER_METADATA_KEY,
    DECODER_VERSION,
    DECODER_WEIGHTS,
    DecoderMismatchError,
    decoder_record,
    default_decoder_path,
    load_decoder,
    load_decoder_for,
    read_decoder_record,
    save_decoder,
)
from jointcodec.reconstruction.quality import (
    MS_SSIM_SETTINGS,
    evaluate_reconstruction,
    format_reconstruction,
    image_quality,
    ms_ssim,
    psnr,
)

__all__ = [
    "DECODERS", "UpsamplingDecoder", "create_decoder", "default_decoder_args", "reconstruct", "to_uint8",
    "DECODER_FORMAT", "DECODER_METADATA_KEY", "DECODER_VERSION", "DECODER_WEIGHTS", "DecoderMismatchError",
    "decoder_record", "default_decoder_path", "load_decoder", "load_decoder_for", "read_decoder_record",
    "save_decoder", "MS_SSIM_SETTINGS", "evaluate_reconstruction", "format_reconstruction", "image_quality",
    "ms_ssim", "psnr",
]
