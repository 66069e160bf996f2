"""Scoring in parallel warmed-up streams against the exact single stream."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from charrnn import checkpoint as ckpt
from charrnn.corpus import load_corpus
from charrnn.evaluate import eval_text, score
from charrnn.model import CharRNN, ModelConfig
from charrnn.training.config import TrainConfig
from charrnn.training.launch import train_on

from conftest import BUILTIN_KINDS, assert_one_line_error, make_text, run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    (d / "play.txt").write_text(make_text(1500, seed=4), encoding="utf-8")
    corpus = load_corpus(d / "play.txt")
    config = TrainConfig(seq_len=32, batch_size=16, max_steps=80, eval_every=80, lr=2e-2, device="cpu")
    train_on(corpus, config, d / "run", ModelConfig("lstm", corpus.vocab.size, embedding=8, hidden=32, layers=2))
    return d / "run", corpus


def test_parallel_streams_score_within_0_2_percent_of_one_stream(trained):
    run, corpus = trained
    model = ckpt.load_checkpoint(run).model
    ids = corpus.ids[:20_000]
    one = score(model, ids, streams=1)
    off = {}
    for streams, warmup in ((8, 64), (32, 32), (32, 0)):
        many = score(model, ids, streams=streams, warmup=warmup)
        assert many.chars == one.chars == len(ids) - 1  # every character scored once
        off[streams, warmup] = abs(many.loss - one.loss) / one.loss
    assert off[8, 64] < 2e-3 and off[32, 32] < 2e-3, off
    assert off[32, 0] > off[32, 32]  # streams that start cold are further off: why each is warmed up


@pytest.mark.parametrize("kind", BUILTIN_KINDS)
def test_one_stream_is_the_state_carried_across_the_whole_text(kind):
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(kind, 7, embedding=3, hidden=5, layers=2)).eval()
    ids = np.random.default_rng(0).integers(0, 7, 600).astype(np.uint8)
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(ids[None, :-1].astype(np.int64)))
        exact = torch.nn.functional.cross_entropy(logits[0], torch.as_tensor(ids[1:].astype(np.int64)))
    assert score(model, ids, streams=1, seq_len=64).loss == pytest.approx(float(exact), rel=1e-6)


def test_eval_cli_streams(trained):
    run, corpus = trained
    text = eval_text(ckpt.load_checkpoint(run))
    one = json.loads(run_cli("eval", run, "--json", "--streams", "1").output)
    assert one["loss"] == score(ckpt.load_checkpoint(run).model, text.ids, streams=1).loss  # exact, fp32
    many = json.loads(run_cli("eval", run, "--json").output)
    assert many["chars"] == one["chars"] and abs(many["loss"] - one["loss"]) / one["loss"] < 2e-3
    assert_one_line_error(run_cli("eval", run, "--streams", "0"), "--streams")


def test_unseen_characters_are_named_and_counted_or_skipped(trained, tmp_path):
    run, corpus = trained
    clean = "ALICE: the fox sat.\nBOB: a dog.\n" * 3
    (tmp_path / "held-out.txt").write_text(clean.replace("fox", "f\u00e6ox\u00e6").replace("dog", "d\u7dadog"), encoding="utf-8")
    refused = run_cli("eval", run, tmp_path / "held-out.txt")
    assert_one_line_error(refused, "'\u00e6' (6 times), '\u7dad' (3 times)", "--unknown skip")
    skipped = json.loads(run_cli("eval", run, tmp_path / "held-out.txt", "--unknown", "skip", "--json", "--streams", "1").output)
    model = ckpt.load_checkpoint(run)
    exact = score(model.model, model.vocab.encode(clean), streams=1)
    assert skipped["skipped"] == 9 and skipped["chars"] == exact.chars and skipped["loss"] == exact.loss
    assert_one_line_error(run_cli("inspect", run, "--file", tmp_path / "held-out.txt"), "(6 times)", "records the rest")
    done = run_cli("inspect", run, "--file", tmp_path / "held-out.txt", "--unknown", "skip", "--out", tmp_path / "a.npz")
    assert done.exit_code == 0 and "left out 9 characters" in done.output
    text = np.load(tmp_path / "a.npz")["text"]
    assert "".join(map(chr, text)) == clean
