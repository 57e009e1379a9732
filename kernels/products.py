"""The fused loss's two products over a chunk of competitors: scores z . y and softmax-weighted sums of y.

`Products` says how a source's chunks are multiplied, fixed per probe and recorded with it:
  * float32 ('highest'), as on every CPU: tiles in the query's dtype (float32, or float64 in tests);
  * 'tf32' (a GPU): the same float32 products on TF32 tensor cores (inputs rounded to 10-bit mantissas);
  * 'bf16x3' (a GPU): bfloat16 tensor cores on split operands, a = a_hi + a_lo (two bfloat16s carry 16 of
    float32's 24 bits), a.b ~ a_hi.b_hi + a_hi.b_lo + a_lo.b_hi in float32 (relative error ~2^-16), as one
    product over a three-times longer inner dimension;
  * bfloat16 storage read directly (DP on a GPU with bf16 x bf16 -> fp32 products, `out_dtype`): the float32
    operand (z, or the softmax weights) is split exactly into three bfloat16s (8 + 8 + 8 bits hold its 24),
    whose products with the bfloat16 competitors are exact and accumulate in float32: the float32 product
    with the bfloat16-rounded competitors, read at 2 bytes an entry instead of upcasting every chunk to a
    new float32 buffer (14 bytes of traffic an entry instead of 4).
The products are plain torch calls on tiles: DP tiles are d-major (rows, d, cols), OP tiles (cols, d).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

LowProduct = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # bf16 (..., m, k) x bf16 (..., k, n) -> fp32


def bf16_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """bfloat16 x bfloat16 -> float32 on a GPU's tensor cores (float32 accumulation; products exact)."""
    return torch.bmm(a, b, out_dtype=torch.float32) if a.dim() == 3 else torch.mm(a, b, out_dtype=torch.float32)


def split_bf16(x: torch.Tensor, parts: int) -> list[torch.Tensor]:
    """x (float32) as `parts` bfloat16s, largest first: x = sum of the parts exactly for parts = 3 (each
    remainder is exact in float32 and has at most 16, then 8 significant bits), to 16 bits for parts = 2."""
    out, rest = [], x
    for i in range(parts):
        part = rest.to(torch.bfloat16)
        out.append(part)
        if i + 1 < parts:
            rest = rest - part.float()
    return out


@contextlib.contextmanager
def _tf32() -> Iterator[None]:
    """TF32 tensor cores for float32 products inside (restored after)."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):
        before = matmul.fp32_precision
        matmul.fp32_precision = "tf32"
        try:
            yield
        finally:
            matmul.fp32_precision = before
    else:
        before = matmul.allow_tf32
        matmul.allow_tf32 = True
        try:
            yield
        finally:
            matmul.allow_tf32 = before


def _sum_parts(s: torch.Tensor, dim: int) -> torch.Tensor:
    """(s_0 + s_1) + s_2 along `dim`: the parts' products added in a fixed order."""
    parts = s.unbind(dim)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


@dataclass(frozen=True)
class Products:
    """How one probe's fused loss multiplies its chunks: `precision` of float32 products ('highest', 'tf32',
    'bf16x3'); `low` the bf16 x bf16 -> fp32 product (bf16x3, and bfloat16 tiles read directly)."""

    precision: str = "highest"
    low: LowProduct | None = field(default=None, compare=False)

    def scores(self, z: torch.Tensor, tile: torch.Tensor) -> torch.Tensor:
        """s[a, b] = y_b . z_a: DP tile (rows, d, cols) d-major, OP tile (cols, d) shared."""
        if tile.dtype == torch.bfloat16 and z.dtype == torch.float32 and self.low is not None:
            return self._split_left(z, tile)
        tile = tile.to(z.dtype)
        if z.dtype != torch.float32 or self.precision == "highest":
            return _plain_scores(z, tile)
        if self.precision == "tf32":
            with _tf32():
                return _plain_scores(z, tile)
        return self._bf16x3(z, tile.mT if tile.dim() == 2 else tile)

    def weighted_sum(self, probs: torch.Tensor, tile: torch.Tensor) -> torch.Tensor:
        """sum_b probs[a, b] y_b, shape (rows, d)."""
        if tile.dtype == torch.bfloat16 and probs.dtype == torch.float32 and self.low is not None:
            return self._split_left(probs, tile.mT)
        tile = tile.to(probs.dtype)
        if probs.dtype != torch.float32 or self.precision == "highest":
            return _plain_weighted_sum(probs, tile)
        if self.precision == "tf32":
            with _tf32():
                return _plain_weighted_sum(probs, tile)
        return self._bf16x3(probs, tile.mT if tile.dim() == 3 else tile)

    def _split_left(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """left (rows, k) float32 times a DP bfloat16 tile oriented (rows, k, n): the exact three-way split of
        `left` as three rows of one product per input row, summed in a fixed order."""
        parts = torch.stack(split_bf16(left, 3), dim=1)  # (rows, 3, k)
        return _sum_parts(self.low(parts, right), 1)

    def _bf16x3(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """left (rows, k) float32 times right ((k, n), or per row (rows, k, n)) float32 on bf16 tensor cores."""
        l_hi, l_lo = split_bf16(left, 2)
        r_hi, r_lo = split_bf16(right, 2)
        a = torch.cat([l_hi, l_hi, l_lo], dim=-1)  # (rows, 3k): hi.hi + hi.lo + lo.hi in one product
        if right.dim() == 3:
            b = torch.cat([r_hi, r_lo, r_hi], dim=1)
            return self.low(a[:, None, :], b)[:, 0]
        return self.low(a, torch.cat([r_hi, r_lo, r_hi], dim=0))


def _plain_scores(z: torch.Tensor, tile: torch.Tensor) -> torch.Tensor:
    if tile.dim() == 3:
        return torch.bmm(z[:, None, :], tile)[:, 0]
    return z @ tile.T


def _plain_weighted_sum(probs: torch.Tensor, tile: torch.Tensor) -> torch.Tensor:
    if tile.dim() == 3:
        return torch.bmm(probs[:, None, :], tile.mT)[:, 0]
    return probs @ tile


HIGHEST = Products()


def low_product_on(device: torch.device) -> LowProduct | None:
    """bf16_product on a CUDA device when this torch has bf16 x bf16 -> fp32 products (aten::bmm.dtype and
    aten::mm.dtype, torch >= 2.8), else None: a property of the build, so that a plan stays a pure function."""
    if device.type != "cuda" or torch.version.hip is not None:
        return None
    has = all("dtype" in getattr(torch.ops.aten, op).overloads() for op in ("bmm", "mm"))
    return bf16_product if has else None


def products_for(device: torch.device, requested: str) -> Products:
    """The products a probe runs on `device` for the requested precision: 'highest' on a CPU (no tensor cores),
    and on a GPU whose torch lacks bf16 x bf16 -> fp32 products for 'bf16x3'."""
    if device.type != "cuda":
        return HIGHEST
    low = low_product_on(device)
    if requested == "bf16x3" and low is None:
        return Products("highest")
    return Products(requested, low)
