"""The exact LP oracle: time per probe near threshold, before (scipy linprog, rebuilt every round) and after.

Probes: for each problem (OP, DP) and d, seed 0, p = floor(0.97 p*) and ceil(1.03 p*), with p* the
finite-size prediction of lamcap.predictions (docs/THEORY.md 3.2): the loads where the oracle works
hardest, one side SAT and the other UNSAT for most seeds.

* before: the oracle as it was (feasibility form "margin >= 1, W free", scipy.optimize.linprog from
  scratch every round), copied below so that it stays measurable. It fails where the issue says
  (HiGHS status 4 on infeasible subsets): such a probe is reported as `error`.
* after: lamcap.kernels.solvers.lp.solve_lp (max-margin form in a live highspy model).

Every probe runs in its own process, one thread (torch and HiGHS), limited to --cpu-limit CPU
seconds (default 900: "> 900 (stopped)" in the table). The table reports CPU seconds
(time.process_time of that process), because the build machine is shared. Results are appended
to a JSON-lines file (--out), one line per probe, and a rerun skips probes already there: the
large d run in the background with

    nohup .venv/bin/python benchmarks/lp.py --d 8 16 24 32 48 64 > out/lp-bench.log 2>&1 &

and `benchmarks/lp.py --table` prints the README table from the file.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np

DS = (8, 16, 24, 32, 48, 64)
OUT = Path(__file__).resolve().parents[1] / "out" / "lp-bench.jsonl"
LOADS = (0.97, 1.03)


# ---- before: the oracle as it was, a copy kept only here ------------------------------------------
def _old_worst_pairs(instance, w, k, only_violated):
    """The k pairs of largest violation 1 - margin per row, float64 (materialised: fine up to p = 2000)."""
    import torch

    p = instance.p
    x, targets = instance.inputs.double(), instance.targets.double()
    y = instance.materialize().double()
    z = x @ w.T
    scores = z @ y.T if y.dim() == 2 else torch.einsum("mnd,md->mn", y, z)
    v = 1.0 - ((targets * z).sum(dim=1)[:, None] - scores)
    v.fill_diagonal_(-math.inf)
    n_violated = int((v > 1e-6).sum())
    vals, nu = v.topk(k, dim=1)
    mu = torch.arange(p)[:, None].expand(p, k)
    keep = nu >= 0 if not only_violated else vals > 1e-6
    mu, nu = mu[keep], nu[keep]
    y_nu = y[nu] if y.dim() == 2 else y[mu, nu]
    diff = targets[mu] - y_nu
    rows = torch.einsum("ki,kj->kij", diff, x[mu]).reshape(len(mu), instance.d ** 2).numpy()
    return mu.numpy(), nu.numpy(), rows, n_violated


def solve_before(instance) -> dict:
    """Constraint generation on "(y_mu - y_nu)^T W x_mu >= 1, W free", every round a fresh linprog."""
    from scipy.optimize import linprog

    from lamcap.kernels.weights import hebbian

    d, p = instance.d, instance.p
    k = min(p - 1, max(2, math.ceil(2 * d * d / p)))
    mu, nu, rows, _ = _old_worst_pairs(instance, hebbian(instance).double(), k, only_violated=False)
    seen = set(zip(mu.tolist(), nu.tolist()))
    for rounds in range(1, 201):
        res = linprog(np.zeros(d * d), A_ub=-rows, b_ub=-np.ones(len(rows)), bounds=(None, None), method="highs")
        if res.status == 2:
            return {"verdict": "UNSAT", "rounds": rounds, "rows": len(rows)}
        if res.status != 0:
            return {"verdict": "error", "rounds": rounds, "rows": len(rows),
                    "error": f"HiGHS status {res.status}: {res.message}"}
        import torch

        mu, nu, new_rows, n_violated = _old_worst_pairs(instance, torch.from_numpy(res.x.reshape(d, d)), k, True)
        if n_violated == 0:
            return {"verdict": "SAT", "rounds": rounds, "rows": len(rows)}
        fresh = [i for i, pair in enumerate(zip(mu.tolist(), nu.tolist())) if pair not in seen]
        if not fresh:
            return {"verdict": "error", "rounds": rounds, "rows": len(rows), "error": "violated pairs already rows"}
        seen.update((int(mu[i]), int(nu[i])) for i in fresh)
        rows = np.concatenate([rows, new_rows[fresh]])
    return {"verdict": "error", "rounds": 200, "rows": len(rows), "error": "no verdict in 200 rounds"}


# ---- after -------------------------------------------------------------------------------------
def solve_after(instance) -> dict:
    from lamcap.kernels.solvers.lp import LPUndecided, solve_lp

    try:
        r = solve_lp(instance)
    except LPUndecided as exc:
        return {"verdict": "error", "error": str(exc)}
    return {"verdict": "SAT" if r.sat else "UNSAT", "rounds": r.rounds, "rows": r.n_constraints,
            "lower": r.lower, "upper": r.upper, "upper_over_d2": r.upper / instance.d ** 2}


# ---- one probe in a child process ----------------------------------------------------------------
def _child(impl: str, problem: str, d: int, p: int, seed: int, cpu_limit: float, queue) -> None:
    import resource

    os.environ["OMP_NUM_THREADS"] = "1"
    resource.setrlimit(resource.RLIMIT_CPU, (int(cpu_limit), int(cpu_limit) + 5))  # SIGXCPU ends the child
    import torch

    torch.set_num_threads(1)
    import highspy  # noqa: F401 - imports are not part of a probe's time
    import scipy.optimize  # noqa: F401

    from lamcap.kernels.disorder import Instance, InstanceSpec
    from lamcap.kernels.solvers import lp as lp_module

    lp_module.check_lp_size = lambda d, p: None  # measure beyond the current limits
    instance = Instance(InstanceSpec(problem, d, p, seed))
    cpu, wall = time.process_time(), time.perf_counter()
    out = (solve_before if impl == "before" else solve_after)(instance)
    queue.put({**out, "cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall})


def run_probe(impl: str, problem: str, d: int, p: int, seed: int, cpu_limit: float) -> dict:
    """One probe in a fresh process limited to `cpu_limit` CPU seconds (and 6 times that of wall time)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(impl, problem, d, p, seed, cpu_limit, queue))
    start = time.perf_counter()
    child.start()
    child.join(6 * cpu_limit)
    if child.is_alive():
        child.terminate()
        child.join()
    if not queue.empty():
        return queue.get()
    return {"verdict": "timeout", "cpu_s": cpu_limit, "wall_s": time.perf_counter() - start, "exitcode": child.exitcode}


