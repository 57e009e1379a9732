"""lamcap's GPU speed in one run: JSON and a markdown table in docs/results/gpu/.

    .venv/bin/python benchmarks/gpu.py                    # on a CUDA machine: under 6 minutes on one H200
    .venv/bin/python benchmarks/gpu.py --smoke --out DIR  # tiny sizes on the CPU in well under a minute

Sections (each records its numbers, or why it was skipped):
  steps       Adam steps of OP and DP at d = 32 ... 512 near the theory's p*: wall, host and device
              milliseconds per step (host: issuing the steps, no read; device: the kernels' busy time from
              torch.profiler), the mode and storage `auto` chose; the goal for DP d = 32 is <= 0.3 ms
  fixed       a whole small probe (solve, warm process) against its steps: the fixed cost per probe
  generator   samples/s of lamcap's generator (fused CUDA kernel, and the torch path) against torch.randn
  competitors DP d = 256, p = 6300: regenerate, materialize float32 and bfloat16 step times
  precision   OP d = 512, p = 21000: highest, tf32, bf16x3 step times; verdicts of SAT probes 2% below
              the theory's p* at OP d = 128 under each precision
  reach       DP d = 320 bfloat16 materialised and d = 384 regenerated: 20 timed steps and peak memory
  sweep       probes/s of a small sweep with one actor per GPU, and K actors per GPU where lamcap.sweep
              offers it (a hook: skipped, with the reason, where Ray or that option is missing)
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time

import torch

from lamcap.kernels.disorder import Instance, InstanceSpec
from lamcap.kernels.settings import SolverSettings

# Theory's critical p at rho = 1 (lamcap.predictions.predicted_critical_p(d, 1.0, "optimal")), rounded.
THEORY_P = {32: 183, 64: 566, 128: 1819, 256: 6013, 320: 8881, 384: 12235, 512: 20340}
FULL = {"ds": (32, 64, 128, 256, 512), "steps": 20, "gen": (256, 6300, 665), "competitors": (256, 6300),
        "precision": (512, 21000), "sat_d": 128, "sat_seeds": 4, "reach": ((320, 9300), (384, 12800)),
        "reach_steps": 20, "sweep_ds": [16, 32], "sweep_seeds": 4, "sweep_steps": 500}
SMOKE = {"ds": (8, 16), "steps": 3, "gen": (16, 64, 64), "competitors": (12, 60), "precision": (16, 80),
         "sat_d": 8, "sat_seeds": 2, "reach": ((12, 50), (14, 60)), "reach_steps": 2, "sweep_ds": [6],
         "sweep_seeds": 1, "sweep_steps": 100}
BUDGET_S = 300  # the sweep (the last section) is skipped when the others took longer: the run stays under 6 min


def p_near(d: int) -> int:
    """p 5% above the theory's p* (an UNSAT-side load: every step is taken)."""
    if d in THEORY_P:
        return round(1.05 * THEORY_P[d])
    return min(range(2, 10 * d * d), key=lambda p: abs(p * math.log(p) - 0.9 * d * d))


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _run(problem: str, d: int, p: int, device: str, settings: SolverSettings):
    from lamcap.kernels.sharding import SOLO
    from lamcap.kernels.solvers.adam import _Run

    return _Run(Instance(InstanceSpec(problem, d, p, 0), device), d, settings, SOLO)


def _steps(run, start: int, n: int) -> None:
    """n Adam steps as training takes them (gradient, update), no read of the device."""
    for step in range(start, start + n):
        w = run.weight()
        _, _, grad = run.gradient(w)
        run.advance(step, w, grad)


def device_busy_ms(run, device: str, n: int) -> float | None:
    """Milliseconds per step the GPU spent in kernels over n steps (torch.profiler); None on a CPU."""
    if device != "cuda":
        return None
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        _steps(run, 0, n)
        sync(device)
    kernels = ops = 0.0  # microseconds: kernel entries, or each op's self device time (every kernel counted once)
    for event in prof.key_averages():
        busy = getattr(event, "self_device_time_total", None)
        busy = getattr(event, "self_cuda_time_total", 0.0) if busy is None else busy
        if "CUDA" in str(getattr(event, "device_type", "")):
            kernels += busy
        else:
            ops += busy
    return max(kernels, ops) / 1e3 / n


