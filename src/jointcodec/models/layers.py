"""Building blocks shared by encoders and classifiers."""

from __future__ import annotations

from torch import nn


def conv_bn(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """Conv (no bias: BatchNorm follows) -> BatchNorm -> optional ReLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """The ResNet-18 basic block: two 3x3 convs and a (projected when needed) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(in_ch, out_ch, 3, stride), conv_bn(out_ch, out_ch, 3, relu=False))
        self.shortcut = (
            nn.Identity() if stride == 1 and in_ch == out_ch else conv_bn(in_ch, out_ch, 1, stride, relu=False)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


def residual_stages(in_ch: int, widths: tuple[int, ...], blocks: tuple[int, ...], first_stride: int = 1):
    """Stages of basic blocks; every stage after the first halves the resolution."""
    layers: list[nn.Module] = []
    for stage, (width, count) in enumerate(zip(widths, blocks, strict=True)):
        for i in range(count):
            stride = (first_stride if stage == 0 else 2) if i == 0 else 1
            layers.append(BasicBlock(in_ch, width, stride))
            in_ch = width
    return nn.Sequential(*layers), in_ch
