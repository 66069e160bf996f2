"""charrnn: train, sample and inspect character-level RNN language models."""

__version__ = "0.1.0"
