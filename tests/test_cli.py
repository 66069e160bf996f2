from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from charrnn import checkpoint as ckpt
from charrnn import rundir
from charrnn.cli.entry import app
from charrnn.model import ModelConfig

from conftest import TINY, assert_one_line_error, make_text, run_cli


@pytest.mark.parametrize("command", [[], ["train"], ["sample"], ["eval"], ["inspect"]])
def test_every_command_has_help(command):
    result = run_cli(*command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.output



def test_no_help_text_loses_brackets_to_markup():
    """rich reads [word] as markup: every bracketed piece of every command's
    and option's help must still be on the rendered --help."""
    import re

    import typer
    from typer.testing import CliRunner

    from charrnn.cli.entry import app

    checked = 0
    for name, command in typer.main.get_command(app).commands.items():
        out = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "400"}).output
        out = " ".join(re.sub(r"[│╭╮╰╯─]", " ", out).split())
        for text in [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]:
            for bracketed in re.findall(r"\w*\\?\[[^\]]*\]", text):
                assert bracketed.replace("\\[", "[") in out, (name, bracketed)
                checked += 1
    assert checked >= 1 and "charrnn[lstmvis]" in " ".join(run_cli("inspect", "--help").output.split())


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "charrnn", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "train" in out.stdout


def test_train_eval_sample_flow(trained_run, corpus_file):
    assert (trained_run / rundir.BEST).exists() and (trained_run / rundir.LAST).exists()
    result = run_cli("eval", trained_run, "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert set(scores) == {"loss", "bpc", "perplexity", "chars", "skipped"} and scores["skipped"] == 0
    assert scores["chars"] > 0 and scores["bpc"] == pytest.approx(scores["loss"] / 0.6931471805599453)
    result = run_cli("eval", trained_run, corpus_file)
    assert result.exit_code == 0 and "bits per char" in result.stdout
    result = run_cli("sample", trained_run, "--length", "50", "--seed", "1")
    assert result.exit_code == 0 and len(result.stdout) >= 50


def test_train_prints_how_to_sample(tmp_path, corpus_file):
    out = tmp_path / "r"
    result = run_cli("train", corpus_file, "--out", out, *TINY, "--max-steps", "4", "--eval-every", "2")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"charrnn sample {out}"
    assert "best val loss" in result.stderr
    fp32 = run_cli("train", corpus_file, "--out", tmp_path / "f", *TINY, "--max-steps", "2", "--precision", "fp32")
    assert "parameters on cpu (fp32);" in fp32.stderr  # the arithmetic is said, auto resolved


def test_learning_rate_default_follows_the_model_kind(tmp_path, corpus_file):
    """The one test of the default learning rates: each group's, as a run
    stores it (so a resume keeps it), --lr over it, and what --help says."""

    def stored_lr(out, *extra):
        result = run_cli("train", corpus_file, "--out", out, *TINY, "--max-steps", "2", *extra)
        assert result.exit_code == 0, result.output
        return ckpt.load_checkpoint(out).run.train_config["lr"]

    assert stored_lr(tmp_path / "g", "--model", "gru") == 2e-3
    assert stored_lr(tmp_path / "l", "--model", "lstm") == 8e-3
    assert stored_lr(tmp_path / "x", "--model", "gru", "--lr", "1e-2") == 1e-2
    shown = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "400"}).output
    assert "Default: 8e-3 for lstm, mingru and minlstm; 2e-3 for rnn and gru." in " ".join(shown.split())


def test_resume_continues_to_max_steps(trained_run):
    result = run_cli("train", "--resume", trained_run, "--max-steps", "30")
    assert result.exit_code == 0, result.output
    state = ckpt.load_checkpoint(trained_run, prefer=rundir.LAST)
    assert state.run.step == 30
    steps = [json.loads(x)["step"] for x in (trained_run / rundir.METRICS).read_text().splitlines()]
    assert steps == [10, 20, 30]



