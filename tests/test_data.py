from __future__ import annotations

import numpy as np
import pytest

from charrnn.corpus import IGNORE, StreamBatches, Vocab, eval_streams, load_corpus, split_corpus
from charrnn.errors import CharRNNError


def test_vocab_round_trip_unicode(tmp_path):
    text = "한국어 텍스트 🙂👍🏽 e\u0301 café\n"  # Korean, emoji with modifier, combining accent
    p = tmp_path / "u.txt"
    p.write_text(text * 3, encoding="utf-8")
    corpus = load_corpus(p)
    assert corpus.vocab.decode(corpus.ids) == text * 3
    assert "🙂" in corpus.vocab.chars and "\u0301" in corpus.vocab.chars
    assert corpus.ids.dtype == np.uint8


def test_characters_the_vocab_lacks_are_named_and_counted_or_left_out():
    vocab = Vocab.from_chars("abc ")
    text = "a b\x1b c\u7dad \x1b"
    with pytest.raises(CharRNNError) as refused:
        vocab.encode_known(text, "the prime", skipping="drops them")
    assert str(refused.value) == (
        "the prime holds characters the model has never seen: '\\x1b' (2 times), '\u7dad' (once) (--unknown skip drops them)"
    )
    ids, skipped = vocab.encode_known(text, skip_unknown=True)
    assert vocab.decode(ids) == "a b c " and skipped == 3 and ids.dtype == vocab.dtype
    assert vocab.encode_known("cab", skip_unknown=True)[1] == 0 and len(vocab.encode_known("")[0]) == 0
    with pytest.raises(CharRNNError, match=r"^text holds characters the model has never seen: 'z' \(once\)$"):
        vocab.encode("abz")
    other = Vocab.from_chars("abz")  # a text in another vocabulary's ids, as eval reads a file
    ids, skipped = vocab.translate(other.encode("zabza"), other, skip_unknown=True)
    assert vocab.decode(ids) == "aba" and skipped == 2


def test_compact_dtype_grows_with_vocab():
    assert Vocab.from_chars("ab").dtype == np.uint8
    assert Vocab.from_chars(chr(0x4E00 + i) for i in range(300)).dtype == np.uint16


def test_bom_is_stripped(tmp_path):
    p = tmp_path / "bom.txt"
    p.write_bytes(b"\xef\xbb\xbfhello\n")
    assert load_corpus(p).vocab.decode(load_corpus(p).ids) == "hello\n"


def test_other_encoding(tmp_path):
    p = tmp_path / "latin.txt"
    p.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(CharRNNError, match="byte offset 3"):
        load_corpus(p)
    corpus = load_corpus(p, encoding="latin-1")
    assert corpus.vocab.decode(corpus.ids) == "café\n"


def test_invalid_utf8_names_byte_offset_across_chunks(tmp_path, monkeypatch):
    from charrnn.corpus import reader as data

    monkeypatch.setattr(data, "CHUNK_BYTES", 7)  # the bad byte lies past several chunks
    p = tmp_path / "bad.txt"
    p.write_bytes("ééééé".encode() + b"abc\xff")
    with pytest.raises(CharRNNError, match=r"0xff at byte offset 13"):
        load_corpus(p)


def test_multibyte_characters_split_across_chunks(tmp_path, monkeypatch):
    from charrnn.corpus import reader as data

    monkeypatch.setattr(data, "CHUNK_BYTES", 3)
    text = "a한🙂b" * 10
    p = tmp_path / "u.txt"
    p.write_text(text, encoding="utf-8")
    corpus = load_corpus(p)
    assert corpus.vocab.decode(corpus.ids) == text


@pytest.mark.parametrize(
    "content, message",
    [(b"", "is empty"), (b"abc\x00def", "NUL byte at byte offset 3"), (b"\xef\xbb\xbf", "is empty")],
)
def test_bad_files(tmp_path, content, message):
    p = tmp_path / "f.txt"
    p.write_bytes(content)
    with pytest.raises(CharRNNError, match=message):
        load_corpus(p)


def test_missing_and_empty_directory(tmp_path):
    with pytest.raises(CharRNNError, match="not found"):
        load_corpus(tmp_path / "nope")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "img.bin").write_bytes(b"\x00\x01\x02")
    with pytest.raises(CharRNNError, match="no text files"):
        load_corpus(tmp_path / "d")


def test_directory_reads_text_files_sorted_recursively(tmp_path):
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "b.txt").write_text("second")  # no trailing newline: one is added between files
    (d / "a.txt").write_text("first\n")
    (d / "sub" / "c.py").write_text("third\n")
    (d / ".hidden").write_text("never\n")
    (d / "blob.bin").write_bytes(b"\x00binary")
    corpus = load_corpus(d)
    assert corpus.vocab.decode(corpus.ids) == "first\nsecond\nthird\n"
    assert corpus.info.n_files == 3


def test_splits_are_contiguous():
    ids = np.arange(100, dtype=np.uint8)
    s = split_corpus(ids, 0.1, 0.2)
    assert (len(s.train), len(s.val), len(s.test)) == (70, 10, 20)
    assert np.array_equal(np.concatenate([s.train, s.val, s.test]), ids)
    with pytest.raises(CharRNNError):
        split_corpus(ids, 0.6, 0.5)
    with pytest.raises(CharRNNError, match="validation split has 1"):
        split_corpus(ids, 0.01, 0.0)


