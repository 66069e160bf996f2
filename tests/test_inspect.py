"""inspect: exact recording, export, the finder's statistics, and safe display."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from charrnn.inspection.record import record, select_units
from charrnn.inspection.analysis import correlations, find_units, saturation, surprises, top_contexts
from charrnn.inspection.features import BUILTIN_FEATURES, parse_feature
from charrnn.corpus import Vocab
from charrnn.errors import CharRNNError
from charrnn.model import CharRNN, ModelConfig

from conftest import BUILTIN_KINDS, assert_one_line_error, run_cli

VOCAB = Vocab.from_chars('abcdefghis \n"()')
TEXT = 'ab "cd ef" (gh (a) b)\nhe said "abc"\n' * 8


def model_of(kind, seed=0):
    torch.manual_seed(seed)
    return CharRNN(ModelConfig(kind, VOCAB.size, embedding=3, hidden=6, layers=2)).eval()


@pytest.mark.parametrize("kind", BUILTIN_KINDS)
def test_recording_equals_the_step_path_and_chunks_do_not_matter(kind):
    model = model_of(kind)
    whole = record(model, VOCAB, TEXT)
    chunked = record(model, VOCAB, TEXT, chunk=17)
    ids = torch.as_tensor(VOCAB.encode(TEXT).astype("int64"))
    state = model.init_state(1)
    with torch.no_grad():
        for t in range(len(ids)):
            trace: dict = {}
            logits, state = model.step(ids[t : t + 1], state, trace)
            for name, value in trace.items():
                np.testing.assert_allclose(whole.tensors[name][t], value[0].numpy(), atol=1e-5)
            logp = torch.log_softmax(logits[0], -1)
            if t + 1 < len(ids):
                assert whole.loss[t] == pytest.approx(-logp[ids[t + 1]].item(), abs=1e-5)
            assert whole.top_ids[t, 0] == int(logp.argmax())
    assert np.isnan(whole.loss[-1])
    for name in whole.tensors:
        np.testing.assert_allclose(whole.tensors[name], chunked.tensors[name], atol=1e-6)
        if name.split(".")[1] in "ifozr":
            assert whole.tensors[name].min() >= 0 and whole.tensors[name].max() <= 1


def test_fused_h_matches_the_models_own_forward():
    model = model_of("lstm")
    rec = record(model, VOCAB, TEXT)
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(VOCAB.encode(TEXT).astype("int64"))[None])
    logp = torch.log_softmax(logits[0], -1).numpy()
    np.testing.assert_allclose(rec.top_probs[:, 0], np.exp(logp.max(-1)), atol=1e-5)


def test_npz_export_loads_with_plain_numpy(tmp_path):
    rec = record(model_of("gru"), VOCAB, TEXT, units=select_units("1-3", 6), dtype=np.float16)
    path = tmp_path / "acts.npz"
    rec.save_npz(path)
    data = np.load(path)
    manifest = json.loads(str(data["manifest"]))
    assert manifest["tensors"]["l1.z"]["shape"] == [len(TEXT), 3]
    assert data["l0.h"].dtype == np.float16
    assert "".join(map(chr, data["text"])) == TEXT
    assert list(data["units/l0.h"]) == [1, 2, 3]


def test_features():
    text = 'say "hi there" (a (b) c)\n  x'
    quotes = BUILTIN_FEATURES["inside double quotes"](text)
    assert "".join(c for c, q in zip(text, quotes) if q) == "hi there"
    assert BUILTIN_FEATURES["bracket depth"](text)[text.index("b")] == 2
    assert BUILTIN_FEATURES["position in line"](text)[-1] == 2
    assert BUILTIN_FEATURES["indentation"](text)[-1] == 2
    assert BUILTIN_FEATURES["inside single quotes"]("don't 'go' now").sum() == 2
    name, f = parse_feature("vowel=[aeiou]")
    assert name == "vowel" and f("xax").tolist() == [0, 1, 0]
    with pytest.raises(CharRNNError):
        parse_feature("novalue")


def test_correlations_and_finder_pick_a_planted_unit():
    rng = np.random.default_rng(0)
    feature = (rng.random(400) > 0.5).astype(np.float32)
    acts = rng.normal(size=(400, 8)).astype(np.float32)
    acts[:, 5] += 3 * feature  # unit 5 tracks the feature
    r = correlations(acts, feature)
    assert np.argmax(np.abs(r)) == 5 and r[5] > 0.7
    rec = record(model_of("rnn"), VOCAB, TEXT)
    text_feature = BUILTIN_FEATURES["inside double quotes"](TEXT)
    rec.tensors["l0.h"][:, 2] = text_feature * 2 - 1 + rng.normal(scale=0.1, size=len(TEXT))
    control = record(model_of("rnn", seed=1), VOCAB, TEXT)
    found = find_units(rec, control, {"quotes": text_feature})["quotes"]
    assert (found[0].tensor, found[0].unit) == ("l0.h", 2) and found[0].r > 0.9
    assert abs(found[0].r_control) < found[0].r
    shuffled = rng.permutation(text_feature)  # negative control: no unit tracks shuffled labels well
    assert all(abs(f.r) < 0.5 for f in find_units(rec, control, {"shuffled": shuffled})["shuffled"])


def test_recording_and_analysis_leave_the_global_generator_alone():
    from charrnn.inspection.analysis import analyse

    model = model_of("lstm")
    before = torch.get_rng_state()
    analyse(record(model, VOCAB, TEXT), model)
    assert torch.equal(torch.get_rng_state(), before)


def test_saturation_and_contexts():
    rec = record(model_of("lstm"), VOCAB, TEXT)
    sat = saturation(rec)
    assert set(sat) == {"l0.i", "l0.f", "l0.o", "l1.i", "l1.f", "l1.o"}
    assert all(0 <= s.left_mean <= 1 and len(s.left) == 6 for s in sat.values())
    ctx = top_contexts(rec, "l1.c", 0, k=3)
    assert len(ctx["highest"]) == 3 and ctx["highest"][0]["value"] >= ctx["lowest"][0]["value"]



def test_surprises_are_the_least_likely_characters_with_what_was_expected():
    model = model_of("gru")
    rec = record(model, VOCAB, TEXT)
    probs = rec.char_probs()
    with torch.no_grad():  # the model's own probability of each character, from its forward pass
        logits, _ = model(torch.as_tensor(VOCAB.encode(TEXT)[None, :-1].astype(np.int64)))
    direct = torch.softmax(logits[0], -1).gather(1, torch.as_tensor(VOCAB.encode(TEXT)[1:, None].astype(np.int64)))
    assert np.isnan(probs[0]) and np.allclose(probs[1:], direct[:, 0].numpy(), atol=1e-5)
    rows = surprises(rec, k=4)
    assert [r["prob"] for r in rows] == sorted(r["prob"] for r in rows) and rows[0]["prob"] == np.nanmin(probs)
    for r in rows:
        assert rec.text[r["position"]] == r["char"] and rec.text.endswith(r["before"] + r["char"], 0, r["position"] + 1)
        assert len(r["guesses"]) == 5 and r["guesses"][0][1] >= r["guesses"][-1][1]


def test_inspect_unit_loss_shows_the_least_likely_characters(trained_run):
    done = run_cli("inspect", trained_run, "--text", "ALICE: the quick brown fox.\nBOB: a lazy dog.\n" * 2, "--unit", "loss")
    assert done.exit_code == 0, done.output
    assert "probability the model gave each character" in done.output and "the least likely characters" in done.output
    assert "the model expected" in done.output

def test_inspect_cli(trained_run, tmp_path):
    out, report = tmp_path / "a.npz", tmp_path / "r.json"
    text = "ALICE: the fox.\nBOB: a dog sat on the mat.\n" * 4
    result = run_cli("inspect", trained_run, "--text", text, "--out", out, "--report", report)
    assert result.exit_code == 0, result.output
    assert np.load(out)["l0.h"].shape[0] == len(text)
    data = json.loads(report.read_text())
    assert "start of word" in data["features"] and data["features"]["uppercase"][0]["tensor"].startswith("l0.")
    result = run_cli("inspect", trained_run, "--text", text, "--out", out)
    assert result.exit_code == 1 and "exists" in result.stderr
    result = run_cli("inspect", trained_run, "--text", "ALICE €")
    assert result.exit_code == 1 and "never seen: '€'" in result.stderr
    result = run_cli("inspect", trained_run, "--text", text, "--unit", "l9.h:3")
    assert result.exit_code == 1 and "--unit must be TENSOR:UNIT" in result.stderr


def test_inspect_stores_fp32_or_fp16_and_refuses_bf16(trained_run, tmp_path):
    text = "ALICE: the fox.\n" * 2
    for dtype, stored in (("fp32", np.float32), ("fp16", np.float16)):
        done = run_cli("inspect", trained_run, "--text", text, "--dtype", dtype, "--out", tmp_path / f"{dtype}.npz")
        assert done.exit_code == 0, done.output
        assert np.load(tmp_path / f"{dtype}.npz")["l0.h"].dtype == stored
    refused = run_cli("inspect", trained_run, "--text", text, "--dtype", "bf16", "--out", tmp_path / "bf16.npz")
    assert_one_line_error(refused, "--dtype bf16: a recording is stored as fp32 or fp16")


def test_inspect_unit_display_is_safe(tmp_path):
    from charrnn import checkpoint as ckpt

    vocab = Vocab.from_chars("[bold]\x1b2J\n")
    torch.manual_seed(0)
    model = CharRNN(ModelConfig("lstm", vocab.size, embedding=2, hidden=3, layers=1))
    ckpt.save_checkpoint(tmp_path / "m.safetensors", model, vocab)
    result = run_cli("inspect", tmp_path / "m.safetensors", "--text", "[bold]\x1b[2J\nb", "--unit", "l0.c:1")
    assert result.exit_code == 0, result.output
    assert "[bold]" in result.stdout and "\\x1b[2J" in result.stdout and "\x1b" not in result.stdout


def test_l1_probe_finds_a_planted_unit_with_few_units():
    from charrnn.inspection.analysis import l1_probe

    rng = np.random.default_rng(1)
    rec = record(model_of("gru"), VOCAB, TEXT)
    feature = BUILTIN_FEATURES["inside double quotes"](TEXT)
    rec.tensors["l1.h"][:, 4] = feature + rng.normal(scale=0.2, size=len(TEXT))
    probe = l1_probe(rec, feature)
    assert probe.accuracy > 0.95 > probe.baseline
    assert (probe.units[0][0], probe.units[0][1]) == ("l1.h", 4)


def test_gradient_flow_matches_autograd_by_hand():
    from charrnn.inspection.analysis import gradient_flow

    model = model_of("rnn")
    flow = gradient_flow(model, VOCAB, TEXT, horizon=3, positions=1, seed=3)
    # redo the one window by hand: state before the window, then 4 steps
    ids = torch.as_tensor(VOCAB.encode(TEXT).astype("int64"))
    end = int(np.sort(np.random.default_rng(3).choice(np.arange(3, len(ids) - 1), size=1, replace=False))[0])
    start = end - 3
    with torch.no_grad():
        _, state = model(ids[:start][None])
    hs = []
    for t in range(start, end + 1):
        h = state[0].clone().requires_grad_(True)
        hs.append(h)
        logits, state = model.step(ids[t : t + 1], (h,))
    loss = torch.nn.functional.cross_entropy(logits, ids[end + 1 : end + 2])
    grads = torch.autograd.grad(loss, hs)
    # h(t-1) is the state entering the last step
    for layer in range(2):
        assert flow[f"l{layer}.h"][0] == pytest.approx(float(grads[-1][layer].norm()), rel=1e-5)
        assert flow[f"l{layer}.h"][2] == pytest.approx(float(grads[-3][layer].norm()), rel=1e-5)


def test_synthetic_corpus_has_its_structure():
    from charrnn.inspection import synthetic

    text = synthetic.generate(20_000, seed=3)
    assert len(text) == 20_001 and text == synthetic.generate(20_000, seed=3)
    inside = BUILTIN_FEATURES["inside double quotes"](text)
    quoted = {w for w in "".join(c if q else " " for c, q in zip(text, inside)).split()}
    assert quoted and quoted <= set(synthetic.INSIDE)
    assert "/*" in text and "{" in text and "\n  " in text


def test_lstmvis_export(trained_run, tmp_path):
    h5py = pytest.importorskip("h5py")
    text = "ALICE: the fox.\nBOB: a dog.\n"
    result = run_cli("inspect", trained_run, "--text", text, "--lstmvis", tmp_path / "vis")
    assert result.exit_code == 0, result.output
    vis = tmp_path / "vis"
    config = (vis / "lstm.yml").read_text()
    assert 'word_sequence: {"file": "train", "path": "word_ids", "dict_file": "words"}' in config
    words = dict(line.split() for line in (vis / "words.dict").read_text().splitlines())
    assert words["\u2423"] and "\\n" in words  # space and newline have visible tokens, no blank keys
    inverse = {int(v): k for k, v in words.items()}
    with h5py.File(vis / "train.h5") as f:
        ids = f["word_ids"][:]
    assert "".join(inverse[i] for i in ids).replace("\u2423", " ").replace("\\n", "\n") == text
    with h5py.File(vis / "states.h5") as f:
        assert f["l0.h"].shape[0] == len(text)
    assert run_cli("inspect", trained_run, "--text", text, "--lstmvis", vis).exit_code == 1  # not empty


def test_spilled_recording_equals_in_memory(tmp_path):
    model = model_of("lstm")
    a = record(model, VOCAB, TEXT)
    b = record(model, VOCAB, TEXT, spill=tmp_path / "spill")
    assert isinstance(b.tensors["l0.c"], np.memmap) and (tmp_path / "spill" / "l0.c.npy").exists()
    for name in a.tensors:
        np.testing.assert_array_equal(a.tensors[name], b.tensors[name])


def test_report_has_contexts_for_each_features_best_unit(trained_run, tmp_path):
    report = tmp_path / "r.json"
    text = "ALICE: the fox.\nBOB: a dog sat on the mat.\n" * 4
    assert run_cli("inspect", trained_run, "--text", text, "--report", report).exit_code == 0
    data = json.loads(report.read_text())
    best = data["features"]["start of word"][0]
    ctx = data["contexts"][f"{best['tensor']}:{best['unit']}"]
    assert len(ctx["highest"]) == 5 and {"before", "char", "after", "value"} <= set(ctx["highest"][0])
    assert data["gradient_flow"]["l0.h"] and data["probes"]["start of word"]["accuracy"] > 0


def test_recorded_state_equals_the_fused_models_final_state():
    model = model_of("lstm")
    rec = record(model, VOCAB, TEXT, chunk=33)
    with torch.no_grad():
        _, (h, c) = model(torch.as_tensor(VOCAB.encode(TEXT).astype("int64"))[None])
    for k in range(2):
        np.testing.assert_allclose(rec.tensors[f"l{k}.h"][-1], h[k, 0].numpy(), atol=1e-5)
        np.testing.assert_allclose(rec.tensors[f"l{k}.c"][-1], c[k, 0].numpy(), atol=1e-5)


def test_inspect_generate_and_unit_contexts(trained_run, tmp_path):
    out = tmp_path / "g.npz"
    args = ["inspect", trained_run, "--generate", "60", "--prime", "ALICE:", "--top-k", "3", "--seed", "4"]
    assert run_cli(*args, "--out", out).exit_code == 0
    data = np.load(out)
    text = "".join(map(chr, data["text"]))
    assert text.startswith("ALICE:") and len(text) == 66
    assert run_cli(*args, "--out", tmp_path / "g2.npz").exit_code == 0
    assert np.array_equal(np.load(tmp_path / "g2.npz")["text"], data["text"])  # seeded: reproducible
    shown = run_cli("inspect", trained_run, "--text", "ALICE: the fox.\nBOB: a dog.\n", "--unit", "l0.c:2")
    assert shown.exit_code == 0 and "highest" in shown.stdout and "lowest" in shown.stdout
    assert run_cli("inspect", trained_run, "--text", "AB", "--file", out).exit_code == 1  # one input only


def test_inspect_still_takes_the_dtype_names_it_once_took(trained_run, tmp_path):
    text = "ALICE: the fox.\n" * 2
    done = run_cli("inspect", trained_run, "--text", text, "--dtype", "float16", "--out", tmp_path / "old.npz")
    assert done.exit_code == 0, done.output
    assert np.load(tmp_path / "old.npz")["l0.h"].dtype == np.float16
    assert_one_line_error(run_cli("inspect", trained_run, "--text", text, "--dtype", "float64"), "--dtype", "float64")
