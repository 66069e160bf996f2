"""Corpora of documents (--documents lines|files): read, split, batched,
trained, sampled, scored and inspected one document at a time, each from a
fresh state and ended by the marker the model predicts."""

from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import charrnn
from charrnn import checkpoint as ckpt
from charrnn import rundir
from charrnn.corpus import IGNORE, Vocab, load_corpus
from charrnn.corpus.documents import (DOC_END, END_ID, DocumentBatches, as_lines, spans, split_documents,
                                      split_text)  # fmt: skip
from charrnn.errors import CharRNNError
from charrnn.evaluate import score
from charrnn.model import CharRNN, ModelConfig
from charrnn.training.config import TrainConfig
from charrnn.training.launch import resume, train_on

from conftest import BUILTIN_KINDS, TINY, assert_one_line_error, run_cli

E = DOC_END


def names(n: int = 600, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    syllables = ["an", "el", "ia", "jo", "mar", "ka", "li", "ne", "ro", "sa", "th", "ev"]
    found: set[str] = set()
    while len(found) < n:
        found.add("".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))))
    return sorted(found)


@pytest.fixture
def names_file(tmp_path):
    p = tmp_path / "names.txt"
    p.write_text("\n".join(names()) + "\n", encoding="utf-8")
    return p


@pytest.fixture
def names_run(tmp_path, names_file):
    out = tmp_path / "names-run"
    done = run_cli("train", names_file, "--documents", "lines", "--out", out, *TINY, "--hidden", "32",
                   "--max-steps", "60", "--lr", "0.02")  # fmt: skip
    assert done.exit_code == 0, done.output
    return out


# -- reading ----------------------------------------------------------------


@pytest.mark.parametrize(("chunks", "expected"), [
    (["emma\nolivia\nava\n"], f"{E}emma{E}olivia{E}ava{E}"),
    (["emma\r\n\r\n\nava"], f"{E}emma{E}ava{E}"),  # CRLF, empty lines dropped, no final newline
    (["\n\nemma\r", "\nava\r", "\n"], f"{E}emma{E}ava{E}"),  # a CRLF cut between chunks
    (["a\rb\n"], f"{E}a\rb{E}"),  # a lone \r is a character
    (["\n\n"], E),
])  # fmt: skip
def test_lines_become_documents_joined_by_the_end_marker(chunks, expected):
    assert "".join(as_lines(chunks)) == expected