def time_steps(problem: str, d: int, p: int, device: str, n: int, **settings) -> dict:
    """Wall, host and device milliseconds per Adam step, with the plan `auto` made (and the peak memory)."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    run = _run(problem, d, p, device, SolverSettings(max_steps=10 * n, **settings))
    _steps(run, 0, 2)  # warm-up: kernels compiled, allocator primed
    sync(device)
    start = time.perf_counter()
    _steps(run, 0, n)
    host = time.perf_counter() - start
    sync(device)
    wall = time.perf_counter() - start
    plan = run.source.plan
    out = {"problem": problem, "d": d, "p": p, "mode": plan.mode, "storage": plan.storage,
           "precision": plan.precision, "wall_ms": 1e3 * wall / n, "host_ms": 1e3 * host / n,
           "device_ms": device_busy_ms(run, device, max(2, n // 4))}
    if device == "cuda":
        out["peak_bytes"] = torch.cuda.max_memory_allocated()
    return out


def section_steps(cfg: dict, device: str) -> list[dict]:
    rows = []
    for problem in ("op", "dp"):
        for d in cfg["ds"]:
            n = cfg["steps"] if problem == "op" or d < 512 else max(2, cfg["steps"] // 5)
            rows.append(time_steps(problem, d, p_near(d), device, n))
            _release(device)
    return rows


def section_fixed(cfg: dict, device: str) -> list[dict]:
    """A whole small SAT probe in a warm process against its steps' time: the fixed cost per probe."""
    from lamcap.kernels.solvers import solve, warm_up

    warm_up(device)
    rows = []
    for problem in ("op", "dp"):
        for d in cfg["ds"][:3]:
            p = round(0.7 * THEORY_P[d]) if d in THEORY_P else max(4, p_near(d) // 2)
            step = time_steps(problem, d, p, device, cfg["steps"])["wall_ms"] / 1e3
            sync(device)
            start = time.perf_counter()
            outcome = solve(InstanceSpec(problem, d, p, 1), "adam", d, SolverSettings(), device)
            wall = time.perf_counter() - start
            rows.append({"problem": problem, "d": d, "p": p, "status": outcome.status, "steps": outcome.steps,
                         "probe_s": wall, "fixed_s": wall - outcome.steps * step})
    return rows


def section_generator(cfg: dict, device: str) -> dict:
    """Samples/s of Instance.competitor_block (fused kernel, torch path) against torch.randn into a buffer."""
    from lamcap.kernels import gaussian_cuda

    d, p, rows = cfg["gen"]
    instance, n = Instance(InstanceSpec("dp", d, p, 0), device), rows * d * p
    buffer = torch.empty(n, device=device)
    out = {"d": d, "p": p, "samples": n}
    paths = {"fused": "1", "torch": "0"} if device == "cuda" else {"torch": "1"}
    for name, switch in paths.items():
        os.environ[gaussian_cuda.ENV_SWITCH] = switch
        try:
            out[f"{name}_per_s"] = n / _median(lambda: instance.competitor_block(0, rows), device, 3)
        finally:
            os.environ.pop(gaussian_cuda.ENV_SWITCH, None)
    out["randn_per_s"] = n / _median(lambda: torch.randn(n, device=device, out=buffer), device, 3)
    _release(device)
    return out


def _median(fn, device: str, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def section_competitors(cfg: dict, device: str) -> list[dict]:
    d, p = cfg["competitors"]
    rows = []
    for mode, storage in (("materialize", "float32"), ("materialize", "bfloat16"), ("regenerate", "float32")):
        rows.append(time_steps("dp", d, p, device, max(2, cfg["steps"] // 4), mode=mode, storage_dtype=storage))
        _release(device)
    return rows


def section_precision(cfg: dict, device: str) -> dict:
    from lamcap.kernels.solvers import solve

    d, p = cfg["precision"]
    steps = [{"requested": precision, **time_steps("op", d, p, device, max(2, cfg["steps"] // 2),
                                                   matmul_precision=precision)}
             for precision in ("highest", "tf32", "bf16x3")]
    sat_d = cfg["sat_d"]
    p_sat = round(0.98 * THEORY_P[sat_d]) if sat_d in THEORY_P else max(4, p_near(sat_d) // 2)
    verdicts = {}
    for precision in ("highest", "tf32", "bf16x3"):
        settings = SolverSettings(matmul_precision=precision)
        verdicts[precision] = [solve(InstanceSpec("op", sat_d, p_sat, s), "adam", sat_d, settings, device).sat
                               for s in range(cfg["sat_seeds"])]
    return {"steps": steps, "sat_probes": {"d": sat_d, "p": p_sat, "verdicts": verdicts}}


def section_reach(cfg: dict, device: str) -> list[dict]:
    (d_bf16, p_bf16), (d_regen, p_regen) = cfg["reach"]
    rows = []
    for d, p, mode, storage in ((d_bf16, p_bf16, "materialize", "bfloat16"), (d_regen, p_regen, "regenerate",
                                                                               "float32")):
        rows.append(time_steps("dp", d, p, device, cfg["reach_steps"], mode=mode, storage_dtype=storage))
        _release(device)
    return rows


def section_sweep(cfg: dict, device: str) -> dict:
    """Probes/s of a small sweep on one actor per GPU, and on K per GPU where lamcap.sweep offers it (a hook)."""
    import inspect
    import tempfile

    try:
        import ray  # noqa: F401
    except ImportError:
        return {"skipped": "Ray is not installed here (tools/gpu-pack prepares its wheel)"}
    import lamcap

    spec = {"problems": ["op", "dp"], "solvers": ["adam"], "rhos": [1.0], "ds": cfg["sweep_ds"],
            "seeds": cfg["sweep_seeds"], "device": device, "solver_settings": {"max_steps": cfg["sweep_steps"]},
            "search": {"curve_points": 0, "resolution": 0.05}}
    out = {}
    options = {"one_per_gpu": {"workers": 1}}
    if "actors_per_gpu" in inspect.signature(lamcap.sweep).parameters:  # when the orchestrator offers it
        options["k_per_gpu"] = {"workers": 8, "actors_per_gpu": 8}
    else:
        out["k_per_gpu"] = {"skipped": "lamcap.sweep has no actors_per_gpu option yet"}
    p_stars = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, kwargs in options.items():
            path = os.path.join(folder, f"{name}.zarr")
            start = time.perf_counter()
            report = lamcap.sweep(spec, path, progress=False, **kwargs)
            wall = time.perf_counter() - start
            probes = report.probes_run
            out[name] = {"seconds": wall, "dispatch_seconds": report.wall_seconds, "probes": probes,
                         "actors": report.n_actors, "utilisation": report.utilisation,
                         "probes_per_s": probes / report.wall_seconds if report.wall_seconds else None}
            th = lamcap.open_store(path).thresholds.to_dataframe()
            p_stars[name] = {(r.problem, int(r.d), int(r.seed)): int(r.p_star) for r in th.itertuples()}
    if len(p_stars) == 2:  # per-seed p* with K actors against one: equal, or off by how much
        one, k = p_stars["one_per_gpu"], p_stars["k_per_gpu"]
        gaps = [abs(one[key] - k[key]) for key in one if key in k]
        out["thresholds"] = {"seeds": len(gaps), "equal": sum(g == 0 for g in gaps),
                             "within_1": sum(g <= 1 for g in gaps), "largest_gap": max(gaps, default=0)}
        if out["one_per_gpu"]["probes_per_s"] and out["k_per_gpu"]["probes_per_s"]:
            out["speedup"] = out["k_per_gpu"]["probes_per_s"] / out["one_per_gpu"]["probes_per_s"]
    return out


def _release(device: str) -> None:
    import gc

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


SECTIONS = {"steps": section_steps, "fixed": section_fixed, "generator": section_generator,
            "competitors": section_competitors, "precision": section_precision, "reach": section_reach,
            "sweep": section_sweep}


def environment(device: str) -> dict:
    out = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
           "host": platform.node(), "device": device, "threads": torch.get_num_threads()}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        out.update(gpu=props.name, gpu_memory=props.total_memory)
    return out


def _ms(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def markdown(result: dict) -> str:
    """The run as markdown tables (what docs/results/gpu/ keeps next to the JSON)."""
    env = result["environment"]
    lines = [f"# benchmarks/gpu.py, {env['date']}", "",
             f"{env.get('gpu', env['device'])}, torch {env['torch']}, CUDA {env['cuda']}, "
             f"{result['seconds']:.0f} s{' (smoke)' if result['smoke'] else ''}", ""]
    sections = result["sections"]
    if isinstance(sections.get("steps"), list):
        lines += ["## Adam steps", "", "| problem | d | p | mode | storage | wall ms | host ms | device ms |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['problem']} | {r['d']} | {r['p']} | {r['mode']} | {r['storage']} | {_ms(r['wall_ms'])} | "
                  f"{_ms(r['host_ms'])} | {_ms(r['device_ms'])} |" for r in sections["steps"]]
    if isinstance(sections.get("fixed"), list):
        lines += ["", "## Fixed cost per probe", "", "| problem | d | p | status | steps | probe s | fixed s |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['problem']} | {r['d']} | {r['p']} | {r['status']} | {r['steps']} | {r['probe_s']:.3f} | "
                  f"{r['fixed_s']:.3f} |" for r in sections["fixed"]]
    gen = sections.get("generator")
    if isinstance(gen, dict) and "randn_per_s" in gen:
        lines += ["", "## Generator", "", "| path | G samples/s | vs torch.randn |", "|---|---|---|"]
        for name in ("fused", "torch", "randn"):
            if f"{name}_per_s" in gen:
                rate = gen[f"{name}_per_s"]
                lines.append(f"| {name} | {rate / 1e9:.1f} | {rate / gen['randn_per_s']:.2f} |")
    for key, title in (("competitors", "DP competitors"), ("reach", "Single-GPU reach")):
        if isinstance(sections.get(key), list):
            lines += ["", f"## {title}", "", "| d | p | mode | storage | step ms | peak GiB |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {r['d']} | {r['p']} | {r['mode']} | {r['storage']} | {_ms(r['wall_ms'])} | "
                      f"{r.get('peak_bytes', 0) / 2**30:.1f} |" for r in sections[key]]
    prec = sections.get("precision")
    if isinstance(prec, dict) and "steps" in prec:
        lines += ["", "## Matmul precision (OP)", "", "| asked | used | d | p | step ms | SAT probes 2% below p* |",
                  "|---|---|---|---|---|---|"]
        verdicts = prec["sat_probes"]["verdicts"]
        lines += [f"| {r['requested']} | {r['precision']} | {r['d']} | {r['p']} | {_ms(r['wall_ms'])} | "
                  f"{sum(verdicts[r['requested']])}/{len(verdicts[r['requested']])} |" for r in prec["steps"]]
    for key, value in sections.items():
        if isinstance(value, dict) and ("error" in value or "skipped" in value):
            lines.append(f"\n{key}: {value.get('error') or value.get('skipped')}")
    if isinstance(sections.get("sweep"), dict):
        lines += ["", "## Sweep", "", "```", json.dumps(sections["sweep"], indent=1), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (checks the script)")
    parser.add_argument("--out", default="docs/results/gpu", help="folder of the JSON and markdown")
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), help="run only these sections")
    args = parser.parse_args(argv)
    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device: run with --smoke on a CPU")
    torch.set_num_threads(1 if args.smoke else torch.get_num_threads())
    cfg, start, sections = (SMOKE if args.smoke else FULL), time.perf_counter(), {}
    for name in args.only or SECTIONS:
        if args.smoke and name == "sweep" and not args.only:
            sections[name] = {"skipped": "smoke: a sweep starts Ray (--smoke --only sweep runs it)"}
            continue
        if name == "sweep" and time.perf_counter() - start > BUDGET_S:
            sections[name] = {"skipped": f"the other sections took over {BUDGET_S} s"}
            continue
        began = time.perf_counter()
        try:
            sections[name] = SECTIONS[name](cfg, device)
        except Exception as exc:  # one failed section must not lose the others' numbers
            sections[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"{name}: {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
        _release(device)
    result = {"smoke": args.smoke, "seconds": time.perf_counter() - start, "environment": environment(device),
              "sections": sections}
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, "smoke" if args.smoke else f"gpu-{result['environment']['date'][:10]}")
    with open(stem + ".json", "w") as fh:
        json.dump(result, fh, indent=1, default=str)
    with open(stem + ".md", "w") as fh:
        fh.write(markdown(result))
    print(f"wrote {stem}.json and {stem}.md", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
