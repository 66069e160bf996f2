"""The training loop: truncated BPTT with carried state, AdamW, warm-up and
cosine decay, clipping, evaluation, checkpoints and exact resume.

    run(plan, corpus):
        splits -> StreamBatches -> the model and state the plan starts from
        -> Trainer.fit(): step, step, ... (every eval_every steps: evaluate, save best/last)

The run seeds torch's generators from the plan, as its exactness needs,
and puts the caller's back when it ends; it changes no other process-wide
setting (the CLI holds `memory.freed_memory_kept()` around it, which makes
it faster on glibc).
"""

from __future__ import annotations

import math
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from .. import checkpoint as ckpt
from .. import files, rundir
from ..corpus import Corpus, StreamBatches, Vocab
from ..corpus.documents import END_ID, DocumentBatches, split_text
from ..device import (AUTOCAST, describe_precision, deterministic_kernels, exact_fp32, recurrence_in_fp32, rng_states,
                      set_rng_states, to_device)  # fmt: skip
from ..errors import CharRNNError, TrainingDiverged
from ..evaluate import Score, score
from ..model import CharRNN
from ..sample import SampleConfig, generate
from . import defaults, distributed, finetune
from .advice import rising_val_advice
from .config import TrainConfig
from .plan import INIT_FROM, RESUME, RunPlan, sampled
from .schedule import lr_at, progress
from .signals import StopFlag

SAMPLE_CHARS, SAMPLE_TEMPERATURE = 200, 0.8  # the --sample-every samples
SYNC_EVERY = 16  # steps whose losses a GPU run reads off the device at once


class Reporter(Protocol):
    """Where progress goes; the CLI draws it, the library only calls it."""

    def start(self, total_steps: int | None, start_step: int, info: dict) -> None: ...
    def step(self, step: int, loss: float, chars_per_s: float) -> None: ...
    def evaluated(self, entry: dict) -> None: ...
    def note(self, message: str) -> None: ...
    def close(self) -> None: ...


class SilentReporter:
    def start(self, total_steps, start_step, info):
        pass

    def step(self, step, loss, chars_per_s):
        pass

    def evaluated(self, entry):
        pass

    def note(self, message):
        pass

    def close(self):
        pass


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    stop_reason: str  # "max_steps" | "epochs" | "time_limit" | "patience" | "interrupted"
    best_val_loss: float | None
    last_entry: dict | None  # the last evaluation's metrics
    parameters: int
    elapsed_s: float
    is_main: bool = True  # False on the other processes of a distributed run
    signal: int | None = None  # what interrupted the run: SIGINT, SIGTERM or SIGHUP

    @property
    def interrupted(self) -> bool:
        return self.stop_reason == "interrupted"

    @property
    def exit_code(self) -> int:
        """0, or 128 + the signal's number for an interrupted run (130 for Ctrl-C, 143 for SIGTERM)."""
        return 128 + self.signal if self.interrupted else 0


def run(plan: RunPlan, corpus: Corpus, checkpoint: ckpt.Checkpoint | None = None,
        reporter: Reporter | None = None) -> TrainResult:  # fmt: skip
    """Carry out `plan` on `corpus` (the text the plan was made for).
    `checkpoint` is what the plan starts from: the parent whose weights a
    fine-tuned run takes, or the run a resumed one continues.

    The plan has already checked everything that can refuse the request;
    the model is built before anything in the run directory is touched, and
    a previous run there (allowed by --force) is replaced only at the first
    save."""
    device = plan.torch_device
    dist = distributed.setup(device)
    reporter = reporter if reporter is not None and dist.is_main else SilentReporter()
    c, out_dir = plan.train, Path(plan.out_dir)
    splits = split_text(corpus.ids, c.val_frac, c.test_frac, plan.model.documents, c.split, corpus.file_starts, c.seed)
    batches = _batches(plan, splits.train, dist)
    with ExitStack() as held:
        held.enter_context(own_generators(device))
        model, state = _begin(plan, corpus, checkpoint, dist)
        optimizer = make_optimizer(model, c)
        scaler = torch.amp.GradScaler(device.type, enabled=plan.precision == "fp16")
        if dist.is_main:  # one writer per run directory, until the run ends
            held.enter_context(rundir.exclusive(out_dir))
            rundir.remove_temp_files(out_dir)
        _restore(state, optimizer, scaler, dist, device)
        state.train_config, state.corpus, state.plan = c.to_dict(), corpus.info, plan.to_dict()
        # A run that a new one replaces (--force) stays whole until the new
        # one's first save: an error before it (say, out of memory) loses
        # nothing. A resumed run's history is its checkpoint's.
        replacing = plan.start.mode != RESUME
        if dist.is_main and not replacing:
            rundir.write_metrics(out_dir, state.metrics)
        parts = (model, optimizer, scaler, batches, splits.val, corpus.vocab, state)
        return Trainer(plan, dist, *parts, reporter, replacing).fit()


