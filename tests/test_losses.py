"""Losses give known values on hand-made vectors; options are checked and errors name the config key."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from uattr.errors import ConfigError
from uattr.losses import ClassificationLoss, DistillationLoss, LossConfig, build_loss
from uattr.registry import LOSSES

WHERE = "attributes.x.loss"


def _loss(name: str, kind: type = DistillationLoss, **options) -> torch.nn.Module:
    return build_loss(LossConfig(name, options), WHERE, kind)


def _classifier(name: str, **options) -> torch.nn.Module:
    return build_loss(LossConfig(name, options), WHERE, ClassificationLoss, num_classes=2, embedding_dim=2)


STUDENT = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
TEACHER = torch.tensor([[3.0, 0.0], [1.0, 0.0], [-1.0, -1.0]])  # cosines 1, 0, -1


def test_cosine_is_fifty_times_the_summed_distance_by_default() -> None:
    assert float(_loss("cosine")(STUDENT, TEACHER)) == pytest.approx(50 * (0 + 1 + 2))


def test_cosine_scale_and_mean_reduction() -> None:
    assert float(_loss("cosine", scale=2, reduction="mean")(STUDENT, TEACHER)) == pytest.approx(2 * 3 / 3)


def test_mse_mean_and_sum() -> None:
    student, teacher = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])
    assert float(_loss("mse")(student, teacher)) == pytest.approx(2.5)
    assert float(_loss("mse", reduction="sum")(student, teacher)) == pytest.approx(5.0)


def test_infonce_uses_in_batch_negatives() -> None:
    student = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    teacher = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    # cosine logits [[1, 1/√2], [0, 1/√2]] / τ, τ = 0.5; each row must pick its own column.
    logits = torch.tensor([[1.0, 1 / math.sqrt(2)], [0.0, 1 / math.sqrt(2)]]) / 0.5
    rows = [-(logits[i, i] - torch.logsumexp(logits[i], 0)) for i in range(2)]
    columns = [-(logits[i, i] - torch.logsumexp(logits[:, i], 0)) for i in range(2)]
    one_way = sum(rows) / 2
    both_ways = (one_way + sum(columns) / 2) / 2
    assert float(_loss("infonce", temperature=0.5)(student, teacher)) == pytest.approx(float(one_way))
    assert float(_loss("infonce", temperature=0.5, symmetric=True)(student, teacher)) == pytest.approx(float(both_ways))


def test_infonce_does_not_contrast_utterances_of_the_same_target() -> None:
    # Rows 0 and 2 read the same sentence: one teacher vector (up to float noise), so neither is the other's
    # negative; row 1 (another sentence) stays a negative of both.
    student = torch.tensor([[1.0, 0.2], [0.3, 1.0], [0.8, 0.5]])
    teacher = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1e-6]])
    logits = F.normalize(student, dim=-1) @ F.normalize(teacher, dim=-1).t() / 0.1
    kept = torch.tensor([[True, True, False], [True, True, True], [False, True, True]])
    masked = logits.masked_fill(~kept, float("-inf"))
    rows = sum(-(masked[i, i] - torch.logsumexp(masked[i], 0)) for i in range(3)) / 3
    columns = sum(-(masked[i, i] - torch.logsumexp(masked[:, i], 0)) for i in range(3)) / 3
    loss = _loss("infonce", temperature=0.1, symmetric=True, mask_duplicate_targets=True)
    assert float(loss(student, teacher)) == pytest.approx(float((rows + columns) / 2))
    # Unmasked (the default), the duplicate is a negative and the loss is higher: it pushes rows 0 and 2 apart.
    unmasked = _loss("infonce", temperature=0.1, symmetric=True)
    assert float(unmasked(student, teacher)) > float(loss(student, teacher)) + 0.1
    trained = student.clone().requires_grad_(True)
    loss(trained, teacher).backward()
    assert torch.isfinite(trained.grad).all()  # the masked -inf logits give no NaN gradient
    # A batch of one sentence only: nothing to contrast, the loss is 0 and finite.
    same = _loss("infonce", temperature=0.1, mask_duplicate_targets=True)(student, teacher[[0, 0, 0]])
    assert float(same) == pytest.approx(0.0) and torch.isfinite(same)
    with pytest.raises(ConfigError, match=r"mask_duplicate_targets must be true or false, got 'false'"):
        _loss("infonce", mask_duplicate_targets="false")


def test_ce_is_cross_entropy_of_the_linear_classifier() -> None:
    loss = _classifier("ce")
    with torch.no_grad():
        loss.classifier.weight.copy_(torch.eye(2))
        loss.classifier.bias.zero_()
        value = loss(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([0, 1]))
    assert float(value) == pytest.approx((math.log(1 + math.exp(-1)) + math.log(1 + math.exp(1))) / 2)


def test_aam_adds_the_angular_margin_to_the_true_class_only() -> None:
    loss = _classifier("aam", margin=0.3, scale=2.0)
    with torch.no_grad():
        loss.weight.copy_(torch.tensor([[5.0, 0.0], [0.0, 0.5]]))  # class weights are normalised: e1, e2
    angle = math.pi / 3
    embedding = torch.tensor([[math.cos(angle), math.sin(angle)]]) * 4  # the embedding is normalised too
    true_logit = 2.0 * math.cos(angle + 0.3)
    other_logit = 2.0 * math.sin(angle)
    expected = -(true_logit - math.log(math.exp(true_logit) + math.exp(other_logit)))
    with torch.no_grad():
        value = loss(embedding, torch.tensor([0]))
    assert float(value) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ConfigError, match=r"easy_margin must be true or false, got 'false'"):
        _classifier("aam", easy_margin="false")  # bool("false") switched it on


@pytest.mark.parametrize("name", ["ce", "aam"])
def test_classification_losses_train_their_own_classifier(name: str) -> None:
    loss = _classifier(name)
    embedding = torch.randn(4, 2, requires_grad=True)
    loss(embedding, torch.tensor([0, 1, 1, 0])).backward()
    assert embedding.grad is not None
    assert all(parameter.grad is not None for parameter in loss.parameters())


def test_builtins_are_registered() -> None:
    assert {"cosine", "mse", "infonce", "ce", "aam"} <= set(LOSSES.names())


def test_an_unknown_option_names_the_options_key() -> None:
    with pytest.raises(ConfigError, match=rf"^{WHERE}\.options: .*scael"):
        _loss("cosine", scael=50)


def test_a_bad_option_value_names_the_options_key() -> None:
    with pytest.raises(ConfigError, match=rf"^{WHERE}\.options: reduction must be one of sum, mean"):
        _loss("cosine", reduction="max")


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("ce", {"label_smoothing": 1.5}, "label_smoothing must be between 0 and 1, got 1.5"),
        ("ce", {"label_smoothing": -0.1}, "label_smoothing must be between 0 and 1, got -0.1"),
        ("aam", {"scale": 0}, "scale must be positive, got 0"),
    ],
)
def test_a_bad_classification_option_names_the_options_key(name: str, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{WHERE}\.options: {message}"):
        _classifier(name, **options)


def test_a_cosine_scale_that_is_not_positive_names_the_options_key() -> None:
    with pytest.raises(ConfigError, match=rf"^{WHERE}\.options: scale must be positive, got -50"):
        _loss("cosine", scale=-50)


def test_an_unknown_loss_names_the_key_and_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=rf"^{WHERE}\.name: unknown loss 'cosin'; choices: aam, ce, cosine"):
        _loss("cosin")


def test_a_classification_loss_is_refused_where_a_distillation_loss_is_needed() -> None:
    with pytest.raises(ConfigError, match=rf"^{WHERE}\.name: loss 'ce' .*one of: cosine, infonce, mse"):
        _loss("ce")


def test_options_cannot_override_what_the_attribute_sets() -> None:
    with pytest.raises(ConfigError, match=rf"^{WHERE}\.options\.num_classes"):
        build_loss(LossConfig("ce", {"num_classes": 3}), WHERE, ClassificationLoss, num_classes=2, embedding_dim=2)
