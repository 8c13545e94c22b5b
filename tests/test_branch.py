"""Attribute branch: fused projection vs its reference, layer selection and mixing, masked pooling, heads."""

from __future__ import annotations

import pytest
import torch

from uattr.branch import AttributeBranch, BranchConfig
from uattr.branch.pooling import frame_mask
from uattr.branch.projection import (
    PerLayerProjection,
    SharedProjection,
    mix_layers,
    project_and_mix_reference,
)
from uattr.errors import ConfigError
from uattr.registry import POOLINGS

WHERE = "attributes.x.branch"


LAYERS = (1, 2, 3, 4, 5)  # of a stack of 6 hidden states: the input (index 0) is not selected


def _inputs(layers: int, batch: int, frames: int, dim: int, out: int, dtype: torch.dtype, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(layers + 1, batch, frames, dim, generator=generator, dtype=dtype).requires_grad_()
    logits = torch.randn(layers, generator=generator, dtype=dtype).requires_grad_()
    weight = torch.randn(layers, out, dim, generator=generator, dtype=dtype).requires_grad_()
    bias = torch.randn(layers, out, generator=generator, dtype=dtype).requires_grad_()
    return hidden, logits, weight, bias


def _fused(
    hidden: torch.Tensor, logits: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, layers=LAYERS
) -> torch.Tensor:
    """PerLayerProjection's forward with the test's tensors as its parameters."""
    projection = PerLayerProjection(weight.shape[0], weight.shape[2])
    arguments = (hidden, layers, logits.softmax(0))
    return torch.func.functional_call(projection, {"weight": weight, "bias": bias}, arguments)


def _reference(
    hidden: torch.Tensor, logits: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, layers=LAYERS
) -> torch.Tensor:
    return project_and_mix_reference(hidden, layers, logits.softmax(0), weight, bias)


def _grads(output: torch.Tensor, tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    upstream_grad = torch.linspace(-1, 1, output.numel(), dtype=output.dtype, device=output.device).view_as(output)
    return torch.autograd.grad(output, tensors, upstream_grad)


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-10), (torch.float32, 2e-4)])
@pytest.mark.parametrize("layers", [LAYERS, (4, 1, 2, 5, 3)])
def test_fused_per_layer_projection_equals_reference(dtype: torch.dtype, tolerance: float, layers) -> None:
    tensors = _inputs(layers=5, batch=3, frames=7, dim=6, out=4, dtype=dtype)
    fused = _fused(*tensors, layers=layers)
    reference = _reference(*tensors, layers=layers)
    torch.testing.assert_close(fused, reference, atol=tolerance, rtol=tolerance)
    fused_grads, reference_grads = _grads(fused, tensors), _grads(reference, tensors)
    for got, want, name in zip(fused_grads, reference_grads, ["hidden", "logits", "W", "b"]):
        torch.testing.assert_close(got, want, atol=tolerance, rtol=tolerance, msg=f"gradient w.r.t. {name}")
    assert not fused_grads[0][0].any()  # the unselected input layer gets an exact zero gradient


def test_fused_projection_passes_gradcheck() -> None:
    tensors = _inputs(layers=3, batch=2, frames=4, dim=3, out=2, dtype=torch.float64, seed=1)
    assert torch.autograd.gradcheck(lambda *t: _fused(*t, layers=(3, 1, 2)), tensors)


def test_fused_projection_with_frozen_hidden_states_only_grads_parameters() -> None:
    hidden, logits, weight, bias = _inputs(layers=5, batch=2, frames=3, dim=5, out=5, dtype=torch.float64)
    hidden = hidden.detach()
    fused, reference = _fused(hidden, logits, weight, bias), _reference(hidden, logits, weight, bias)
    for got, want in zip(_grads(fused, (logits, weight, bias)), _grads(reference, (logits, weight, bias))):
        torch.testing.assert_close(got, want)


