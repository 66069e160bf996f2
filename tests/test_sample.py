from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest
import torch

from charrnn import checkpoint as ckpt
from charrnn.corpus import Vocab
from charrnn.errors import CharRNNError
from charrnn.model import CharRNN, ModelConfig
from charrnn.sample import SampleConfig, filter_logits, generate
from charrnn.stepper import FastStepper

from conftest import BUILTIN_KINDS, run_cli

VOCAB = Vocab.from_chars("abcdefgh\n ")


def model_of(kind="lstm", seed=0) -> CharRNN:
    torch.manual_seed(seed)
    m = CharRNN(ModelConfig(kind, VOCAB.size, embedding=3, hidden=6, layers=2)).eval()
    with torch.no_grad():  # sharpen the output so samples are not uniform noise
        m.head.weight.mul_(4)
    return m


def sample_text(model, prime="ab", **kw) -> list[str]:
    config = SampleConfig(**{"length": 40, "seed": 7, **kw})
    cols = list(generate(model, VOCAB, prime, config))
    return ["".join(step[j] for step in cols) for j in range(config.num_samples)]


@pytest.mark.parametrize("kind", BUILTIN_KINDS)
@pytest.mark.parametrize("batch", [1, 3])
def test_fast_stepper_equals_fused_forward(kind, batch):
    model = model_of(kind)
    ids = torch.randint(0, VOCAB.size, (batch, 12))
    with torch.no_grad():
        fused, _ = model(ids)
        stepper = FastStepper(model, batch)
        for t in range(12):
            torch.testing.assert_close(stepper.step(ids[:, t]), fused[:, t], atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", BUILTIN_KINDS)
def test_argmax_equals_greedy_decoding_with_fused_forward(kind):
    model = model_of(kind)
    out = sample_text(model, temperature=0)[0]
    text = "ab"
    with torch.no_grad():
        for _ in range(40):  # re-run the whole context each time: slow, obviously right
            logits, _ = model(torch.as_tensor(VOCAB.encode(text).astype("int64"))[None])
            text += VOCAB.chars[int(logits[0, -1].argmax())]
    assert out == text[2:]


def test_first_character_follows_softmax_over_temperature():
    model = model_of(seed=3)
    temperature, n = 0.7, 4000
    config = SampleConfig(length=1, temperature=temperature, seed=11, num_samples=n)
    first = next(iter(generate(model, VOCAB, "abc", config)))
    freq = torch.tensor([first.count(c) / n for c in VOCAB.chars])
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(VOCAB.encode("abc").astype("int64"))[None])
    expected = (logits[0, -1] / temperature).softmax(-1)
    # 4000 draws: the standard error of a frequency is at most 0.008
    assert (freq - expected).abs().max() < 0.03, (freq, expected)


def _allowed(logits, k=None, p=None):
    return torch.isfinite(filter_logits(logits, k, p))


@pytest.mark.parametrize("k, p", [(2, None), (None, 0.5), (3, 0.6)])
def test_top_k_and_top_p_never_leave_the_allowed_set(k, p):
    model = model_of()
    temperature = 1.5  # filters apply to the tempered distribution, as in most samplers
    text = sample_text(model, prime="a", temperature=temperature, top_k=k, top_p=p, length=60)[0]
    context = "a"
    with torch.no_grad():
        for ch in text:
            logits, _ = model(torch.as_tensor(VOCAB.encode(context).astype("int64"))[None])
            assert _allowed(logits[0, -1] / temperature, k, p)[VOCAB.chars.index(ch)], (context, ch)
            context += ch


def test_filter_logits_sets():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    assert _allowed(logits, k=2).tolist() == [[True, True, False, False]]
    probs = logits.softmax(-1)[0]  # 0.64, 0.24, 0.09, 0.03
    assert probs[0] < 0.7 < probs[0] + probs[1]
    assert _allowed(logits, p=0.7).tolist() == [[True, True, False, False]]
    assert _allowed(logits, p=0.5).tolist() == [[True, False, False, False]]
    assert _allowed(logits, p=1.0).all()


def test_batch_samples_differ_and_each_is_reproducible():
    model = model_of()
    a = sample_text(model, num_samples=4, seed=5)
    b = sample_text(model, num_samples=4, seed=5)
    c = sample_text(model, num_samples=4, seed=6)
    assert a == b
    assert len(set(a)) == 4
    assert a != c


def test_stop_string_ends_each_sample():
    model = model_of()
    samples = sample_text(model, num_samples=3, length=200, stop=" ", temperature=1.0)
    for s in samples:
        assert s.count(" ") <= 1 and (s.endswith(" ") or len(s) == 200)


@pytest.mark.parametrize(
    "kw", [{"temperature": -1}, {"temperature": float("nan")}, {"top_k": 0}, {"top_p": 0}, {"top_p": 1.5}, {"length": -1}]
)
def test_bad_sample_configs(kw):
    with pytest.raises(CharRNNError):
        SampleConfig(**kw)


def test_unknown_prime_characters(trained_run):
    result = run_cli("sample", trained_run, "--prime", "AL\x1b[31m€")
    assert result.exit_code == 1
    assert "'\\x1b'" in result.stderr and "'€'" in result.stderr and "\x1b" not in result.stderr
    result = run_cli("sample", trained_run, "--prime", "AL€", "--unknown", "skip", "--length", "5", "--no-echo")
    assert result.exit_code == 0 and len(result.stdout) == 6  # 5 characters and a newline


