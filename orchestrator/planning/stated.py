"""Stated cost models: fixed rates of one GPU and one CPU core, for planning where nothing can be timed and
wherever a cost must not depend on the machine or the moment (the adaptive dimension learner's decisions)."""
from __future__ import annotations

from lamcap.errors import InvalidInput
from lamcap.kernels.budget import CUDA_BUDGET_FRACTION
from lamcap.kernels.budget import DEFAULT_CPU_BUDGET_BYTES as CPU_BUDGET_BYTES
from lamcap.orchestrator.planning.cost_model import CostModel, Curve, Roofline, device_step_rates

# A stated model of one NVIDIA H200 (the GPU lamcap has run on), for planning where none can be timed: its peak
# rates as measured there (float32 GEMMs without tensor cores about 60 TFLOP/s, a device read streaming at
# about 4.3 TB/s, the fused counter-based generator about 290 G samples/s), a step priced as a roofline of them
# (cost_model.Roofline, with the fused loss's measured share of each peak, cost_model.STEP_EFFICIENCY); the host's
# cost per step, 2.4 ms, was measured when every step read the device back (the stopping rule decided on the
# device should lower it: a calibration on the GPU measures it). float64 in the verification's products: 4e12
# flop/s. Against single UNSAT probes measured there: OP d = 512 43 s (measured 50), DP d = 256 52 s (60).
GPU_MEMORY_BYTES = 139 * 2**30
GPU_RATES = {"flops": 60e12, "bytes_per_s": 4.3e12, "samples_per_s": 2.9e11}
GPU_FP64_FLOPS = 4e12
GPU_STEP_OVERHEAD_S = 2.4e-3
GPU_PROBE_OVERHEAD_S = 0.05  # the instance, the verification passes' launches, the record


def stated_gpu_model() -> CostModel:
    """The stated GPU model above as a CostModel (device 'cuda')."""
    lin = Curve.linear
    per_sample = 1 / GPU_RATES["samples_per_s"]
    bandwidth = GPU_RATES["bytes_per_s"]
    # a DP verification regenerates the competitors once per walk and reads them in float64
    dp_verify = 2 * (per_sample + 8 / bandwidth + 2 / GPU_FP64_FLOPS)
    return CostModel(
        device="cuda",
        source="stated GPU model (NVIDIA H200: measured peak rates, estimated host cost per step)",
        budget_bytes=int(CUDA_BUDGET_FRACTION * GPU_MEMORY_BYTES), memory_bytes=GPU_MEMORY_BYTES,
        step={key: Roofline(GPU_STEP_OVERHEAD_S, rate) for key, rate in device_step_rates(GPU_RATES).items()},
        setup={("op", "materialize"): lin(GPU_PROBE_OVERHEAD_S, bandwidth),
               ("dp", "materialize"): lin(GPU_PROBE_OVERHEAD_S, 1 / (per_sample + 4 / bandwidth)),
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
