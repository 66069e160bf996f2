"""The Python API (charrnn/api.py): what the commands do, callable from a
program, with the same results and the same one-line refusals, nothing
printed, nothing process-wide changed, and safe to share between threads."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch

import charrnn
from charrnn.errors import CharRNNError

from conftest import run_cli


@pytest.fixture
def model(trained_run):
    return charrnn.load(trained_run)


def test_sample_is_what_the_command_prints(trained_run, model):
    cli = run_cli("sample", trained_run, "--prime", "BOB:", "--length", "60", "--seed", "3", "--temperature", "0.8")
    assert cli.exit_code == 0
    text = model.sample(prime="BOB:", length=60, temperature=0.8, seed=3)
    assert cli.stdout == "BOB:" + text + "\n" and len(text) == 60
    assert "".join(model.stream(prime="BOB:", length=60, temperature=0.8, seed=3)) == text
    assert model.samples(3, prime="BOB:", length=60, temperature=0.8, seed=3)[0] == text  # sample i is sample i


def test_every_sampling_control_reaches_the_sampler(model):
    argmax = model.sample(length=30, temperature=0)
    assert model.sample(length=30, top_k=1, seed=5) == argmax  # top-1 is argmax
    stopped = model.sample(length=200, seed=1, stop=" ")
    assert stopped.endswith(" ") and " " not in stopped[:-1]
    beams = model.beams(length=10, beam=4, num_samples=2)
    assert len(beams) == 2 and beams[0][1] >= beams[1][1]
    assert model.sample(length=10, beam=4) == beams[0][0]


@pytest.mark.parametrize("call, message", [
    (lambda m: m.sample(prime="Zq€"), "never seen"),
    (lambda m: m.sample(temperature=-1), "--temperature"),
    (lambda m: m.sample(tempreature=1), "unknown sampling control 'tempreature'"),
    (lambda m: m.score("€"), "never seen"),
    (lambda m: m.score("a", unknown="ignore"), "unknown must be one of"),
    (lambda m: m.beams(length=5), "beam=N"),
])  # fmt: skip
def test_bad_calls_are_refused_in_one_line(model, call, message):
    with pytest.raises(CharRNNError) as e:
        call(model)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_score_feed_and_next_probs_agree(model):
    text = "ALICE: the dog sat."
    scored = model.score(text)
    assert scored.chars == len(text) and scored.skipped == 0
    state = None
    for i, ch in enumerate(text):
        probs = model.next_probs(state)
        assert math.isclose(probs[ch], math.exp(scored.log_probs[i]), rel_tol=1e-4)
        state = model.feed(ch, state)
    assert state.text == text
    assert math.isclose(scored.mean_nats, -scored.log_probs.mean(), rel_tol=1e-6)
    assert math.isclose(scored.bits_per_char, scored.mean_nats / math.log(2))
    assert math.isclose(sum(model.next_probs().values()), 1.0, rel_tol=1e-5)


def test_a_state_is_never_changed_by_feeding_it(model):
    start = model.feed("BOB: the")
    before = [t.clone() for t in start.tensors]
    one, two = model.feed(" fox", start), model.feed(" fox", start)
    assert all(torch.equal(a, b) for a, b in zip(start.tensors, before))
    assert torch.equal(one.logits, two.logits)
    whole = model.feed("BOB: the fox")
    assert torch.allclose(whole.logits, one.logits, atol=1e-5) and whole.text == one.text


def test_unknown_characters_can_be_skipped(model):
    scored = model.score("the €dog", unknown="skip")
    assert scored.skipped == 1 and scored.text == "the dog" and scored.chars == 7


def test_evaluate_is_what_eval_prints(trained_run, corpus_file, model):
    import json

    cli = run_cli("eval", trained_run, corpus_file, "--json", "--streams", "1")
    assert cli.exit_code == 0
    assert model.evaluate(corpus_file, streams=1).to_dict() == json.loads(cli.stdout)


def test_record_keeps_every_unit_on_every_character(model):
    recording = model.record("BOB: the fox")
    assert recording.tensors["l0.h"].shape == (12, model.config.hidden)
    half = model.record("BOB: the fox", units="0-3")
    np.testing.assert_array_equal(half.tensors["l0.h"], recording.tensors["l0.h"][:, :4])


def test_train_plans_as_the_command_does(corpus_file, tmp_path):
    run = charrnn.train(corpus_file, out=tmp_path / "run", hidden=8, embedding=4, layers=1, seq_len=16, batch_size=4,
                        max_steps=4, eval_every=2, model="gru")  # fmt: skip
    assert run.step == 4 and run.stop_reason == "max_steps" and run.out_dir == tmp_path / "run"
    trained = charrnn.load(run.out_dir)
    assert trained.config.kind == "gru" and trained.config.hidden == 8
    with pytest.raises(CharRNNError, match="no option --hiden"):
        charrnn.train(corpus_file, out=tmp_path / "other", hiden=8)
    with pytest.raises(CharRNNError, match="already holds a run"):
        charrnn.train(corpus_file, out=tmp_path / "run", max_steps=1)  # never overwritten unless force=True


def test_the_api_prints_nothing_and_leaves_the_process_alone(model, capsys):
    rng = torch.random.get_rng_state()
    threads = torch.get_num_threads()
    model.sample(length=20)  # unseeded: drawn from fresh entropy, not by reseeding torch
    model.score("the dog")
    model.record("the dog")
    assert torch.equal(torch.random.get_rng_state(), rng) and torch.get_num_threads() == threads
    assert capsys.readouterr() == ("", "")


def test_one_model_serves_several_threads(model):
    seeds = list(range(8))
    expected = {s: model.sample(prime="ALICE:", length=40, temperature=0.9, seed=s) for s in seeds}
    scores = {s: model.score(expected[s]).total_nats for s in seeds}
    got, errors = {}, []

    def work(s):
        try:
            got[s] = (model.sample(prime="ALICE:", length=40, temperature=0.9, seed=s), model.score(expected[s]).total_nats)
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    pool = [threading.Thread(target=work, args=(s,)) for s in seeds]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors
    assert all(got[s] == (expected[s], scores[s]) for s in seeds)


def test_import_charrnn_is_light_until_a_name_is_used():
    import subprocess
    import sys

    code = "import charrnn, sys; print('torch' in sys.modules); charrnn.load; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]



def test_the_api_page_runs(tmp_path, capsys):
    """Every example in docs/api.md, in order, in one namespace, with a tiny
    model (trained on the page itself, so every character it uses is known)
    in place of the page's, and a two-step run in place of its two minutes."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text(encoding="utf-8")
    corpus = tmp_path / "page.txt"
    corpus.write_text(page * 3, encoding="utf-8")
    tiny = dict(hidden=8, embedding=4, layers=1, seq_len=16, batch_size=4)
    run = charrnn.train(corpus, out=tmp_path / "tiny", max_steps=20, eval_every=10, **tiny)
    swaps = {
        '"checkpoints/shakespeare-gru"': repr(str(run.out_dir)),
        '"my.txt"': repr(str(corpus)),
        'time_limit="2m"': f"out={str(tmp_path / 'new')!r}, max_steps=2, " + ", ".join(f"{k}={v}" for k, v in tiny.items()),
    }
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert len(blocks) >= 7
    namespace: dict = {}
    for block in blocks:
        for real, stand_in in swaps.items():
            block = block.replace(real, stand_in)
        exec(compile(block, "docs/api.md", "exec"), namespace)  # noqa: S102  (the page's own examples)
    printed = capsys.readouterr().out
    assert namespace["run"].step == 2 and len(printed.splitlines()) >= 8
