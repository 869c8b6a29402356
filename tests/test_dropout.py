"""The CPU dropout (models/dropout.py): nn.Dropout's distribution, seeding and gradients, a cheaper mask."""

import pytest
import torch

from deepwell.models.dropout import Dropout, keep_mask


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.9])
def test_the_mask_drops_each_element_with_probability_p(p):
    torch.manual_seed(0)
    mask = keep_mask(torch.Size([600, 1001]), p)  # not a multiple of 4: the last draw is cut
    assert mask.shape == (600, 1001) and mask.dtype == torch.bool
    dropped = 1 - mask.float().mean().item()
    assert dropped == pytest.approx(p, abs=0.004)  # 600k Bernoulli draws: 5 standard errors at p = 0.5 is 0.0032


def test_neighbouring_elements_are_independent():
    torch.manual_seed(0)
    mask = keep_mask(torch.Size([2_000_001]), 0.5).float()
    for lag in (1, 2, 3, 4):  # parts of one draw, and of the next draw
        assert abs(torch.corrcoef(torch.stack([mask[:-lag], mask[lag:]]))[0, 1].item()) < 0.005


def test_the_mask_follows_the_seed():
    torch.manual_seed(3)
    first = keep_mask(torch.Size([64, 9]), 0.3)
    torch.manual_seed(3)
    assert torch.equal(first, keep_mask(torch.Size([64, 9]), 0.3))
    assert not torch.equal(first, keep_mask(torch.Size([64, 9]), 0.3))


def test_dropout_scales_kept_values_and_passes_gradients_through_them_only():
    torch.manual_seed(0)
    layer = Dropout(0.25)
    x = torch.ones(200, 300, requires_grad=True)
    y = layer(x)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.75))
    assert y.mean().item() == pytest.approx(1.0, abs=0.02)
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)


def test_evaluation_p_zero_and_p_one_behave_as_nn_dropout():
    x = torch.randn(32, 8)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0)(x), x)
    assert torch.equal(Dropout(1.0)(x), torch.nn.Dropout(1.0)(x))
    assert Dropout(0.3).state_dict() == {} and repr(Dropout(0.3)) == "Dropout(p=0.3, inplace=False)"
