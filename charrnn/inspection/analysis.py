"""Finding the interpretable units in a recording.

- Gate saturation, as in Karpathy, Johnson and Fei-Fei (2015): how often
  each unit's gate is left- (< 0.1) or right-saturated (> 0.9).
- Feature finder: correlate every unit with hypothesis features of the
  text (inside quotes, bracket depth, position in line, ...). Units are
  chosen on the first half of the text and their correlation reported on
  the second half, beside the same unit's correlation in the same
  architecture at random initialisation: a feature that the current
  character gives away correlates even in an untrained network.
- Ablation (ablation.py): each state unit the finder reports, held at 0
  (or its mean), and the rise in loss where its feature is active and
  where it is not: whether the model uses what the unit correlates with.
- Top contexts: where a unit is highest and lowest, with the text around.
- Sparse probes and gradient flow (below).

`analyse` runs all of them on a recording and returns a typed Report:

    recording -> control recording (same architecture, random init)
              -> features of its text -> finder, probes, contexts,
                 saturation, gradient flow -> Report
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..cells import Range
from ..clamp import Unit
from ..device import ieee_fp32
from ..errors import CharRNNError
from ..model import CharRNN, split_name
from ..prime import states_before
from . import ablation
from .ablation import Ablation, Effect
from .features import Feature, is_binary
from .languages import feature_set
from ..corpus.documents import END_ID
from .record import Recording, as_model_reads, record

SATURATED_LOW, SATURATED_HIGH = 0.1, 0.9
CONTROL_SEED = 0  # the control network's initialisation, the same every time
FLOW_HORIZON = 50  # gradient flow: lags k = 1..50


# --------------------------------------------------------------------------
# Statistics


def correlations(acts: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson r of every column of acts (T, U) with feature (T,); 0 where
    either is constant."""
    a = acts.astype(np.float64)
    a = a - a.mean(0)
    f = feature.astype(np.float64) - feature.mean()
    denom = np.sqrt((a * a).sum(0) * (f * f).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * f[:, None]).sum(0) / denom
    return np.nan_to_num(r)


@dataclass(frozen=True)
class Found:
    tensor: str
    unit: int
    r: float  # on the held-out half
    r_control: float  # the same unit of the randomly initialised network, held-out half
    ablation: Effect | None = None  # the rise in loss with the unit held, in and out of the feature (None: a gate)

    def to_dict(self) -> dict:
        return {"tensor": self.tensor, "unit": self.unit, "r": self.r, "r_control": self.r_control,
                "ablation": self.ablation.to_dict() if self.ablation else None}  # fmt: skip