def test_a_corpus_of_lines_or_of_files_is_read_as_documents(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.txt").write_text("one\ntwo\n", encoding="utf-8")
    (d / "b.txt").write_text("", encoding="utf-8")
    (d / "c.txt").write_text("three", encoding="utf-8")
    lines = load_corpus(d, documents="lines")
    assert lines.vocab.decode(lines.ids) == f"{E}one{E}two{E}three{E}" and "\n" not in lines.vocab.chars
    files = load_corpus(d, documents="files")
    assert files.vocab.decode(files.ids) == f"{E}one\ntwo\n{E}three{E}"  # the empty file is no document
    assert files.info.sha256 == lines.info.sha256 == load_corpus(d).info.sha256  # the raw bytes, as always
    assert lines.vocab.chars[END_ID] == E


def test_a_corpus_with_no_document_is_refused(tmp_path):
    p = tmp_path / "empty.txt"
    p.write_text("\n\n\n", encoding="utf-8")
    with pytest.raises(CharRNNError, match="empty"):
        load_corpus(p, documents="lines")
    with pytest.raises(CharRNNError, match="--documents must be one of"):
        load_corpus(p, documents="pages")


def test_splits_hold_whole_documents_spread_through_the_corpus():
    docs = [f"n{i}" for i in range(200)]
    text = E + E.join(docs) + E
    vocab = Vocab.from_chars(text)
    splits = split_documents(vocab.encode(text), END_ID, 0.1, 0.05)
    parts = [vocab.decode(s).strip(E).split(E) for s in (splits.train, splits.val, splits.test)]
    assert sorted(sum(parts, [])) == sorted(docs)  # every document in exactly one split
    assert [len(p) for p in parts] == [170, 20, 10]
    val_at = [docs.index(d) for d in parts[1]]
    assert min(val_at) < 20 and max(val_at) > 180  # spread, not the last few
    assert all(vocab.decode(s).startswith(E) and vocab.decode(s).endswith(E) for s in (splits.train, splits.val))
    with pytest.raises(CharRNNError, match="documents: too few"):
        split_documents(vocab.encode(E + "n1" + E + "n2" + E), END_ID, 0.1, 0.0)
    assert split_text(vocab.encode(text), 0.1, 0.05, "lines").val.tolist() == splits.val.tolist()


# -- batches ------------------------------------------------------------------


def _docs_ids(lengths, seed=0):
    rng = np.random.default_rng(seed)
    text = E + E.join("".join(rng.choice(list("abcdef"), n)) for n in lengths) + E
    vocab = Vocab.from_chars(text)
    return vocab.encode(text), vocab


@pytest.mark.parametrize(("lengths", "batch", "seq_len"), [
    ([3, 1, 7, 2, 5, 5, 9, 4, 1, 6] * 7, 4, 16),  # short documents: many to a group
    ([30, 3, 12, 50, 7, 41, 8, 26, 19], 2, 8),  # documents longer than a window
])  # fmt: skip
def test_every_document_is_read_from_a_fresh_state_and_scored_once_an_epoch(lengths, batch, seq_len):
    ids, vocab = _docs_ids(lengths)
    b = DocumentBatches(ids, END_ID, batch, seq_len, seed=5)
    starts, ends = spans(ids, END_ID)
    texts = Counter()
    row_text: dict[int, list] = {}
    for k in range(len(b)):
        x, y = b.batch(k)
        assert x.shape[0] == b.rows(k) and b.rows(k) % batch == 0 and x.shape[1] <= seq_len
        assert int((y != IGNORE).sum()) == b.targets(k)
        if b.fresh(k):
            assert (x[:, 0] == END_ID).all()  # every row begins at a document's start marker
            for r, rest in row_text.items():
                texts[vocab.decode(t for t in rest if t != IGNORE)] += 1
            row_text = {r: [] for r in range(x.shape[0])}
        for r in range(x.shape[0]):
            row_text[r] += y[r].tolist()
    for r, rest in row_text.items():
        texts[vocab.decode(t for t in rest if t != IGNORE)] += 1
    texts.pop("", None)  # rows that only fill up the last group
    expected = Counter(vocab.decode(ids[s + 1 : e + 1]) for s, e in zip(starts, ends))
    assert texts == expected  # each document through its end marker, once
    groups = lambda seed: [g.tolist() for g in DocumentBatches(ids, END_ID, batch, seq_len, seed=seed).groups]  # noqa: E731
    assert groups(5) == [g.tolist() for g in b.groups] and groups(6) != groups(5)  # seeded


def test_two_processes_share_each_group_s_rows():
    ids, _ = _docs_ids([3, 1, 7, 2, 5, 5, 9, 4, 1, 6] * 5)
    one = DocumentBatches(ids, END_ID, 4, 16, seed=1)
    halves = [DocumentBatches(ids, END_ID, 4, 16, rank=r, world=2, seed=1) for r in range(2)]
    for k in range(len(one)):
        x, y = one.batch(k)
        parts = [h.batch(k) for h in halves]
        assert torch.equal(torch.cat([p[0] for p in parts]), x) and torch.equal(torch.cat([p[1] for p in parts]), y)


# -- the model's numbers -----------------------------------------------------------


def _exact_document_loss(model: CharRNN, ids: np.ndarray) -> float:
    """Each document alone, from the zero state: the definition."""
    total, count = 0.0, 0
    for s, e in zip(*spans(ids, END_ID)):
        x = torch.as_tensor(ids[s:e].astype(np.int64))[None]
        y = torch.as_tensor(ids[s + 1 : e + 1].astype(np.int64))
        logits, _ = model(x, model.init_state(1))
        total += float(F.cross_entropy(logits[0], y, reduction="sum"))
        count += len(y)
    return total / count


@pytest.mark.parametrize("kind", BUILTIN_KINDS)
def test_scoring_documents_reads_each_alone_from_a_fresh_state(kind):
    ids, vocab = _docs_ids([3, 1, 17, 2, 5, 40, 9, 4, 1, 6] * 3)
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(kind, vocab.size, embedding=4, hidden=8, layers=2, documents="lines")).eval()
    with torch.no_grad():
        exact = _exact_document_loss(model, ids)
    got = score(model, ids, streams=4, seq_len=16)
    assert got.loss == pytest.approx(exact, abs=1e-5) and got.chars == len(ids) - 1
    some = score(model, ids, streams=4, seq_len=16, sample=50)
    assert 0 < some.chars < len(ids) - 1 and some == score(model, ids, streams=4, seq_len=16, sample=50)