def test_output_file_and_no_overwrite(trained_run, tmp_path):
    out = tmp_path / "s.txt"
    assert run_cli("sample", trained_run, "--length", "30", "--seed", "1", "--output", out).exit_code == 0
    first = out.read_text()
    assert len(first) == 31
    result = run_cli("sample", trained_run, "--length", "30", "--seed", "2", "--output", out)
    assert result.exit_code == 1 and "exists" in result.stderr
    assert out.read_text() == first
    assert run_cli("sample", trained_run, "--length", "30", "--seed", "2", "--output", out, "--force").exit_code == 0
    assert out.read_text() != first


def test_same_seed_same_output(trained_run):
    a = run_cli("sample", trained_run, "--length", "80", "--seed", "4", "--num-samples", "2")
    b = run_cli("sample", trained_run, "--length", "80", "--seed", "4", "--num-samples", "2")
    assert a.exit_code == 0 and a.stdout == b.stdout and "sample 2" in a.stdout


def test_markup_and_control_characters_never_reach_a_terminal(tmp_path):
    """A model that has learned markup and escape sequences prints them
    literally (markup) or escaped (controls) on a real terminal."""
    vocab = Vocab.from_chars("[bold]2J\x1b\u202e")
    torch.manual_seed(0)
    model = CharRNN(ModelConfig("rnn", vocab.size, embedding=2, hidden=3, layers=1))
    ckpt.save_checkpoint(tmp_path / "m.safetensors", model, vocab)
    prime = "[bold]\x1b[2J\u202e"
    code = (
        "import sys; from charrnn.cli.entry import main; sys.argv = ['charrnn', 'sample', sys.argv[1],"
        " '--prime', sys.argv[2], '--length', '200', '--seed', '0']; main()"
    )
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "m.safetensors"), prime], stdout=follower, stderr=subprocess.PIPE
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    shown = b"".join(chunks).decode("utf-8")
    assert "\x1b" not in shown and "\u202e" not in shown
    assert shown.startswith("[bold]\\x1b[2J\\u202e")  # the prime, literal and escaped
    assert shown.count("\\x1b") > 1  # generated escapes are escaped too


def test_streaming_flushes_as_it_goes(trained_run):
    from charrnn.cli.sample import write_samples

    state = ckpt.load_checkpoint(trained_run)
    events = []
    write_samples(
        generate(state.model, state.vocab, "A", SampleConfig(length=10, seed=1)), 1, "A",
        lambda s: events.append(("w", s)), lambda: events.append(("f", "")),
    )  # fmt: skip
    writes_before_first_flush = next(i for i, e in enumerate(events) if e[0] == "f")
    assert writes_before_first_flush <= 2  # the prime and the first character, then a flush
    assert sum(e[0] == "f" for e in events) >= 10


def test_long_samples_cross_noise_blocks_and_stay_reproducible():
    model = model_of()
    a = sample_text(model, length=2500, num_samples=2, seed=9)  # > one block of noise
    b = sample_text(model, length=2500, num_samples=2, seed=9)
    assert a == b and len(a[0]) == 2500 and a[0] != a[1]
    assert a[0][:100] == sample_text(model, length=100, num_samples=2, seed=9)[0]  # blocks do not change the stream


def test_long_prime_is_read_in_chunks_exactly():
    from charrnn.prime import read_prime

    model = model_of("gru")
    ids = torch.randint(0, VOCAB.size, (300,))
    with torch.no_grad():
        whole, state = model(ids[None])
        chunked, cstate = read_prime(model, ids, chunk=64)
    torch.testing.assert_close(chunked, whole[:, -1], atol=1e-5, rtol=0)
    torch.testing.assert_close(cstate[0], state[0], atol=1e-5, rtol=0)


def test_prime_file_stop_and_no_echo_through_the_cli(trained_run, tmp_path):
    prime = tmp_path / "prime.txt"
    prime.write_text("ALICE:", encoding="utf-8")
    result = run_cli("sample", trained_run, "--prime-file", prime, "--stop", ".", "--length", "300",
                     "--num-samples", "3", "--seed", "2", "--no-echo")  # fmt: skip
    assert result.exit_code == 0, result.output
    parts = result.stdout.split("\n\n----- sample ")
    assert len(parts) == 3 and not parts[0].startswith("ALICE:")
    assert all(p.rstrip("\n").endswith(".") for p in parts)
    both = run_cli("sample", trained_run, "--prime-file", prime, "--prime", "A")
    assert both.exit_code == 1 and "not both" in both.stderr


def test_temperatures_too_small_and_too_many_samples_are_refused():
    with pytest.raises(CharRNNError, match="use 0"):
        SampleConfig(temperature=1e-39)
    with pytest.raises(CharRNNError, match="--num-samples"):
        SampleConfig(num_samples=10**10)


def test_non_utf8_stdout_gets_escapes_not_a_traceback(tmp_path):
    vocab = Vocab.from_chars("안녕 ")
    torch.manual_seed(0)
    model = CharRNN(ModelConfig("rnn", vocab.size, embedding=2, hidden=3, layers=1))
    ckpt.save_checkpoint(tmp_path / "m.safetensors", model, vocab)
    env = dict(os.environ, PYTHONIOENCODING="ascii")
    done = subprocess.run([sys.executable, "-m", "charrnn", "sample", str(tmp_path / "m.safetensors"), "--prime",
                           "안녕", "--length", "20", "--seed", "1"], capture_output=True, text=True, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "\\uc548\\ub155" in done.stdout and "Traceback" not in done.stderr
