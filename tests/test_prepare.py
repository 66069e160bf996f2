"""Prepared corpora (`charrnn prepare`): the same ids as the text, mapped
not copied, written whole or not at all, refused in one line when damaged;
training on them is bit-identical to training on the text. And the
blocks split, which interleaves val and test through the corpus."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from charrnn import checkpoint as ckpt
from charrnn import rundir
from charrnn.corpus import Pieces, StreamBatches, load_corpus, prepared, reader, split_corpus, writer
from charrnn.corpus.pieces import blocks
from charrnn.errors import CharRNNError
from charrnn.training.config import TrainConfig
from charrnn.training.launch import train_with

from conftest import TINY, assert_one_line_error, make_text, run_cli


@pytest.fixture
def text_dir(tmp_path: Path) -> Path:
    """Three files and an empty one, one in a subdirectory, one not ending in a newline."""
    d = tmp_path / "texts"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text(make_text(150, seed=1), encoding="utf-8")
    (d / "b.txt").write_text("no newline at the end: é€😀", encoding="utf-8")
    (d / "empty.txt").write_text("", encoding="utf-8")
    (d / "sub" / "c.txt").write_text(make_text(150, seed=2), encoding="utf-8")
    return d


def prep(source: Path, out: Path, *args: str) -> Path:
    result = run_cli("prepare", source, "--out", out, *args)
    assert result.exit_code == 0, result.output
    return out


def test_round_trip_ids_vocab_offsets_checksum(tmp_path, text_dir):
    out = prep(text_dir, tmp_path / "prep")
    raw, mapped = load_corpus(text_dir), load_corpus(out)
    assert isinstance(mapped.ids, np.memmap) and not mapped.ids.flags.writeable
    assert np.array_equal(raw.ids, mapped.ids) and raw.ids.dtype == mapped.ids.dtype == np.uint8
    assert raw.vocab == mapped.vocab
    assert mapped.info.sha256 == raw.info.sha256  # a run may begin on one form and resume on the other
    assert (mapped.info.n_chars, mapped.info.n_files, mapped.info.encoding) == (raw.info.n_chars, 4, "utf-8")
    assert mapped.info.path == str(out.resolve())
    assert raw.file_starts == mapped.file_starts and len(raw.file_starts) == 4
    m = prepared.read_manifest(out)
    files = reader.corpus_files(text_dir)
    assert [f.path for f in m.files] == [str(p.relative_to(text_dir)) for p in files]
    for f, path in zip(m.files, files):  # each file's characters are exactly its span
        assert mapped.vocab.decode(mapped.ids[f.start : f.end]) == path.read_text(encoding="utf-8")
    assert m.source_bytes == sum(p.stat().st_size for p in files)
    assert run_cli("prepare", out, "--verify").exit_code == 0


def test_a_vocabulary_past_256_characters_is_uint16(tmp_path):
    text = "".join(chr(0x400 + i) for i in range(300)) * 3 + "\n"
    (tmp_path / "wide.txt").write_text(text, encoding="utf-8")
    out = prep(tmp_path / "wide.txt", tmp_path / "prep")
    mapped = load_corpus(out)
    assert mapped.ids.dtype == np.dtype("<u2") and prepared.read_manifest(out).dtype == "uint16"
    assert (out / "ids.bin").stat().st_size == 2 * len(text)
    assert np.array_equal(mapped.ids, load_corpus(tmp_path / "wide.txt").ids)
    assert [f.path for f in prepared.read_manifest(out).files] == [""]  # a single file is the source itself


def test_streams_in_small_chunks(tmp_path, text_dir, monkeypatch):
    """Chunks of 7 bytes split multi-byte characters and files: the same ids."""
    whole = prep(text_dir, tmp_path / "whole")
    monkeypatch.setattr(reader, "CHUNK_BYTES", 7)
    seen = []
    code_points = reader.code_points
    monkeypatch.setattr(reader, "code_points", lambda text: seen.append(len(text)) or code_points(text))
    small = prep(text_dir, tmp_path / "small", "--workers", "1")  # in this process, where `seen` is
    assert max(seen) <= 7 and len(seen) > 100  # encoded a chunk at a time, never whole
    assert (small / "ids.bin").read_bytes() == (whole / "ids.bin").read_bytes()
    assert prepared.read_manifest(small).files == prepared.read_manifest(whole).files


def test_workers_and_pieces_give_the_same_directory(tmp_path, text_dir, monkeypatch):
    """Files cut into 5-byte pieces (inside multi-byte characters, moved to the next character's start),
    encoded by 1 and by 3 processes: the same bytes and manifest."""
    (text_dir / "d.txt").write_text("ééé€€😀😀 abc\n" * 40, encoding="utf-8")
    one = prep(text_dir, tmp_path / "one", "--workers", "1")
    monkeypatch.setattr(writer, "PIECE_BYTES", 5)
    assert len(writer.pieces(reader.corpus_files(text_dir), "utf-8")) > 100
    three = prep(text_dir, tmp_path / "three", "--workers", "3")
    assert (one / "ids.bin").read_bytes() == (three / "ids.bin").read_bytes()
    assert (one / "manifest.json").read_text() == (three / "manifest.json").read_text()
    assert np.array_equal(load_corpus(three).ids, load_corpus(text_dir).ids)


def test_a_bad_byte_in_a_piece_is_named_by_its_offset_in_the_file(tmp_path, monkeypatch):
    (tmp_path / "t.txt").write_bytes(b"abcdefghij" * 10 + b"\xff" + b"klm\n")
    monkeypatch.setattr(writer, "PIECE_BYTES", 16)
    assert_one_line_error(run_cli("prepare", tmp_path / "t.txt", "--out", tmp_path / "p", "--workers", "2"),
                          "byte 0xff at byte offset 100")  # fmt: skip
    assert not (tmp_path / "p").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_existing_out_needs_force_and_only_a_prepared_one_is_replaced(tmp_path, text_dir, corpus_file):
    out = prep(corpus_file, tmp_path / "prep")
    before = (out / "ids.bin").read_bytes()
    assert_one_line_error(run_cli("prepare", text_dir, "--out", out), "exists: --force replaces it")
    assert (out / "ids.bin").read_bytes() == before
    prep(text_dir, out, "--force")
    assert np.array_equal(load_corpus(out).ids, load_corpus(text_dir).ids)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing left aside
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert_one_line_error(run_cli("prepare", text_dir, "--out", foreign, "--force"), "not a prepared corpus")
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert_one_line_error(run_cli("prepare", text_dir, "--out", text_dir / "prep"), "inside the corpus")
    assert_one_line_error(run_cli("prepare", out, "--out", tmp_path / "again"), "already a prepared corpus")
    assert_one_line_error(run_cli("prepare", text_dir), "--out DIR")


def test_a_failed_prepare_leaves_the_old_directory_and_no_temporary_one(tmp_path, text_dir, corpus_file, monkeypatch):
    out = prep(corpus_file, tmp_path / "prep")
    before = (out / "ids.bin").read_bytes()

    def fail(*a):
        raise OSError(28, "No space left on device")  # ENOSPC, mid-write

    monkeypatch.setattr(prepared, "_write_synced", fail)
    assert_one_line_error(run_cli("prepare", text_dir, "--out", out, "--force"), "no space left")
    assert (out / "ids.bin").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["play.txt", "prep", "texts"]


def _damage(out: Path, how: str) -> str:
    manifest = json.loads((out / "manifest.json").read_text())
    if how == "truncated":
        (out / "ids.bin").write_bytes((out / "ids.bin").read_bytes()[:-5])
        return "is damaged"
    if how == "missing":
        (out / "ids.bin").unlink()
        return "has no ids.bin"
    if how == "version":
        manifest["version"] = 99
    elif how == "foreign":
        manifest = {"name": "some other tool"}
    elif how == "field":
        manifest["n_chars"] = "many"
    elif how == "vocab":
        manifest["chars"] = "ba"
    elif how == "json":
        (out / "manifest.json").write_text("{not json")
        return "not valid JSON"
    (out / "manifest.json").write_text(json.dumps(manifest))
    return {"version": "format version 99", "foreign": "not a charrnn prepared corpus",
            "field": "prepare it again", "vocab": "prepare it again"}[how]  # fmt: skip


@pytest.mark.parametrize("how", ["truncated", "missing", "version", "foreign", "field", "vocab", "json"])
def test_a_damaged_directory_is_a_one_line_error(tmp_path, corpus_file, how):
    out = prep(corpus_file, tmp_path / "prep")
    message = _damage(out, how)
    assert_one_line_error(run_cli("train", out, "--out", tmp_path / "run", *TINY, "--max-steps", "2"), message)
    assert not (tmp_path / "run").exists()
    assert_one_line_error(run_cli("prepare", out, "--verify"), message)


def test_verify_finds_a_changed_byte_that_opening_does_not_look_for(tmp_path, corpus_file):
    out = prep(corpus_file, tmp_path / "prep")
    data = bytearray((out / "ids.bin").read_bytes())
    data[100] = (data[100] + 1) % 10
    (out / "ids.bin").write_bytes(bytes(data))
    load_corpus(out)  # the size is right: opening is cheap and does not hash
    assert_one_line_error(run_cli("prepare", out, "--verify"), "does not match its checksum")


def test_extra_characters_are_translated_as_the_text_would_be(tmp_path, corpus_file):
    out = prep(corpus_file, tmp_path / "prep")
    extra = ("Z", "\t", "é")
    raw, mapped = load_corpus(corpus_file, extra_chars=extra), load_corpus(out, extra_chars=extra)
    assert raw.vocab == mapped.vocab and np.array_equal(raw.ids, mapped.ids)
    assert not isinstance(mapped.ids, np.memmap)  # a new vocabulary: its ids are in memory
    same = load_corpus(out, extra_chars=("a", "b"))  # nothing new: still the map
    assert isinstance(same.ids, np.memmap)


def test_splits_and_batches_are_views_of_the_map(tmp_path, corpus_file):
    ids = load_corpus(prep(corpus_file, tmp_path / "prep")).ids
    splits = split_corpus(ids, 0.1, 0.05)
    for part in (splits.train, splits.val, splits.test):
        assert isinstance(part, np.memmap) and np.shares_memory(part, ids)
    batches = StreamBatches(splits.train, 4, 8, slice(2, 4))
    assert np.shares_memory(batches.x, ids) and np.shares_memory(batches.y, ids)
    x, y = batches.batch(1)
    assert x.dtype == torch.int64 and x.shape == (2, 8)


# ---------------------------------------------------------------- training on it


def _train(corpus: Path, out: Path, *extra: str):
    args = ("train", corpus, "--out", out, "--model", "gru", *TINY, "--max-steps", "12", "--eval-every", "6",
            "--precision", "fp32", "--device", "cpu", *extra)  # fmt: skip
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    return out


def _untimed(run: Path) -> list[dict]:
    timing = {"elapsed_s", "chars_per_s", "eval_s", "save_s"}
    return [{k: v for k, v in json.loads(line).items() if k not in timing and "time" not in k}
            for line in (run / rundir.METRICS).read_text().splitlines()]  # fmt: skip


def _same_run(a: Path, b: Path, records: slice = slice(None)) -> None:
    for name in (rundir.LAST, rundir.BEST):
        # every tensor of the file: weights, optimizer state, carried state, RNG states
        ta, tb = load_file(a / name), load_file(b / name)
        assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
        ca, cb = ckpt.load_checkpoint(a / name), ckpt.load_checkpoint(b / name)
        assert ca.run.step == cb.run.step
        assert {**ca.run.train_config, "device": ""} == {**cb.run.train_config, "device": ""}  # resumed: device auto
        assert ca.run.corpus.sha256 == cb.run.corpus.sha256
    assert _untimed(a)[records] == _untimed(b)[records]


@pytest.mark.parametrize("source", ["file", "directory"])
def test_training_on_the_prepared_corpus_is_bit_identical(tmp_path, corpus_file, text_dir, source):
    text = corpus_file if source == "file" else text_dir
    out = prep(text, tmp_path / "prep")
    raw, mapped = _train(text, tmp_path / "raw"), _train(out, tmp_path / "mapped")
    _same_run(raw, mapped)


class Interrupt:
    """A reporter that presses Ctrl-C at a given step."""

    def __init__(self, at: int):
        self.at = at

    def step(self, step, loss, chars_per_s):
        if step == self.at:
            os.kill(os.getpid(), signal.SIGINT)

    def __getattr__(self, name):
        return lambda *a, **k: None


def _interrupted(corpus: Path, out: Path) -> Path:
    result = train_with(corpus, out=out, model="gru", hidden=8, embedding=4, layers=1, seq_len=16, batch_size=4,
                        max_steps=12, eval_every=6, precision="fp32", device="cpu", reporter=Interrupt(6))  # fmt: skip
    assert result.interrupted and result.step == 6
    return out


def test_resume_on_the_prepared_corpus_and_across_forms(tmp_path, corpus_file):
    out = prep(corpus_file, tmp_path / "prep")
    straight = _train(out, tmp_path / "straight")
    part = _interrupted(out, tmp_path / "part")
    assert run_cli("train", "--resume", part).exit_code == 0
    _same_run(straight, part, slice(-1, None))  # interrupted before step 6's evaluation: the last one
    # begun on the text, resumed on the prepared form: the same corpus, no note
    raw = _interrupted(corpus_file, tmp_path / "raw")
    result = run_cli("train", out, "--resume", raw)
    assert result.exit_code == 0, result.output
    assert "not the text the run began on" not in result.output
    _same_run(straight, raw, slice(-1, None))


def test_eval_and_score_a_run_trained_on_a_prepared_corpus(tmp_path, corpus_file):
    run = _train(prep(corpus_file, tmp_path / "prep"), tmp_path / "run")
    result = run_cli("eval", run, "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["chars"] > 0
    assert run_cli("score", run, corpus_file, "--device", "cpu", "--top", "2").exit_code == 0


# ---------------------------------------------------------------- the blocks split


@pytest.mark.parametrize("n, n_val, n_test", [(100_000, 10_000, 5_000), (50_001, 7_777, 0), (3_000, 300, 150),
                                              (10_000_000, 1_000_000, 500_000)])  # fmt: skip
def test_blocks_put_every_character_in_one_split_at_the_contiguous_sizes(n, n_val, n_test):
    ids = np.zeros(n, dtype=np.uint8)
    parts = blocks(ids, n_val, n_test)
    assert [len(p) for p in parts] == [n - n_val - n_test, n_val, n_test]
    where = np.concatenate([p.physical(np.arange(len(p))) for p in parts])
    assert np.array_equal(np.sort(where), np.arange(n))  # each character exactly once
    again = blocks(ids, n_val, n_test)
    assert all(np.array_equal(a.starts, b.starts) and np.array_equal(a.offsets, b.offsets) for a, b in zip(parts, again))
    if n_val >= 2 * 1024:
        assert len(parts[1].starts) > 1 and parts[1].starts[0] < n // 2  # val is spread, not only at the end


def test_pieces_read_as_the_joined_array(tmp_path):
    base = np.arange(1000, dtype=np.uint16)
    p = Pieces(base, np.array([10, 500, 900]), np.array([5, 0, 20]))
    joined = np.concatenate([base[10:15], base[900:920]])
    assert len(p) == 25 and np.array_equal(np.asarray(p), joined)
    pos = np.array([[0, 4, 5], [24, 6, 3]])
    assert np.array_equal(p[pos], joined[pos]) and np.array_equal(p[3:20], joined[3:20])
    with pytest.raises(IndexError):
        p[np.array([25])]


def test_stream_batches_over_pieces_read_what_the_joined_array_would(tmp_path):
    base = np.random.default_rng(0).integers(0, 50, 20_000).astype(np.uint8)
    train, _, _ = blocks(base, 4000, 1000)
    joined = np.asarray(train)
    for rows in (slice(None), slice(1, 3)):
        a, b = StreamBatches(train, 4, 16, rows), StreamBatches(joined, 4, 16, rows)
        assert len(a) == len(b)
        for k in (0, 5, len(a) - 1):
            assert all(torch.equal(s, t) for s, t in zip(a.batch(k), b.batch(k)))


@pytest.fixture
def many_files(tmp_path: Path) -> Path:
    """Twelve files of different lengths, one without a final newline."""
    d = tmp_path / "many"
    d.mkdir()
    for i in range(12):
        (d / f"{i:02d}.txt").write_text(make_text(20 + 10 * i, seed=i) + ("tail" if i == 3 else ""), encoding="utf-8")
    return d


def test_the_split_default_files_for_a_directory_of_many_files(tmp_path, corpus_file, text_dir, many_files):
    def plan(*args):
        result = run_cli("train", *args, *TINY, "--plan", "--json", "--out", tmp_path / "x")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert "split" not in plan(corpus_file)["train"]  # a file's run writes what it wrote before --split existed
    assert "split" not in plan(text_dir)["train"]  # too few files to draw from: contiguous
    files = plan(many_files)
    assert files["train"]["split"] == "files" and sum(files["split_chars"]) == load_corpus(many_files).info.n_chars
    assert plan(prep(many_files, tmp_path / "prep"))["split_chars"] == files["split_chars"]
    assert "split" not in plan(many_files, "--split", "contiguous")["train"]
    assert "split_chars" not in plan(many_files, "--split", "blocks")
    assert plan(corpus_file, "--split", "blocks")["train"]["split"] == "blocks"
    assert_one_line_error(run_cli("train", corpus_file, "--split", "files", *TINY, "--plan"), "at least 10")
    assert TrainConfig.from_dict({}).split == "contiguous"  # a checkpoint from before --split
    with pytest.raises(CharRNNError, match="--split must be one of"):
        TrainConfig(split="random")


def test_files_that_are_all_too_long_for_val_leave_the_default_contiguous(tmp_path):
    d = tmp_path / "even"
    d.mkdir()
    for i in range(10):
        (d / f"{i}.txt").write_text(make_text(60, seed=i), encoding="utf-8")
    args = (*TINY, "--val-frac", "0.02", "--plan", "--json", "--out", tmp_path / "x")
    result = run_cli("train", d, *args)
    assert result.exit_code == 0 and "split" not in json.loads(result.stdout)["train"]
    assert_one_line_error(run_cli("train", d, *args, "--split", "files"), "no file short enough")


def test_the_files_split_keeps_whole_files_each_in_one_split(many_files):
    corpus = load_corpus(many_files)
    splits = split_corpus(corpus.ids, 0.1, 0.1, "files", corpus.file_starts, seed=5)
    bounds = list(corpus.file_starts) + [len(corpus.ids)]
    regions = {(s, e) for s, e in zip(bounds, bounds[1:])}
    seen = []
    for part in (splits.train, splits.val, splits.test):
        ends = part.starts + np.diff(part.offsets)
        assert set(zip(part.starts.tolist(), ends.tolist())) <= regions  # whole files only
        seen += list(zip(part.starts.tolist(), ends.tolist()))
    assert sorted(seen) == sorted(regions)  # each file in exactly one split
    assert len(splits.val.starts) >= 1 and len(splits.test.starts) >= 1
    assert len(splits.val) >= int(len(corpus.ids) * 0.1)
    again = split_corpus(corpus.ids, 0.1, 0.1, "files", corpus.file_starts, seed=5)
    assert np.array_equal(again.val.starts, splits.val.starts)  # the seed decides
    other = split_corpus(corpus.ids, 0.1, 0.1, "files", corpus.file_starts, seed=6)
    assert not np.array_equal(other.val.starts, splits.val.starts) or not np.array_equal(other.test.starts,
                                                                                       splits.test.starts)


def test_training_with_the_files_split_prepared_equals_raw_and_resumes(tmp_path, many_files):
    out = prep(many_files, tmp_path / "prep")
    raw, mapped = _train(many_files, tmp_path / "raw"), _train(out, tmp_path / "mapped")
    _same_run(raw, mapped)
    assert ckpt.load_checkpoint(mapped / rundir.LAST).run.train_config["split"] == "files"


def test_a_run_keeps_its_split_on_resume_and_eval_uses_it(tmp_path, text_dir):
    run = _train(text_dir, tmp_path / "run", "--max-steps", "6", "--split", "blocks")
    assert ckpt.load_checkpoint(run / rundir.LAST).run.train_config["split"] == "blocks"
    assert_one_line_error(run_cli("train", "--resume", run, "--split", "contiguous"), "--split cannot change")
    assert run_cli("train", "--resume", run, "--max-steps", "12").exit_code == 0
    assert ckpt.load_checkpoint(run / rundir.LAST).run.train_config["split"] == "blocks"
    result = run_cli("eval", run, "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    n = load_corpus(text_dir).info.n_chars
    assert json.loads(result.stdout)["chars"] == int(n * 0.05) - 1  # the test split: its size, scored after its first


@pytest.mark.slow
def test_two_processes_on_a_prepared_directory_train_what_they_train_on_the_text(tmp_path, many_files):
    """torchrun, 2 CPU processes, each mapping ids.bin: the same run as on the text, and it resumes."""
    from test_distributed import MODEL, finish, torchrun

    out = prep(many_files, tmp_path / "prep")
    args = [*MODEL, "--batch-size", "8", "--max-steps", "12", "--eval-every", "6", "--precision", "fp32"]
    runs = {}
    for name, corpus in (("mapped", out), ("raw", many_files)):
        code, log = finish(torchrun(2, [corpus, *args, "--out", tmp_path / name]))
        assert code == 0, log
        runs[name] = tmp_path / name
    _same_run(runs["raw"], runs["mapped"])
    code, log = finish(torchrun(2, ["--resume", runs["mapped"], "--max-steps", "18"]))
    assert code == 0, log
    assert ckpt.load_checkpoint(runs["mapped"] / rundir.LAST).run.step == 18
