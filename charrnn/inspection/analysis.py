"""Finding the interpretable units in a recording.

- Gate saturation, as in Karpathy, Johnson and Fei-Fei (2015): how often
  each unit's gate is left- (< 0.1) or right-saturated (> 0.9).
- Feature finder: correlate every unit with hypothesis features of the
  text (inside quotes, bracket depth, position in line, ...). Units are
  chosen on the first half of the text and their correlation reported on
  the second half, beside the same unit's correlation in the same
  architecture at random initialisation: a feature that the current
  character gives away correlates even in an untrained network.
- Top contexts: where a unit is highest and lowest, with the text around.
- Sparse probes and gradient flow (below).

`analyse` runs all of them on a recording and returns a typed Report:

    recording -> control recording (same architecture, random init)
              -> features of its text -> finder, probes, contexts,
                 saturation, gradient flow -> Report
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..cells import Range
from ..device import ieee_fp32
from ..errors import CharRNNError
from ..model import CharRNN
from .features import BUILTIN_FEATURES, Feature, is_binary
from .record import Recording, record

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

    def to_dict(self) -> dict:
        return {"tensor": self.tensor, "unit": self.unit, "r": self.r, "r_control": self.r_control}


def find_units(
    rec: Recording, control: Recording, features: dict[str, np.ndarray], top: int = 5
) -> dict[str, list[Found]]:
    """For each feature, the `top` units by |r| on the first half of the
    text, reported with r (and the control's r) on the second half."""
    n = len(rec.text)
    if n < 20:
        raise CharRNNError("the text is too short to find units (it needs at least 20 characters)")
    half = n // 2
    found = {}
    for fname, feature in features.items():
        if feature[:half].std() == 0 or feature[half:].std() == 0:
            found[fname] = []  # absent (or constant) in a half: nothing to correlate
            continue
        candidates = []
        for name, acts in rec.tensors.items():
            r_pick = correlations(acts[:half], feature[:half])
            for j in np.argsort(-np.abs(r_pick))[:top]:
                candidates.append((abs(r_pick[j]), name, int(j)))
        candidates.sort(reverse=True)
        rows = []
        for _, name, j in candidates[:top]:
            r = correlations(rec.tensors[name][half:, j : j + 1], feature[half:])[0]
            rc = correlations(control.tensors[name][half:, j : j + 1], feature[half:])[0]
            rows.append(Found(name, int(rec.units[name][j]), float(r), float(rc)))
        found[fname] = rows
    return found


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
        a = acts.astype(np.float32)
        left, right = (a < SATURATED_LOW).mean(0), (a > SATURATED_HIGH).mean(0)
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


def l1_probe(rec: Recording, feature: np.ndarray, pool: int = 64, l1: float = 0.02, steps: int = 400) -> Probe:
    """A sparse (L1) logistic probe for a binary feature: how few units
    explain it. Candidates are the `pool` units most correlated with it on
    the first half; the probe is fit there (proximal gradient descent on
    standardised activations) and scored on the second half."""
    half = len(rec.text) // 2
    y = (feature > 0.5).astype(np.float32)
    cols, names = [], []
    for name, acts in rec.tensors.items():
        r = np.abs(correlations(acts[:half], y[:half]))
        for j in np.argsort(-r)[:pool]:
            cols.append(acts[:, j].astype(np.float32))
            names.append((name, int(rec.units[name][j]), r[j]))
    keep = np.argsort([-n[2] for n in names])[:pool]
    x = np.stack([cols[i] for i in keep], 1)
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
    units = [(names[keep[i]][0], names[keep[i]][1], float(w[i])) for i in order.tolist() if w[i] != 0]
    return Probe(accuracy, baseline, units)


# --------------------------------------------------------------------------
# Gradient flow


def gradient_flow(model, vocab, text: str, horizon: int = 50, positions: int = 64, seed: int = 0) -> dict[str, list[float]]:
    """Mean norm of d(loss at t) / d(h at t-k), k = 1..horizon, per layer,
    over `positions` random positions of the text: how far back credit for
    a prediction actually reaches. Each window starts from the true state
    the model had there (one forward over the text before it)."""
    device = model.head.weight.device
    ids = torch.as_tensor(vocab.encode(text).astype(np.int64), device=device)
    if len(ids) < horizon + 2:
        raise CharRNNError(f"gradient flow needs more than {horizon + 1} characters of text")
    rng = np.random.default_rng(seed)
    ends = np.sort(rng.choice(np.arange(horizon, len(ids) - 1), size=min(positions, len(ids) - 1 - horizon), replace=False))
    model = model.eval()
    starts = ends - horizon  # window: characters starts..ends, predicting ends+1
    with ieee_fp32(device):
        with torch.no_grad():  # the state each window starts from
            states = _states_before(model, ids, starts)
        state = tuple(s.clone() for s in states)
        kept = []
        for step in range(horizon + 1):
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


def _states_before(model, ids, starts) -> tuple:
    """The model's state just before each start position (batch of them)."""
    state = model.init_state(1)
    out = {}
    wanted = set(int(s) for s in starts)
    last = 0
    for s in sorted(wanted):
        if s > last:
            _, state = model(ids[last:s][None], state)
            last = s
        out[s] = state
    return tuple(torch.cat([out[int(s)][i] for s in starts], dim=1) for i in range(len(state)))


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

    def to_dict(self) -> dict:
        return {
            "chars": self.chars,
            "loss": self.loss,
            "features": {name: [f.to_dict() for f in rows] for name, rows in self.features.items()},
            "probes": {name: p.to_dict() for name, p in self.probes.items()},
            "contexts": self.contexts,
            "saturation": {name: s.to_dict() for name, s in self.saturation.items()},
            "gradient_flow": self.gradient_flow,
        }


def control_recording(rec: Recording) -> Recording:
    """The same text through the same architecture at random initialisation
    (always the same one: its own seeded generator, the caller's untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(CONTROL_SEED)
        control_model = CharRNN(rec.config)  # on the CPU, where the recording's arrays are
    units = next(iter(rec.units.values()))
    dtype = next(iter(rec.tensors.values())).dtype
    return record(control_model, rec.vocab, rec.text, rec.layers, units, dtype)


def analyse(rec: Recording, model: CharRNN, extra: dict[str, Feature] | None = None, top: int = 5) -> Report:
    """Every analysis of a recording of `model`: the finder
    (built-in and `extra` features, `top` units each, against a control),
    probes for the binary features, contexts, saturation, gradient flow."""
    features = {name: f(rec.text) for name, f in {**BUILTIN_FEATURES, **(extra or {})}.items()}
    found = find_units(rec, control_recording(rec), features, top)
    horizon = min(FLOW_HORIZON, len(rec.text) - 2)
    return Report(
        chars=len(rec.text),
        loss=float(np.nanmean(rec.loss)) if len(rec.text) > 1 else None,
        features=found,
        probes={name: l1_probe(rec, values) for name, values in features.items() if is_binary(values)},
        contexts={
            f"{row.tensor}:{row.unit}": top_contexts(rec, row.tensor, list(rec.units[row.tensor]).index(row.unit))
            for rows in found.values()
            for row in rows[:1]
        },
        saturation=saturation(rec),
        gradient_flow=gradient_flow(model, rec.vocab, rec.text, horizon) if horizon >= 1 else {},
    )
