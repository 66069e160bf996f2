"""How a model's weights travel inside a page or a module: as base64 of
their little-endian bytes, in fp32, bf16, fp16, or int8.

int8 keeps one fp32 scale per row of each matrix (per output unit; per
character of the embedding): w[r, c] = q[r, c] * scale[r], with q in
[-127, 127] and scale = max|w[r, :]| / 127. A row's largest weight is then
exact and the rest are within half a step of its range. Vectors (the
biases) are few and sensitive, so they stay fp16.

`as_page_sees` gives the weights exactly as the JavaScript decodes them,
so Python can measure and test what the page computes.
"""

from __future__ import annotations

import base64

import torch

from ..device import STORAGE
from ..errors import CharRNNError

WEB_DTYPES = (*STORAGE, "int8")  # what a page's or a module's weights may be


def check_dtype(dtype: str) -> None:
    if dtype not in WEB_DTYPES:
        raise CharRNNError(f"--dtype must be one of {', '.join(WEB_DTYPES)}, not {dtype!r}")


def stored_dtype(t: torch.Tensor, dtype: str) -> str:
    """The dtype one tensor is stored in: int8's vectors stay fp16."""
    return "fp16" if dtype == "int8" and t.dim() < 2 else dtype


def int8_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A matrix (rows, ...) -> (q int8 of its shape, one fp32 scale per row)."""
    rows = t.detach().float().reshape(t.shape[0], -1)
    scale = rows.abs().amax(1) / 127
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row: any scale holds it
    q = torch.round(rows / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.reshape(t.shape), scale


def encode(t: torch.Tensor, dtype: str) -> dict:
    """One tensor as the page's JSON holds it: {shape, dtype, data[, scale]}."""
    stored = stored_dtype(t, dtype)
    out = {"shape": list(t.shape), "dtype": stored}
    if stored == "int8":
        q, scale = int8_rows(t)
        return out | {"data": _b64(q), "scale": _b64(scale)}
    half = t.detach().to(STORAGE[stored]).contiguous()
    return out | {"data": _b64(half.view(torch.int16 if half.element_size() == 2 else torch.int32))}


def check_range(state: dict[str, torch.Tensor], dtype: str) -> None:
    """Refuse weights that the storage would turn into inf."""
    for t in state.values():
        stored = stored_dtype(t, dtype)
        if stored != "int8" and not bool(torch.isfinite(t.to(STORAGE[stored])).all()):
            raise CharRNNError(f"the weights overflow {stored}'s range: use --dtype bf16 or fp32")


def as_page_sees(state: dict[str, torch.Tensor], dtype: str) -> dict[str, torch.Tensor]:
    """The fp32 weights the JavaScript decodes from `encode(t, dtype)`."""
    out = {}
    for name, t in state.items():
        stored = stored_dtype(t, dtype)
        if stored == "int8":
            q, scale = int8_rows(t)
            out[name] = (q.float().reshape(t.shape[0], -1) * scale[:, None]).reshape(t.shape)
        else:
            out[name] = t.detach().to(STORAGE[stored]).float()
    return out


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.contiguous().numpy().tobytes()).decode("ascii")
