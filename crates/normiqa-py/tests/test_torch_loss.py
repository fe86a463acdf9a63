"""normiqa.torch.norm_in_norm_loss against the Rust loss (value and gradient, f64, 1e-6).

Needs the full torch (`import torch`): skipped with a NOTICE where only the slim torch of
`./run setup` is installed (CI); `./run test-python` runs it when NORMIQA_TORCH_PYTHON names a
Python with the full torch (e.g. one made by `./run setup-full`)."""

import itertools

import numpy as np
import pytest

import normiqa

try:
    import torch
except Exception as e:  # the slim torch cannot be imported
    pytest.skip(f"NOTICE: the full torch is not importable here ({type(e).__name__}); "
                "normiqa.torch is not checked", allow_module_level=True)

from normiqa.torch import norm_in_norm_loss


def reference(pred, mos, **kw):
    value, grad = normiqa._normiqa.norm_in_norm_reference(pred.tolist(), mos.tolist(), **kw)
    return value, np.asarray(grad)


@pytest.mark.parametrize("p,q,alpha,detach", [
    (p, q, a, d) for (p, q), a, d in itertools.product(
        [(1.0, 2.0), (2.0, 2.0), (1.0, 1.0), (2.0, 1.0), (1.5, 3.0)], [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0)], [False, True])
])
def test_value_and_gradient_equal_the_rust_loss(p, q, alpha, detach):
    rng = np.random.default_rng(int(p * 10 + q))
    pred, mos = rng.normal(0, 1, 16), rng.uniform(0, 100, 16)
    x = torch.tensor(pred, dtype=torch.float64, requires_grad=True)
    loss = norm_in_norm_loss(x, torch.tensor(mos), p=p, q=q, alpha=alpha, detach=detach)
    loss.backward()
    want, grad = reference(pred, mos, p=p, q=q, alpha=alpha, detach=detach)
    assert loss.item() == pytest.approx(want, abs=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), grad, rtol=0, atol=1e-6)


def test_one_sample_gives_zero_connected_to_the_graph():
    x = torch.tensor([0.3], requires_grad=True)
    loss = norm_in_norm_loss(x, torch.tensor([50.0]))
    loss.backward()
    assert loss.item() == 0.0 and x.grad is not None


def test_equal_predictions_give_a_finite_gradient():
    x = torch.zeros(8, dtype=torch.float64, requires_grad=True)
    mos = np.linspace(0, 1, 8)
    norm_in_norm_loss(x, torch.tensor(mos)).backward()
    _, grad = reference(np.zeros(8), mos)
    assert torch.isfinite(x.grad).all()
    np.testing.assert_allclose(x.grad.numpy(), grad, rtol=0, atol=1e-6)


def test_bad_parameters_are_refused():
    x = torch.zeros(4)
    with pytest.raises(ValueError, match="p >= 1"):
        norm_in_norm_loss(x, x, p=0.5)
    with pytest.raises(ValueError, match="alpha"):
        norm_in_norm_loss(x, x, alpha=(0.0, 0.0))
    with pytest.raises(ValueError, match="4 values but the MOS has 3"):
        norm_in_norm_loss(x, torch.zeros(3))
