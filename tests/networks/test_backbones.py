from __future__ import annotations

import pytest
import torch

from cxrpriv.networks.backbones import build_backbone


@pytest.mark.parametrize(("name", "stride"), [("small_cnn", 16), ("resnet18", 32)])
def test_backbones_map_a_grayscale_film_to_a_feature_map(name: str, stride: int) -> None:
    net = build_backbone(name)
    out = net(torch.zeros(2, 1, 64, 64))
    assert out.shape == (2, net.channels, 64 // stride, 64 // stride)


def test_unknown_backbone_names_the_choices() -> None:
    with pytest.raises(ValueError, match="small_cnn, resnet18, resnet50, densenet121"):
        build_backbone("vgg")


def test_a_patchify_stem_divides_the_resolution_before_the_blocks() -> None:
    net = build_backbone("small_cnn", width=8, depth=2, stem=4)
    out = net(torch.zeros(2, 1, 64, 64))
    assert out.shape == (2, 16, 64 // 16, 64 // 16)
    # The default stays the stem-less trunk that other stages were built with.
    assert build_backbone("small_cnn", width=8, depth=2).state_dict().keys() != net.state_dict().keys()
