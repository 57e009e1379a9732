"""Where more CPU threads pay off, and what a busy machine does to a probe (lamcap.kernels.threads).

    .venv/bin/python benchmarks/threads.py            # about 2 minutes on an idle 2-core machine

(a) Idle machine: median time of one fused loss + gradient step at 1 and at all cores' threads,
    OP and DP over a range of sizes; the work per step (lamcap.kernels.threads.step_work) where the
    two cross is PARALLEL_MIN_WORK.
(b) Busy machine: the same `lamcap trial` (OP d = 32, alpha 0.95, Adam) alone, then beside one
    busy-looping process per core, with the thread count lamcap chooses and with torch's default
    (all cores, OpenMP spinning). lamcap's choice should slow down about in proportion to the load.
Each line is measured in one run of this script; the machine's other load is printed with it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = [("op", 32, 300), ("op", 64, 900), ("op", 128, 2600), ("dp", 32, 150), ("dp", 64, 580), ("dp", 96, 1174)]
STEP = r"""
import statistics, sys, time, torch
torch.set_num_threads(int(sys.argv[4]))
from lamcap.kernels.competitors import make_source
from lamcap.kernels.disorder import Instance, InstanceSpec
from lamcap.kernels.fused_loss import fused_loss
inst = Instance(InstanceSpec(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), 0))
src = make_source(inst, "materialize")
w = torch.randn(inst.d, inst.d, requires_grad=True)
x = inst.inputs
times = []
for _ in range(7):
    t = time.perf_counter(); loss, _ = fused_loss(x @ w.T, src); loss.backward(); times.append(time.perf_counter() - t)
print(statistics.median(times[2:]))
"""


def step_seconds(problem: str, d: int, p: int, threads: int) -> float:
    out = subprocess.run([sys.executable, "-c", STEP, problem, str(d), str(p), str(threads)], check=True,
                         capture_output=True, text=True, cwd=REPO)
    return float(out.stdout.strip())


def trial_seconds(extra: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lamcap", "trial", "--problem", "op", "--d", "32", "--alpha", "0.95",
                    "--solver", "adam", "--device", "cpu", *extra], check=True, capture_output=True, cwd=REPO,
                   env=env)
    return time.perf_counter() - start


def busy_loops(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    from lamcap.kernels.budget import step_work
    from lamcap.kernels.threads import PARALLEL_MIN_WORK

    cores = len(os.sched_getaffinity(0))
    print(f"(a) one step, idle machine ({cores} cores; load average now {os.getloadavg()[0]:.2f})")
    print(f"{'problem':7} {'d':>4} {'p':>5} {'work/step':>10} {'1 thread':>10} {f'{cores} threads':>10} "
          f"{'speed-up':>8}")
    for problem, d, p in SIZES:
        one, many = step_seconds(problem, d, p, 1), step_seconds(problem, d, p, cores)
        print(f"{problem:7} {d:4d} {p:5d} {step_work(problem, d, p):10.2e} {one * 1e3:8.1f}ms {many * 1e3:8.1f}ms "
              f"{one / many:7.2f}x")
    print(f"PARALLEL_MIN_WORK = {PARALLEL_MIN_WORK:.1e}: one thread below it\n")
    print(f"(b) `lamcap trial --problem op --d 32 --alpha 0.95 --solver adam`, alone and beside {cores} busy loops")
    default_env = {**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}
    rows = []
    for label, extra, env in (("lamcap's choice", [], None),
                              (f"torch default ({cores} threads, spinning)", ["--threads", str(cores)], default_env)):
        alone = trial_seconds(extra, env)
        loops = busy_loops(cores)
        try:
            time.sleep(1.0)
            loaded = trial_seconds(extra, env)
        finally:
            for proc in loops:
                proc.kill()
        rows.append((label, alone, loaded))
    for label, alone, loaded in rows:
        print(f"  {label:36} alone {alone:6.2f} s, busy {loaded:7.2f} s: {loaded / alone:5.1f}x slower "
              f"(load doubled: 2x would be proportional)")


if __name__ == "__main__":
    main()
