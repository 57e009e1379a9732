"""Stated cost models: fixed rates of one GPU and one CPU core, for planning where nothing can be timed and
wherever a cost must not depend on the machine or the moment (the adaptive dimension learner's decisions)."""
from __future__ import annotations

from lamcap.errors import InvalidInput
from lamcap.kernels.budget import CUDA_BUDGET_FRACTION
from lamcap.kernels.budget import DEFAULT_CPU_BUDGET_BYTES as CPU_BUDGET_BYTES
from lamcap.orchestrator.planning.cost_model import CostModel, Curve

# A stated model of one data-centre GPU (H100 80 GB class), for planning where none can be timed.
# Effective rates, not peaks: fp32 matrix products without tensor cores 25 Tflop/s (peak 67),
# memory 2 TB/s (peak 3.35), counter-based Gaussian generation ~1e10 samples/s, float64 4e12
# flop/s in the verification's small batched products; per step 1 ms of launches, the loss's
# host synchronisation and the Adam update. An estimate until lamcap has run on a GPU.
GPU_MEMORY_BYTES = 80 * 10**9
GPU_FP32_FLOPS = 25e12
GPU_BANDWIDTH = 2e12
GPU_SAMPLES = GPU_BANDWIDTH / 204  # the counter-based generator moves ~204 bytes per sample (README "GPU")
GPU_FP64_FLOPS = 4e12
GPU_STEP_OVERHEAD_S = 1e-3
GPU_PROBE_OVERHEAD_S = 0.05  # instance, verification passes' launches, the record


def stated_gpu_model() -> CostModel:
    """The stated GPU model above as a CostModel (device 'cuda')."""
    lin = Curve.linear
    per_sample = 1 / GPU_SAMPLES
    # a DP verification regenerates the competitors twice (statistics, then histograms), each read in float64
    dp_verify = 2 * (per_sample + 8 / GPU_BANDWIDTH + 2 / GPU_FP64_FLOPS)
    return CostModel(
        device="cuda",
        source="stated GPU model (H100 80 GB class; not measured: no GPU has run lamcap yet)",
        budget_bytes=int(CUDA_BUDGET_FRACTION * GPU_MEMORY_BYTES), memory_bytes=GPU_MEMORY_BYTES,
        step={("op", "materialize"): lin(GPU_STEP_OVERHEAD_S, GPU_FP32_FLOPS),
              ("dp", "materialize"): lin(GPU_STEP_OVERHEAD_S, GPU_BANDWIDTH / 4),  # float32 reads per second
              # regenerate: generate every sample, then read it twice from the device's cache
              ("dp", "regenerate"): lin(GPU_STEP_OVERHEAD_S, 1 / (per_sample + 8 / GPU_BANDWIDTH))},
        setup={("op", "materialize"): lin(GPU_PROBE_OVERHEAD_S, GPU_BANDWIDTH),
               ("dp", "materialize"): lin(GPU_PROBE_OVERHEAD_S, 1 / (per_sample + 4 / GPU_BANDWIDTH)),
               ("dp", "regenerate"): lin(GPU_PROBE_OVERHEAD_S, 1e30)},
        verify={"op": lin(GPU_PROBE_OVERHEAD_S, GPU_FP64_FLOPS / 4),  # two passes of 2 p^2 d flops
                "dp": lin(GPU_PROBE_OVERHEAD_S, 1 / dp_verify)},
        probe={"op": lin(2 * GPU_PROBE_OVERHEAD_S, GPU_FP64_FLOPS / 4),
               "dp": lin(2 * GPU_PROBE_OVERHEAD_S, 1 / dp_verify)},
    )


# A stated model of one CPU core: linear fits to a calibration (`lamcap plan --clock cpu`: one thread's CPU
# time) on this project's 2-core AMD EPYC build machine, 2026-11-23; regenerate from the generator's
# measured 8.6 ns per sample in cache-sized chunks (benchmarks/generator.py) plus two reads. Used where a
# cost must not depend on the machine or the moment (the adaptive dimension learner's decisions replay).
CPU_OP_FLOPS = 1.6e10
CPU_BANDWIDTH = 1.75e10
CPU_SAMPLES = 1.0e8
CPU_STEP_OVERHEAD_S = 1e-3
CPU_PROBE_OVERHEAD_S = 2e-3


def stated_cpu_model() -> CostModel:
    """The stated CPU-core model above as a CostModel (device 'cpu')."""
    lin = Curve.linear
    return CostModel(
        device="cpu",
        source="stated CPU model (one core of the project's build machine, calibrated 2026-11-23)",
        budget_bytes=CPU_BUDGET_BYTES,
        step={("op", "materialize"): lin(CPU_STEP_OVERHEAD_S, CPU_OP_FLOPS),
              ("dp", "materialize"): lin(CPU_STEP_OVERHEAD_S, CPU_BANDWIDTH / 4),  # float32 reads per second
              ("dp", "regenerate"): lin(CPU_STEP_OVERHEAD_S, CPU_SAMPLES)},
        setup={("op", "materialize"): lin(CPU_PROBE_OVERHEAD_S, 1e30),
               ("dp", "materialize"): lin(CPU_PROBE_OVERHEAD_S, 6.3e7),
               ("dp", "regenerate"): lin(CPU_PROBE_OVERHEAD_S, 1e30)},
        verify={"op": lin(CPU_PROBE_OVERHEAD_S, 9.1e8), "dp": lin(CPU_PROBE_OVERHEAD_S, 2.66e7)},
        probe={"op": lin(CPU_PROBE_OVERHEAD_S, 1.04e9), "dp": lin(CPU_PROBE_OVERHEAD_S, 2.53e7)},
    )


def stated_model(device: str) -> CostModel:
    """The stated model of a device type: deterministic, the same on every machine."""
    if device not in ("cpu", "cuda"):
        raise InvalidInput(f"device={device!r}: a stated cost model exists for 'cpu' and 'cuda'")
    return stated_gpu_model() if device == "cuda" else stated_cpu_model()