def _batches(plan: RunPlan, train: np.ndarray, dist: distributed.Dist) -> StreamBatches | DocumentBatches:
    """This process's share of every step's batch: its streams of the text,
    or its rows of each group of documents."""
    c = plan.train
    if plan.model.documents:
        return DocumentBatches(train, END_ID, c.batch_size, c.seq_len, dist.rank, dist.world, seed=c.seed)
    return StreamBatches(train, c.batch_size, c.seq_len, dist.rows(c.batch_size))


def own_generators(device: torch.device):
    """The run's seeding stays the run's: the caller's CPU generator, and
    the GPU's (CUDA or MPS), are put back when the run ends."""
    gpu = [device] if device.type in ("cuda", "mps") else []
    return torch.random.fork_rng(devices=gpu, device_type=device.type if gpu else None)


def _begin(plan: RunPlan, corpus: Corpus, checkpoint: ckpt.Checkpoint | None,
           dist: distributed.Dist) -> tuple[CharRNN, ckpt.TrainingState]:  # fmt: skip
    """The model, on the plan's device, and the training state the run
    starts from: the one place where the plan's start matters."""
    torch.manual_seed(plan.train.seed)
    try:
        if plan.start.mode == RESUME:
            model, state = checkpoint.model, checkpoint.run
        else:
            model = CharRNN(plan.model)
            if plan.start.mode == INIT_FROM:
                finetune.inherit(model, corpus.vocab, checkpoint)
            state = _fresh_state(plan, model, checkpoint)
        model = model.to(plan.torch_device).train()
    except RuntimeError as e:  # torch.OutOfMemoryError is one
        if not _out_of_memory(e):
            raise
        raise CharRNNError(
            f"out of memory on {plan.device} building the model ({plan.parameters:,} parameters):"
            " try a smaller --hidden, --embedding or --layers"
        ) from None
    model.fp32_recurrence = recurrence_in_fp32(plan.precision, plan.torch_device)
    if dist.rank > 0:  # each process draws its own dropout masks (weights come from rank 0)
        torch.manual_seed(hash((plan.train.seed, dist.rank, plan.start.step)) % 2**63)
    return model, state


def _fresh_state(plan: RunPlan, model: CharRNN, parent: ckpt.Checkpoint | None) -> ckpt.TrainingState:
    return ckpt.TrainingState(
        train_config=plan.train.to_dict(), corpus=plan.corpus, step=0, epoch=0, step_in_epoch=0, chars_seen=0,
        progress=0.0, elapsed_s=0.0, best_val_loss=None, metrics=[], optimizer={},
        carried=model.init_state(plan.train.batch_size, "cpu"),
        parent=asdict(finetune.parent_record(parent)) if parent is not None else {},
    )  # fmt: skip


def _restore(state: ckpt.TrainingState, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
             dist: distributed.Dist, device: torch.device) -> None:  # fmt: skip
    """Put back what a saved state holds (a fresh one holds none of it):
    AdamW's moments, this process's generators, the gradient scaler. A
    process the checkpoint has no generators for (a run resumed on more
    processes) keeps the seed _begin gave it."""
    if state.optimizer:
        ckpt.restore_optimizer(optimizer, state.optimizer)
    mine = state.rng if dist.is_main else ckpt.with_prefix(state.rng, f"rank{dist.rank}")
    try:
        if mine:
            set_rng_states(mine, device)
        if state.scaler and scaler.is_enabled():
            scaler.load_state_dict(state.scaler)
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise CharRNNError(f"the checkpoint's generator or gradient-scaler state cannot be restored: {e}") from None