def test_fused_projection_under_bf16_autocast_stays_close_and_keeps_parameter_dtypes() -> None:
    tensors = _inputs(layers=5, batch=2, frames=8, dim=16, out=16, dtype=torch.float32)
    reference = _reference(*tensors)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = _fused(*tensors)
    torch.testing.assert_close(fused.float(), reference, atol=0.1, rtol=0.05)
    grads = torch.autograd.grad(fused.float().sum(), tensors)
    assert [grad.dtype for grad in grads] == [torch.float32] * 4


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.detach().double() - want.detach().double()).norm() / want.detach().double().norm())


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("dtype", "autocast", "tolerance"),
    [(torch.float64, None, 1e-12), (torch.float32, None, 1e-5), (torch.float32, torch.bfloat16, 2e-2),
     (torch.float32, torch.float16, 5e-3)],
)
def test_fused_projection_on_cuda_equals_the_reference(dtype, autocast, tolerance, monkeypatch) -> None:
    """The custom autograd Function on a GPU: its output and all four gradients equal the reference's (computed
    outside autocast) to the precision it runs at; float32 without TF32, which an import elsewhere may have
    turned on (uattr/speechbrain_import.py)."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    tensors = tuple(
        tensor.detach().cuda().requires_grad_()
        for tensor in _inputs(layers=5, batch=3, frames=50, dim=64, out=32, dtype=dtype)
    )
    reference = _reference(*tensors, layers=(4, 1, 2, 5, 3))
    with torch.autocast("cuda", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
        fused = _fused(*tensors, layers=(4, 1, 2, 5, 3))
    assert fused.is_cuda and _relative_error(fused, reference) < tolerance
    fused_grads = _grads(fused.to(dtype), tensors)
    for got, want, name in zip(fused_grads, _grads(reference, tensors), ["hidden", "logits", "W", "b"]):
        assert got.dtype == dtype and _relative_error(got, want) < tolerance, name


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_mixing_equals_the_weighted_sum_of_the_selected_layers(dtype: torch.dtype) -> None:
    hidden = torch.randn(6, 2, 5, 4, dtype=dtype, requires_grad=True)
    logits = torch.randn(3, dtype=torch.float64 if dtype == torch.float64 else torch.float32, requires_grad=True)
    layers = (5, 0, 2)
    mixed = mix_layers(hidden, layers, logits.softmax(0))
    reference = torch.einsum("l,lbtd->btd", logits.softmax(0).to(dtype), hidden[list(layers)])
    torch.testing.assert_close(mixed.to(dtype), reference, atol=1e-2, rtol=1e-2)
    if dtype == torch.float64:
        assert torch.autograd.gradcheck(lambda h, l: mix_layers(h, layers, l.softmax(0)), (hidden, logits))


def test_shared_projection_equals_per_layer_with_tied_weights() -> None:
    torch.manual_seed(0)
    layers, dim = 4, 6
    hidden = torch.randn(layers, 2, 5, dim)
    weights = torch.randn(layers).softmax(0)
    shared = SharedProjection(layers, dim)
    per_layer = PerLayerProjection(layers, dim)
    with torch.no_grad():
        shared.linear.weight.normal_()
        shared.linear.bias.normal_()
        per_layer.weight.copy_(shared.linear.weight.expand(layers, dim, dim))
        per_layer.bias.copy_(shared.linear.bias.expand(layers, dim))
    layers = (0, 1, 2, 3)
    torch.testing.assert_close(
        per_layer(hidden, layers, weights), shared(hidden, layers, weights), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("projection", ["per_layer", "shared", "none"])
def test_projections_start_as_the_plain_layer_average(projection: str) -> None:
    hidden = torch.randn(5, 2, 3, 4)
    branch = AttributeBranch(
        BranchConfig(projection=projection, layer_norm=False, pooling="mean", head="none", normalize=False),
        num_hidden_states=5, hidden_size=4, output_dim=None, where=WHERE,
    )
    frame_lens = torch.tensor([3, 3])
    torch.testing.assert_close(branch(hidden, frame_lens), hidden[1:].mean(dim=(0, 2)))


def test_layer_weights_are_a_softmax_that_starts_uniform_and_sums_to_one() -> None:
    branch = AttributeBranch(BranchConfig(layer_start=2, layer_end=5), 8, 4, None, WHERE)
    assert branch.layers == [2, 3, 4, 5]
    torch.testing.assert_close(branch.layer_weights(), torch.full((4,), 0.25))
    with torch.no_grad():
        branch.layer_logits.copy_(torch.tensor([3.0, -1.0, 0.5, 2.0]))
    weights = branch.layer_weights().detach()
    assert float(weights.sum()) == pytest.approx(1.0)
    assert int(weights.argmax()) == 0


def test_default_layers_are_all_transformer_layers_not_the_input() -> None:
    assert AttributeBranch(BranchConfig(), 25, 8, None, WHERE).layers == list(range(1, 25))


def test_an_explicit_layer_list_reads_exactly_those_layers() -> None:
    hidden = torch.randn(6, 1, 4, 3)
    config = BranchConfig(layers=[4, 1], projection="none", layer_norm=False, pooling="mean", head="none",
                          normalize=False)
    branch = AttributeBranch(config, 6, 3, None, WHERE)
    with torch.no_grad():
        branch.layer_logits.copy_(torch.tensor([0.0, -1e9]))  # all weight on the first listed layer (4)
    torch.testing.assert_close(branch(hidden, torch.tensor([4])), hidden[4].mean(dim=1))


@pytest.mark.parametrize(
    ("config", "key"),
    [
        (BranchConfig(layers=[1, 2], layer_start=1), WHERE),
        (BranchConfig(layers=[]), f"{WHERE}.layers"),
        (BranchConfig(layers=[1, 1]), f"{WHERE}.layers"),
        (BranchConfig(layers=[0, 9]), f"{WHERE}.layers"),
        (BranchConfig(layer_start=5), f"{WHERE}.layer_start"),
        (BranchConfig(layer_start=3, layer_end=2), f"{WHERE}.layer_end"),
        (BranchConfig(pooling="maxx"), f"{WHERE}.pooling"),
        (BranchConfig(projection="full"), f"{WHERE}.projection"),
        (BranchConfig(head="none"), f"{WHERE}.head"),
        (BranchConfig(head="linear", head_hidden=8), f"{WHERE}.head_hidden"),
        (BranchConfig(head="mlp", head_hidden=0), f"{WHERE}.head_hidden: must be a positive integer, got 0"),
        (BranchConfig(head="mlp", head_hidden=-1), f"{WHERE}.head_hidden: must be a positive integer, got -1"),
    ],
)
def test_bad_branch_configs_name_the_key(config: BranchConfig, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}\b"):
        AttributeBranch(config, num_hidden_states=5, hidden_size=4, output_dim=3, where=WHERE)


def test_unknown_pooling_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="choices: attention, attentive_stats, mean"):
        AttributeBranch(BranchConfig(pooling="maxx"), 5, 4, None, WHERE)


@pytest.mark.parametrize("pooling", ["attention", "mean", "attentive_stats"])
@pytest.mark.parametrize("layers", [None, [3, 1]])
def test_padding_never_changes_an_embedding(pooling: str, layers: list[int] | None) -> None:
    torch.manual_seed(0)
    branch = AttributeBranch(BranchConfig(layers=layers, pooling=pooling), 4, 8, 5, WHERE).eval()
    with torch.no_grad():
        branch.layer_logits.normal_()
    lengths = [7, 3, 5]
    utterances = [torch.randn(4, length, 8) for length in lengths]
    batch = torch.full((4, 3, 7, 8), float("nan"))  # padding is NaN: any leak would show
    for index, utterance in enumerate(utterances):
        batch[:, index, : lengths[index]] = utterance
    batched = branch(batch, torch.tensor(lengths))
    assert torch.isfinite(batched).all()
    for index, utterance in enumerate(utterances):
        alone = branch(utterance[:, None], torch.tensor([lengths[index]]))
        torch.testing.assert_close(batched[index], alone[0], atol=1e-5, rtol=1e-5)


def test_every_registered_builtin_pooling_is_covered() -> None:
    assert {"attention", "mean", "attentive_stats"} <= set(POOLINGS.names())


def test_attentive_stats_pools_to_mean_and_std() -> None:
    pooling = POOLINGS.get("attentive_stats")(2)
    torch.nn.init.zeros_(pooling.score[2].weight)  # equal attention → plain mean and std
    frames = torch.tensor([[[1.0, 2.0], [3.0, 2.0], [99.0, 99.0]]])
    pooled = pooling(frames, torch.tensor([2]))
    torch.testing.assert_close(pooled, torch.tensor([[2.0, 2.0, 1.0, 0.0]]), atol=1e-3, rtol=0)
    assert pooling.output_dim == 4


@pytest.mark.parametrize(("offset", "spread", "autocast"), [(3.0, 0.05, True), (1000.0, 0.01, False)])
def test_attentive_stats_std_of_features_far_from_zero(offset: float, spread: float, autocast: bool) -> None:
    """E[x²] − μ² cancels where the mean dwarfs the spread: in bf16 (trainer.amp) every std was 1e-3 here, and
    in fp32 at an offset of 1000 some were off by 80×."""
    torch.manual_seed(0)
    pooling = POOLINGS.get("attentive_stats")(4)
    torch.nn.init.zeros_(pooling.score[2].weight)  # equal attention → plain mean and std
    frames = offset + spread * torch.randn(2, 300, 4)
    lens = torch.tensor([300, 200])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        pooled = pooling(frames, lens)
    expected = torch.stack([frames[0].double().std(0, unbiased=False), frames[1, :200].double().std(0, unbiased=False)])
    torch.testing.assert_close(pooled[:, 4:].double(), expected, rtol=0.02, atol=0)


def test_frame_mask_marks_valid_frames() -> None:
    assert frame_mask(torch.tensor([2, 0, 3]), 3).tolist() == [
        [True, True, False], [False, False, False], [True, True, True]
    ]


@pytest.mark.parametrize(("head", "hidden"), [("linear", None), ("mlp", 7)])
def test_head_maps_to_the_target_dimension_and_normalises(head: str, hidden: int | None) -> None:
    branch = AttributeBranch(BranchConfig(head=head, head_hidden=hidden), 4, 8, 3, WHERE)
    embedding = branch(torch.randn(4, 2, 6, 8), torch.tensor([6, 4]))
    assert branch.output_dim == 3 and embedding.shape == (2, 3)
    torch.testing.assert_close(embedding.norm(dim=-1), torch.ones(2))


def test_linear_head_is_identity_when_dimensions_match() -> None:
    branch = AttributeBranch(BranchConfig(), 4, 8, 8, WHERE)
    assert isinstance(branch.head, torch.nn.Identity)
    assert AttributeBranch(BranchConfig(pooling="attentive_stats"), 4, 8, None, WHERE).output_dim == 16
