"""The GPU and Apple MPS paths, checked on the CPU: what each device is
asked to do (copies, precisions, refusals, GPU binding), and the loop's
deferred loss reads, which a GPU run uses. tests/test_cuda.py runs the
same paths on a real GPU."""

from __future__ import annotations

import os

import pytest
import torch

from charrnn import device as dev
from charrnn.corpus import load_corpus
from charrnn.errors import CharRNNError, TrainingDiverged
from charrnn.model import CharRNN, ModelConfig
from charrnn.training.config import TrainConfig
from charrnn.training.distributed import gpu_for
from charrnn.training import loop
from charrnn.training.distributed import Dist
from charrnn.training.loop import SilentReporter
from charrnn.training.plan import Options, make_plan


class Losses(SilentReporter):
    def __init__(self):
        self.losses, self.steps = [], []

    def step(self, step, loss, chars_per_s):
        self.steps.append(step)
        self.losses.append(loss)


def test_batches_are_copied_without_blocking_only_to_cuda(monkeypatch):
    seen = []
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **kw: seen.append(kw["non_blocking"]) or self)
    for name in ("cuda", "mps", "cpu"):
        dev.to_device(torch.zeros(2), torch.device(name))
    assert seen == [True, False, False]


@pytest.mark.parametrize("before", [None, ":16:8"])
def test_deterministic_kernels_put_the_cublas_setting_back(monkeypatch, before):
    if before is None:
        monkeypatch.delenv(dev.CUBLAS_WORKSPACE, raising=False)
    else:
        monkeypatch.setenv(dev.CUBLAS_WORKSPACE, before)
    with dev.deterministic_kernels(True, torch.device("cuda")):
        assert os.environ[dev.CUBLAS_WORKSPACE] == (before or ":4096:8")  # a setting already made is kept
    assert os.environ.get(dev.CUBLAS_WORKSPACE) == before
    with pytest.raises(RuntimeError, match="stop"), dev.deterministic_kernels(True, torch.device("cuda")):
        raise RuntimeError("stop")  # a run that ends in an error puts it back too
    assert os.environ.get(dev.CUBLAS_WORKSPACE) == before


