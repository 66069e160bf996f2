"""The n-gram baselines (charrnn/ngram.py): interpolated Kneser-Ney,
checked against a plain dictionary implementation and for normalisation."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from charrnn.ngram import NgramModels

from conftest import make_text

TEXT = make_text(200, seed=2)
CHARS = sorted(set(TEXT))
IDS = np.array([CHARS.index(c) for c in TEXT])


def reference(train: str, n: int, vocab: int):
    """P(w | history) of the order-n model, computed from plain counts."""
    raw = [Counter(train[i - k + 1 : i + 1] for i in range(k - 1, len(train))) for k in range(1, n + 1)]
    preceded = [defaultdict(set) for _ in range(n)]
    for k in range(1, n):
        for i in range(k, len(train)):
            preceded[k - 1][train[i - k + 1 : i + 1]].add(train[i - k])
    cont = [Counter({g: len(s) for g, s in preceded[k - 1].items()}) for k in range(1, n)]

    def discount(counts: Counter) -> float:
        n1 = sum(1 for c in counts.values() if c == 1)
        n2 = sum(1 for c in counts.values() if c == 2)
        return n1 / (n1 + 2 * n2) if n1 else 0.5

    def prob(w: str, h: str, k: int, top: bool) -> float:
        if k == 0:
            return 1 / vocab
        counts = raw[k - 1] if top else cont[k - 1]
        ctx = h[len(h) - (k - 1) :] if k > 1 else ""
        lower = prob(w, h, k - 1, False)
        total = sum(c for g, c in counts.items() if g[:-1] == ctx)
        if total == 0:
            return lower
        kinds = sum(1 for g in counts if g[:-1] == ctx)
        d = discount(counts)
        return (max(counts.get(ctx + w, 0) - d, 0) + d * kinds * lower) / total

    def model(w: str, history: str) -> float:
        k = min(n, len(history) + 1)  # as much context as there is
        return prob(w, history, k, True)

    return model


@pytest.mark.parametrize("n", [1, 2, 4])
def test_kneser_ney_equals_the_counting_by_hand(n):
    train, test = TEXT[:3000], TEXT[3000:3400]
    models = NgramModels(IDS[:3000], 4, len(CHARS))
    probs = models.next_char_probs(IDS[3000:3400])
    by_hand = reference(train, n, len(CHARS))
    for p in range(1, 60):
        assert probs[n - 1, p - 1] == pytest.approx(by_hand(test[p], test[max(0, p - n + 1) : p]), rel=1e-9, abs=1e-12)


def test_every_order_is_a_distribution():
    models = NgramModels(IDS[:3000], 6, len(CHARS) + 2)  # two characters never seen in training
    vocab = len(CHARS) + 2
    for history in (IDS[3000:3007], IDS[100:105], np.array([0, 1, 2, 3, 4, 5])):
        totals = np.zeros(6)
        for w in range(vocab):
            totals += models.next_char_probs(np.append(history, w))[:, -1]
        np.testing.assert_allclose(totals, 1.0, rtol=1e-9)


def test_higher_orders_fit_the_training_text_better_and_unseen_text_has_a_floor():
    models = NgramModels(IDS[:3000], 8, len(CHARS))
    seen = -np.log(models.next_char_probs(IDS[:3000])).mean(1)
    assert all(a > b for a, b in zip(seen, seen[1:]))  # the training text itself: more context, lower loss
    probs = models.next_char_probs(IDS[3000:])
    assert np.all(probs > 0) and np.all(probs <= 1)


def test_one_order_at_a_time_gives_what_keeping_every_order_gives():
    from charrnn.ngram import next_char_probs

    kept = NgramModels(IDS[:3000], 7, len(CHARS))
    texts = [IDS[3000:3500], IDS[10:20], IDS[:1]]
    for streamed, text in zip(next_char_probs(IDS[:3000], texts, 7, len(CHARS)), texts):
        np.testing.assert_array_equal(streamed, kept.next_char_probs(text))