def probes(ds, problems, loads=LOADS) -> list[tuple[str, int, int]]:
    from lamcap.predictions import finite_size_prediction

    out = []
    for d in ds:
        p_star = finite_size_prediction(d)[0]
        ps = sorted({math.floor(f * p_star) if f < 1 else math.ceil(f * p_star) for f in loads})
        out += [(problem, d, p) for problem in problems for p in ps]
    return out


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def table(rows: list[dict]) -> str:
    """Markdown: one line per (problem, d, p) with before and after side by side."""
    by = {(r["impl"], r["problem"], r["d"], r["p"]): r for r in rows}
    keys = sorted({(r["problem"], r["d"], r["p"]) for r in rows}, key=lambda k: (k[0] != "op", k[1], k[2]))
    lines = ["| problem | d | p | before: verdict, CPU s | after: verdict, CPU s | rounds, rows | speed-up |",
             "|---|---|---|---|---|---|---|"]
    for problem, d, p in keys:
        cells = []
        for impl in ("before", "after"):
            r = by.get((impl, problem, d, p))
            cells.append("not run" if r is None else f"{r['verdict']}, {_secs(r)}")
        after, before = by.get(("after", problem, d, p)), by.get(("before", problem, d, p))
        extra = f"{after['rounds']}, {after['rows']}" if after and "rounds" in after else ""
        ok = after and before and before["verdict"] in ("SAT", "UNSAT") and after["verdict"] in ("SAT", "UNSAT")
        speed = f"{before['cpu_s'] / after['cpu_s']:.1f}x" if ok else ""
        lines.append(f"| {problem.upper()} | {d} | {p} | {cells[0]} | {cells[1]} | {extra} | {speed} |")
    return "\n".join(lines)


def _secs(r: dict) -> str:
    if "cpu_s" not in r:  # the child died without a result
        return f"exit code {r.get('exitcode')}"
    if r["verdict"] == "timeout":
        return f"> {r['cpu_s']:.0f} (stopped)"
    return f"{r['cpu_s']:.1f}" if r["cpu_s"] < 100 else f"{r['cpu_s']:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", type=int, nargs="+", default=list(DS))
    parser.add_argument("--problems", nargs="+", default=["op", "dp"])
    parser.add_argument("--impl", nargs="+", default=["after", "before"], choices=["before", "after"])
    parser.add_argument("--loads", type=float, nargs="+", default=list(LOADS), help="p / p* (default 0.97 1.03)")
    parser.add_argument("--cpu-limit", type=float, default=900.0, help="CPU seconds per probe (default 900)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"JSON lines, appended (default {OUT})")
    parser.add_argument("--table", action="store_true", help="only print the table of what --out holds")
    args = parser.parse_args()
    if not args.table:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        done = {(r["impl"], r["problem"], r["d"], r["p"]) for r in load(args.out)}
        for impl in args.impl:
            for problem, d, p in probes(args.d, args.problems, args.loads):
                if (impl, problem, d, p) in done:
                    continue
                result = {"impl": impl, "problem": problem, "d": d, "p": p, "seed": 0,
                          **run_probe(impl, problem, d, p, 0, args.cpu_limit)}
                with args.out.open("a") as fh:
                    fh.write(json.dumps(result) + "\n")
                print(json.dumps(result), flush=True)
    print(table(load(args.out)))


if __name__ == "__main__":
    main()
