"""The closed vocabularies every layer shares (torch-free): problems, solvers, devices, competitor modes, storage
dtypes. The store keeps these labels as integer codes in this order, so a new word is only ever appended."""
from __future__ import annotations

PROBLEMS = ("op", "dp")  # op: shared outputs; dp: private competitors
SOLVERS = ("adam", "hebbian", "lp")
DEVICES = ("cpu", "cuda")  # what a probe runs on
DEVICE_CHOICES = (*DEVICES, "auto")  # what a user may ask for
MODES = ("auto", "materialize", "regenerate")  # how the fused loss gets DP competitors (asked)
STORAGE_DTYPES = ("float32", "bfloat16")  # how materialised DP competitors are held
STORAGE_BYTES = {"float32": 4, "bfloat16": 2}