# -- training -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_a_run_of_documents_resumes_bit_for_bit_from_the_middle_of_a_group(tmp_path, kind):
    from test_train import Recorder

    lines = tmp_path / "lines.txt"  # documents of 3 to 20 characters: some span two windows of 8
    lines.write_text("\n".join(" ".join(names(400, seed=2)[i : i + 1 + i % 4]) for i in range(0, 400, 3)), encoding="utf-8")
    corpus = load_corpus(lines, documents="lines")
    mconf = ModelConfig(kind, corpus.vocab.size, embedding=4, hidden=6, layers=2, dropout=0.2, documents="lines")
    config = TrainConfig(seq_len=8, batch_size=4, eval_every=5, max_steps=12, warmup_steps=3, seed=3, device="cpu")
    batches = DocumentBatches(split_text(corpus.ids, 0.1, 0.05, "lines").train, END_ID, 4, 8, seed=3)
    cut = next(k for k in range(1, 11) if not batches.fresh(k))  # a step that goes on with the state carried
    straight = Recorder()
    train_on(corpus, config, tmp_path / "a", mconf, reporter=straight)
    first = Recorder(interrupt_at=cut)
    assert train_on(corpus, config, tmp_path / "b", mconf, reporter=first).step == cut
    carried = ckpt.load_checkpoint(tmp_path / "b", prefer=rundir.LAST).run.carried[0]
    assert carried.shape[1] == 4 and carried.abs().sum() > 0  # the group's state, to go on from
    second = Recorder()
    assert resume(tmp_path / "b", reporter=second).step == 12
    assert first.losses + second.losses == straight.losses
    a = ckpt.load_checkpoint(tmp_path / "a", prefer=rundir.LAST).model.state_dict()
    b = ckpt.load_checkpoint(tmp_path / "b", prefer=rundir.LAST).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_training_loss_is_the_mean_over_the_documents_scored(tmp_path, names_file):
    from test_train import Recorder

    corpus = load_corpus(names_file, documents="lines")
    mconf = ModelConfig("gru", corpus.vocab.size, embedding=4, hidden=6, layers=1, documents="lines")
    config = TrainConfig(seq_len=8, batch_size=4, max_steps=1, warmup_steps=1, lr=1e-9, seed=3, device="cpu",
                         precision="fp32")  # fmt: skip
    rec = Recorder()
    train_on(corpus, config, tmp_path / "r", mconf, reporter=rec)
    model = ckpt.load_checkpoint(tmp_path / "r", prefer=rundir.LAST).model.eval()
    splits = split_text(corpus.ids, 0.1, 0.05, "lines")
    b = DocumentBatches(splits.train, END_ID, 4, 8, seed=3)
    x, y = b.batch(0)
    with torch.no_grad():
        logits, _ = model(x, model.init_state(len(x)))
        expected = float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE))
    assert rec.losses[0] == pytest.approx(expected, abs=1e-4)  # an lr of 1e-9 leaves the weights as they were


def test_the_checkpoint_records_the_mode_and_fine_tuning_keeps_it(names_run, tmp_path, names_file):
    c = ckpt.load_checkpoint(names_run)
    assert c.config.documents == "lines" and c.config.format_version() == 4
    done = run_cli("train", names_file, "--init-from", names_run, "--out", tmp_path / "ft", "--max-steps", "3")
    assert done.exit_code == 0, done.output
    assert ckpt.load_checkpoint(tmp_path / "ft").config.documents == "lines"
    refused = run_cli("train", names_file, "--init-from", names_run, "--documents", "files", "--out", tmp_path / "x")
    assert_one_line_error(refused, "--documents files does not fit")


