"""The run plan (training/plan.py): settled once, pure, shown by
`charrnn train --plan` without writing anything, and saved in the run's
checkpoints as it was shown."""

from __future__ import annotations

import json

import pytest
import torch

from charrnn import checkpoint as ckpt
from charrnn import rundir
from charrnn.corpus import load_corpus
from charrnn.errors import CharRNNError
from charrnn.model import ModelConfig
from charrnn.training import defaults
from charrnn.training.config import DEFAULT_MAX_STEPS, TrainConfig
from charrnn.training.launch import train_on
from charrnn.training.plan import FRESH, RESUME, Options, make_plan

from conftest import TINY, assert_one_line_error, make_text, run_cli

CPU = torch.device("cpu")


@pytest.fixture
def corpus(corpus_file):
    return load_corpus(corpus_file)


def plan_of(corpus, config=TrainConfig(seq_len=16, batch_size=4), **kw):
    return make_plan(Options(config, **kw), corpus.info, corpus.vocab, CPU, "out")


def test_every_default_is_settled_in_the_plan(corpus):
    plan = plan_of(corpus)
    c = plan.train
    assert None not in (c.lr, c.val_frac, c.eval_every)  # what the loop reads is decided
    assert plan.model.vocab_size == corpus.vocab.size and plan.start.mode == FRESH
    assert plan.total_steps == DEFAULT_MAX_STEPS and plan.device == "cpu" and plan.precision in ("fp32", "bf16")
    assert plan.patience == defaults.PATIENCE and plan.patience_from_steps == 0  # 3000 steps: many epochs here
    assert plan.parameters == sum(p.numel() for p in torch.nn.Module.parameters(_model(plan.model)))
    assert plan.lines()[0].startswith("corpus: ") and plan.lines()[1].startswith("model: ")


def _model(config: ModelConfig):
    from charrnn.model import CharRNN

    return CharRNN(config)


def test_a_time_limited_run_gets_patience_only_once_it_is_on_pace_for_ten_epochs(corpus):
    plan = plan_of(corpus, TrainConfig(seq_len=16, batch_size=4, time_limit_s=60))
    assert plan.total_steps is None and plan.patience_from_steps == defaults.OVERFIT_EPOCHS * plan.steps_per_epoch
    rule = (plan.patience, plan.patience_from_steps)
    assert defaults.patience_now(rule, None) == 0
    assert defaults.patience_now(rule, plan.patience_from_steps - 1) == 0
    assert defaults.patience_now(rule, plan.patience_from_steps) == defaults.PATIENCE


def test_planning_is_pure_and_refuses_in_one_line(corpus, tmp_path):
    assert plan_of(corpus) == plan_of(corpus)  # same inputs, same plan, nothing read or written
    with pytest.raises(CharRNNError, match="too few for one batch"):
        plan_of(corpus, TrainConfig(seq_len=10**6, batch_size=4))
    with pytest.raises(CharRNNError, match="cannot be split evenly across 3 processes"):
        make_plan(Options(TrainConfig(batch_size=4)), corpus.info, corpus.vocab, CPU, "out", processes=3)
    with pytest.raises(CharRNNError, match="fp16 needs a CUDA GPU"):
        plan_of(corpus, TrainConfig(seq_len=16, batch_size=4, precision="fp16"))


def test_the_size_rule_applies_only_to_an_unsized_new_model(corpus):
    fitted = plan_of(corpus)
    assert "--size auto" in " ".join(fitted.fitted)  # a small corpus: the rule's model, and the line says so
    fixed = plan_of(corpus, size="fixed")
    assert (fixed.model.layers, fixed.model.hidden) == (ModelConfig.layers, ModelConfig.hidden)
    by_hand = plan_of(corpus, model=ModelConfig("lstm", 1, hidden=24), given=frozenset({"hidden"}))
    assert by_hand.model.hidden == 24 and by_hand.model.dropout == ModelConfig.dropout


def test_plan_prints_and_writes_nothing(corpus_file, tmp_path):
    out = tmp_path / "run"
    done = run_cli("train", corpus_file, "--out", out, *TINY, "--max-steps", "7", "--plan")
    assert done.exit_code == 0, done.output
    assert not out.exists()
    for name in ("start", "corpus", "model", "length", "learning rate", "evaluation", "output"):
        assert f" {name} " in done.stdout, name
    assert "7 steps" in done.stdout


