"""Fine-tuning: `charrnn train CORPUS --init-from CKPT` (training/finetune.py)."""

from __future__ import annotations

import pytest
import torch

from charrnn import checkpoint as ckpt
from charrnn import rundir
from charrnn.corpus import Vocab
from charrnn.model import CharRNN, ModelConfig
from charrnn.training import finetune

from conftest import TINY, assert_one_line_error, make_text, run_cli


@pytest.fixture
def new_text(tmp_path):
    p = tmp_path / "new.txt"
    p.write_text(make_text(120, seed=5, extra="é€"), encoding="utf-8")
    return p


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_inherit_moves_each_old_characters_rows_and_keeps_the_rest(kind):
    old, new = Vocab.from_chars("abcd\n"), Vocab.from_chars("abcd\nAé")  # two new characters, sorting among the old
    torch.manual_seed(0)
    parent = CharRNN(ModelConfig(kind, old.size, embedding=3, hidden=4, layers=2))
    torch.manual_seed(1)
    child = CharRNN(ModelConfig(kind, new.size, embedding=3, hidden=4, layers=2))
    fresh = {k: v.clone() for k, v in child.state_dict().items()}
    finetune.inherit(child, new, ckpt.Checkpoint(parent.config, old, parent, None))
    mine, theirs = child.state_dict(), parent.state_dict()
    for ch in old.chars:
        i, j = new.chars.index(ch), old.chars.index(ch)
        for name in ("embed.weight", "head.weight", "head.bias"):
            assert torch.equal(mine[name][i], theirs[name][j]), (name, ch)
    for ch in "Aé":  # a new character keeps the fresh model's rows
        i = new.chars.index(ch)
        assert all(torch.equal(mine[n][i], fresh[n][i]) for n in ("embed.weight", "head.weight", "head.bias"))
    for name in theirs:
        if name.startswith("rnn."):
            assert torch.equal(mine[name], theirs[name]), name


def test_fine_tuning_through_the_cli_starts_from_the_parent_and_resumes(trained_run, new_text, tmp_path):
    child = tmp_path / "child"
    # With a learning rate of 1e-9, one AdamW step moves no weight by more than about 1e-9.
    done = run_cli("train", new_text, "--init-from", trained_run, "--out", child, *TINY, "--max-steps", "1",
                   "--eval-every", "1", "--lr", "1e-9")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "2 new ('é' '€')" in done.stderr
    parent, run = ckpt.load_checkpoint(trained_run), ckpt.load_checkpoint(child)
    assert set(run.vocab.chars) == set(parent.vocab.chars) | {"é", "€"}
    assert run.run.parent == {"path": str(parent.path.resolve()), "sha256": parent.sha256, "step": parent.run.step,
                              "vocab_size": parent.vocab.size}  # fmt: skip
    rows = [run.vocab.chars.index(c) for c in parent.vocab.chars]
    theirs, mine = parent.model.state_dict(), run.model.state_dict()
    for name, value in theirs.items():
        got = mine[name][rows] if name in ("embed.weight", "head.weight", "head.bias") else mine[name]
        torch.testing.assert_close(got, value, atol=1e-6, rtol=0)
    more = run_cli("train", "--resume", child, "--max-steps", "3")  # the corpus lacks the parent's own characters
    assert more.exit_code == 0, more.output
    assert ckpt.load_checkpoint(child, prefer=rundir.LAST).run.step == 3


def test_fine_tuning_defaults_to_a_lower_learning_rate_and_may_change_dropout(trained_run, new_text, tmp_path):
    done = run_cli("train", new_text, "--init-from", trained_run, "--out", tmp_path / "c", "--seq-len", "16",
                   "--batch-size", "4", "--max-steps", "2", "--dropout", "0.3", "--weight-drop", "0.25",
                   "--embed-dropout", "0.15")  # fmt: skip
    assert done.exit_code == 0, done.output
    child = ckpt.load_checkpoint(tmp_path / "c")
    kind_lr = child.config.cell.default_lr
    assert child.run.train_config["lr"] == pytest.approx(kind_lr * finetune.LR_SCALE) and finetune.LR_SCALE < 1
    assert child.config.dropout == 0.3 and child.config.hidden == 8  # the parent's shape, TINY's hidden
    assert child.config.weight_drop == 0.25 and ckpt.load_checkpoint(trained_run).config.weight_drop == 0
    assert child.config.embed_dropout == 0.15 and ckpt.load_checkpoint(trained_run).config.embed_dropout == 0


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--hidden", "16"], "--hidden 16 does not fit"),
        (["--model", "gru"], "--model gru does not fit"),
        (["--layers", "2"], "--layers 2 does not fit"),
        (["--resume", "x"], "give one of them"),
    ],
    ids=["hidden", "model", "layers", "resume"],
)
def test_fine_tuning_refuses_another_shape_or_resume(trained_run, new_text, tmp_path, extra, fragment):
    out = tmp_path / "c"
    assert_one_line_error(run_cli("train", new_text, "--init-from", trained_run, "--out", out, *extra), fragment)
    assert not out.exists()


def test_fine_tuning_into_the_parents_own_directory_is_refused(trained_run, new_text):
    before = ckpt.load_checkpoint(trained_run).sha256
    done = run_cli("train", new_text, "--init-from", trained_run, "--out", trained_run, "--force")
    assert_one_line_error(done, "choose another --out")
    assert ckpt.load_checkpoint(trained_run).sha256 == before
