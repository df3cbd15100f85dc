"""Each loss on a hand-computed case."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cxrpriv.classify.losses import (
    NoiseChannel,
    bce,
    comorbidity_penalty,
    dice_bce,
    forward_corrected,
    soft_target_bce,
)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_noise_channel_follows_bayes_from_the_priors():
    # a = P(t|y=1) = 0.5, b = P(t|y=0) = 0.1, m = P(y=1) = 0.2 -> pi = 0.1 + 0.08 = 0.18,
    # s = 0.5 * 0.2 / 0.18 = 0.5556, f = 0.5 * 0.2 / 0.82 = 0.12195
    channel = NoiseChannel.from_priors([0.5], [0.1], [0.2])
    assert channel.sensitivity[0] == pytest.approx(0.1 / 0.18)
    assert channel.false_positive_rate[0] == pytest.approx(0.1 / 0.82)
    # And back: P(t=1 | y=1) = s pi / m.
    assert channel.sensitivity[0] * 0.18 / 0.2 == pytest.approx(0.5)


def test_plain_bce_on_a_hand_computed_case():
    logits = torch.tensor([[logit(0.8), logit(0.3)]])
    mined = torch.tensor([[1.0, 0.0]])
    expected = -(math.log(0.8) + math.log(0.7)) / 2
    assert float(bce(logits, mined)) == pytest.approx(expected, rel=1e-5)


def test_forward_correction_scores_the_implied_mined_probability():
    channel = NoiseChannel(np.array([0.6]), np.array([0.1]), np.array([0.5]), np.array([0.05]))
    logits = torch.tensor([[logit(0.8)], [logit(0.2)]])
    mined = torch.tensor([[1.0], [0.0]])
    q1 = 0.1 + (0.6 - 0.1) * 0.8  # 0.5
    q2 = 0.1 + (0.6 - 0.1) * 0.2  # 0.2
    expected = -(math.log(q1) + math.log(1 - q2)) / 2
    assert float(forward_corrected(logits, mined, channel)) == pytest.approx(expected, rel=1e-5)


def test_forward_correction_never_asks_for_certainty_the_labels_cannot_give():
    # With s = 0.6 the best achievable q for a mined positive is 0.6: the loss is minimal at p = 1, and a
    # confident p = 1 is not punished as harshly as plain BCE would punish a mined negative.
    channel = NoiseChannel(np.array([0.6]), np.array([0.1]), np.array([0.5]), np.array([0.05]))
    confident = torch.tensor([[20.0]])
    negative = torch.tensor([[0.0]])
    assert float(forward_corrected(confident, negative, channel)) == pytest.approx(-math.log(0.4), rel=1e-4)


def test_soft_targets_are_p_true_given_the_mined_label():
    channel = NoiseChannel(np.array([0.6]), np.array([0.1]), np.array([0.7]), np.array([0.05]))
    logits = torch.tensor([[logit(0.5)], [logit(0.5)]])
    mined = torch.tensor([[1.0], [0.0]])
    # Both predictions are 0.5: each BCE term is -(t log 0.5 + (1-t) log 0.5) = log 2 whatever t is.
    assert float(soft_target_bce(logits, mined, channel)) == pytest.approx(math.log(2), rel=1e-5)
    logits = torch.tensor([[logit(0.9)], [logit(0.1)]])
    expected = (
        -(0.7 * math.log(0.9) + 0.3 * math.log(0.1)) - (0.05 * math.log(0.1) + 0.95 * math.log(0.9))
    ) / 2
    assert float(soft_target_bce(logits, mined, channel)) == pytest.approx(expected, rel=1e-5)


def test_comorbidity_penalty_on_a_hand_computed_case():
    # Two images, two findings. p = [[1, 0.5], [0, 0.5]]: mass = [1, 1]; joint_01 = 0.5, so C^_01 = 0.5
    # and C^_10 = 0.5. Priors C_01 = 0.3, C_10 = 0.5: squared errors 0.04 and 0; row weights 0.5 each.
    p = torch.tensor([[1.0, 0.5], [0.0, 0.5]])
    prior = torch.tensor([[1.0, 0.3], [0.5, 1.0]])
    assert float(comorbidity_penalty(p, prior)) == pytest.approx(0.5 * 0.04, rel=1e-5)
    # Predictions that match the priors' conditionals cost nothing.
    assert float(comorbidity_penalty(p, torch.tensor([[1.0, 0.5], [0.5, 1.0]]))) == pytest.approx(
        0.0, abs=1e-7
    )


def test_dice_bce_on_a_hand_computed_case():
    # One image, one channel, two pixels: p = (0.5, 0.5), target (1, 0).
    logits = torch.zeros(1, 1, 1, 2)
    target = torch.tensor([[[[1.0, 0.0]]]])
    dice = (2 * 0.5 + 1) / (1.0 + 1.0 + 1)  # smooth = 1
    expected = math.log(2) + (1 - dice)
    assert float(dice_bce(logits, target)) == pytest.approx(expected, rel=1e-5)


def test_finding_loss_is_the_loss_of_each_prior_correction():
    from cxrpriv.classify.losses import bce, finding_loss, forward_corrected, soft_target_bce

    channel = NoiseChannel.from_priors([0.8, 0.6], [0.05, 0.1], [0.3, 0.2])
    logits, mined = torch.tensor([[0.5, -1.0], [2.0, 0.1]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    torch.testing.assert_close(finding_loss(logits, mined, None, "none"), bce(logits, mined))
    torch.testing.assert_close(
        finding_loss(logits, mined, channel, "forward"), forward_corrected(logits, mined, channel)
    )
    torch.testing.assert_close(
        finding_loss(logits, mined, channel, "soft"), soft_target_bce(logits, mined, channel)
    )
    with pytest.raises(ValueError, match="noise channel"):
        finding_loss(logits, mined, None, "forward")
