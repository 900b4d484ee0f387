"""bench/torch_convnet.py: ConvNetD3 in PyTorch, the reference network of the PyTorch
baselines in bench/ (nn, eval, distill), imported by each of them.

Conv 3x3 (width 128; padding 3 on the first layer for 28x28 input, so it is padded to 32x32)
-> GroupNorm(width, width) (instance norm) -> ReLU -> AvgPool 2x2, depth times, then a
linear classifier on the flattened 2048-d embedding (width * 4 * 4). Same layer order as
libapd's ConvNetD3, so the parameters are created in the same order.
"""
import torch.nn as nn


class ConvNetD3(nn.Module):
    def __init__(self, c, h, classes=10, width=128, depth=3):
        super().__init__()
        layers = []
        ch, size = c, h
        for d in range(depth):
            pad = 3 if (d == 0 and h == 28) else 1
            layers += [nn.Conv2d(ch, width, 3, padding=pad), nn.GroupNorm(width, width, affine=True),
                       nn.ReLU(inplace=True), nn.AvgPool2d(2, 2)]
            size = size + 2 * pad - 2  # 3x3 convolution
            size //= 2
            ch = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * size * size, classes)

    def embed(self, x):
        return self.features(x).flatten(1)

    def forward(self, x):
        return self.classifier(self.embed(x))
