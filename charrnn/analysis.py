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
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .activations import Recording
from .errors import CharRNNError
from .model import split_name

SATURATED_LOW, SATURATED_HIGH = 0.1, 0.9
SATURATING_GATES = {"i", "f", "o", "r", "z"}  # sigmoid gates


# --------------------------------------------------------------------------
# Features: one number per character of the text


def _inside(text: str, open_c: str, close_c: str) -> np.ndarray:
    """1 on the characters between a quote opening and its closing, quotes excluded."""
    out = np.zeros(len(text), dtype=np.float32)
    inside = False
    for t, ch in enumerate(text):
        if ch == open_c if not inside else ch == close_c:
            inside = not inside
            continue
        out[t] = inside
    return out


def _single_quotes(text: str) -> np.ndarray:
    # An apostrophe between letters (don't) is not a quote.
    cleaned = re.sub(r"(?<=\w)'(?=\w)", "\0", text)
    return _inside(cleaned, "'", "'")


def _depth(text: str) -> np.ndarray:
    out = np.zeros(len(text), dtype=np.float32)
    d = 0
    for t, ch in enumerate(text):
        if ch in "([{":
            d += 1
        out[t] = d
        if ch in ")]}":
            d = max(0, d - 1)
    return out


def _line_position(text: str) -> np.ndarray:
    out = np.zeros(len(text), dtype=np.float32)
    col = 0
    for t, ch in enumerate(text):
        out[t] = col
        col = 0 if ch == "\n" else col + 1
    return out


def _indentation(text: str) -> np.ndarray:
    out = np.zeros(len(text), dtype=np.float32)
    start = 0
    for line in text.splitlines(keepends=True):
        indent = len(line) - len(line.lstrip(" \t"))
        out[start : start + len(line)] = indent
        start += len(line)
    return out


def regex_feature(pattern: str) -> Callable[[str], np.ndarray]:
    try:
        rx = re.compile(pattern, re.MULTILINE | re.DOTALL)
    except re.error as e:
        raise CharRNNError(f"--feature regex {pattern!r} is invalid: {e}") from None

    def feature(text: str) -> np.ndarray:
        out = np.zeros(len(text), dtype=np.float32)
        for m in rx.finditer(text):
            out[m.start() : m.end()] = 1
        return out

    return feature


def _chars(pred: Callable[[str], bool]) -> Callable[[str], np.ndarray]:
    return lambda text: np.fromiter((pred(c) for c in text), dtype=np.float32, count=len(text))


BUILTIN_FEATURES: dict[str, Callable[[str], np.ndarray]] = {
    "inside double quotes": lambda text: _inside(text, '"', '"'),
    "inside single quotes": _single_quotes,
    "bracket depth": _depth,
    "position in line": _line_position,
    "indentation": _indentation,
    "inside a comment": regex_feature(r"#[^\n]*|//[^\n]*|/\*.*?\*/"),
    "start of word": regex_feature(r"(?<!\w)\w"),
    "after a newline": regex_feature(r"(?<=\n)."),
    "uppercase": _chars(str.isupper),
    "digit": _chars(str.isdigit),
}
BINARY = {"inside double quotes", "inside single quotes", "inside a comment", "start of word",
          "after a newline", "uppercase", "digit"}  # fmt: skip


def parse_feature(spec: str) -> tuple[str, Callable[[str], np.ndarray]]:
    """'NAME=REGEX' -> (NAME, feature active inside the regex's matches)."""
    name, sep, pattern = spec.partition("=")
    if not sep or not name or not pattern:
        raise CharRNNError(f"--feature must be NAME=REGEX, not {spec!r}")
    return name, regex_feature(pattern)


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


def saturation(rec: Recording) -> dict[str, dict]:
    """Per sigmoid gate tensor: the fraction of time each unit is left- and
    right-saturated, and their means over units."""
    out = {}
    for name, acts in rec.tensors.items():
        if split_name(name)[1] not in SATURATING_GATES:
            continue
        a = acts.astype(np.float32)
        left, right = (a < SATURATED_LOW).mean(0), (a > SATURATED_HIGH).mean(0)
        out[name] = {
            "left_mean": float(left.mean()),
            "right_mean": float(right.mean()),
            "left": left.round(4).tolist(),
            "right": right.round(4).tolist(),
        }
    return out


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
    import torch

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
    import torch

    ids = torch.as_tensor(vocab.encode(text).astype(np.int64))
    if len(ids) < horizon + 2:
        raise CharRNNError(f"gradient flow needs more than {horizon + 1} characters of text")
    rng = np.random.default_rng(seed)
    ends = np.sort(rng.choice(np.arange(horizon, len(ids) - 1), size=min(positions, len(ids) - 1 - horizon), replace=False))
    model = model.eval()
    starts = ends - horizon  # window: characters starts..ends, predicting ends+1
    with torch.no_grad():  # the state each window starts from
        states = _states_before(model, ids, starts)
    state = tuple(s.clone() for s in states)
    kept = []
    for step in range(horizon + 1):
        for s in state:
            s.requires_grad_(True)
            s.retain_grad()
        kept.append(state)
        logits, state = model.step(ids[torch.as_tensor(starts + step)], state)
    loss = torch.nn.functional.cross_entropy(logits, ids[torch.as_tensor(ends + 1)], reduction="sum")
    loss.backward()
    flow = {}
    for k in range(model.config.layers):
        # kept[j] is the state before character starts+j, i.e. h at t - (horizon + 1 - j) ... h(t-1) is kept[horizon]
        norms = [float(kept[horizon + 1 - lag][0].grad[k].norm(dim=-1).mean()) for lag in range(1, horizon + 1)]
        flow[f"l{k}.h"] = norms
    return flow


def _states_before(model, ids, starts) -> tuple:
    """The model's state just before each start position (batch of them)."""
    import torch

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
