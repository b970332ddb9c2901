"""Accuracy and estimated rate of a JointModel on a data split."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from jointcodec.data import ImageSet, normalize, prefetched
from jointcodec.evaluation.complexity import count_macs, count_params
from jointcodec.models import JointModel


@torch.no_grad()
def predict(model: JointModel, data: ImageSet, batch_size: int = 500, progress: bool = False,
            device: str = "cpu") -> dict[str, torch.Tensor]:
    """Logits, estimated bits and symbols for every image (eval mode, fp32: rates must be exact)."""
    model.eval()
    logits, bits, symbols = [], [], []
    batches = [slice(start, start + batch_size) for start in range(0, len(data), batch_size)]
    for _, batch in tqdm(prefetched(data.images, batches), total=len(batches),
                         desc=f"evaluate {data.name}:{data.split}", disable=not progress, unit="batch"):
        images = normalize(batch).to(device)
        out = model(images)
        logits.append(out.logits.float().cpu())
        bits.append(out.bits.cpu())
        symbols.append(out.symbols.cpu())
    return {"logits": torch.cat(logits), "bits": torch.cat(bits), "symbols": torch.cat(symbols)}


def accuracy_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    k = min(5, logits.shape[1])
    topk = logits.topk(k, dim=1).indices
    hits = topk == labels.view(-1, 1)
    return {"top1": 100.0 * hits[:, 0].float().mean().item(), "top5": 100.0 * hits.any(1).float().mean().item()}


def evaluate_model(model: JointModel, data: ImageSet, batch_size: int = 500, progress: bool = False,
                   device: str = "cpu") -> dict:
    """The stable JSON record of one evaluation (scripts depend on these key names)."""
    out = predict(model, data, batch_size, progress, device)
    height, width = data.image_size
    example = normalize(data.images[:1]).to(device)
    latent_shape = list(out["symbols"].shape[1:])
    return {
        **accuracy_metrics(out["logits"], data.labels),
        "bpp_estimated": out["bits"].mean().item() / (height * width),
        "bits_per_image_estimated": out["bits"].mean().item(),
        "n_images": len(data),
        "encoder_params": count_params(model.encoder),
        "encoder_macs": count_macs(model.encoder, example),
        "context_params": count_params(model.context),
        "classifier_params": count_params(model.classifier),
        "classifier_macs": count_macs(model.classifier, torch.zeros(1, *latent_shape, device=device)),
        "latent_shape": latent_shape,
        "levels": model.levels,
        "image_size": [height, width],
        "dataset": data.name,
        "split": data.split,
    }