@dataclass
class _Pending:
    """A step whose loss and gradient norm are still on the device."""

    step: int
    loss: torch.Tensor  # 0-d
    gnorm: torch.Tensor  # 0-d
    chars: int
    seconds: float = 0.0
    loss_v: float | None = None  # read off the device
    gnorm_v: float | None = None


@dataclass
class _Window:
    """Training statistics since the last evaluation."""

    loss: float = 0.0
    steps: int = 0
    grad_norm: float = 0.0
    grad_norm_max: float = 0.0
    seconds: float = 0.0
    chars: int = 0

    def add(self, loss: float, grad_norm: float, seconds: float, chars: int) -> None:
        self.loss += loss
        self.steps += 1
        self.grad_norm += grad_norm
        self.grad_norm_max = max(self.grad_norm_max, grad_norm)
        self.seconds += seconds
        self.chars += chars

    def summary(self) -> dict:
        n = max(self.steps, 1)
        return {
            "train_loss": self.loss / n,
            "grad_norm": self.grad_norm / n,
            "grad_norm_max": self.grad_norm_max,
            "chars_per_s": round(self.chars / self.seconds, 1) if self.seconds > 0 else None,
        }


def sync_every(device: torch.device) -> int:
    """Steps whose losses are read off the device at once: reading a loss
    off a GPU waits for the GPU, so there a block at a time; on the CPU
    reading is free, so every step."""
    return 1 if device.type == "cpu" else SYNC_EVERY


def _out_of_memory(e: RuntimeError) -> bool:
    """A GPU's OutOfMemoryError, or the CPU allocator's failure."""
    return isinstance(e, torch.OutOfMemoryError) or "can't allocate memory" in str(e)


def make_optimizer(model: CharRNN, config: TrainConfig) -> torch.optim.AdamW:
    # Decay the recurrent and output matrices only: not the embedding
    # (rows of rare characters would shrink) and not biases.
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and not name.startswith("embed") else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, config.beta2))


