"""The closed vocabularies every layer shares (torch-free): problems, solvers, devices, competitor modes, storage
dtypes. The store keeps these labels as integer codes in this order, so a new word is only ever appended."""
from __future__ import annotations

PROBLEMS = ("op", "dp")  # op: shared outputs; dp: private competitors
SOLVERS = ("adam", "hebbian", "lp")
DEVICES = ("cpu", "cuda")  # what a probe runs on
DEVICE_CHOICES = (*DEVICES, "auto")  # what a user may ask for
MODES = ("auto", "materialize", "regenerate")  # how the fused loss gets DP competitors (asked)
# How materialised DP competitors are held; 'auto': float32 where it fits the budget, else bfloat16 where that
# fits (lamcap.kernels.budget.competitor_plan).
STORAGE_DTYPES = ("float32", "bfloat16", "auto")
# Bytes per entry. 'auto' counts as bfloat16: a probe materialises exactly when the bfloat16 tensor fits, so the
# mode rule (competitor_mode) gives the right mode from it; the storage it then uses is competitor_plan's.
STORAGE_BYTES = {"float32": 4, "bfloat16": 2, "auto": 2}
# The precision of the fused loss's two products (scores, softmax-weighted sums) on a GPU: 'highest' float32,
# 'tf32' TF32 tensor cores, 'bf16x3' bfloat16 tensor cores on split float32 operands (lamcap.kernels.precision).
MATMUL_PRECISIONS = ("highest", "tf32", "bf16x3")
