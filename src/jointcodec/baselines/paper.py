"""The paper's reference points (Chamain et al. 2022), read off its plots: docs/baselines.md.

Each entry: (paper's system name, our system it corresponds to, [(bpp, top-1 %), ...]). The paper's
rates are the context model's entropy estimates for its own codec and, for JPEG, payload sizes
(docs/baselines.md): they are drawn as hollow markers labelled "paper", never mixed with our points.
"""

from __future__ import annotations

PAPER: dict[str, list[tuple[str, str, list[tuple[float, float]]]]] = {
    "cifar10": [
        ("AE-V1 L=2/3/6", "jointcodec", [(0.80, 87.2), (1.34, 87.6), (2.10, 88.1)]),
        ("AE-V2 L=2/3/6", "jointcodec", [(0.82, 87.4), (1.45, 88.3), (1.88, 88.5)]),
        ("JPEG 4:2:0", "jpeg420", [(0.78, 77.2), (1.05, 81.6), (1.80, 85.5), (2.32, 86.7)]),
        ("JPEG 2000 4:2:0", "jpeg2000", [(0.79, 76.2), (1.01, 79.8), (1.27, 82.9), (1.60, 85.0), (2.03, 87.2)]),
        ("BPG", "hevc", [(0.86, 81.0), (1.31, 86.7), (2.00, 89.2)]),
        ("WebP", "webp", [(0.90, 80.5), (1.14, 83.0), (1.64, 85.4), (2.36, 88.6)]),
    ],
    "cifar100": [
        ("AE-V1 L=2/3/6", "jointcodec", [(0.88, 63.1), (1.44, 64.1), (1.80, 64.1)]),
        ("AE-V2 L=2/3/6", "jointcodec", [(0.82, 60.4), (1.36, 62.3), (1.93, 62.8)]),
        ("JPEG", "jpeg420", [(0.77, 48.1)]),
        ("WebP", "webp", [(0.84, 55.0)]),
        ("BPG", "hevc", [(0.85, 52.8)]),
    ],
}


def paper_points(dataset: str) -> list[dict]:
    """Flat records ``{paper_system, system, payload_bpp, top1}`` for a data set (empty if none)."""
    return [{"paper_system": name, "system": system, "payload_bpp": bpp, "top1": top1}
            for name, system, points in PAPER.get(dataset, []) for bpp, top1 in points]
