"""MLPerf Tiny's image-classification network (ResNet-8, "resnet_v1_eembc") as a plain PyTorch module.

32x32x3 input, conv 16 -> three stages of one residual block each (16, 32, 64 channels, stride 1, 2,
2; the second and third with a strided 1x1 conv on the skip), global average pooling, FC 10. Written
the way a PyTorch user ports the Keras original: BatchNorm2d after every conv of the main path (powerprune
folds it into the conv), convs without bias in front of a batch norm, and the Keras ``padding='same'``
of the stride-2 3x3 convs as ``ZeroPad2d((0, 1, 0, 1))`` (TensorFlow pads the odd pixel after; PyTorch's
symmetric ``padding=1`` would shift every window by one). Nothing here knows about powerprune.
Once its batch norms are folded it has 77,706 parameters, the Keras model's 78,666 less the 960 of its
batch norms. The final softmax is left out, as in every powerprune model (the int8 model ends in
FULLY_CONNECTED; the argmax is the same).
"""

import torch
from torch import nn


class Block(nn.Module):
    """conv-BN-ReLU, conv-BN, plus the skip (the input, or a strided 1x1 conv of it), then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.pad = nn.ZeroPad2d((0, 1, 0, 1)) if stride == 2 else nn.Identity()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=0 if stride == 2 else 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else None
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(self.pad(x))))
        y = self.bn2(self.conv2(y))
        shortcut = x if self.skip is None else self.skip(x)
        return self.relu(shortcut + y)


class ResNet8(nn.Module):
    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        self.stem = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(widths[0])
        self.stage1 = Block(widths[0], widths[0], 1)
        self.stage2 = Block(widths[0], widths[1], 2)
        self.stage3 = Block(widths[1], widths[2], 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[2], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def make_model() -> nn.Module:
    return ResNet8()
