"""The training loop: truncated BPTT with carried state, AdamW, warm-up and
cosine decay, clipping, evaluation, checkpoints and exact resume."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import threading
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F

from torch.nn.parallel import DistributedDataParallel

from . import checkpoint as ckpt
from . import distributed
from .advice import rising_val_advice
from .data import Corpus, StreamBatches, split_corpus
from .errors import CharRNNError, TrainingDiverged
from .evaluate import score
from .memory import keep_freed_memory
from .model import CellKind, CharRNN, ModelConfig

DEFAULT_MAX_STEPS = 3000  # when no --max-steps, --epochs or --time-limit is given
# Peak learning rate when none is given, by cell kind (benchmarks/quality.py,
# README "Quality per minute"). 8e-3 suits the LSTM (5e-3 to 1.2e-2 were
# within 0.01 at 3.5 min). At 8e-3 a GRU or Elman RNN peaks early and then
# gets worse in runs of 10 minutes or more; 2e-3 was better for both at 3.5
# minutes too.
DEFAULT_LR = {CellKind.lstm: 8e-3, CellKind.gru: 2e-3, CellKind.rnn: 2e-3}


def format_lr(lr: float) -> str:
    """8e-3 rather than 0.008: as the help and the README write it."""
    mantissa, exponent = f"{lr:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


@dataclass(frozen=True)
class TrainConfig:
    seq_len: int = 128
    batch_size: int = 32
    lr: float | None = None  # None: DEFAULT_LR for the model's cell kind (see for_model)
    min_lr_frac: float = 0.1  # the schedule decays to lr * min_lr_frac
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    max_steps: int | None = None  # counted from the run's start
    epochs: int | None = None  # counted from the run's start
    time_limit_s: float | None = None  # counted from this invocation's start
    eval_every: int = 500
    sample_every: int | None = None  # print and log a short sample every N steps (a multiple of eval_every)
    val_frac: float = 0.05
    test_frac: float = 0.05
    seed: int = 1337
    device: str = "auto"
    encoding: str = "utf-8"
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (autocast; fp16 with a gradient scaler)

    def __post_init__(self) -> None:
        positive = ("seq_len", "batch_size", "eval_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise CharRNNError(f"{_flag(name)} must be at least 1, not {getattr(self, name)}")
        for name in ("max_steps", "epochs", "time_limit_s"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise CharRNNError(f"{_flag(name)} must be positive, not {v}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise CharRNNError(f"--lr must be a positive number, not {self.lr}")
        if not 0 <= self.min_lr_frac <= 1:
            raise CharRNNError(f"--min-lr-frac must be in [0, 1], not {self.min_lr_frac}")
        if not (0 < self.val_frac < 1 and 0 <= self.test_frac < 1 and self.val_frac + self.test_frac < 1):
            raise CharRNNError(
                f"split fractions must satisfy 0 < --val-frac ({self.val_frac}), 0 <= --test-frac"
                f" ({self.test_frac}) and --val-frac + --test-frac < 1"
            )
        if self.sample_every is not None and (self.sample_every < 1 or self.sample_every % self.eval_every):
            raise CharRNNError(
                f"--sample-every {self.sample_every} must be a multiple of --eval-every ({self.eval_every}):"
                " samples are logged with the evaluations"
            )
        if self.precision != "auto" and self.precision not in PRECISIONS:
            choices = ", ".join(["auto", *PRECISIONS])
            raise CharRNNError(f"--precision must be one of {choices}, not {self.precision!r}")
        if not 0 <= self.seed < 2**63:
            raise CharRNNError(f"--seed must be in [0, 2**63), not {self.seed}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or not self.grad_clip > 0:
            raise CharRNNError("--warmup-steps and --weight-decay must be >= 0 and --grad-clip > 0")

    def for_model(self, kind: CellKind) -> TrainConfig:
        """This config with its learning rate settled: the one given, or the
        default for the cell kind."""
        return self if self.lr is not None else replace(self, lr=DEFAULT_LR[CellKind(kind)])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# Options that may change when a run is resumed: they say how long and where
# to run, not what is trained. Everything else is fixed by the checkpoint.
RESUMABLE_OVERRIDES = ("max_steps", "epochs", "time_limit_s", "eval_every", "sample_every", "device", "precision")
SAMPLE_CHARS, SAMPLE_TEMPERATURE = 200, 0.8
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _flag(name: str) -> str:
    return "--" + name.removesuffix("_s").replace("_", "-")


def parse_duration(text: str) -> float:
    """'90' or '90s', '10m', '1h30m', '2.5h' -> seconds."""
    s = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", s)
    if not parts or "".join(n + u for n, u in parts) != s:
        raise CharRNNError(f"cannot read duration {text!r}: use e.g. 90s, 10m, 1h30m")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def resolve_precision(name: str, device: torch.device) -> str:
    """`auto` is bf16 autocast on a CPU with native bf16 dot products
    (AVX512-BF16 or AMX), where it trains about 1.6x as many chars/s as fp32
    (see benchmarks/quality.py); fp32 everywhere else, including GPUs, where
    it has not been measured yet."""
    if name != "auto":
        return name
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def cpu_has_native_bf16() -> bool:
    # torch.cpu's probes are private (used by inductor): absent ones mean no.
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, p, lambda: False)() for p in probes)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CharRNNError("--device cuda: no CUDA GPU is available (use --device cpu or auto)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise CharRNNError("--device mps: Apple MPS is not available (use --device cpu or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise CharRNNError(f"unknown device {name!r}: use auto, cpu, cuda or mps") from None


# --------------------------------------------------------------------------
# Output directory


def has_run(directory: Path) -> bool:
    return any((directory / f).exists() for f in (ckpt.BEST, ckpt.LAST))


def prepare_out_dir(out: Path | None, default: Path, force: bool) -> Path:
    """The directory a new run will write to. An explicit --out that already
    holds a run is refused unless --force (the run is replaced only once the
    new one has passed its checks, in `train`); the default name gets a -2,
    -3, ... suffix instead of clobbering anything. Creates nothing."""
    if out is None:
        out, n = default, 1
        while out.exists() and (not out.is_dir() or has_run(out)):
            n += 1
            out = default.with_name(f"{default.name}-{n}")
    elif out.exists() and not out.is_dir():
        raise CharRNNError(f"--out {out} is a file, not a directory")
    elif has_run(out) and not force:
        raise CharRNNError(
            f"{out} already holds a run: --resume {out} continues it, --force replaces it, or choose another --out"
        )
    if out.exists() and not os.access(out, os.W_OK):
        raise CharRNNError(f"cannot write to output directory {out}")
    return out


# --------------------------------------------------------------------------
# Progress reporting (the CLI draws it; the library only calls these)


class Reporter(Protocol):
    def start(self, total_steps: int | None, start_step: int, info: dict) -> None: ...
    def step(self, step: int, loss: float, chars_per_s: float) -> None: ...
    def evaluated(self, record: dict) -> None: ...
    def close(self) -> None: ...


class SilentReporter:
    def start(self, total_steps, start_step, info):  # noqa: D401 - protocol
        pass

    def step(self, step, loss, chars_per_s):
        pass

    def evaluated(self, record):
        pass

    def close(self):
        pass


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    stop_reason: str  # "max_steps" | "epochs" | "time_limit" | "interrupted"
    best_val_loss: float | None
    last_record: dict | None
    parameters: int
    elapsed_s: float
    is_main: bool = True  # False on the other processes of a distributed run

    @property
    def interrupted(self) -> bool:
        return self.stop_reason == "interrupted"


# --------------------------------------------------------------------------
# The loop


class _StopFlag:
    """Ctrl-C sets a flag the loop reads between steps, so a step is never
    cut in half and `last` is saved from a consistent state. A second Ctrl-C
    interrupts at once."""

    def __init__(self, repeat_interrupts: bool = True) -> None:
        self.set = False
        self._previous = None
        # Under torchrun each process gets SIGINT twice (the terminal's and
        # the launcher's forwarded one): there, a second one must not raise.
        self.repeat_interrupts = repeat_interrupts

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.set and self.repeat_interrupts:
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _lr_at(config: TrainConfig, step: int, progress: float) -> float:
    """Linear warm-up over the first steps, then cosine decay from lr to
    lr * min_lr_frac as progress goes from 0 to 1."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    floor = config.lr * config.min_lr_frac
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _make_optimizer(model: CharRNN, config: TrainConfig) -> torch.optim.AdamW:
    # Decay the recurrent and output matrices only: not the embedding
    # (rows of rare characters would shrink) and not biases.
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and not name.startswith("embed") else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.99))


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        states["mps"] = torch.mps.get_rng_state()
    return states


