"""The building blocks of text guidance: TandemNet's sentence encoder and dual attention, VKD's KL and schedule.

Hand-computed where the formula is short (one softmax over regions and sentences on a tiny
input, the KL's closed form), against a Monte Carlo estimate, and by the properties the
methods rely on (image-only logits do not depend on the text; the text-drop frequency).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from chexradi.guidance.tandem import DualAttention, SentenceEncoder, sentence_ends
from chexradi.guidance.variational import cyclical_annealing, gaussian_kl, reparameterize

pytestmark = pytest.mark.usefixtures("torch_one_thread")

PAD, BOS, EOS, STOP = 0, 1, 2, 4


# ----------------------------------------------------------------------------- sentences

@pytest.mark.parametrize("row, ends", [
    ([BOS, 7, 8, STOP, 9, STOP, EOS, PAD], [3, 5]),
    ([BOS, 7, 8, STOP, 9, 10, EOS, PAD], [3, 5]),        # the last sentence has no stop: its last word
    ([BOS, STOP, 7, STOP, STOP, 8, EOS, PAD], [3, 5]),   # stops without a word before them end nothing
    ([BOS, EOS, PAD, PAD, PAD, PAD, PAD, PAD], []),      # no word, no sentence
])
def test_sentence_ends_by_hand(row, ends):
    pos, valid = sentence_ends(torch.tensor([row]), stop_id=STOP, pad_id=PAD, max_sentences=8,
                               ignore_ids=(BOS, EOS))
    assert pos[0][valid[0]].tolist() == ends


def test_sentence_ends_keeps_the_first_max_sentences():
    row = [BOS] + [7, STOP] * 5 + [EOS]
    pos, valid = sentence_ends(torch.tensor([row, [BOS, 7, EOS] + [PAD] * 9]), stop_id=STOP, pad_id=PAD,
                               max_sentences=3, ignore_ids=(BOS, EOS))
    assert pos.shape == (2, 3) and valid.tolist() == [[True, True, True], [True, False, False]]
    assert pos[0].tolist() == [2, 4, 6] and pos[1, 0] == 1


def test_sentence_vectors_are_the_lstm_states_at_the_ends_and_ignore_padding():
    torch.manual_seed(0)
    enc = SentenceEncoder(12, pad_id=PAD, stop_id=STOP, embed_dim=5, hidden=6, dropout=0.0,
                          ignore_ids=(BOS, EOS)).eval()
    short = [BOS, 7, STOP, 8, 9, STOP, EOS]
    tokens = torch.tensor([short + [PAD] * 3, short[:3] + [10, 11, 5, 6, STOP, EOS, PAD]])
    s, valid = enc(tokens)
    assert s.shape == (2, 2, 6) and valid.all()
    states, _ = enc.lstm(enc.embed(tokens))
    assert torch.equal(s[0, 1], states[0, 5]) and torch.equal(s[1, 1], states[1, 7])
    alone, _ = enc(torch.tensor([short]))  # the same report without the padding
    assert torch.allclose(alone[0], s[0], atol=1e-6)


# ----------------------------------------------------------------------------- dual attention

def test_dual_attention_shapes_and_attention_sums_to_one():
    torch.manual_seed(0)
    att = DualAttention(8, 6, 3, dim=4).train()
    out = att(torch.randn(5, 8, 3, 4), torch.randn(5, 2, 6), torch.tensor([[1, 1], [1, 0], [0, 0], [1, 1], [1, 1]]))
    assert out.logits.shape == (5, 3) and out.region_attention.shape == (5, 3, 4)
    assert out.sentence_attention.shape == (5, 2)
    total = out.region_attention.flatten(1).sum(1) + out.sentence_attention.sum(1)
    assert torch.allclose(total, torch.ones(5), atol=1e-6)
    assert not out.text_used[2] and out.sentence_attention[2].sum() == 0  # a sample without sentences
    assert out.sentence_attention[1, 1] == 0  # an invalid sentence gets no attention


def test_one_softmax_over_regions_and_sentences_by_hand():
    """Two regions (a 1 x 2 map) and two sentences, everything evaluated in numpy from the weights."""
    torch.manual_seed(3)
    att = DualAttention(2, 3, 2, dim=2, dropout=0.0, text_drop=0.25).eval()
    feats = torch.randn(1, 2, 1, 2)
    sents = torch.randn(1, 2, 3)
    out = att(feats, sents)
    p = {k: v.detach().double().numpy() for k, v in att.state_dict().items()}
    v = np.tanh(feats[0].double().numpy().reshape(2, 2).T @ p["region_proj.weight"][:, :, 0, 0].T
                + p["region_proj.bias"])                                      # (2 regions, dim)
    s = np.tanh((0.75 * sents[0].double().numpy()) @ p["sentence_proj.weight"].T + p["sentence_proj.bias"])
    v_mean, s_mean = v.mean(0), s.mean(0)
    e_v = np.tanh(v @ p["w_region.weight"].T + p["w_region.bias"] + s_mean @ p["w_region_ctx.weight"].T) \
        @ p["u_region.weight"][0] + p["u_region.bias"][0]
    e_s = np.tanh(s @ p["w_sentence.weight"].T + p["w_sentence.bias"] + v_mean @ p["w_sentence_ctx.weight"].T) \
        @ p["u_sentence.weight"][0] + p["u_sentence.bias"][0]
    e = np.concatenate([e_v, e_s])
    alpha = np.exp(e - e.max()) / np.exp(e - e.max()).sum()                 # ONE softmax over all four
    context = alpha[:2] @ v + alpha[2:] @ s
    logits = (context + v_mean) @ p["out.weight"].T + p["out.bias"]
    np.testing.assert_allclose(out.region_attention.detach().numpy().ravel(), alpha[:2], rtol=1e-5)
    np.testing.assert_allclose(out.sentence_attention.detach().numpy().ravel(), alpha[2:], rtol=1e-5)
    np.testing.assert_allclose(out.logits.detach().numpy().ravel(), logits, rtol=1e-5, atol=1e-6)


def test_image_only_logits_do_not_depend_on_the_text():
    torch.manual_seed(1)
    att = DualAttention(8, 6, 3, dim=4).eval()
    feats = torch.randn(4, 8, 2, 2)
    alone = att(feats).logits
    empty = att(feats, torch.randn(4, 3, 6), torch.zeros(4, 3, dtype=torch.bool)).logits
    other = att(feats, torch.randn(4, 3, 6) * 5, torch.zeros(4, 3, dtype=torch.bool)).logits
    assert torch.equal(alone, empty) and torch.equal(alone, other)
    with_text = att(feats, torch.randn(4, 3, 6)).logits
    assert not torch.allclose(alone, with_text)  # the text does matter when it is there
    never = DualAttention(8, 6, 3, dim=4, text_drop=1.0)
    never.load_state_dict(att.state_dict())
    assert torch.equal(never.eval()(feats, torch.randn(4, 3, 6)).logits, alone)


@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
def test_text_is_dropped_per_sample_with_its_probability(p):
    torch.manual_seed(2)
    att = DualAttention(4, 4, 2, dim=4, text_drop=p).train()
    n = 4000
    used = att(torch.randn(n, 4, 1, 1), torch.randn(n, 1, 4)).text_used
    dropped = int((~used).sum())
    if p in (0.0, 1.0):
        assert dropped == round(p * n)
    else:  # a two-sided binomial test at the 1e-4 level
        assert stats.binomtest(dropped, n, p).pvalue > 1e-4, dropped


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="text_drop must be in"):
        DualAttention(4, 4, 2, text_drop=1.5)
    with pytest.raises(ValueError, match="region_dim must be a positive integer"):
        DualAttention(0, 4, 2)
    with pytest.raises(ValueError, match=r"features must be a \(B, C, h, w\)"):
        DualAttention(4, 4, 2)(torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"sentence_valid must be \(B, M\) = \(2, 3\)"):
        DualAttention(4, 4, 2)(torch.randn(2, 4, 1, 1), torch.randn(2, 3, 4), torch.ones(2, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="hidden must be a positive integer"):
        SentenceEncoder(10, pad_id=0, stop_id=4, hidden=0)


# ----------------------------------------------------------------------------- VKD

def test_gaussian_kl_closed_form_by_hand_and_zero_for_equal_distributions():
    mu_q, lv_q = torch.tensor([[0.5, -1.0]]), torch.tensor([[math.log(4.0), 0.0]])
    mu_p, lv_p = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, math.log(0.25)]])
    # dim 1: q = N(0.5, 4), p = N(0, 1): 0.5 (0 - log 4 + 4 + 0.25 - 1); dim 2: q = N(-1, 1), p = N(0, 0.25)
    expected = 0.5 * (-math.log(4) + 4 + 0.25 - 1) + 0.5 * (math.log(0.25) + (1 + 1) / 0.25 - 1)
    assert float(gaussian_kl(mu_q, lv_q, mu_p, lv_p)) == pytest.approx(expected, rel=1e-6)
    x = torch.randn(3, 5)
    assert torch.allclose(gaussian_kl(x, x, x, x), torch.zeros(3))


def test_gaussian_kl_matches_a_monte_carlo_estimate_and_its_direction():
    g = torch.Generator().manual_seed(0)
    mu_q, lv_q = torch.tensor([0.3, -0.7, 1.2], dtype=torch.float64), torch.tensor([-0.5, 0.4, 0.0],
                                                                                  dtype=torch.float64)
    mu_p, lv_p = torch.tensor([0.0, 0.2, -0.4], dtype=torch.float64), torch.tensor([0.3, -0.2, 0.6],
                                                                                  dtype=torch.float64)
    n = 400_000
    z = reparameterize(mu_q.expand(n, 3), lv_q.expand(n, 3), generator=g)
    q = torch.distributions.Normal(mu_q, (0.5 * lv_q).exp())
    p = torch.distributions.Normal(mu_p, (0.5 * lv_p).exp())
    log_ratio = (q.log_prob(z) - p.log_prob(z)).sum(-1)
    mc, se = float(log_ratio.mean()), float(log_ratio.std() / math.sqrt(n))
    closed = float(gaussian_kl(mu_q, lv_q, mu_p, lv_p))
    assert abs(mc - closed) < 4 * se
    reverse = float(gaussian_kl(mu_p, lv_p, mu_q, lv_q))
    assert abs(reverse - closed) > 20 * se  # the other direction is another number
    assert closed == pytest.approx(float(torch.distributions.kl_divergence(q, p).sum()), rel=1e-10)


def test_reparameterize_uses_the_standard_deviation():
    g = torch.Generator().manual_seed(1)
    z = reparameterize(torch.zeros(200_000), torch.full((200_000,), math.log(9.0)), generator=g)
    assert float(z.std()) == pytest.approx(3.0, rel=0.01)  # sd = exp(logvar / 2) = 3, not logvar = 2.2


def test_cyclical_annealing_values():
    total = 16  # 4 cycles of 4 steps, rising over the first half of each
    values = [cyclical_annealing(t, total) for t in range(total)]
    assert values == [0.0, 0.5, 1.0, 1.0] * 4
    assert cyclical_annealing(16, total) == 1.0 and cyclical_annealing(100, total) == 1.0
    assert [cyclical_annealing(t, 10, cycles=1, ratio=1.0) for t in (0, 5, 9)] == [0.0, 0.5, 0.9]
    with pytest.raises(ValueError, match="ratio must be in"):
        cyclical_annealing(0, 10, ratio=0.0)
    with pytest.raises(ValueError, match="5 cycles do not fit in 4 steps"):
        cyclical_annealing(0, 4, cycles=5)


def test_gaussian_kl_stays_finite_where_the_naive_form_overflows():
    lv = torch.tensor([100.0]), torch.tensor([99.0])  # exp(100) overflows float32; the ratio exp(1) does not
    kl = gaussian_kl(torch.zeros(1), lv[0], torch.zeros(1), lv[1])
    assert float(kl) == pytest.approx(0.5 * (99 - 100 + math.e - 1), rel=1e-5)