class Trainer:
    """The loop over steps of one run, built from its parts (run() makes
    them), then `fit` steps it to a stop."""

    def __init__(self, plan: RunPlan, dist: distributed.Dist, model: CharRNN, optimizer: torch.optim.AdamW,
                 scaler: torch.amp.GradScaler, batches: StreamBatches, val: np.ndarray, vocab: Vocab,
                 state: ckpt.TrainingState, reporter: Reporter, replacing: bool):  # fmt: skip
        self.plan, self.config, self.dist, self.device = plan, plan.train, dist, plan.torch_device
        self.model, self.optimizer, self.scaler = model, optimizer, scaler
        # DDP averages gradients over processes; each process's loss is the
        # mean over its equal share of streams, so the average is the
        # single-process loss over the whole batch.
        self.net = DistributedDataParallel(model) if dist.enabled else model
        self.batches, self.val, self.vocab = batches, val, vocab
        self.run, self.reporter, self.out_dir = state, reporter, Path(plan.out_dir)
        self.replacing = replacing  # whether out_dir's previous run is still to be replaced at the first save
        # The checkpoint holds every stream's state; this process takes its own.
        self.state = tuple(s[:, dist.rows(s.shape[1])].to(self.device) for s in state.carried)
        self.window = _Window()
        self.last_entry: dict | None = None
        self.pending: list[_Pending] = []
        self.signal: int | None = None  # the stop signal the processes agreed on
        self.sync_every = sync_every(self.device)
        self.autocast = AUTOCAST[plan.precision]  # None: fp32, no autocast
        self.documents = bool(plan.model.documents)

    # -- the loop ------------------------------------------------------------

    def fit(self) -> TrainResult:
        run, config = self.run, self.config
        self.started, self.elapsed0, progress0 = time.monotonic(), run.elapsed_s, run.progress
        self.reporter.start(self.plan.total_steps, run.step, self._info())
        stop_reason = None
        try:
            with (StopFlag(repeat_interrupts=not self.dist.enabled) as stop, exact_fp32(self.plan.precision, self.device),
                  deterministic_kernels(self.config.deterministic, self.device)):
                self.elapsed = 0.0  # agreed by all processes, so they all use one learning rate
                while stop_reason is None:
                    run.progress = progress(run.step, self.plan.total_steps, progress0, self.elapsed, config.time_limit_s)
                    self._step(lr_at(config, run.step, run.progress, self.plan.total_steps))
                    stop_reason = self._stop_reason(stop.signum)
                    if stop_reason or run.step % config.eval_every == 0:
                        self._flush()
                    if stop_reason == "interrupted":
                        self._save(None, time.monotonic())
                    elif run.step % config.eval_every == 0 or stop_reason:
                        started = time.monotonic()
                        entry = self._evaluate()
                        stop_reason = stop_reason or self._out_of_patience()
                        if stop_reason:  # the run's last evaluation
                            self._score_whole(entry)
                        self._save(entry, started)
        except RuntimeError as e:  # torch.OutOfMemoryError is one
            if not _out_of_memory(e):
                raise
            raise CharRNNError(
                f"out of memory on {self.device} at step {run.step + 1}: try a smaller --batch-size or --hidden"
            ) from None
        finally:
            self.reporter.close()
        return TrainResult(
            self.out_dir, run.step, stop_reason, run.best_val_loss, self.last_entry,
            self.model.num_parameters(), run.elapsed_s, self.dist.is_main, self.signal,
        )  # fmt: skip

    def _out_of_patience(self) -> str | None:
        """"patience" once the evaluations since the best reach the run's
        patience (see defaults.py); every process decides alike, from the
        metrics and the agreed progress."""
        run = self.run
        planned = self.plan.total_steps or (run.step / run.progress if run.progress > 0 else None)
        wait = defaults.patience_now((self.plan.patience, self.plan.patience_from_steps), planned)
        since = defaults.evals_since_best(run.metrics)
        if not wait or since < wait:
            return None
        best = run.metrics[-1 - since]
        self.reporter.note(f"val loss has not improved for {since} evaluations (best {best['val_loss']:.4f} at step"
                           f" {best['step']:,}): stopping; --patience 0 trains to the end")  # fmt: skip
        return "patience"

    def _elapsed(self) -> float:
        return time.monotonic() - self.started

    def _stop_reason(self, signum: int | None) -> str | None:
        """Why to stop now, if at all. Ctrl-C and the time limit are seen
        by each process at its own moment: they are agreed on together."""
        limit = self.config.time_limit_s
        interrupted = False
        # Under DDP an agreement is an all-reduce: every SYNC_EVERY steps, and at
        # each evaluation, whose patience reads the clock (defaults.patience).
        step = self.run.step
        if not self.dist.enabled or step % self.sync_every == 0 or step % self.config.eval_every == 0:
            mine = self._elapsed() if self.dist.is_main else 0.0  # rank 0's clock is everyone's
            flags = distributed.sum_all([float(signum is not None), mine, float(signum or 0)], self.dist, self.device)
            interrupted, self.elapsed = flags[0] > 0, flags[1]
            # The launcher sends every process the same signal; one that got none takes theirs.
            self.signal = signum or (round(flags[2] / flags[0]) if interrupted else None)
        timed_out = limit is not None and self.elapsed >= limit
        if interrupted:
            return "interrupted"
        total = self.plan.total_steps
        if total is not None and self.run.step >= total:
            c = self.config
            return "epochs" if c.epochs and total < (c.max_steps or math.inf) else "max_steps"
        return "time_limit" if timed_out else None

    def _step(self, lr: float) -> None:
        """One optimizer step on the next batch (a new epoch starts from zero state)."""
        run, model = self.run, self.model
        if run.step_in_epoch >= len(self.batches):
            run.epoch += 1
            run.step_in_epoch = 0
        k = run.step_in_epoch
        if self.batches.fresh(k):
            self.state = model.init_state(self.batches.rows(k), self.device)
        t0 = time.monotonic()
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        x, y = self.batches.batch(k)
        chars = self.batches.targets(k) if self.documents else y.numel() * self.dist.world  # scored, padding not
        x, y = to_device(x, self.device), to_device(y, self.device)
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            logits, state = self.net(x, self.state)  # (B, T, V)
            if self.documents:  # rows score unequal counts: DDP's mean of (sum * world / all) is the sum over all
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                                       reduction="sum") * self.dist.world / max(chars, 1)  # fmt: skip
            else:
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        self.state = model.detach_state(state)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), self.config.grad_clip)
        self.pending.append(_Pending(run.step + 1, loss.detach(), gnorm.detach(), chars))
        if len(self.pending) >= self.sync_every:
            self._check_pending()  # before this step's update: a divergence leaves it unapplied
        self.scaler.step(self.optimizer)
        self.scaler.update()
        run.step += 1
        run.step_in_epoch += 1
        run.chars_seen += chars
        run.elapsed_s = self.elapsed0 + self._elapsed()
        self.pending[-1].seconds = time.monotonic() - t0
        if self.pending[-1].loss_v is not None:
            self._report_pending()

    def _check_pending(self) -> None:
        """Read the pending steps' losses and gradient norms off the device
        (one host sync, and under DDP one all-reduce) and stop on the first
        that is not finite."""
        values = torch.stack([t for p in self.pending for t in (p.loss, p.gnorm)]).float().tolist()
        losses, norms = values[0::2], values[1::2]
        if self.dist.enabled:  # every process must see a divergence, or one would stop alone
            totals = distributed.sum_all(losses, self.dist, self.device)
            losses = [mine if math.isfinite(total) else total for mine, total in zip(losses, totals)]
        for p, loss_v, gnorm_v in zip(self.pending, losses, norms):
            p.loss_v, p.gnorm_v = loss_v, gnorm_v
            # With fp16 an infinite gradient is the scaler's to handle (it skips
            # the step and lowers its scale); otherwise it means divergence.
            if not math.isfinite(loss_v) or not (math.isfinite(gnorm_v) or self.scaler.is_enabled()):
                raise TrainingDiverged(
                    f"training diverged at step {p.step}: loss {loss_v}, gradient norm {gnorm_v};"
                    f" nothing was saved for it (try a lower --lr than {self.config.lr})"
                )

    def _report_pending(self) -> None:
        for p in self.pending:
            self.window.add(p.loss_v, p.gnorm_v if math.isfinite(p.gnorm_v) else 0.0, p.seconds, p.chars)
            self.reporter.step(p.step, p.loss_v, p.chars / p.seconds if p.seconds > 0 else 0.0)
        self.pending = []

    def _flush(self) -> None:
        """Every step so far checked and reported: before an evaluation or a stop."""
        if self.pending:
            self._check_pending()
            self._report_pending()

    def _evaluate(self) -> dict:
        """Score the val split, or the run's fixed sample of it; the metrics
        entry of this evaluation."""
        run, t0 = self.run, time.monotonic()
        val = self._score(self.config.eval_chars)
        entry = self._entry(val, time.monotonic() - t0)
        if sampled(self.config, len(self.val)):
            entry["val_chars"] = val.chars
        self._stamp(entry)  # count the evaluation too
        if self.config.sample_every and run.step % self.config.sample_every == 0 and self.dist.is_main:
            entry["sample"] = self._sample()
        run.metrics.append(entry)
        if advice := rising_val_advice(run.metrics, self.model.config.dropout):
            entry["advice"] = advice
        return entry

    def _score_whole(self, entry: dict) -> None:
        """The run's last evaluation also scores the whole split where the
        others score a sample (val_loss stays the sample's, so that best is
        chosen on one measure throughout)."""
        if not sampled(self.config, len(self.val)):
            return
        t0 = time.monotonic()
        whole = self._score(None)
        entry |= {"val_loss_full": whole.loss, "val_chars_full": whole.chars,
                  "eval_full_s": round(time.monotonic() - t0, 4)}  # fmt: skip
        self._stamp(entry)

    def _stamp(self, entry: dict) -> None:
        """The run's time so far, in the run and in the metrics entry."""
        self.run.elapsed_s = self.elapsed0 + self._elapsed()
        entry["elapsed_s"] = round(self.run.elapsed_s, 3)

    def _score(self, sample: int | None) -> Score:
        val = score(self.model, self.val, streams=self.config.batch_size, seq_len=self.config.seq_len,
                    d=self.dist, sample=sample or None)  # fmt: skip
        if not math.isfinite(val.loss):
            raise TrainingDiverged(f"the validation loss became {val.loss} at step {self.run.step}; nothing was saved")
        return val

    def _save(self, entry: dict | None, started: float) -> None:
        """Write best (if this evaluation improved) and last; `entry` is
        None when interrupted, with no evaluation. Its save_s is the time
        since `started` less the scoring: sampling, advice and writing."""
        run = self.run
        distributed.check_in_step(self.model, self.dist, self.device)
        run.optimizer = self.optimizer.state_dict()
        run.carried = tuple(distributed.gather_streams(s.detach(), self.dist).cpu() for s in self._carried())
        run.rng = {}
        for rank, states in enumerate(distributed.gather_objects(rng_states(self.device), self.dist)):
            run.rng.update({(f"rank{rank}." if rank else "") + k: v for k, v in states.items()})
        run.scaler = self.scaler.state_dict() if self.scaler.is_enabled() else {}
        improved = entry is not None and (run.best_val_loss is None or entry["val_loss"] < run.best_val_loss)
        if improved:
            run.best_val_loss = entry["val_loss"]
        if not self.dist.is_main:  # one writer: rank 0
            self.window = _Window()
            return
        data = ckpt.checkpoint_bytes(self.model, self.vocab, run)
        # best before last: a crash between the two leaves last older than
        # best, and resuming from last redoes the same steps exactly and
        # rewrites best. The other order would leave last claiming a best
        # val loss that no best file holds.
        if improved:
            files.write_bytes_atomic(self.out_dir / rundir.BEST, data)
        elif self.replacing:  # the replaced run's best is no best of this run
            (self.out_dir / rundir.BEST).unlink(missing_ok=True)
        files.write_bytes_atomic(self.out_dir / rundir.LAST, data)
        if entry is not None:
            scoring = entry["eval_s"] + entry.get("eval_full_s", 0.0)
            entry["save_s"] = round(time.monotonic() - started - scoring, 4)
        if self.replacing:
            rundir.write_metrics(self.out_dir, run.metrics)  # the replaced run's log goes only now
            self.replacing = False
        elif entry is not None:
            rundir.append_metrics(self.out_dir, entry)
        if entry is not None:
            self.reporter.evaluated(entry)
            self.last_entry = entry
            self.window = _Window()

    def _carried(self) -> tuple[torch.Tensor, ...]:
        """The state the next step goes on from. A model of documents whose
        next step begins a group (from the zero state) carries none: zeros of
        the batch's shape, not the many rows of a group of short documents
        (a group longer than a window, which may be cut by a save, has
        batch_size rows)."""
        k = self.run.step_in_epoch
        if self.documents and (k >= len(self.batches) or self.batches.fresh(k)):
            return self.model.init_state(self.config.batch_size // self.dist.world, self.device)
        return self.state

    def _sample(self) -> str:
        """A short sample to watch the text improve. Its generator is seeded
        from (seed, step), so training's own random stream is untouched and
        resume stays exact."""
        seed = hash((self.config.seed, self.run.step)) % 2**63
        config = SampleConfig(length=SAMPLE_CHARS, temperature=SAMPLE_TEMPERATURE, seed=seed)
        text = "".join(chars[0] for chars in generate(self.model, self.vocab, "", config))
        self.model.train()
        return text

    def _entry(self, val: Score, eval_s: float) -> dict:
        run, window = self.run, self.window.summary()
        # each process saw its own streams: the train loss is their mean
        (loss_sum,) = distributed.sum_all([window["train_loss"]], self.dist, self.device)
        window["train_loss"] = loss_sum / self.dist.world
        return {
            "step": run.step,
            "epoch": run.epoch,
            "chars_seen": run.chars_seen,
            **window,
            "val_loss": val.loss,
            "val_bpc": val.bpc,
            "lr": self.optimizer.param_groups[0]["lr"],
            "elapsed_s": round(run.elapsed_s, 3),
            "eval_s": round(eval_s, 4),
        }

    def _info(self) -> dict:
        plan = self.plan
        return {
            "parameters": plan.parameters,
            "device": plan.device,
            "steps_per_epoch": plan.steps_per_epoch,
            "corpus": plan.corpus.path,
            "corpus_chars": plan.corpus.n_chars,
            "vocab_size": plan.model.vocab_size,
            "time_limit_s": plan.train.time_limit_s,
            "processes": plan.processes,
            "precision": describe_precision(plan.precision, self.device)
            + (", deterministic" if plan.train.deterministic else ""),
        }