# -- sample, eval, score, inspect -------------------------------------------------------


def test_sample_gives_whole_documents_a_line_each(names_run):
    done = run_cli("sample", names_run, "--num-samples", "12", "--seed", "4")
    assert done.exit_code == 0, done.output
    lines = done.stdout.rstrip("\n").split("\n")
    assert len(lines) == 12 and all(E not in line for line in lines)  # (a weak model may end one at once)
    again = run_cli("sample", names_run, "--num-samples", "12", "--seed", "4")
    assert again.stdout == done.stdout
    primed = run_cli("sample", names_run, "--num-samples", "5", "--seed", "4", "--prime", "ma")
    assert all(line.startswith("ma") for line in primed.stdout.rstrip("\n").split("\n"))


def test_a_sample_is_the_model_s_document_drawn_from_its_start(names_run):
    m = charrnn.load(names_run)
    doc = m.documents(1, temperature=0).texts[0]
    # by hand: read the marker, then take the argmax until the marker comes
    net, ids, text = m.net, [END_ID], ""
    with torch.no_grad():
        for _ in range(100):
            logits, _ = net(torch.tensor([ids]), net.init_state(1))
            nxt = int(logits[0, -1].argmax())
            if nxt == END_ID:
                break
            ids.append(nxt)
            text += m.vocab.chars[nxt]
    assert doc == text


def test_novel_keeps_only_documents_the_corpus_does_not_hold(names_run, names_file):
    held = set(names_file.read_text(encoding="utf-8").split("\n"))
    done = run_cli("sample", names_run, "--num-samples", "40", "--seed", "1", "--novel", "--temperature", "0.5")
    assert done.exit_code == 0, done.output
    lines = done.stdout.rstrip("\n").split("\n")
    assert len(lines) == 40 and not held & set(lines)
    dropped = int(done.stderr.split(" drawn document(s)")[0].split()[-1])
    plain = run_cli("sample", names_run, "--num-samples", "40", "--seed", "1", "--temperature", "0.5")
    assert dropped == sum(line in held for line in plain.stdout.rstrip("\n").split("\n")) > 0  # the same first draw


def test_novel_is_refused_where_it_cannot_know_the_corpus(names_run, names_file, trained_run):
    assert_one_line_error(run_cli("sample", trained_run, "--novel"), "trained with --documents")
    names_file.write_text("changed\n", encoding="utf-8")
    assert_one_line_error(run_cli("sample", names_run, "--novel"), "has changed since")


def test_eval_and_score_read_each_document_from_its_start_through_its_end(names_run, tmp_path):
    m = charrnn.load(names_run)
    test_file = tmp_path / "held.txt"
    test_file.write_text("marka\nelia\njo\n", encoding="utf-8")
    ids = m.vocab.encode(f"{E}marka{E}elia{E}jo{E}")
    with torch.no_grad():
        exact = _exact_document_loss(m.net, ids)
    got = json.loads(run_cli("eval", names_run, test_file, "--json").stdout)
    assert got["loss"] == pytest.approx(exact, abs=1e-5) and got["chars"] == 14  # 11 letters and 3 ends
    rows = json.loads(run_cli("score", names_run, test_file, "--json").stdout)
    assert [r["chars"] for r in rows] == [6, 5, 3]
    assert sum(r["total_nats"] for r in rows) / 14 == pytest.approx(exact, abs=1e-4)