def test_the_json_plan_is_what_the_checkpoint_saves(corpus_file, tmp_path):
    args = ("train", corpus_file, "--out", tmp_path / "run", *TINY, "--max-steps", "6", "--eval-every", "3")
    shown = run_cli(*args, "--plan", "--json")
    assert shown.exit_code == 0, shown.output
    plan = json.loads(shown.stdout)
    assert plan["start"]["mode"] == FRESH and plan["total_steps"] == 6 and plan["train"]["eval_every"] == 3
    assert run_cli(*args).exit_code == 0
    saved = ckpt.load_checkpoint(tmp_path / "run", prefer=rundir.LAST).run
    assert saved.plan == plan and saved.train_config == plan["train"]


def test_a_resume_plan_names_its_start_and_changes_nothing(corpus_file, tmp_path):
    out = tmp_path / "run"
    assert run_cli("train", corpus_file, "--out", out, *TINY, "--max-steps", "4", "--eval-every", "2").exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    done = run_cli("train", "--resume", out, "--max-steps", "8", "--plan", "--json")
    assert done.exit_code == 0, done.output
    plan = json.loads(done.stdout)
    assert plan["start"]["mode"] == RESUME and plan["start"]["step"] == 4 and plan["total_steps"] == 8
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_json_without_plan_is_refused(corpus_file):
    assert_one_line_error(run_cli("train", corpus_file, "--json"), "--json", "--plan")


def test_a_run_puts_the_callers_generator_back(corpus, tmp_path):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    config = TrainConfig(seq_len=16, batch_size=4, max_steps=2, eval_every=2, device="cpu")
    train_on(corpus, config, tmp_path / "r", ModelConfig("gru", 1, embedding=4, hidden=6, dropout=0.2))
    assert torch.equal(torch.get_rng_state(), before)


