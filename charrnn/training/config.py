"""What a training run is asked to do: TrainConfig, checked once, here."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace

from .. import cells
from ..corpus import SPLITS, check_split
from ..device import check_precision
from ..errors import CharRNNError
from ..typecheck import check_types

MAX_LR, MAX_WEIGHT_DECAY = 10.0, 100.0
DEFAULT_MAX_STEPS = 3000  # when no --max-steps, --epochs or --time-limit is given
# Options that may change when a run is resumed: they say how long and where
# to run, not what is trained. Everything else is fixed by the checkpoint.
# The metadata of a field added after checkpoints were first written: it is
# saved only when set, so a run that leaves it alone writes what the charrnn
# before it wrote (and that charrnn, which ignores what it does not know,
# reads the rest).
ADDED = {"added": True}
RESUMABLE = ("max_steps", "epochs", "time_limit_s", "eval_every", "sample_every", "device", "precision", "deterministic",
             "patience")  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    seq_len: int = 128
    batch_size: int = 32
    lr: float | None = None  # None: the cell kind's default_lr (see for_kind)
    min_lr_frac: float = 0.1  # the schedule decays to lr * min_lr_frac
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    max_steps: int | None = None  # counted from the run's start
    epochs: int | None = None  # counted from the run's start
    time_limit_s: float | None = None  # counted from this invocation's start
    eval_every: int | None = None  # None: once per epoch, at most 500 steps apart (defaults.py)
    sample_every: int | None = None  # print and log a short sample every N steps (a multiple of eval_every)
    val_frac: float | None = None  # None: 5%, or up to 10% for at least 8192 characters (defaults.py)
    test_frac: float = 0.05
    seed: int = 1337
    device: str = "auto"
    encoding: str = "utf-8"
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (autocast; fp16 with a gradient scaler)
    deterministic: bool = False  # deterministic kernels only (device.deterministic_kernels), at a cost
    patience: int | None = None  # stop after this many evaluations without a new best; 0 never; None: defaults.py
    beta2: float = field(default=0.99, metadata=ADDED)  # AdamW's second-moment decay
    # Characters of the val split each evaluation scores, a fixed sample; 0:
    # all of them; None: fitted to the evaluation cadence (defaults.py), and
    # in a saved config (settled), all of them. Fixed for a run: best compares
    # evaluations of one measure.
    eval_chars: int | None = field(default=None, metadata=ADDED)
    split: str = field(default="contiguous", metadata=ADDED)  # corpus.SPLITS; a directory's default: defaults.split

    def __post_init__(self) -> None:
        check_types(self)
        for name in ("seq_len", "batch_size", "eval_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise CharRNNError(f"{flag(name)} must be at least 1, not {getattr(self, name)}")
        for name in ("max_steps", "epochs", "time_limit_s"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise CharRNNError(f"{flag(name)} must be positive, not {v}")
        # Bounds far past any useful value, within what fp32 optimizer maths holds (lr * weight decay too).
        if self.lr is not None and not 0 < self.lr <= MAX_LR:
            raise CharRNNError(f"--lr must be in (0, {MAX_LR:g}], not {self.lr}")
        if not 0 <= self.weight_decay <= MAX_WEIGHT_DECAY:
            raise CharRNNError(f"--weight-decay must be in [0, {MAX_WEIGHT_DECAY:g}], not {self.weight_decay}")
        if not 0 <= self.beta2 < 1:
            raise CharRNNError(f"--beta2 must be in [0, 1), not {self.beta2}")
        if not 0 <= self.min_lr_frac <= 1:
            raise CharRNNError(f"--min-lr-frac must be in [0, 1], not {self.min_lr_frac}")
        # Not given, the val split is fitted later (defaults.py), to at most half of what --test-frac leaves.
        check_split(self.val_frac if self.val_frac is not None else min(0.05, (1 - self.test_frac) / 2), self.test_frac)
        if self.patience is not None and self.patience < 0:
            raise CharRNNError(f"--patience must be >= 0 (0: never stop early), not {self.patience}")
        if self.eval_chars is not None and self.eval_chars < 0:
            raise CharRNNError(f"--eval-chars must be >= 0 (0: the whole val split), not {self.eval_chars}")
        if self.sample_every is not None and self.sample_every < 1:
            raise CharRNNError(f"--sample-every must be at least 1, not {self.sample_every}")
        if self.sample_every is not None and self.eval_every is not None and self.sample_every % self.eval_every:
            raise CharRNNError(
                f"--sample-every {self.sample_every} must be a multiple of --eval-every ({self.eval_every}):"
                " samples are logged with the evaluations"
            )
        check_precision(self.precision)
        if self.split not in SPLITS:
            raise CharRNNError(f"--split must be one of {', '.join(SPLITS)}, not {self.split!r}")
        if not 0 <= self.seed < 2**63:
            raise CharRNNError(f"--seed must be in [0, 2**63), not {self.seed}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or not self.grad_clip > 0:
            raise CharRNNError("--warmup-steps and --weight-decay must be >= 0 and --grad-clip > 0")

    def for_kind(self, kind: str) -> TrainConfig:
        """This config with its learning rate settled: the one given, or the
        cell kind's default."""
        return self if self.lr is not None else replace(self, lr=cells.get(kind).default_lr)

    def to_dict(self) -> dict:
        d = asdict(self)
        for f in fields(self):
            if f.metadata.get("added") and d[f.name] == f.default:
                del d[f.name]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def check_resumable(names) -> None:
    """Refuse options a resumed run cannot change, naming their flags."""
    fixed = sorted(flag(name) for name in names if name not in RESUMABLE)
    if fixed:
        raise CharRNNError(f"{', '.join(fixed)} cannot change when resuming: the run fixes them")


# The fields whose `charrnn train` option has another name: the rest are
# their fields' names, with dashes.
OPTION_OF = {"kind": "model", "time_limit_s": "time_limit"}
FIELD_OF = {option: name for name, option in OPTION_OF.items()}


def flag(name: str) -> str:
    """A TrainConfig or ModelConfig field's command-line flag:
    time_limit_s -> --time-limit, kind -> --model."""
    return "--" + OPTION_OF.get(name, name).replace("_", "-")


def field_name(option: str) -> str:
    """The other way: a `charrnn train` parameter's name -> its field's (model -> kind)."""
    return FIELD_OF.get(option, option)


def parse_duration(text: str) -> float:
    """'90' or '90s', '10m', '1h30m', '2.5h' -> seconds."""
    s = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", s)
    if not parts or "".join(n + u for n, u in parts) != s:
        raise CharRNNError(f"cannot read duration {text!r}: use e.g. 90s, 10m, 1h30m")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
