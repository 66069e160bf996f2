"""The corpus: its vocabulary, how it is read, and how it is cut into
splits and batches, one job a module:

    vocab.py     Vocab: characters <-> ids
    messages.py  characters named safely in one-line errors
    reader.py    a file or directory of text -> Corpus (ids, vocab, CorpusInfo)
    prepared.py  a corpus encoded once into a directory (ids.bin + manifest), memory-mapped
    writer.py    the encoding prepared.py writes, in worker processes
    loading.py   load_corpus: a path, whichever of the two it holds -> Corpus
    pieces.py    splits made of stretches of the corpus (the blocks and files splits)
    batches.py   ids -> train/val/test splits -> StreamBatches, eval streams
"""

from .batches import (IGNORE, SPLITS, Splits, StreamBatches, check_split, eval_streams, split_chars, split_corpus,
                      split_sizes, steps_per_epoch, stream_count)  # fmt: skip
from .loading import load_corpus
from .messages import describe_chars, describe_unseen, unseen_error
from .pieces import Pieces
from .reader import Corpus, CorpusInfo, corpus_files, shipped_corpus
from .vocab import Vocab

__all__ = [
    "IGNORE", "SPLITS", "Corpus", "CorpusInfo", "Pieces", "Splits", "StreamBatches", "Vocab", "check_split",
    "corpus_files", "describe_chars", "describe_unseen", "eval_streams", "load_corpus", "shipped_corpus", "split_chars",
    "split_corpus", "split_sizes", "steps_per_epoch", "stream_count", "unseen_error",
]  # fmt: skip
