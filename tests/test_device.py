"""device= of generate, transmute, impute and score_types: the networks run there, draws stay on the CPU."""

import numpy as np
import pytest
import torch

import scbranch as sb

CUDA = torch.cuda.is_available()


def test_cpu_is_the_default_output(toy_model):
    model, _ = toy_model
    a = sb.tl.generate(model, 10, random_state=4, progress=False)
    b = sb.tl.generate(model, 10, random_state=4, progress=False, device="cpu")
    assert (a.X != b.X).nnz == 0
    np.testing.assert_array_equal(a.obsm["X_scbranch"], b.obsm["X_scbranch"])


def test_every_tool_takes_device(toy_model):
    model, adata = toy_model
    tm = sb.tl.transmute(adata, model, source="A", target="C", n_steps=20, device="cpu")
    assert tm.n_obs == (adata.obs["cell_type"] == "A").sum()
    scored = sb.tl.score_types(adata, model, n_times=5, device="cpu", copy=True)
    assert "scbranch_types" in scored.obs
    panel = adata[:, :30].copy()
    panel.X = sb._normalize.to_lognorm(adata.X, "counts")[:, :30]  # normalized over every gene, as impute expects
    imputed = sb.tl.impute(panel, model, groupby="cell_type", n_samples=1, n_steps=10, device="cpu", progress=False)
    assert imputed.n_vars == adata.n_vars
    assert next(model.module.parameters()).device.type == "cpu"


@pytest.mark.skipif(CUDA, reason="a CUDA GPU is present")
@pytest.mark.parametrize("tool", ["generate", "transmute", "score_types", "impute"])
def test_cuda_without_a_gpu_is_a_clear_error(toy_model, tool):
    model, adata = toy_model
    before = adata.copy()
    call = {"generate": lambda: sb.tl.generate(model, 5, device="cuda", progress=False),
            "transmute": lambda: sb.tl.transmute(adata, model, source="A", target="C", device="cuda"),
            "score_types": lambda: sb.tl.score_types(adata, model, device="cuda"),
            "impute": lambda: sb.tl.impute(adata, model, device="cuda")}[tool]
    with pytest.raises(ValueError, match="no CUDA GPU"):
        call()
    assert set(adata.obs.columns) == set(before.obs.columns) and set(adata.uns) == set(before.uns)


def test_unknown_device_is_a_clear_error(toy_model):
    model, _ = toy_model
    with pytest.raises(ValueError, match="device must be"):
        sb.tl.generate(model, 5, device="gpu0", progress=False)


def test_placed_network_gives_the_same_numbers():
    """The wrapper that runs a network on the device, CPU tensors in and out (exercised here on the CPU)."""
    from scbranch.model._device import _Placed

    net = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3)
    torch.testing.assert_close(_Placed(net, torch.device("cpu"))(x), net(x))
    assert _Placed(net, torch.device("cpu")).out_features == 2


@pytest.mark.skipif(not CUDA, reason="no CUDA GPU")
def test_cuda_matches_cpu(toy_model):
    model, _ = toy_model
    a = sb.tl.generate(model, 10, random_state=4, progress=False, device="cpu")
    b = sb.tl.generate(model, 10, random_state=4, progress=False, device="cuda")
    np.testing.assert_allclose(a.obsm["X_scbranch"], b.obsm["X_scbranch"], atol=1e-3)
    assert next(model.module.parameters()).device.type == "cpu"