def test_a_user_option_reaches_the_plan_by_its_field_name(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(make_text(60), encoding="utf-8")
    done = run_cli("train", corpus, *TINY, "--model", "gru", "--time-limit", "90s", "--weight-drop", "0.1",
                   "--plan", "--json")  # fmt: skip
    assert done.exit_code == 0, done.output
    plan = json.loads(done.stdout)
    assert plan["model"]["kind"] == "gru" and plan["model"]["weight_drop"] == 0.1
    assert plan["train"]["time_limit_s"] == 90 and plan["total_steps"] is None


def test_beta2_reaches_adamw_and_is_saved_only_when_set(corpus_file, tmp_path):
    out = tmp_path / "run"
    assert run_cli("train", corpus_file, "--out", out, *TINY, "--max-steps", "2", "--beta2", "0.95").exit_code == 0
    state = ckpt.load_checkpoint(out, prefer=rundir.LAST).run
    assert state.train_config["beta2"] == 0.95 and state.optimizer["param_groups"][0]["betas"] == [0.9, 0.95]
    plain = tmp_path / "plain"
    assert run_cli("train", corpus_file, "--out", plain, *TINY, "--max-steps", "2").exit_code == 0
    state = ckpt.load_checkpoint(plain, prefer=rundir.LAST).run
    assert "beta2" not in state.train_config and state.optimizer["param_groups"][0]["betas"] == [0.9, 0.99]
    assert_one_line_error(run_cli("train", corpus_file, *TINY, "--beta2", "1.5"), "--beta2")
    assert_one_line_error(run_cli("train", "--resume", out, "--beta2", "0.9"), "--beta2 cannot change")


BIG = 600_000  # characters: past the recipes' smallest corpus


def big_plan(config: TrainConfig, given=frozenset(), device=CPU, n_chars=BIG, pace=None, **model):
    from charrnn.corpus import CorpusInfo, Vocab

    info = CorpusInfo("big.txt", "0" * 64, n_chars, 1, "utf-8")  # the plan needs the corpus's facts, not its text
    options = Options(config, ModelConfig("lstm", 1, **model), given)
    return make_plan(options, info, Vocab.from_chars("abc \n"), device, "out", pace=pace)


def test_a_short_time_limit_takes_the_measured_recipe(monkeypatch):
    from charrnn import cells

    recipe = next(r for r in cells.get("gru").recipes if r.max_seconds)
    monkeypatch.setattr(type(cells.get("gru")), "slower_here", lambda self, device: None)
    plan = big_plan(TrainConfig(time_limit_s=120))
    assert (plan.model.kind, plan.model.layers, plan.model.hidden) == ("gru", 2, 256)
    assert (plan.train.batch_size, plan.train.seq_len, plan.train.lr) == (64, 64, recipe.train["lr"])
    assert "--size auto for 4 minutes or less on 500,000+ characters: 2x256 GRU" in plan.fitted[0]
    assert plan.out_dir == "out"
    mine = big_plan(TrainConfig(time_limit_s=120, lr=1e-3), given=frozenset({"lr"}))
    assert mine.model.kind == "gru" and mine.train.lr == 1e-3 and "--lr" not in mine.fitted[0]  # a given option wins


@pytest.mark.parametrize("config, given", [
    (TrainConfig(time_limit_s=60 * 60), frozenset()),  # past every recipe's budget
    (TrainConfig(time_limit_s=120, max_steps=100), frozenset({"max_steps"})),  # a budget of steps too
    (TrainConfig(time_limit_s=120), frozenset({"hidden"})),  # the user sized the model
    (TrainConfig(), frozenset()),  # the default budget, on a corpus smaller than its recipe's
])  # fmt: skip
def test_no_recipe_where_none_was_measured(monkeypatch, config, given):
    from charrnn import cells

    monkeypatch.setattr(type(cells.get("gru")), "slower_here", lambda self, device: None)
    assert big_plan(config, given).model.kind == "lstm"


def test_the_default_budget_on_a_large_corpus_takes_its_recipe(monkeypatch):
    from charrnn import cells

    monkeypatch.setattr(type(cells.get("gru")), "slower_here", lambda self, device: None)
    plan = big_plan(TrainConfig(), n_chars=5_000_000)
    assert (plan.model.kind, plan.model.hidden, plan.train.batch_size, plan.total_steps) == ("gru", 256, 64, 3000)
    assert "--size auto for the default length on 2,000,000+ characters" in plan.fitted[0]
    assert big_plan(TrainConfig(max_steps=3000), frozenset({"max_steps"}), n_chars=5_000_000).model.kind == "lstm"


def test_no_recipe_without_the_build_it_was_measured_with(monkeypatch):
    from charrnn.cells import gru_cpu

    monkeypatch.setattr(gru_cpu, "gru_cstep", None)
    assert big_plan(TrainConfig(time_limit_s=120)).model.kind == "lstm"
    assert big_plan(TrainConfig(time_limit_s=120), device=torch.device("cuda")).model.kind == "lstm"  # a CPU recipe


def test_a_missing_c_step_is_said_once_on_the_start_up_lines(corpus, monkeypatch):
    from charrnn.cells import gru_cpu

    gru = ModelConfig("gru", 1, embedding=4, hidden=6)
    assert not any("C step" in line for line in plan_of(corpus, model=gru, size="fixed").lines())
    monkeypatch.setattr(gru_cpu, "gru_cstep", None)
    lines = plan_of(corpus, model=gru, size="fixed").lines()
    assert sum("C step" in line for line in lines) == 1 and lines[-1].startswith("note: ")
    assert not any("C step" in line for line in plan_of(corpus, size="fixed").lines())  # an LSTM needs none


@pytest.mark.parametrize("name, forked", [("cpu", ([], None)), ("cuda:1", ([torch.device("cuda:1")], "cuda")),
                                          ("mps", ([torch.device("mps")], "mps"))])  # fmt: skip
def test_a_run_forks_the_generators_of_the_device_it_seeds(monkeypatch, name, forked):
    from charrnn.training import loop

    seen = []
    monkeypatch.setattr(torch.random, "fork_rng", lambda devices, device_type: seen.append((devices, device_type)))
    loop.own_generators(torch.device(name))
    assert seen == [forked]


TEN_MINUTES = TrainConfig(time_limit_s=600)


def _paced_recipes():
    from charrnn import cells

    wide, narrow = [r for r in cells.get("gru").recipes if r.max_seconds and r.max_seconds > 4 * 60]
    return wide, narrow


def test_ten_minutes_take_the_wider_model_only_where_this_machine_buys_its_steps(monkeypatch):
    from charrnn import cells

    monkeypatch.setattr(type(cells.get("gru")), "slower_here", lambda self, device: None)
    wide, narrow = _paced_recipes()
    assert wide.min_steps and not narrow.min_steps and wide.model["hidden"] > narrow.model["hidden"]
    per_step = wide.train["batch_size"] * wide.train["seq_len"]
    fast = {f"{wide.shape} GRU": 1.01 * wide.min_steps * per_step / 600}  # chars/s: just enough steps in 10 minutes
    plan = big_plan(TEN_MINUTES, pace=fast)
    assert plan.model.hidden == wide.model["hidden"] and plan.train.lr == wide.train["lr"]
    assert f"steps in the budget (it needs {wide.min_steps:,})" in plan.fitted[0]
    slow = {name: 0.98 * v for name, v in fast.items()}
    plan = big_plan(TEN_MINUTES, pace=slow)
    assert (plan.model.hidden, plan.model.dropout, plan.train.weight_decay) == (
        narrow.model["hidden"], narrow.model["dropout"], narrow.train["weight_decay"])
    assert f"not {wide.shape} GRU: " in plan.fitted[0]
    assert big_plan(TEN_MINUTES).model.hidden == narrow.model["hidden"]  # not timed: the narrower one


def test_only_a_run_whose_choice_waits_on_pace_is_timed(monkeypatch):
    from charrnn import cells
    from charrnn.corpus import CorpusInfo, Vocab
    from charrnn.training.plan import to_time

    monkeypatch.setattr(type(cells.get("gru")), "slower_here", lambda self, device: None)
    info, vocab = CorpusInfo("big.txt", "0" * 64, BIG, 1, "utf-8"), Vocab.from_chars("abc \n")
    wide, _ = _paced_recipes()

    def timed(config, given=frozenset(), start=FRESH):
        return [name for name, _, _ in to_time(Options(config, given=given), info, vocab, CPU, start)]

    assert timed(TEN_MINUTES) == [f"{wide.shape} GRU"]
    model, config = to_time(Options(TEN_MINUTES), info, vocab, CPU)[0][1:]
    assert (model.hidden, model.vocab_size, config.batch_size) == (wide.model["hidden"], vocab.size, 64)
    assert timed(TrainConfig(time_limit_s=120)) == []  # the 2-minute recipe needs no timing
    assert timed(TEN_MINUTES, frozenset({"hidden"})) == []  # the user chose the model
    assert timed(TEN_MINUTES, start=RESUME) == []


def test_prepare_times_the_wider_model_and_the_plan_says_so(tmp_path, monkeypatch):
    from charrnn import cells
    from charrnn.training import launch

    monkeypatch.setattr(type(cells.get("gru")), "slower_here", lambda self, device: None)
    wide, narrow = _paced_recipes()
    corpus = tmp_path / "big.txt"
    corpus.write_text(make_text(wide.min_chars // 20))  # lines of 20+ characters
    assert len(corpus.read_text()) > wide.min_chars
    timed = []

    def pace(model, config, device, precision):
        timed.append((model.hidden, config.seq_len, device.type))
        return 1.0  # chars/s: far too slow for the wider model

    monkeypatch.setattr(launch, "chars_per_second", pace)
    options = Options(TEN_MINUTES, given=frozenset({"time_limit_s"}))
    plan = launch.prepare(launch.Request(options, corpus, tmp_path / "out")).plan
    assert timed == [(wide.model["hidden"], wide.train["seq_len"], "cpu")]
    assert plan.model.hidden == narrow.model["hidden"] and "trains 1 chars/s here" in plan.fitted[0]
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(launch.distributed, "world_size", lambda: 2)  # torchrun: every process must plan alike
    timed.clear()
    plan = launch.prepare(launch.Request(options, corpus, tmp_path / "out")).plan
    assert timed == [] and plan.model.hidden == narrow.model["hidden"]


def test_timing_a_model_trains_it_and_leaves_the_callers_generator_alone():
    from charrnn.training.pace import chars_per_second

    before = torch.random.get_rng_state()
    model = ModelConfig("gru", 5, embedding=4, hidden=6)
    assert chars_per_second(model, TrainConfig(batch_size=2, seq_len=8), CPU, "fp32", steps=2) > 0
    assert torch.equal(torch.random.get_rng_state(), before)