def test_a_multilayer_lstm_with_dropout_is_refused_on_mps(tmp_path, corpus_file, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    corpus = load_corpus(corpus_file)
    config = TrainConfig(seq_len=8, batch_size=4, max_steps=2, device="mps")
    shape = ModelConfig("lstm", corpus.vocab.size, embedding=4, hidden=8, layers=2, dropout=0.2)
    with pytest.raises(CharRNNError, match="MPS.*ignores the dropout between layers"):
        _plan(corpus, config, shape, tmp_path / "run", torch.device("mps"))
    assert not (tmp_path / "run").exists()  # refused before anything was written
    for ok in ({"dropout": 0.0}, {"layers": 1}):  # what the message suggests is not refused by the check
        fine = ModelConfig(**{**shape.to_dict(), **ok})
        fine.cell.check_device(torch.device("mps"), fine.layers, fine.dropout)
    ModelConfig("gru", 5, layers=2, dropout=0.2).cell.check_device(torch.device("mps"), 2, 0.2)  # only the LSTM's bug


def test_bf16_on_cuda_keeps_the_recurrence_in_fp32(monkeypatch):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    real_onednn_bf16 = dev.onednn_has_bf16()
    monkeypatch.setattr(dev, "onednn_has_bf16", lambda: True)
    assert dev.recurrence_in_fp32("bf16", cuda) and not dev.recurrence_in_fp32("bf16", cpu)
    assert not dev.recurrence_in_fp32("fp16", cuda) and not dev.recurrence_in_fp32("fp32", cuda)
    assert dev.describe_precision("bf16", cuda) == "bf16 (recurrence in fp32)"
    assert dev.describe_precision("fp32", cuda) == "fp32 (TF32 off)"
    assert dev.describe_precision("bf16", cpu) == "bf16"
    monkeypatch.setattr(dev, "onednn_has_bf16", lambda: False)  # x86 without AVX-512
    assert dev.recurrence_in_fp32("bf16", cpu) and not dev.recurrence_in_fp32("fp32", cpu)
    assert dev.describe_precision("bf16", cpu) == "bf16 (recurrence in fp32)"
    # The mechanism, under the CPU's autocast: the recurrent module sees fp32 only when asked.
    model = CharRNN(ModelConfig("lstm", 6, embedding=4, hidden=8, layers=2))
    seen = []
    model.rnn.register_forward_hook(lambda mod, args, out: seen.append(out[0].dtype))
    ids = torch.randint(0, 6, (2, 5))
    modes = (False, True) if real_onednn_bf16 else (True,)  # without it a bf16 LSTM cannot run here
    for fp32 in modes:
        model.fp32_recurrence = fp32
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits, state = model(ids)
        assert logits.dtype == torch.bfloat16  # the head stays in autocast either way
    assert seen == [torch.float32 if fp32 else torch.bfloat16 for fp32 in modes]  # what the recurrence computed in
    # Only a fused module is kept out: a scanning kind's matmuls stay in
    # bf16, and its scan is fp32 on its own (cells/scan.py).
    scanning = CharRNN(ModelConfig("mingru", 6, embedding=4, hidden=8, layers=2))
    scanning.fp32_recurrence = True
    inside = []
    scanning.rnn.register_forward_pre_hook(lambda mod, args: inside.append(torch.is_autocast_enabled("cpu")))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, state = scanning(ids)
    assert inside == [True] and state[0].dtype == torch.float32


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_bf16_trains_on_a_cpu_whose_onednn_lacks_bf16(tmp_path, corpus_file, monkeypatch, kind):
    # On x86 without AVX-512 PyTorch's bf16 LSTM fails to build its oneDNN
    # primitive; there the fused recurrence runs in fp32, the rest in bf16.
    monkeypatch.setattr(dev, "onednn_has_bf16", lambda: False)
    corpus = load_corpus(corpus_file)
    config = TrainConfig(seq_len=8, batch_size=4, max_steps=3, eval_every=3, precision="bf16", device="cpu")
    plan = _plan(corpus, config, ModelConfig(kind, corpus.vocab.size, embedding=4, hidden=8), tmp_path / "run")
    model, _ = loop._begin(plan, corpus, None, Dist())
    assert model.fp32_recurrence
    losses = Losses()
    result = loop.run(plan, corpus, reporter=losses)
    assert result.step == 3 and torch.isfinite(torch.tensor(losses.losses)).all()


def test_fp32_on_cuda_turns_tf32_off_for_the_run_only():
    knobs = (torch.backends.cudnn.rnn, torch.backends.cuda.matmul)
    before = [k.fp32_precision for k in knobs]
    with dev.exact_fp32("fp32", torch.device("cuda")):
        assert [k.fp32_precision for k in knobs] == ["ieee", "ieee"]
    assert [k.fp32_precision for k in knobs] == before
    with dev.exact_fp32("bf16", torch.device("cuda")), dev.exact_fp32("fp32", torch.device("cpu")):
        assert [k.fp32_precision for k in knobs] == before



def test_inference_asks_for_ieee_fp32_where_the_model_is(monkeypatch):
    """eval, inspect, gradient flow and a sample's prime run the fused kernel:
    on CUDA it must not be left on cuDNN's TF32 default (test_cuda.py checks
    the numbers on a GPU; here, that each path asks on the model's device)."""
    from charrnn.corpus import Vocab
    from charrnn.evaluate import score
    from charrnn.inspection.analysis import gradient_flow
    from charrnn.inspection.record import record
    from charrnn.prime import read_prime

    seen = []
    real = dev.exact_fp32
    monkeypatch.setattr(dev, "exact_fp32", lambda precision, device: seen.append((precision, device.type)) or real(precision, device))
    vocab = Vocab.from_chars("ab \n")
    model = CharRNN(ModelConfig("gru", vocab.size, embedding=4, hidden=8, layers=2))
    ids = vocab.encode("ab ba\n" * 20)
    score(model, ids, seq_len=16)
    record(model, vocab, "ab ba\n" * 4)
    gradient_flow(model, vocab, "ab ba\n" * 10, horizon=5, positions=4)
    read_prime(model, torch.as_tensor(ids[:9].astype("int64")))
    assert seen == [("fp32", "cpu")] * 4

def test_each_process_finds_its_gpu():
    assert [gpu_for(rank, 4) for rank in range(4)] == [0, 1, 2, 3]
    assert gpu_for(3, 1) == 0  # one GPU bound to each process: whatever its local rank
    with pytest.raises(CharRNNError, match="process 2 has no GPU"):
        gpu_for(2, 2)


def _plan(corpus, config, shape, out, device=torch.device("cpu")):
    return make_plan(Options(config, shape, size="fixed"), corpus.info, corpus.vocab, device, str(out))


def _train(corpus, tmp_path, name, reporter, sync_every, monkeypatch):
    config = TrainConfig(seq_len=8, batch_size=4, max_steps=10, eval_every=5, warmup_steps=2, seed=3, device="cpu",
                         precision="fp32")  # fmt: skip
    shape = ModelConfig("gru", corpus.vocab.size, embedding=4, hidden=8, layers=2, dropout=0.1)
    # what a GPU run does: read the losses a block of steps at a time
    monkeypatch.setattr(loop, "sync_every", lambda device: sync_every)
    return loop.run(_plan(corpus, config, shape, tmp_path / name), corpus, reporter=reporter)


def test_reading_losses_a_block_at_a_time_changes_nothing(tmp_path, corpus_file, monkeypatch):
    corpus = load_corpus(corpus_file)
    each, block = Losses(), Losses()
    a = _train(corpus, tmp_path, "a", each, 1, monkeypatch)
    b = _train(corpus, tmp_path, "b", block, 4, monkeypatch)
    assert block.steps == each.steps == list(range(1, 11))  # every step reported, in order
    assert block.losses == each.losses and a.last_entry["train_loss"] == b.last_entry["train_loss"]


def test_a_divergence_found_in_a_block_names_its_step_and_saves_nothing(tmp_path, corpus_file, monkeypatch):
    corpus = load_corpus(corpus_file)
    real, calls = CharRNN.forward, []

    def poisoned(self, ids, state=None):
        calls.append(1)
        logits, new = real(self, ids, state)
        return (logits * float("nan") if len(calls) == 3 else logits), new

    monkeypatch.setattr(CharRNN, "forward", poisoned)
    with pytest.raises(TrainingDiverged, match="diverged at step 3"):
        _train(corpus, tmp_path, "a", Losses(), 4, monkeypatch)
    assert not (tmp_path / "a" / "last.safetensors").exists()
