"""Beam search (charrnn/beam.py) and the stepper's beam reordering."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from charrnn.beam import beam_search
from charrnn.sample import SampleConfig
from charrnn.stepper import FastStepper

from conftest import BUILTIN_KINDS, assert_one_line_error, run_cli
from test_sample import VOCAB, model_of, sample_text


def logprobs_of(model, prime: str, texts: list[str]) -> list[float]:
    """log P(text | prime) for each of texts (all one length), from the
    fused forward over the whole strings, in one batch."""
    ids = torch.as_tensor(np.stack([VOCAB.encode(prime + text).astype("int64") for text in texts]))  # (N, P+L)
    with torch.no_grad():
        logp = torch.log_softmax(model(ids)[0].double(), -1)[:, len(prime) - 1 : -1]  # (N, L, V)
    return logp.gather(-1, ids[:, len(prime) :, None]).sum((1, 2)).tolist()


def logprob_of(model, prime: str, text: str) -> float:
    return logprobs_of(model, prime, [text])[0]


@pytest.mark.parametrize("kind", BUILTIN_KINDS)
def test_reorder_gives_each_row_its_parents_whole_state(kind):
    model = model_of(kind)
    ids = torch.randint(0, VOCAB.size, (3, 6))
    rows = torch.tensor([2, 0, 0])
    with torch.no_grad():
        stepper, state = FastStepper(model, 3), model.init_state(3)
        for t in range(3):
            stepper.step(ids[:, t])
            _, state = model.step(ids[:, t], state)
        stepper.reorder(rows)
        state = tuple(s[:, rows] for s in state)
        for t in range(3, 6):
            logits, state = model.step(ids[:, t], state)
            torch.testing.assert_close(stepper.step(ids[:, t]), logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", BUILTIN_KINDS)
def test_one_beam_is_argmax(kind):
    model = model_of(kind)
    best = beam_search(model, VOCAB, "ab", SampleConfig(length=40, beam=1))
    assert [h.text for h in best] == sample_text(model, temperature=0)


def test_wide_enough_beam_finds_the_most_likely_texts_of_all():
    """With N >= V**(L-1) no prefix is ever dropped, so beam search must
    return exactly the best of all V**L continuations, in order."""
    model, length = model_of("gru", seed=3), 3
    found = beam_search(model, VOCAB, "ha", SampleConfig(length=length, beam=VOCAB.size ** (length - 1), num_samples=5))
    every = ["".join(t) for t in itertools.product(VOCAB.chars, repeat=length)]
    ranked = sorted(zip(logprobs_of(model, "ha", every), every), reverse=True)
    assert [h.text for h in found] == [text for _, text in ranked[:5]]
    for h in found:
        assert h.logprob == pytest.approx(logprob_of(model, "ha", h.text), abs=1e-5)


@pytest.mark.parametrize("kind", BUILTIN_KINDS)
def test_beams_are_at_least_as_likely_as_greedy_and_scored_right(kind):
    model = model_of(kind, seed=1)
    greedy = logprob_of(model, "ab", sample_text(model, temperature=0)[0])
    found = beam_search(model, VOCAB, "ab", SampleConfig(length=40, beam=8, num_samples=3))
    assert len(found) == 3 and logprob_of(model, "ab", found[0].text) >= greedy
    assert [h.score for h in found] == sorted((h.score for h in found), reverse=True)
    for h in found:
        assert len(h.text) == 40 and h.logprob == pytest.approx(logprob_of(model, "ab", h.text), abs=1e-5)


def test_stop_ends_beams_and_length_penalty_ranks_them():
    model = model_of("lstm", seed=1)
    found = beam_search(model, VOCAB, "ab", SampleConfig(length=30, beam=6, num_samples=6, stop="f"))
    assert any(h.stopped for h in found)
    for h in found:
        assert h.text.endswith("f") and h.text.count("f") == 1 if h.stopped else len(h.text) == 30
        assert h.score == h.logprob  # no penalty: ranked by log-probability
    longer = beam_search(model, VOCAB, "ab", SampleConfig(length=30, beam=6, num_samples=6, stop="f", length_penalty=1))
    for h in longer:
        assert h.score == pytest.approx(h.logprob / len(h.text))
    assert [h.score for h in longer] == sorted((h.score for h in longer), reverse=True)


def test_beam_through_the_cli_with_prime_stop_num_samples_and_output(trained_run, tmp_path):
    out = tmp_path / "beams.txt"
    args = ["sample", trained_run, "--beam", "4", "--num-samples", "2", "--prime", "AL", "--length", "60"]
    done = run_cli(*args, "--stop", "\n", "--output", out)
    assert done.exit_code == 0, done.output
    first, second = out.read_text().split("\n\n----- sample 2 -----\n")
    assert first.startswith("AL") and second.startswith("AL") and first != second
    again = run_cli(*args, "--stop", "\n")  # deterministic: no seed needed
    assert again.stdout == out.read_text()
    assert run_cli(*args[:-2], "--length", "0").stdout == "AL\n\n----- sample 2 -----\nAL\n"


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--beam", "2", "--temperature", "1"], "--temperature"),
        (["--beam", "2", "--top-k", "3"], "--top-k"),
        (["--beam", "2", "--top-p", "0.5"], "--top-p"),
        (["--beam", "2", "--num-samples", "3"], "--num-samples"),
        (["--beam", "0"], "--beam must be in"),
        (["--length-penalty", "1"], "needs --beam"),
        (["--beam", "2", "--length-penalty", "nan"], "--length-penalty"),
        (["--beam", "100", "--num-samples", "100", "--length", "1"], "only"),  # fewer characters than samples
    ],
)
def test_beam_refuses_what_does_not_apply(trained_run, extra, fragment):
    assert_one_line_error(run_cli("sample", trained_run, "--length", "5", *extra), fragment)
