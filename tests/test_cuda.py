"""The CUDA paths against the CPU's results. Skipped without a CUDA GPU;
benchmarks/gpu_check.py runs them wherever there is one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from charrnn import device as dev
from charrnn.corpus import Vocab, load_corpus
from charrnn.evaluate import score
from charrnn.inspection.analysis import gradient_flow
from charrnn.inspection.record import record
from charrnn.model import CharRNN, ModelConfig
from charrnn.sample import SampleConfig, generate
from charrnn.stepper import FastStepper
from charrnn.training.config import TrainConfig
from charrnn.training.launch import train_on
from charrnn.training.loop import SilentReporter

from conftest import BUILTIN_KINDS

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")]
CUDA = torch.device("cuda")
VOCAB = Vocab.from_chars('abcdefghis \n"()')
TEXT = 'ab "cd ef" (gh (a) b)\nhe said "abc"\n' * 8


def model_pair(kind: str) -> tuple[CharRNN, CharRNN]:
    torch.manual_seed(0)
    cpu = CharRNN(ModelConfig(kind, VOCAB.size, embedding=8, hidden=32, layers=2)).eval()
    gpu = CharRNN(cpu.config).eval()
    gpu.load_state_dict(cpu.state_dict())
    return cpu, gpu.to(CUDA)


@pytest.mark.parametrize("kind", BUILTIN_KINDS)
def test_fused_step_and_stepper_agree_on_cuda_and_with_the_cpu(kind):
    cpu, gpu = model_pair(kind)
    ids = torch.randint(0, VOCAB.size, (3, 12))
    with torch.no_grad(), dev.exact_fp32("fp32", CUDA):
        fused_cpu, _ = cpu(ids)
        fused, _ = gpu(ids.to(CUDA))
        state, stepper = gpu.init_state(3), FastStepper(gpu, 3)
        for t in range(12):
            logits, state = gpu.step(ids[:, t].to(CUDA), state)
            torch.testing.assert_close(logits, fused[:, t], atol=1e-5, rtol=0)  # IEEE fp32: as tight as the CPU
            torch.testing.assert_close(stepper.step(ids[:, t].to(CUDA)), logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(fused.cpu(), fused_cpu, atol=1e-4, rtol=0)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_on_cuda_follows_the_cpu(tmp_path, corpus_file, precision):
    corpus = load_corpus(corpus_file)
    shape = ModelConfig("lstm", corpus.vocab.size, embedding=8, hidden=32, layers=2)
    config = TrainConfig(seq_len=16, batch_size=8, max_steps=20, eval_every=10, seed=1, precision="fp32", device="cpu")
    on_cpu = train_on(corpus, config, tmp_path / "cpu", shape)
    gpu_config = TrainConfig(**{**config.to_dict(), "device": "cuda", "precision": precision})
    seen = []

    class Info(SilentReporter):
        def start(self, total_steps, start_step, info):
            seen.append(info["precision"])

    on_gpu = train_on(corpus, gpu_config, tmp_path / "gpu", shape, reporter=Info())
    assert seen == [dev.describe_precision(precision, CUDA)]
    tolerance = 1e-3 if precision == "fp32" else 5e-2
    assert abs(on_gpu.best_val_loss - on_cpu.best_val_loss) < tolerance * on_cpu.best_val_loss


@pytest.mark.parametrize("kind", BUILTIN_KINDS)
def test_recording_and_gradient_flow_on_cuda_match_the_cpu(kind):
    cpu, gpu = model_pair(kind)
    on_cpu, on_gpu = record(cpu, VOCAB, TEXT), record(gpu, VOCAB, TEXT)
    for name, values in on_cpu.tensors.items():
        np.testing.assert_allclose(on_gpu.tensors[name], values, atol=1e-4, rtol=0)
    np.testing.assert_allclose(on_gpu.loss, on_cpu.loss, atol=1e-4, rtol=0)
    flow_cpu, flow_gpu = gradient_flow(cpu, VOCAB, TEXT, 10), gradient_flow(gpu, VOCAB, TEXT, 10)
    for name in flow_cpu:
        np.testing.assert_allclose(flow_gpu[name], flow_cpu[name], rtol=1e-3)


def test_sampling_and_scoring_on_cuda():
    cpu, gpu = model_pair("gru")
    config = SampleConfig(length=100, seed=3, num_samples=4, top_k=5)
    first = list(generate(gpu, VOCAB, "ab", config))
    assert first == list(generate(gpu, VOCAB, "ab", config))  # seeded samples repeat on the same device
    ids = VOCAB.encode(TEXT)
    assert abs(score(gpu, ids).loss - score(cpu, ids).loss) < 1e-4


def test_scoring_in_streams_on_cuda_matches_the_cpu():
    cpu, gpu = model_pair("lstm")
    ids = VOCAB.encode(TEXT * 20)
    for streams, warmup in ((1, 0), (8, 16)):
        on_gpu, on_cpu = score(gpu, ids, streams=streams, warmup=warmup), score(cpu, ids, streams=streams, warmup=warmup)
        assert on_gpu.chars == on_cpu.chars and abs(on_gpu.loss - on_cpu.loss) < 1e-4


def test_deterministic_training_on_cuda_repeats_bit_for_bit(tmp_path, corpus_file):
    corpus = load_corpus(corpus_file)
    shape = ModelConfig("lstm", corpus.vocab.size, embedding=8, hidden=32, layers=2, dropout=0.2)
    config = TrainConfig(seq_len=16, batch_size=8, max_steps=12, eval_every=6, device="cuda", precision="fp32",
                         deterministic=True)  # fmt: skip
    runs = []
    for name in ("a", "b"):
        seen: list[float] = []

        class Losses(SilentReporter):
            def step(self, step, loss, chars_per_s):
                seen.append(loss)

        train_on(corpus, config, tmp_path / name, shape, reporter=Losses())
        runs.append(seen)
    assert len(runs[0]) == 12 and runs[0] == runs[1]


def test_beam_search_on_cuda_finds_what_the_cpu_finds():
    from charrnn.beam import beam_search

    cpu, gpu = model_pair("lstm")
    with torch.no_grad():  # sharpen the output: argmax margins far above fp32 rounding
        for m in (cpu, gpu):
            m.head.weight.mul_(4)
    config = SampleConfig(length=40, beam=4, num_samples=2, stop="\n")
    on_cpu, on_gpu = beam_search(cpu, VOCAB, "ab", config), beam_search(gpu, VOCAB, "ab", config)
    assert [h.text for h in on_gpu] == [h.text for h in on_cpu]
    for a, b in zip(on_gpu, on_cpu):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
