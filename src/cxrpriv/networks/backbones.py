"""Convolutional trunks that map a grayscale radiograph [B, 1, H, W] to a feature map [B, C, h, w].

``small_cnn`` is the default profile's trunk (trains in minutes on 2 CPU cores); ``resnet18``/``resnet50``
and ``densenet121`` are MONAI's 2-D versions of the published architectures (torchvision does not import on
the reference stack). MONAI's ResNet defaults to a stride-1 stem, which costs about 7x more compute at
256x256 than the ImageNet stem the papers used, so the stem stride is set to 2 here. No ImageNet weights:
the papers start from them, these runs start from scratch (documented as a deviation).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

BACKBONES = ("small_cnn", "resnet18", "resnet50", "densenet121")


class Backbone(nn.Module):
    """A trunk with a known number of output channels."""

    def __init__(self, body: nn.Module, channels: int) -> None:
        super().__init__()
        self.body = body
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


def small_cnn(width: int = 24, depth: int = 4, stem: int = 1) -> Backbone:
    """``depth`` blocks of two 3x3 convolutions and a 2x pooling, channels width * (1, 2, 4, 8, ...).

    ``stem`` > 1 puts a patchify convolution (kernel = stride = ``stem``, ``width`` channels) in front: the
    first block then runs at 1/stem of the resolution, which is where most of the compute goes at 128 px.
    """
    channels = [1] + [width * 2**i for i in range(depth)]
    layers: list[nn.Module] = []
    if stem > 1:
        layers += [
            nn.Conv2d(1, width, stem, stride=stem, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        channels[0] = width
    layers += [_conv_block(a, b) for a, b in itertools.pairwise(channels)]
    return Backbone(nn.Sequential(*layers), channels[-1])


def _monai_resnet(name: str) -> Backbone:
    from monai.networks import nets  # lazily: `import monai` imports mlflow (its handlers), and is slow

    builder = getattr(nets, name)
    net = builder(spatial_dims=2, n_input_channels=1, conv1_t_stride=2, num_classes=1)
    body = nn.Sequential(
        net.conv1, net.bn1, net.act, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4
    )
    return Backbone(body, net.fc.in_features)


def _monai_densenet121() -> Backbone:
    from monai.networks.nets import DenseNet121

    net = DenseNet121(spatial_dims=2, in_channels=1, out_channels=1)
    classifier = net.class_layers.out
    assert isinstance(classifier, nn.Linear)  # MONAI's DenseNet classifies with one linear layer
    # MONAI puts the final ReLU in the classification layers; the trunk keeps it.
    return Backbone(nn.Sequential(net.features, nn.ReLU(inplace=False)), classifier.in_features)


def pooled_size(trunk: Backbone, pool: str, image_size: int) -> int:
    """Length of the trunk's output once pooled (``average``) or flattened (``flatten``)."""
    if pool == "average":
        return trunk.channels
    if pool != "flatten":
        raise ValueError(f"pool must be 'average' or 'flatten', not {pool!r}")
    if image_size < 1:
        raise ValueError("pool='flatten' needs the input image_size")
    trunk.eval()  # a dry run to size the layer; eval mode leaves the batch-norm statistics alone
    with torch.no_grad():
        size = trunk(torch.zeros(1, 1, image_size, image_size)).numel()
    trunk.train()
    return size


def build_backbone(name: str, width: int = 24, depth: int = 4, stem: int = 1) -> Backbone:
    """``width``/``depth``/``stem`` apply to ``small_cnn`` only."""
    if name == "small_cnn":
        return small_cnn(width, depth, stem)
    if name == "resnet18":
        return _monai_resnet("resnet18")
    if name == "resnet50":
        return _monai_resnet("resnet50")
    if name == "densenet121":
        return _monai_densenet121()
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