def test_inspect_reads_each_line_as_the_model_does(names_run, tmp_path):
    f = tmp_path / "some.txt"
    lines = names(30, seed=9)
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    m = charrnn.load(names_run)
    rec = m.record(f.read_text(encoding="utf-8"))
    assert len(rec.text) == len(f.read_text(encoding="utf-8")) and "\n" in rec.text
    # each line from a fresh start, as score reads it: rec.loss[i] is the loss of character i + 1
    at = 0
    for line, scored in zip(lines, m.score_lines(lines)):
        np.testing.assert_allclose(rec.loss[at : at + len(line)], -scored.log_probs[1:], atol=1e-4)
        at += len(line) + 1
    done = run_cli("inspect", names_run, "--file", f)
    assert done.exit_code == 0, done.output
    generated = run_cli("inspect", names_run, "--generate", "300", "--seed", "2")
    assert generated.exit_code == 0, generated.output


def test_the_api_refuses_documents_of_a_stream_model(trained_run):
    with pytest.raises(CharRNNError, match="one stream of text"):
        charrnn.load(trained_run).documents(3)


def test_served_generations_end_at_the_marker_as_sample_does(names_run):
    from charrnn.api import sample_config
    from test_batching import running, take

    m = charrnn.load(names_run, "cpu")
    requests = [("", dict(length=80, temperature=1.0, seed=s)) for s in range(3)] + [("ma", dict(length=80, seed=9))]
    alone = [m.sample(prime=prime, **controls) for prime, controls in requests]
    assert all(E not in text and len(text) < 80 for text in alone)
    with running(m) as batcher:
        got = [take(batcher.submit(prime, sample_config(**controls))) for prime, controls in requests]
    assert got == alone


def test_documents_refuse_what_cuts_a_stream(names_file, tmp_path):
    done = run_cli("train", names_file, "--documents", "lines", "--split", "blocks", "--out", tmp_path / "r", *TINY)
    assert_one_line_error(done, "--documents holds out whole documents")
    prepared = tmp_path / "prepared"
    assert run_cli("prepare", names_file, "--out", prepared).exit_code == 0
    done = run_cli("train", prepared, "--documents", "lines", "--out", tmp_path / "r2", *TINY)
    assert_one_line_error(done, "is a prepared corpus", "give the text")
    assert not (tmp_path / "r").exists() and not (tmp_path / "r2").exists()


def test_beams_end_at_the_marker_even_with_a_stop_string(names_run):
    m = charrnn.load(names_run)
    for stop in (None, "zz"):
        beams = m.beams(beam=4, num_samples=2, length=60, **({"stop": stop} if stop else {}))
        assert all(E not in text and len(text) < 60 for text, _ in beams)
    assert_one_line_error(run_cli("sample", names_run, "--novel", "--beam", "3"), "give one")


def test_an_epoch_of_documents_is_its_groups(tmp_path):
    lines = tmp_path / "lines.txt"  # lines of 20 to 30 characters: two windows of 16 each
    rng = random.Random(1)
    lines.write_text("\n".join("".join(rng.choice("abcdefg ") for _ in range(rng.randint(20, 30))) for _ in range(300)),
                     encoding="utf-8")  # fmt: skip
    out = tmp_path / "run"
    done = run_cli("train", lines, "--documents", "lines", "--out", out, *TINY, "--epochs", "1")
    assert done.exit_code == 0, done.output
    corpus = load_corpus(lines, documents="lines")
    train = split_text(corpus.ids, 0.1, 0.05, "lines").train
    steps = len(DocumentBatches(train, END_ID, 4, 16, seed=1337))
    run = ckpt.load_checkpoint(out, prefer=rundir.LAST).run
    assert run.step == steps and run.epoch == 0 and run.step_in_epoch == steps


def test_score_reads_a_crlf_file_of_lines_as_training_did(tmp_path):
    f = tmp_path / "crlf.txt"
    f.write_bytes(b"anna\r\nbob\r\n\r\neve\r\n" * 40)
    out = tmp_path / "run"
    assert run_cli("train", f, "--documents", "lines", "--out", out, *TINY, "--max-steps", "3").exit_code == 0
    rows = json.loads(run_cli("score", out, f, "--json").stdout)
    assert [r["line"] for r in rows[:4]] == [1, 2, 4, 5] and [r["text"] for r in rows[:3]] == ["anna", "bob", "eve"]
    assert [r["chars"] for r in rows[:3]] == [5, 4, 4]