def test_stream_batches_match_the_picture():
    ids = np.arange(25, dtype=np.uint8)  # a..y in the docstring
    b = StreamBatches(ids, batch_size=3, seq_len=4)
    assert len(b) == 2
    x0, y0 = b.batch(0)
    x1, _ = b.batch(1)
    assert x0.tolist() == [[0, 1, 2, 3], [8, 9, 10, 11], [16, 17, 18, 19]]
    assert y0.tolist() == [[1, 2, 3, 4], [9, 10, 11, 12], [17, 18, 19, 20]]
    assert x1[:, 0].tolist() == [4, 12, 20]  # each stream continues where it stopped
    assert x0.dtype.is_floating_point is False and x0.dtype.itemsize == 8


def test_too_short_for_one_batch_says_what_fits():
    with pytest.raises(CharRNNError, match="--batch-size 2 would fit with --seq-len 10"):
        StreamBatches(np.zeros(25, dtype=np.uint8), batch_size=4, seq_len=10)
    with pytest.raises(CharRNNError, match="--batch-size 1 --seq-len 4 would fit"):
        StreamBatches(np.zeros(5, dtype=np.uint8), batch_size=4, seq_len=10)


@pytest.mark.parametrize("n", [2, 3, 23, 100, 1025])
@pytest.mark.parametrize(("streams", "warmup"), [(1, 0), (2, 3), (4, 7), (32, 5), (3, 0)])
@pytest.mark.parametrize("world", [1, 3])
def test_eval_streams_score_every_target_once(n, streams, warmup, world):
    ids = (np.arange(n) % 200).astype(np.uint8)
    scored, first_rows = [], []
    for rank in range(world):
        for i, (x, y) in enumerate(eval_streams(ids, streams, seq_len=4, warmup=warmup, rank=rank, world=world)):
            keep = (y != IGNORE).numpy()
            assert ((x.numpy()[keep].astype(int) + 1) % 200 == y.numpy()[keep]).all()  # each target follows its input
            scored += [int(v) for v in y.numpy()[keep]]
            if rank == 0 and i == 0:
                first_rows = x.numpy()[0].tolist()
    assert sorted(scored) == sorted(int(v) for v in ids[1:])  # every target, exactly once
    assert first_rows[:1] == [0]  # stream 0 reads from the text's start


def test_eval_streams_warm_each_stream_up_before_it_scores():
    ids = (np.arange(1000) % 200).astype(np.uint8)
    (x, y), *_ = list(eval_streams(ids, streams=4, seq_len=300, warmup=50))
    ignored = (y == IGNORE).numpy()
    assert not ignored[0].any() and ignored[1:, :50].all() and not ignored[1:-1, 50:].any()
    tail = ignored[-1, 50:]  # the last stream may run past the text's end: only there is it ignored
    assert not tail[: len(tail) - tail.sum()].any() and tail.sum() < 4


def test_bad_byte_offset_counts_the_bom(tmp_path):
    p = tmp_path / "bom.txt"
    p.write_bytes(b"\xef\xbb\xbfab\xff")
    with pytest.raises(CharRNNError, match="0xff at byte offset 5"):
        load_corpus(p)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_wide_encodings_are_not_taken_for_binary(tmp_path, encoding):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.txt").write_bytes("héllo 한\n".encode(encoding))
    for path in (d / "a.txt", d):
        corpus = load_corpus(path, encoding=encoding)
        assert corpus.vocab.decode(corpus.ids) == "héllo 한\n"
    (d / "b.txt").write_bytes("x\0y".encode(encoding))
    with pytest.raises(CharRNNError, match="U\\+0000"):
        load_corpus(d / "b.txt", encoding=encoding)


def test_corpus_path_is_stored_absolute(tmp_path, monkeypatch):
    (tmp_path / "c.txt").write_text("hello\n")
    monkeypatch.chdir(tmp_path)
    assert load_corpus("c.txt").info.path == str(tmp_path / "c.txt")


@pytest.mark.parametrize(("n", "streams", "warmup", "sample"), [(5000, 8, 50, 800), (5000, 32, 20, 333), (999, 4, 0, 10),
                                                                 (20000, 3, 100, 4000)])  # fmt: skip
@pytest.mark.parametrize("world", [1, 2])
def test_a_sampled_evaluation_scores_fixed_blocks_spread_over_the_text(n, streams, warmup, sample, world):
    ids = (np.arange(n) % 200).astype(np.uint8)

    def scored_positions():
        at = []
        for rank in range(world):
            for x, y in eval_streams(ids, streams, seq_len=16, warmup=warmup, rank=rank, world=world, sample=sample):
                keep = (y != IGNORE).numpy()
                assert ((x.numpy()[keep].astype(int) + 1) % 200 == y.numpy()[keep]).all()
                at += [(int(v) - 1) % 200 for v in x.numpy()[keep]]  # input values stand for positions mod 200
        return at

    first = scored_positions()
    assert sample <= len(first) < sample + streams  # about `sample`, each block equal
    assert first == scored_positions()  # the same characters every time


def test_sampled_blocks_start_at_the_text_start_end_at_its_end_and_never_overlap():
    from charrnn.corpus.batches import sample_layout

    first, scored, end = sample_layout(targets=10_000, streams=8, warmup=100, sample=2_000)
    assert scored[0] == 0 and end[-1] == 10_000 and (end - scored == 250).all()
    assert (scored[1:] >= end[:-1]).all() and (scored - first <= 100).all()
    assert sample_layout(targets=1_000, streams=8, warmup=10, sample=1_000) is None  # would cover it: score it all


def test_a_sample_as_large_as_the_text_scores_it_exactly_as_no_sample():
    ids = (np.arange(3000) % 200).astype(np.uint8)
    whole = [(x.tolist(), y.tolist()) for x, y in eval_streams(ids, 8, 32, 40)]
    assert whole == [(x.tolist(), y.tolist()) for x, y in eval_streams(ids, 8, 32, 40, sample=2999)]