def correlation_table(rec: Recording, features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every unit's r with every feature on the first half of the text:
    tensor -> (units, features), the features in `features`' order. One
    pass per tensor with all the features at once, holding one tensor's
    first half in float32 at a time."""
    half = len(rec.text) // 2
    f = np.stack([v[:half] for v in features.values()], 1).astype(np.float64) if features else np.zeros((half, 0))
    f -= f.mean(0)
    f_norm = np.sqrt((f * f).sum(0))
    f32 = f.astype(np.float32)
    table = {}
    for name, acts in rec.tensors.items():
        a = np.asarray(acts[:half], dtype=np.float32)
        a = a - a.mean(0, dtype=np.float64).astype(np.float32)
        a_norm = np.sqrt(np.einsum("tu,tu->u", a, a, dtype=np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            table[name] = np.nan_to_num((a.T @ f32).astype(np.float64) / (a_norm[:, None] * f_norm[None, :]))
    return table


def pick_units(rec: Recording, features: dict[str, np.ndarray], top: int = 5,
               table: dict[str, np.ndarray] | None = None) -> dict[str, list[tuple[str, int]]]:  # fmt: skip
    """For each feature, the `top` (tensor, column) by |r| on the first half."""
    n = len(rec.text)
    if n < 20:
        raise CharRNNError("the text is too short to find units (it needs at least 20 characters)")
    half = n // 2
    table = correlation_table(rec, features) if table is None else table
    picked = {}
    for i, (fname, feature) in enumerate(features.items()):
        if feature[:half].std() == 0 or feature[half:].std() == 0:
            picked[fname] = []  # absent (or constant) in a half: nothing to correlate
            continue
        candidates = []
        for name, r in table.items():
            for j in np.argsort(-np.abs(r[:, i]))[:top]:
                candidates.append((abs(r[j, i]), name, int(j)))
        candidates.sort(reverse=True)
        picked[fname] = [(name, j) for _, name, j in candidates[:top]]
    return picked


def find_units(rec: Recording, control: Recording | None, features: dict[str, np.ndarray], top: int = 5,
               table: dict[str, np.ndarray] | None = None,
               picked: dict[str, list[tuple[str, int]]] | None = None) -> dict[str, list[Found]]:  # fmt: skip
    """For each feature, the `top` units by |r| on the first half of the
    text, reported with r on the second half, and the same unit's r in the
    `control` recording (of the whole text, or of its second half, and of
    any units that include these; None: NaN)."""
    half = len(rec.text) // 2
    picked = pick_units(rec, features, top, table) if picked is None else picked
    found = {}
    for fname, rows in picked.items():
        feature = features[fname]
        found[fname] = []
        for name, j in rows:
            unit = int(rec.units[name][j])
            r = correlations(rec.tensors[name][half:, j : j + 1], feature[half:])[0]
            found[fname].append(Found(name, unit, float(r), _control_r(rec, control, name, unit, feature[half:])))
    return found


def _control_r(rec: Recording, control: Recording | None, name: str, unit: int, feature: np.ndarray) -> float:
    """The unit's r with `feature` (the second half's) in the control recording."""
    if control is None or name not in control.tensors or unit not in control.units[name]:
        return float("nan")
    skip = len(rec.text) // 2 - (len(rec.text) - len(control.text))  # where the second half starts in the control
    column = list(control.units[name]).index(unit)
    return float(correlations(control.tensors[name][skip:, column : column + 1], feature)[0])


@dataclass(frozen=True)
class Saturation:
    """One sigmoid gate tensor: per unit, the fraction of time it is left-
    and right-saturated, and the means over units."""

    left_mean: float
    right_mean: float
    left: list[float]
    right: list[float]

    def to_dict(self) -> dict:
        return {"left_mean": self.left_mean, "right_mean": self.right_mean, "left": self.left, "right": self.right}


def saturation(rec: Recording) -> dict[str, Saturation]:
    """Per sigmoid gate tensor (as its cell kind declares them): how often
    each unit is saturated."""
    out = {}
    ranges = rec.config.cell.ranges
    for name, acts in rec.tensors.items():
        if ranges[rec.part(name)] is not Range.sigmoid:
            continue
        left, right = (acts < SATURATED_LOW).mean(0), (acts > SATURATED_HIGH).mean(0)  # compared as stored: no copy
        out[name] = Saturation(float(left.mean()), float(right.mean()), left.round(4).tolist(), right.round(4).tolist())
    return out


def surprises(rec: Recording, k: int = 10, width: int = 30) -> list[dict]:
    """The k characters the model found least likely, least first: where,
    the probability it gave each, the text before it, and the model's own
    top guesses there (what it expected instead)."""
    probs = rec.char_probs()
    rows = []
    for t in np.argsort(np.nan_to_num(probs, nan=np.inf), kind="stable")[:k]:
        if np.isnan(probs[t]):
            continue
        guesses = [(rec.vocab.chars[i], float(q)) for i, q in zip(rec.top_ids[t - 1], rec.top_probs[t - 1])]
        rows.append({"position": int(t), "char": rec.text[t], "prob": float(probs[t]),
                     "before": rec.text[max(0, t - width) : t], "guesses": guesses})  # fmt: skip
    return rows


def top_contexts(rec: Recording, name: str, column: int, k: int = 5, width: int = 30) -> dict[str, list[dict]]:
    """The k positions where a unit is highest and lowest, with text around."""
    acts = rec.tensors[name][:, column].astype(np.float32)
    order = np.argsort(acts)

    def ctx(t: int) -> dict:
        return {
            "position": int(t),
            "value": float(acts[t]),
            "before": rec.text[max(0, t - width) : t],
            "char": rec.text[t],
            "after": rec.text[t + 1 : t + 1 + width],
        }

    return {"highest": [ctx(t) for t in order[::-1][:k]], "lowest": [ctx(t) for t in order[:k]]}


# --------------------------------------------------------------------------
# Sparse probes


@dataclass(frozen=True)
class Probe:
    accuracy: float  # on the held-out half
    baseline: float  # always guessing the majority class of the training half
    units: list[tuple[str, int, float]]  # (tensor, unit, weight), largest |weight| first

    def to_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "baseline": self.baseline,
            "units": [{"tensor": t, "unit": u, "weight": w} for t, u, w in self.units],
        }


def l1_probe(rec: Recording, feature: np.ndarray, pool: int = 64, l1: float = 0.02, steps: int = 400,
             r_first: dict[str, np.ndarray] | None = None) -> Probe:  # fmt: skip
    """A sparse (L1) logistic probe for a binary feature: how few units
    explain it. Candidates are the `pool` units most correlated with it on
    the first half (`r_first`: each tensor's r per unit there, if already
    known); the probe is fit there (proximal gradient descent on
    standardised activations) and scored on the second half."""
    half = len(rec.text) // 2
    y = (feature > 0.5).astype(np.float32)
    names = []  # (tensor, column, |r|) of each tensor's best candidates, then the best of all of them
    for name, acts in rec.tensors.items():
        r = np.abs(correlations(acts[:half], y[:half]) if r_first is None else r_first[name])
        names += [(name, int(j), float(r[j])) for j in np.argsort(-r)[:pool]]
    names = sorted(names, key=lambda n: -n[2])[:pool]
    x = np.stack([np.asarray(rec.tensors[name][:, j], dtype=np.float32) for name, j, _ in names], 1)
    mean, std = x[:half].mean(0), x[:half].std(0) + 1e-6
    x = torch.as_tensor((x - mean) / std)
    t = torch.as_tensor(y)
    w, b = torch.zeros(x.shape[1]), torch.zeros(())
    lr = 0.5
    for _ in range(steps):
        p = torch.sigmoid(x[:half] @ w + b)
        grad = x[:half].T @ (p - t[:half]) / half
        w = w - lr * grad
        w = torch.sign(w) * torch.clamp(w.abs() - lr * l1, min=0)  # soft threshold: the L1 step
        b = b - lr * (p - t[:half]).mean()
    pred = (torch.sigmoid(x[half:] @ w + b) > 0.5).float()
    accuracy = float((pred == t[half:]).float().mean())
    majority = float(y[:half].mean() >= 0.5)
    baseline = float((y[half:] == majority).mean())
    order = torch.argsort(-w.abs())
    units = [(names[i][0], int(rec.units[names[i][0]][names[i][1]]), float(w[i])) for i in order.tolist() if w[i] != 0]
    return Probe(accuracy, baseline, units)


# --------------------------------------------------------------------------
# Gradient flow


def gradient_flow(model, vocab, text: str, horizon: int = 50, positions: int = 64, seed: int = 0,
                  rec: Recording | None = None) -> dict[str, list[float]]:  # fmt: skip
    """Mean norm of d(loss at t) / d(h at t-k), k = 1..horizon, per layer,
    over `positions` random positions of the text: how far back credit for
    a prediction actually reaches. Each window starts from the true state
    the model had there: read from `rec`, a recording of this text with
    every unit of every layer, or found by one forward over the text."""
    device = model.head.weight.device
    ids = torch.as_tensor(vocab.encode(as_model_reads(text, model.config.documents)).astype(np.int64), device=device)
    if len(ids) < horizon + 2:
        raise CharRNNError(f"gradient flow needs more than {horizon + 1} characters of text")
    rng = np.random.default_rng(seed)
    ends = np.sort(rng.choice(np.arange(horizon, len(ids) - 1), size=min(positions, len(ids) - 1 - horizon), replace=False))
    model = model.eval()
    starts = ends - horizon  # window: characters starts..ends, predicting ends+1
    with ieee_fp32(device):
        with torch.no_grad():  # the state each window starts from
            states = _recorded_states(rec, starts, device) if rec is not None else None
            states = states if states is not None else states_before(model, ids, starts)
        state = tuple(s.clone() for s in states)
        kept = []
        for step in range(horizon + 1):
            if model.config.documents:  # a document is read from the zero state: no credit flows past its start
                fresh = (ids[torch.as_tensor(starts + step, device=device)] == END_ID)[None, :, None]
                state = tuple(s.masked_fill(fresh, 0.0) for s in state)
            for s in state:
                s.requires_grad_(True)
                s.retain_grad()
            kept.append(state)
            logits, state = model.step(ids[torch.as_tensor(starts + step, device=device)], state)
        loss = torch.nn.functional.cross_entropy(logits, ids[torch.as_tensor(ends + 1, device=device)], reduction="sum")
        loss.backward()
    flow = {}
    for k in range(model.config.layers):
        # kept[j] is the state before character starts+j, i.e. h at t - (horizon + 1 - j) ... h(t-1) is kept[horizon]
        norms = [float(kept[horizon + 1 - lag][0].grad[k].norm(dim=-1).mean()) for lag in range(1, horizon + 1)]
        flow[f"l{k}.h"] = norms
    return flow


def _recorded_states(rec: Recording, starts: np.ndarray, device: torch.device) -> tuple | None:
    """The state before each start position ((layers, len(starts), H) per
    part), from a recording that holds every unit of every layer's state;
    None if it does not."""
    cfg = rec.config
    names = [[f"l{k}.{part}" for k in range(cfg.layers)] for part in cfg.cell.state_names]
    if any(n not in rec.tensors or len(rec.units[n]) != cfg.hidden for part in names for n in part):
        return None
    before = np.maximum(starts - 1, 0)  # the state after reading the character before ...
    fresh = torch.as_tensor(starts == 0)[:, None]  # ... or, at the text's start, a zero state
    return tuple(torch.stack([torch.as_tensor(np.asarray(rec.tensors[n][before], dtype=np.float32)).masked_fill(fresh, 0)
                              for n in part]).to(device) for part in names)  # fmt: skip


# --------------------------------------------------------------------------
# Everything at once


@dataclass(frozen=True)
class Report:
    """What `inspect` finds in a recording (the --report JSON is to_dict())."""

    chars: int
    loss: float | None  # mean nats per predicted character
    features: dict[str, list[Found]]  # feature -> its best units
    probes: dict[str, Probe]  # binary feature -> its sparse probe
    contexts: dict[str, dict[str, list[dict]]]  # "tensor:unit" of each feature's best unit -> top_contexts
    saturation: dict[str, Saturation]
    gradient_flow: dict[str, list[float]]  # "l{k}.h" -> mean gradient norm at lags 1..horizon
    ablations: list[Ablation] = field(default_factory=list)  # the units asked for (--ablate), over the whole text
    ablated_chars: int = 0  # the characters the finder's ablation column was measured on
    feature_set: str = "generic"  # whose features the finder looked for (languages.py)

    def to_dict(self) -> dict:
        return {
            "chars": self.chars,
            "loss": self.loss,
            "features": {name: [f.to_dict() for f in rows] for name, rows in self.features.items()},
            "probes": {name: p.to_dict() for name, p in self.probes.items()},
            "contexts": self.contexts,
            "saturation": {name: s.to_dict() for name, s in self.saturation.items()},
            "gradient_flow": self.gradient_flow,
            "ablations": [a.to_dict() for a in self.ablations],
            "ablated_chars": self.ablated_chars,
            "feature_set": self.feature_set,
        }


def control_recording(rec: Recording, units: np.ndarray | None = None, start: int = 0) -> Recording:
    """The text from `start` through the same architecture at random
    initialisation (always the same one: its own seeded generator, the
    caller's untouched), keeping `units` (None: those of the recording)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(CONTROL_SEED)
        control_model = CharRNN(rec.config)  # on the CPU, where the recording's arrays are
    units = next(iter(rec.units.values())) if units is None else units
    dtype = next(iter(rec.tensors.values())).dtype
    return record(control_model, rec.vocab, rec.text[start:], rec.layers, units, dtype)


def analyse(rec: Recording, model: CharRNN, extra: dict[str, Feature] | None = None, top: int = 5,
            ablate: Sequence[Unit] = (), ablate_with: str = "zero", features: str = "auto") -> Report:  # fmt: skip
    """Every analysis of a recording of `model`: the finder (the named
    feature set's features, auto: chosen by the text, and `extra` ones; `top`
    units each, against a control, each state unit ablated), probes for the
    binary features, contexts, saturation, gradient flow, and the `ablate`
    units held over the text (at 0, or at their mean over it)."""
    chosen, named = feature_set(features, rec.text)
    features = {name: f(rec.text) for name, f in {**named, **(extra or {})}.items()}
    held = [(unit, held_value(rec, unit, ablate_with)) for unit in ablate]  # refused before any long work
    table = correlation_table(rec, features)
    picked = pick_units(rec, features, top, table)
    # The control reads the held-out half alone, and keeps only the units picked: r_control needs no more.
    wanted = sorted({int(rec.units[name][j]) for rows in picked.values() for name, j in rows})
    control = control_recording(rec, np.array(wanted), len(rec.text) // 2) if wanted else None
    found = find_units(rec, control, features, top, table, picked)
    found, ablated_chars = _with_ablations(rec, model, found, features, ablate_with)
    horizon = min(FLOW_HORIZON, len(rec.text) - 2)
    return Report(
        chars=len(rec.text),
        loss=float(np.nanmean(rec.loss)) if len(rec.text) > 1 else None,
        features=found,
        probes={name: l1_probe(rec, values, r_first={t: r[:, i] for t, r in table.items()})
                for i, (name, values) in enumerate(features.items()) if is_binary(values)},
        contexts={
            f"{row.tensor}:{row.unit}": top_contexts(rec, row.tensor, list(rec.units[row.tensor]).index(row.unit))
            for rows in found.values()
            for row in rows[:1]
        },
        saturation=saturation(rec),
        gradient_flow=gradient_flow(model, rec.vocab, rec.text, horizon, rec=rec) if horizon >= 1 else {},
        ablations=ablation.ablate(model, rec.vocab, rec.text, held, features) if held and len(rec.text) > 1 else [],
        ablated_chars=ablated_chars,
        feature_set=chosen,
    )


def held_value(rec: Recording, unit: Unit, how: str) -> float:
    """What an ablated unit is held at: 0, or its mean over the recording."""
    if how == "zero":
        return 0.0
    if how != "mean":
        raise CharRNNError(f"--ablate-with must be zero or mean, not {how!r}")
    name = f"l{unit.layer}.{unit.part}"
    if name not in rec.tensors or unit.index not in rec.units[name]:
        raise CharRNNError(f"--ablate-with mean: {unit.name} was not recorded, so it has no mean (see --units, --layers)")
    return float(rec.tensors[name][:, list(rec.units[name]).index(unit.index)].astype(np.float64).mean())


def _with_ablations(rec: Recording, model: CharRNN, found: dict[str, list[Found]], features: dict[str, np.ndarray],
                    how: str) -> tuple[dict[str, list[Found]], int]:  # fmt: skip
    """The finder's rows, each state unit's with its ablation effect on its
    feature, measured on the held-out half (as r is), or part of it: all the
    units at once in one batch, within a budget of characters x units."""
    states = rec.config.cell.state_names
    units = sorted({Unit(*split_name(row.tensor), row.unit) for rows in found.values() for row in rows
                    if split_name(row.tensor)[1] in states}, key=lambda u: u.name)  # fmt: skip
    half = len(rec.text) // 2
    chars = min(len(rec.text) - half, ablation.ABLATE_CHARS, ablation.ABLATE_BUDGET // (len(units) + 1))
    if not units or chars < 2:
        return found, 0
    span = slice(half, half + chars)
    done = ablation.ablate(model, rec.vocab, rec.text[span], [(u, held_value(rec, u, how)) for u in units],
                           {name: values[span] for name, values in features.items()})  # fmt: skip
    effects = {a.unit: a.features for a in done}
    with_effects = {
        fname: [replace(row, ablation=effects.get(f"{row.tensor}:{row.unit}", {}).get(fname)) for row in rows]
        for fname, rows in found.items()
    }
    return with_effects, chars
