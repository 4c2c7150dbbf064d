"""AffineCNN (GL+(2), SL(2), SO(2)) and its plain CNN baseline: exact rot90 invariance, training, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from liequiv.data.digits import load_digits_split
from liequiv.models.affine import AffineCNN, PlainCNN, matching_plain_cnn


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("options", [{"group": "so2", "num_samples": 8},
                                     {"group": "glplus", "num_samples": 24, "rotations": 4, "quadrature": "grid",
                                      "scales": 3, "shears": 1}], ids=["so2", "glplus-grid"])
def test_model_is_exactly_invariant_to_quarter_turns(options):
    """The samples are closed under quarter turns (8 angles; the grid's 4 angles), which permute the pixel offsets."""
    torch.manual_seed(0)
    model = AffineCNN(channels=(4, 6, 6), **options).double().eval()
    x = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    logits = model(x)
    for k in (1, 2, 3):
        assert (model(torch.rot90(x, k, (-2, -1))) - logits).abs().max() < 1e-10
    cnn = PlainCNN(channels=(4, 6)).double()
    assert (cnn(torch.rot90(x, 1, (-2, -1))) - cnn(x)).abs().max() > 1e-3  # the baseline is not


def test_eval_is_deterministic_and_training_redraws_only_when_asked():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 28, 28)
    fixed, fresh = AffineCNN("glplus", channels=(4, 4)), AffineCNN("glplus", channels=(4, 4), redraw="all")
    fresh.load_state_dict(fixed.state_dict())
    assert torch.equal(fixed(x), fixed(x))
    assert not torch.equal(fresh(x), fresh(x))
    fresh.eval()
    assert torch.equal(fresh(x), fresh(x)) and torch.equal(fresh(x), fixed.eval()(x))


def test_matching_plain_cnn_has_about_the_same_parameter_count():
    model = AffineCNN("glplus")
    cnn = matching_plain_cnn(model)
    assert abs(_count(cnn) - _count(model)) < 0.15 * _count(model)


@pytest.mark.parametrize("group", ["glplus", "sl", "so2", "cnn"])
def test_a_few_steps_lower_the_loss_on_digits(group):
    """30 Adam steps on 64 digits lower the loss on them by half (by 40 % for the SO(2) model, to which 6 and 9
    are one digit). The models fit in training mode and are measured in eval mode; the norms keep no running
    statistics, so the two modes compute the same function."""
    torch.manual_seed(0)
    images, labels = load_digits_split("train")
    images, labels = images[:64], labels[:64]
    model = matching_plain_cnn(AffineCNN("glplus")) if group == "cnn" else AffineCNN(group)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(F.cross_entropy(model(images), labels))

    before = loss()
    model.train()
    for _ in range(30):
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    assert loss() < (0.6 if group == "so2" else 0.5) * before


def test_bad_input():
    with pytest.raises(ValueError, match="group must be one of"):
        AffineCNN("affine")
    with pytest.raises(ValueError, match="channels"):
        AffineCNN("sl", channels=(8,))
    with pytest.raises(ValueError, match="image must have shape"):
        AffineCNN("sl", in_channels=3)(torch.randn(2, 1, 28, 28))
    with pytest.raises(ValueError, match="blur must be"):
        AffineCNN("so2", blur=-1.0)
    with pytest.raises(ValueError, match="blur must be"):
        PlainCNN(blur=float("nan"))


def test_blur_is_a_normalized_gaussian():
    """The input blur keeps constants (away from the border) and spreads a point as exp(-r²/2σ²)."""
    from liequiv.models.affine import _smooth

    image = torch.zeros(1, 1, 21, 21, dtype=torch.float64)
    image[..., 10, 10] = 1
    out = _smooth(image, 1.5)[0, 0]
    r2 = (torch.arange(21, dtype=torch.float64) - 10) ** 2
    expected = torch.exp(-(r2[:, None] + r2[None, :]) / (2 * 1.5**2))
    expected = expected * (r2[:, None] <= 25) * (r2[None, :] <= 25)  # truncated at 3σ, rounded up: ±5
    torch.testing.assert_close(out, expected / expected.sum(), rtol=0, atol=1e-15)
    assert torch.equal(_smooth(image, 0.0), image)