def test_deterministic_is_a_train_option_a_resume_may_change(tmp_path, corpus_file):
    out = tmp_path / "run"
    done = run_cli("train", corpus_file, "--out", out, *TINY, "--max-steps", "4", "--eval-every", "2", "--deterministic")
    assert done.exit_code == 0 and "deterministic" in done.output, done.output
    assert ckpt.load_checkpoint(out, prefer=rundir.LAST).run.train_config["deterministic"]
    assert run_cli("train", "--resume", out, "--max-steps", "6", "--no-deterministic").exit_code == 0
    assert not ckpt.load_checkpoint(out, prefer=rundir.LAST).run.train_config["deterministic"]

def test_resume_refuses_changed_charset(trained_run, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text(make_text(extra="~") .replace("z", ""))
    result = run_cli("train", other, "--resume", trained_run)
    assert_one_line_error(result, "different character set", "added '~'", "removed 'z'")


def test_resume_refuses_changing_the_model(trained_run):
    assert_one_line_error(run_cli("train", "--resume", trained_run, "--hidden", "9"), "--hidden cannot change")
    assert_one_line_error(run_cli("train", "--resume", trained_run, "--weight-drop", "0.1"), "--weight-drop cannot change")
    assert_one_line_error(run_cli("train", "--resume", trained_run, "--embed-dropout", "0.1"), "--embed-dropout cannot change")


def test_weight_drop_trains_from_the_command_line_and_is_kept(tmp_path, corpus_file):
    out = tmp_path / "wd"
    done = run_cli("train", corpus_file, "--out", out, *TINY, "--model", "gru", "--weight-drop", "0.3", "--max-steps", "30")
    assert done.exit_code == 0, done.output
    assert ckpt.load_checkpoint(out, prefer=rundir.LAST).config.weight_drop == 0.3


def test_embed_dropout_trains_from_the_command_line_and_is_kept(tmp_path, corpus_file):
    out = tmp_path / "ed"
    done = run_cli("train", corpus_file, "--out", out, *TINY, "--model", "mingru", "--embed-dropout", "0.2",
                   "--max-steps", "4")  # what is kept is the point, not a fitted default run's steps
    assert done.exit_code == 0, done.output
    assert ckpt.load_checkpoint(out, prefer=rundir.LAST).config.embed_dropout == 0.2


def bad_corpus_cases(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "bin.txt").write_bytes(b"ab\x00cd")
    (tmp_path / "latin.txt").write_bytes(b"caf\xe9\n")
    (tmp_path / "short.txt").write_text("abcdefghij" * 6)
    (tmp_path / "nodir").mkdir()
    return [
        (tmp_path / "missing.txt", "not found"),
        (tmp_path / "empty.txt", "is empty"),
        (tmp_path / "bin.txt", "NUL byte at byte offset 2"),
        (tmp_path / "latin.txt", "byte offset 3"),
        (tmp_path / "short.txt", "too few for one batch"),
        (tmp_path / "nodir", "no text files"),
    ]


def test_bad_corpora_give_one_line_errors(tmp_path):
    for path, fragment in bad_corpus_cases(tmp_path):
        result = run_cli("train", path, "--out", tmp_path / "out", *TINY)
        assert_one_line_error(result, fragment)
        assert not (tmp_path / "out" / rundir.LAST).exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "--hidden", "0"], "--hidden"),
        (["train", "--model", "transformer"], "--model"),
        (["train", "--time-limit", "soon"], "cannot read duration"),
        (["train", "--no-such-option"], "no-such-option"),
        (["train", "--val-frac", "0"], "split fractions"),
        (["train", "--weight-drop", "1"], "--weight-drop"),
        (["train", "--embed-dropout", "1"], "--embed-dropout"),
        (["train", "--model", "mingru", "--weight-drop", "0.2"], "weight drop acts on W_hh, and a mingru layer has none"),
        (["sample", "--temperature", "-1"], "--temperature"),
        (["sample", "--temperature", "nan"], "--temperature"),
        (["sample", "--top-k", "0"], "--top-k"),
        (["sample", "--top-p", "1.5"], "--top-p"),
        (["sample", "--length", "-3"], "--length"),
        (["eval", "missing.safetensors"], "not found"),
    ],
)
def test_bad_options_give_one_line_errors(tmp_path, corpus_file, args, fragment, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if args[0] == "train" and len(args) > 1:
        args = [args[0], str(corpus_file), *args[1:]]
    assert_one_line_error(run_cli(*args), fragment)


def test_out_that_is_a_file(tmp_path, corpus_file):
    f = tmp_path / "afile"
    f.write_text("keep me")
    assert_one_line_error(run_cli("train", corpus_file, "--out", f, *TINY), "is a file")
    assert f.read_text() == "keep me"


def test_existing_run_is_not_overwritten_without_force(trained_run, corpus_file):
    before = (trained_run / rundir.LAST).read_bytes()
    assert_one_line_error(run_cli("train", corpus_file, "--out", trained_run, *TINY), "already holds a run")
    assert (trained_run / rundir.LAST).read_bytes() == before
    result = run_cli("train", corpus_file, "--out", trained_run, *TINY, "--max-steps", "2", "--force")
    assert result.exit_code == 0
    assert (trained_run / rundir.LAST).read_bytes() != before


def test_corrupt_checkpoint_one_line(trained_run):
    data = (trained_run / rundir.BEST).read_bytes()
    (trained_run / rundir.BEST).write_bytes(data[: len(data) // 2])
    for cmd in ("sample", "eval"):
        assert_one_line_error(run_cli(cmd, trained_run), "corrupt or truncated")


def test_unicode_corpus_trains_and_samples(tmp_path):
    text = "".join(f"{w} 🙂 é\u0301\n" for w in ["안녕하세요", "감사합니다", "사랑해요"] * 60)
    corpus = tmp_path / "ko.txt"
    corpus.write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    assert run_cli("train", corpus, "--out", out, *TINY, "--max-steps", "6", "--eval-every", "3").exit_code == 0
    result = run_cli("sample", out, "--length", "80", "--seed", "0", "--prime", "안녕")
    assert result.exit_code == 0
    sample = result.stdout
    assert sample.startswith("안녕")
    assert set(sample) <= set(text)  # whole code points only: nothing split or mojibake


def test_eval_needs_corpus_at_hand(trained_run, corpus_file):
    corpus_file.write_text(make_text(seed=5))  # the run's corpus has changed
    assert_one_line_error(run_cli("eval", trained_run), "has changed since training")
    corpus_file.unlink()
    assert_one_line_error(run_cli("eval", trained_run), "not at hand")


def test_no_corpus_means_the_shipped_one(tmp_path):
    out = tmp_path / "r"
    result = run_cli("train", "--out", out, *TINY, "--max-steps", "1", "--val-frac", "0.001", "--test-frac", "0")
    assert result.exit_code == 0, result.output
    state = ckpt.load_checkpoint(out)
    assert state.run.corpus.path.endswith("corpora/shakespeare.txt")
    assert state.run.corpus.n_chars > 5_000_000


def test_missing_shipped_corpus_is_explained(tmp_path, monkeypatch):
    from charrnn.corpus import reader as data

    monkeypatch.setattr(data, "SHIPPED_CORPUS", tmp_path / "gone.txt")
    assert_one_line_error(run_cli("train", "--out", tmp_path / "r"), "not in this installation")


def test_resume_cleans_stale_temp_files_and_falls_back_to_best(trained_run):
    stale = trained_run / ".last.safetensors.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    (trained_run / rundir.LAST).unlink()  # as if killed during the very first save
    result = run_cli("train", "--resume", trained_run, "--max-steps", "22")
    assert result.exit_code == 0, result.output
    assert not stale.exists()
    assert ckpt.load_checkpoint(trained_run, prefer=rundir.LAST).run.step == 22


def test_force_replaces_a_run_only_if_the_new_one_can_start(trained_run, tmp_path):
    before = (trained_run / rundir.LAST).read_bytes()
    short = tmp_path / "short.txt"
    short.write_text("abcdefghij" * 6)
    assert_one_line_error(run_cli("train", short, "--out", trained_run, *TINY, "--force"), "too few")
    assert (trained_run / rundir.LAST).read_bytes() == before
    assert (trained_run / rundir.BEST).exists()


def test_markup_in_paths_is_printed_literally(tmp_path):
    (tmp_path / "d[").mkdir()
    corpus = tmp_path / "d[" / "b]x[red].txt"  # the path holds "[/b]", a closing tag with no opening
    corpus.write_text(make_text())
    out = tmp_path / "[bold]run"
    result = run_cli("train", corpus, "--out", out, *TINY, "--max-steps", "2", "--eval-every", "2")
    assert result.exit_code == 0, result.output
    assert "d[/b]x[red].txt" in result.stderr and "[bold]run" in result.stdout
    result = run_cli("eval", out)
    assert result.exit_code == 0 and "[bold]run" in "".join(result.stdout.split())  # folded to fit


def test_eval_and_resume_work_from_another_directory(trained_run, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run_cli("eval", trained_run, "--json").exit_code == 0
    assert run_cli("train", "--resume", trained_run, "--max-steps", "21").exit_code == 0


def test_resume_of_a_finished_run_is_refused(trained_run):
    before = (trained_run / rundir.LAST).read_bytes()
    assert_one_line_error(run_cli("train", "--resume", trained_run, "--max-steps", "20"), "already at step 20")
    assert_one_line_error(run_cli("train", "--resume", trained_run, "--max-steps", "5"), "raise --max-steps")
    assert (trained_run / rundir.LAST).read_bytes() == before


def test_resume_from_an_older_checkpoint_would_rewind_and_is_refused(trained_run):
    # Keep the step-20 state under another name, then move the run on: last is newer by construction.
    older = trained_run / "step20.safetensors"
    older.write_bytes((trained_run / rundir.LAST).read_bytes())
    assert run_cli("train", "--resume", trained_run, "--max-steps", "30").exit_code == 0
    assert ckpt.load_checkpoint(older).run.step == 20 < ckpt.load_checkpoint(trained_run, prefer=rundir.LAST).run.step
    before = (trained_run / rundir.LAST).read_bytes()
    assert_one_line_error(run_cli("train", "--resume", older, "--max-steps", "40"), "is newer", "step 30")
    assert (trained_run / rundir.LAST).read_bytes() == before


def test_utf16_corpus_through_the_cli(tmp_path):
    corpus = tmp_path / "wide.txt"
    corpus.write_bytes(make_text().encode("utf-16"))
    out = tmp_path / "r"
    assert_one_line_error(run_cli("train", corpus, "--out", out, *TINY), "looks binary", "--encoding")
    result = run_cli("train", corpus, "--out", out, *TINY, "--encoding", "utf-16", "--max-steps", "2")
    assert result.exit_code == 0, result.output


def test_nan_stops_training_in_one_line(tmp_path, corpus_file, monkeypatch):
    from charrnn.model import CharRNN

    real = CharRNN.forward
    monkeypatch.setattr(CharRNN, "forward", lambda self, ids, state=None: (real(self, ids, state)[0] * float("nan"), real(self, ids, state)[1]))
    assert_one_line_error(run_cli("train", corpus_file, "--out", tmp_path / "r", *TINY), "diverged at step 1")
    assert not (tmp_path / "r" / rundir.LAST).exists()


@pytest.mark.parametrize("damage", ["flip", "newer"])
def test_damaged_checkpoints_through_the_cli(trained_run, damage, monkeypatch):
    path = trained_run / rundir.BEST
    if damage == "flip":
        data = bytearray(path.read_bytes())
        data[-9] ^= 0x10
        path.write_bytes(bytes(data))
        fragment = "checksum does not match"
    else:
        state = ckpt.load_checkpoint(path)
        monkeypatch.setattr(ModelConfig, "format_version", lambda config: ckpt.VERSION + 1)
        ckpt.save_checkpoint(path, state.model, state.vocab, state.run)
        fragment = "newer than this charrnn reads"
    for args in (["sample", trained_run], ["eval", trained_run], ["train", "--resume", path]):
        assert_one_line_error(run_cli(*args), fragment)


def test_charrnn_alone_shows_the_help_and_no_error():
    done = CliRunner().invoke(app, [])
    assert done.exit_code == 0 and "train" in done.output and "error:" not in done.output