def _set_rng_state(states: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(states["cpu"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)
    elif device.type == "mps" and "mps" in states:
        torch.mps.set_rng_state(states["mps"])


def train(
    corpus: Corpus,
    config: TrainConfig,
    out_dir: Path,
    model_config: ModelConfig | None = None,
    resume: ckpt.Checkpoint | None = None,
    reporter: Reporter | None = None,
) -> TrainResult:
    """Train a new model (model_config) or continue a checkpoint's run (resume).

    Everything that can refuse the request (device, splits, batch fit, run
    length) is checked before anything in `out_dir` is touched; only then is
    a previous run there (allowed by --force) replaced."""
    session = _Session(corpus, config, out_dir, model_config, resume, reporter or SilentReporter())
    return session.run()


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


class _Session:
    """One invocation of `train`: built once, then stepped to a stop."""

    def __init__(self, corpus, config, out_dir, model_config, resume, reporter):
        config = config.for_model((model_config if resume is None else resume.config).kind)
        self.corpus, self.config, self.out_dir = corpus, config, out_dir
        self.device = resolve_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        if self.precision == "fp16" and self.device.type != "cuda":
            raise CharRNNError("--precision fp16 needs a CUDA GPU (PyTorch's CPU LSTM has no fp16 kernel): use bf16")
        self.dist = distributed.setup(self.device)
        keep_freed_memory()  # process-wide: every step reuses the last one's buffers (memory.py)
        self.reporter = reporter if self.dist.is_main else SilentReporter()
        self.rows = self.dist.rows(config.batch_size)  # this process's streams of the batch
        self.local_batch = config.batch_size // self.dist.world
        self.splits = split_corpus(corpus.ids, config.val_frac, config.test_frac)
        self.batches = StreamBatches(self.splits.train, config.batch_size, config.seq_len, self.rows)
        totals = [t for t in (config.max_steps, config.epochs and config.epochs * len(self.batches)) if t]
        self.total_steps = min(totals) if totals else (None if config.time_limit_s else DEFAULT_MAX_STEPS)
        if resume is not None and self.total_steps is not None and resume.run.step >= self.total_steps:
            raise CharRNNError(
                f"the run is already at step {resume.run.step:,}, which its length limit"
                f" ({self.total_steps:,} steps) allows no further: raise --max-steps or --epochs to go on"
            )

        torch.manual_seed(config.seed)
        self.model = (CharRNN(model_config) if resume is None else resume.model).to(self.device).train()
        if self.dist.rank > 0:  # each process draws its own dropout masks (weights come from rank 0)
            torch.manual_seed(hash((config.seed, self.dist.rank, resume.run.step if resume else 0)) % 2**63)
        # DDP averages gradients over processes; each process's loss is the
        # mean over its equal share of streams, so the average is the
        # single-process loss over the whole batch.
        self.net = DistributedDataParallel(self.model) if self.dist.enabled else self.model
        self.optimizer = _make_optimizer(self.model, config)
        self.autocast_dtype = PRECISIONS[self.precision]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        if self.dist.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            ckpt.remove_stale_temp_files(out_dir)
        if resume is None:
            self.run_state = self._fresh_run()
            if self.dist.is_main:
                for name in (ckpt.BEST, ckpt.LAST):  # a run being replaced (--force)
                    (out_dir / name).unlink(missing_ok=True)
        else:
            self.run_state = resume.run
            try:
                self.optimizer.load_state_dict(self.run_state.optimizer)
            except (KeyError, ValueError, TypeError, RuntimeError) as e:
                raise CharRNNError(f"the checkpoint's optimizer state does not fit its model: {e}") from None
            if self.dist.is_main:  # the checkpoint holds rank 0's generator
                _set_rng_state(self.run_state.rng, self.device)
            if self.run_state.scaler and self.scaler.is_enabled():
                self.scaler.load_state_dict(self.run_state.scaler)
            self.run_state.train_config = config.to_dict()
            self.run_state.corpus = asdict(corpus.info)
        if self.dist.is_main:
            _write_metrics(out_dir, self.run_state.metrics)  # the checkpoint's history is authoritative
        # The checkpoint holds every stream's state; this process takes its own.
        self.state = tuple(s[:, self.rows].to(self.device) for s in self.run_state.carried)
        self.window = _Window()
        self.last_record: dict | None = None

    def _fresh_run(self) -> ckpt.RunState:
        return ckpt.RunState(
            train_config=self.config.to_dict(),
            corpus=asdict(self.corpus.info),
            step=0,
            epoch=0,
            step_in_epoch=0,
            chars_seen=0,
            progress=0.0,
            elapsed_s=0.0,
            best_val_loss=None,
            metrics=[],
            optimizer={},
            carried=self.model.init_state(self.config.batch_size, "cpu"),
        )

    def run(self) -> TrainResult:
        run, config = self.run_state, self.config
        self.started, self.elapsed0, progress0 = time.monotonic(), run.elapsed_s, run.progress
        self.reporter.start(self.total_steps, run.step, self._info())
        stop_reason = None
        try:
            with _StopFlag(repeat_interrupts=not self.dist.enabled) as stop:
                self.elapsed = 0.0  # agreed by all processes, so they all use one learning rate
                while stop_reason is None:
                    run.progress = _progress(run.step, self.total_steps, progress0, self.elapsed, config.time_limit_s)
                    self._step(_lr_at(config, run.step, run.progress))
                    stop_reason = self._stop_reason(stop.set)
                    if stop_reason == "interrupted":
                        self._save(with_eval=False)
                    elif run.step % config.eval_every == 0 or stop_reason:
                        self._save(with_eval=True)
        finally:
            self.reporter.close()
        return TrainResult(
            self.out_dir, run.step, stop_reason, run.best_val_loss, self.last_record,
            self.model.num_parameters(), run.elapsed_s, self.dist.is_main,
        )  # fmt: skip

    def _elapsed(self) -> float:
        return time.monotonic() - self.started

    def _stop_reason(self, interrupted: bool) -> str | None:
        """Why to stop now, if at all. Ctrl-C and the time limit are seen
        by each process at its own moment: they are agreed on together."""
        limit = self.config.time_limit_s
        mine = self._elapsed() if self.dist.is_main else 0.0  # rank 0's clock is everyone's
        flags = distributed.sum_all([float(interrupted), mine], self.dist, self.device)
        interrupted, self.elapsed = flags[0] > 0, flags[1]
        timed_out = limit is not None and self.elapsed >= limit
        if interrupted:
            return "interrupted"
        if self.total_steps is not None and self.run_state.step >= self.total_steps:
            c = self.config
            return "epochs" if c.epochs and self.total_steps < (c.max_steps or math.inf) else "max_steps"
        return "time_limit" if timed_out else None

    def _step(self, lr: float) -> None:
        """One optimizer step on the next batch (a new epoch starts from zero state)."""
        run, model = self.run_state, self.model
        if run.step_in_epoch >= len(self.batches):
            run.epoch += 1
            run.step_in_epoch = 0
            self.state = model.init_state(self.local_batch, self.device)
        t0 = time.monotonic()
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        x, y = (t.to(self.device, non_blocking=True) for t in self.batches.batch(run.step_in_epoch))
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            logits, state = self.net(x, self.state)  # (B, T, V)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        self.state = tuple(s.detach().float() for s in state)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), self.config.grad_clip)
        loss_v, gnorm_v = loss.item(), gnorm.item()
        if self.dist.enabled:  # every process must see a divergence, or one would stop alone
            (total,) = distributed.sum_all([loss_v], self.dist, self.device)
            loss_v = loss_v if math.isfinite(total) else total
        # With fp16 an infinite gradient is the scaler's to handle (it skips
        # the step and lowers its scale); otherwise it means divergence.
        if not math.isfinite(loss_v) or not (math.isfinite(gnorm_v) or self.scaler.is_enabled()):
            raise TrainingDiverged(
                f"training diverged at step {run.step + 1}: loss {loss_v}, gradient norm {gnorm_v};"
                f" nothing was saved for this step (try a lower --lr than {self.config.lr})"
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        chars = y.numel() * self.dist.world
        run.step += 1
        run.step_in_epoch += 1
        run.chars_seen += chars
        run.elapsed_s = self.elapsed0 + self._elapsed()
        dt = time.monotonic() - t0
        self.window.add(loss_v, gnorm_v if math.isfinite(gnorm_v) else 0.0, dt, chars)
        self.reporter.step(run.step, loss_v, chars / dt if dt > 0 else 0.0)

    def _save(self, with_eval: bool) -> None:
        """Evaluate (unless interrupted), then write best (if improved) and last."""
        run, t0 = self.run_state, time.monotonic()
        record = None
        if with_eval:
            val = score(self.model, self.splits.val, self.config.batch_size, self.config.seq_len, self.dist)
            if not math.isfinite(val.loss):
                raise TrainingDiverged(f"the validation loss became {val.loss} at step {run.step}; nothing was saved")
            run.elapsed_s = self.elapsed0 + self._elapsed()  # count the evaluation too
            record = self._record(val.loss, time.monotonic() - t0)
            if self.config.sample_every and run.step % self.config.sample_every == 0 and self.dist.is_main:
                record["sample"] = self._sample()
            run.metrics.append(record)
            if advice := rising_val_advice(run.metrics, self.model.config.dropout):
                record["advice"] = advice
        distributed.check_in_step(self.model, self.dist, self.device)
        run.optimizer = self.optimizer.state_dict()
        run.carried = tuple(distributed.gather_streams(s.detach(), self.dist).cpu() for s in self.state)
        run.rng = _rng_state(self.device)
        run.scaler = self.scaler.state_dict() if self.scaler.is_enabled() else {}
        improved = record is not None and (run.best_val_loss is None or record["val_loss"] < run.best_val_loss)
        if improved:
            run.best_val_loss = record["val_loss"]
        if not self.dist.is_main:  # one writer: rank 0
            self.window = _Window()
            return
        data = ckpt.checkpoint_bytes(self.model, self.corpus.vocab, run)
        # best before last: a crash between the two leaves last older than
        # best, and resuming from last redoes the same steps exactly and
        # rewrites best. The other order would leave last claiming a best
        # val loss that no best file holds.
        if improved:
            ckpt.write_bytes_atomic(self.out_dir / ckpt.BEST, data)
        ckpt.write_bytes_atomic(self.out_dir / ckpt.LAST, data)
        if record is not None:
            record["save_s"] = round(time.monotonic() - t0 - record["eval_s"], 4)
            _append_metrics(self.out_dir, record)
            self.reporter.evaluated(record)
            self.last_record = record
            self.window = _Window()

    def _sample(self) -> str:
        """A short sample to watch the text improve. Its generator is seeded
        from (seed, step), so training's own random stream is untouched and
        resume stays exact."""
        from .sample import SampleConfig, generate

        seed = hash((self.config.seed, self.run_state.step)) % 2**63
        config = SampleConfig(length=SAMPLE_CHARS, temperature=SAMPLE_TEMPERATURE, seed=seed)
        text = "".join(chars[0] for chars in generate(self.model, self.corpus.vocab, "", config))
        self.model.train()
        return text

    def _record(self, val_loss: float, eval_s: float) -> dict:
        run, window = self.run_state, self.window.summary()
        # each process saw its own streams: the train loss is their mean
        (loss_sum,) = distributed.sum_all([window["train_loss"]], self.dist, self.device)
        window["train_loss"] = loss_sum / self.dist.world
        return {
            "step": run.step,
            "epoch": run.epoch,
            "chars_seen": run.chars_seen,
            **window,
            "val_loss": val_loss,
            "val_bpc": val_loss / math.log(2),
            "lr": self.optimizer.param_groups[0]["lr"],
            "elapsed_s": round(run.elapsed_s, 3),
            "eval_s": round(eval_s, 4),
        }

    def _info(self) -> dict:
        return {
            "parameters": self.model.num_parameters(),
            "device": str(self.device),
            "steps_per_epoch": len(self.batches),
            "corpus": self.corpus.info.path,
            "corpus_chars": self.corpus.info.n_chars,
            "vocab_size": self.corpus.vocab.size,
            "time_limit_s": self.config.time_limit_s,
            "processes": self.dist.world,
            "precision": self.precision,
        }


def _progress(step: int, total: int | None, p0: float, elapsed: float, limit: float | None) -> float:
    """Schedule position: the further of step progress and time progress. A
    resumed time-limited run continues from where it stopped (p0) and
    reaches 1 when its new time limit runs out."""
    p = step / total if total else 0.0
    if limit:
        p = max(p, p0 + (1 - p0) * elapsed / limit)
    return min(p, 1.0)


def _write_metrics(out_dir: Path, records: list[dict]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in records)
    ckpt.write_bytes_atomic(out_dir / ckpt.METRICS, text.encode())


def _append_metrics(out_dir: Path, record: dict) -> None:
    with open(out_dir / ckpt.METRICS, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def resume_config(stored: dict, overrides: dict) -> TrainConfig:
    """The run's stored TrainConfig with only the resumable options replaced."""
    config = TrainConfig.from_dict(stored)
    allowed = {k: v for k, v in overrides.items() if k in RESUMABLE_OVERRIDES}
    return replace(config, **allowed)
