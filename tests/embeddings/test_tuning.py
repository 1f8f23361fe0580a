"""The backbone cut for fine-tuning: trunk then tail is the whole network, and the tail is a copy."""

from __future__ import annotations

import pytest
import torch

from embeddings import build_efficientnet_lite0
from embeddings.tuning import NotTunable, split_efficientnet, split_tower, trunk_activations


@pytest.mark.parametrize("tuned_blocks", [1, 3, 5])
def test_trunk_then_tail_gives_the_whole_networks_features(tuned_blocks: int) -> None:
    model = build_efficientnet_lite0()
    tower = split_efficientnet(model, tuned_blocks, "efficientnet-lite0")
    images = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = model(images)
        got = tower.tail.eval()(tower.trunk(images))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_tuning_the_tail_leaves_the_backbone_untouched() -> None:
    model = build_efficientnet_lite0()
    before = {name: t.clone() for name, t in model.state_dict().items()}
    tower = split_efficientnet(model, 2, "efficientnet-lite0")
    assert all(p.requires_grad for p in tower.tail.parameters())
    assert not any(p.requires_grad for p in tower.trunk.parameters())
    with torch.no_grad():
        for parameter in tower.tail.parameters():
            parameter.add_(1.0)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, before[name], msg=name)


def test_activations_are_half_precision_and_in_batch_order() -> None:
    tower = split_tower("efficientnet-lite0", 1)
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    together = trunk_activations(tower.trunk, [images])
    apart = trunk_activations(tower.trunk, [images[:1], images[1:]])
    assert together.dtype == torch.float16 and together.shape[0] == 3
    torch.testing.assert_close(together, apart)
    with pytest.raises(ValueError, match="no images"):
        trunk_activations(tower.trunk, [])


def test_what_cannot_be_cut_says_so() -> None:
    with pytest.raises(NotTunable, match="not for 'clip:ViT-B-32/openai'"):
        split_tower("clip:ViT-B-32/openai", 2)
    with pytest.raises(NotTunable, match="between 1 and 16"):
        split_tower("efficientnet-lite0", 17)
    with pytest.raises(NotTunable, match="between 1 and 16"):
        split_tower("efficientnet-lite0", 0)
