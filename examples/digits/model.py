"""A network of your own for the 8x8 digits: written as a plain PyTorch module, with a depthwise
convolution and a functional forward, to show what ``powerprune`` accepts without changes."""

import torch
from torch import nn
from torch.nn import functional as F


class DigitsNet(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1)                        # 8x8 -> 8x8 (SAME)
        self.depthwise = nn.Conv2d(width, width, 3, padding=1, groups=width)  # depthwise, SAME
        self.pool = nn.MaxPool2d(2)                                           # -> 4x4
        self.conv = nn.Conv2d(width, 2 * width, 3)                            # -> 2x2 (VALID)
        self.fc = nn.Linear(2 * width * 4, 64)
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = self.pool(F.relu(self.depthwise(x)))
        x = F.relu(self.conv(x))
        x = x.view(x.size(0), -1)
        return self.head(F.relu(self.fc(x)))


def make_model() -> nn.Module:
    return DigitsNet()
