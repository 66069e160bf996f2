"""The corpus: its vocabulary, how it is read, and how it is cut into
splits and batches, one job a module:

    vocab.py     Vocab: characters <-> ids
    messages.py  characters named safely in one-line errors
    reader.py    a file or directory -> Corpus (ids, vocab, CorpusInfo)
    batches.py   ids -> train/val/test splits -> StreamBatches, eval streams
"""

from .batches import (IGNORE, Splits, StreamBatches, check_split, eval_streams, split_corpus, split_sizes,
                      steps_per_epoch, stream_count)  # fmt: skip
from .messages import describe_chars, describe_unseen, unseen_error
from .reader import Corpus, CorpusInfo, corpus_files, load_corpus, shipped_corpus
from .vocab import Vocab

__all__ = [
    "IGNORE", "Corpus", "CorpusInfo", "Splits", "StreamBatches", "Vocab", "check_split", "corpus_files",
    "describe_chars", "describe_unseen", "eval_streams", "load_corpus", "shipped_corpus", "split_corpus",
    "split_sizes", "steps_per_epoch", "stream_count", "unseen_error",
]  # fmt: skip
