"""Ablation (charrnn/inspection/ablation.py) on a GRU wired by hand: unit 0
flips at every double quote and the head reads it to expect the letters
that occur inside quotes; unit 1 flips just the same, but nothing reads it.
Both correlate with "inside double quotes"; only unit 0 does anything."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from charrnn import checkpoint as ckpt
from charrnn.clamp import Clamp, Unit
from charrnn.corpus import Vocab
from charrnn.inspection import synthetic
from charrnn.inspection.ablation import NO_EFFECT, ablate, active, held_losses
from charrnn.inspection.features import BUILTIN_FEATURES
from charrnn.model import CharRNN, ModelConfig

from conftest import assert_one_line_error, run_cli

TEXT = synthetic.generate(6000, seed=1)
VOCAB = Vocab.from_chars(TEXT)
QUOTED = set("zxquvkj")  # letters of synthetic.INSIDE that its OUTSIDE words never use


def quote_model() -> CharRNN:
    """GRU, 1 layer of 4 units. On a quote, z = 0 and n = tanh(1 - 4 h):
    the unit's sign flips; on anything else z = 1 and it holds."""
    torch.manual_seed(0)
    m = CharRNN(ModelConfig("gru", VOCAB.size, embedding=2, hidden=4, layers=1)).eval()
    K, H, quote = 12.0, 4, VOCAB.chars.index('"')
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.embed.weight[quote, 0] = 1.0  # x0: "this is a quote"
        rnn = m.rnn
        for u in (0, 1):  # the two flip-flops
            rnn.bias_ih_l0[u] = K  # r = 1
            rnn.bias_ih_l0[H + u] = K  # z = 1 (hold) ...
            rnn.weight_ih_l0[H + u, 0] = -2 * K  # ... but 0 (replace) on a quote
            rnn.bias_ih_l0[2 * H + u] = 1.0
            rnn.weight_hh_l0[2 * H + u, u] = -4.0  # n = tanh(1 - 4 h): the other sign
        for ch in QUOTED:  # the head: quoted letters likely when unit 0 is high
            m.head.weight[VOCAB.chars.index(ch), 0] = 6.0
            m.head.bias[VOCAB.chars.index(ch)] = -3.0
    return m


def test_the_wired_units_flip_at_quotes():
    from charrnn.inspection.record import record

    rec = record(quote_model(), VOCAB, TEXT)
    inside = BUILTIN_FEATURES["inside double quotes"](TEXT)
    h = rec.tensors["l0.h"]
    assert np.all(h[inside == 1, 0] > 0.5) and np.all(h[inside == 1, 1] > 0.5)
    assert np.all(h[(inside == 0) & (np.array(list(TEXT)) != '"'), 0] < 0.5)


def test_ablating_the_quote_unit_hurts_inside_quotes_and_its_twin_nothing():
    model = quote_model()
    inside = BUILTIN_FEATURES["inside double quotes"](TEXT)
    used, idle = ablate(model, VOCAB, TEXT, [(Unit(0, "h", 0), 0.0), (Unit(0, "h", 1), 0.0)],
                        {"inside double quotes": inside})  # fmt: skip
    quote = used.features["inside double quotes"]
    assert quote.inside > 1.0 and quote.inside > 10 * quote.outside and not quote.does_nothing
    assert used.ablated_loss > used.loss
    twin = idle.features["inside double quotes"]
    assert abs(twin.inside) < 1e-5 and abs(twin.outside) < 1e-5 and twin.does_nothing


def test_streams_score_every_character_once_and_match_one_stream():
    model = quote_model()
    ids = torch.as_tensor(VOCAB.encode(TEXT[:3000]).astype(np.int64))
    variants = [(), (Clamp(Unit(0, "h", 0), 0.0),)]
    many = held_losses(model, ids, variants, streams=8, warmup=5)
    one = held_losses(model, ids, variants, streams=1)
    assert many.shape == (2, 2999) and not np.isnan(many).any()
    # The flip-flop forgets nothing between quotes: a stream started from a zero state
    # would be on the wrong side inside a quote. Each starts from the true state instead.
    np.testing.assert_allclose(many, one, atol=1e-4)


def test_active_splits_yes_no_features_and_graded_ones_at_the_median():
    assert active(np.array([0, 1, 1, 0.0])).tolist() == [False, True, True, False]
    assert active(np.array([0, 1, 2, 3.0])).tolist() == [False, False, True, True]
    assert active(np.zeros(5)) is None


@pytest.fixture
def quote_run(tmp_path):
    path = tmp_path / "quote.safetensors"
    ckpt.save_checkpoint(path, quote_model(), VOCAB)
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    return path, tmp_path / "text.txt"


def test_inspect_ablate_reports_the_rise_inside_and_outside(quote_run, tmp_path):
    path, text = quote_run
    report = tmp_path / "r.json"
    done = run_cli("inspect", path, "--file", text, "--ablate", "l0.h:0", "--ablate", "l0.h:1", "--report", report,
                   "--features", "generic")
    assert done.exit_code == 0, done.output
    result = json.loads(report.read_text(encoding="utf-8"))
    used, idle = result["ablations"]
    assert used["unit"] == "l0.h:0" and used["value"] == 0
    assert used["features"]["inside double quotes"]["inside"] > 1.0 and idle["features"]["inside double quotes"]["does_nothing"]
    mean = run_cli("inspect", path, "--file", text, "--ablate", "l0.h:0", "--ablate-with", "mean", "--report", report, "--force")
    assert mean.exit_code == 0
    held = json.loads(report.read_text(encoding="utf-8"))["ablations"][0]["value"]
    assert held < 0  # the unit's mean: mostly outside quotes, where it is negative


def test_the_finder_marks_a_unit_that_correlates_but_does_nothing(quote_run, tmp_path):
    path, text = quote_run
    report = tmp_path / "r.json"
    assert run_cli("inspect", path, "--file", text, "--report", report, "--features", "generic").exit_code == 0
    rows = json.loads(report.read_text(encoding="utf-8"))["features"]["inside double quotes"]
    by_unit = {(r["tensor"], r["unit"]): r for r in rows}
    used, idle = by_unit[("l0.h", 0)], by_unit[("l0.h", 1)]
    assert used["r"] > 0.8 and idle["r"] > 0.8  # both correlate
    assert used["ablation"]["inside"] > 1.0 and not used["ablation"]["does_nothing"]
    assert idle["ablation"]["does_nothing"] and abs(idle["ablation"]["inside"]) < NO_EFFECT


@pytest.mark.parametrize("spec, message", [
    ("l0.r:0", "r is a gate"),
    ("l1.h:0", "layers 0 to 0"),
    ("bad", "l<layer>.<part>:<index>"),
])  # fmt: skip
def test_bad_ablations_are_refused_in_one_line(quote_run, spec, message):
    path, text = quote_run
    assert_one_line_error(run_cli("inspect", path, "--file", text, "--ablate", spec), message)


def test_ablate_with_mean_needs_the_unit_recorded(quote_run):
    path, text = quote_run
    done = run_cli("inspect", path, "--file", text, "--units", "1-3", "--ablate", "l0.h:0", "--ablate-with", "mean")
    assert_one_line_error(done, "l0.h:0", "not recorded")
