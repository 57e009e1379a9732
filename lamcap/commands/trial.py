"""`lamcap trial`: build one instance, solve it, verify it in float64, print the outcome.

    lamcap trial --problem dp --d 16 --alpha 0.8 --solver adam --seed 0
    lamcap trial --problem op --d 8 --p 22 --solver lp --seed 3 --json --save w.npz
    lamcap trial --problem dp --d 64 --p 600 --solver adam --shards 2              # one probe on a gang of 2

`--shards K` splits the probe's inputs over K Ray actors (one device each, placed together) on an
embedded Ray, or on the cluster at `--address`: a check of a gang before a sweep. The record is the
unsharded one (same verdict, steps and violations; W up to the order of float sums) with `shards` = K.

`--save` writes W and the instance as float64 arrays W (d, d), X (p, d) and Y ((p, d) for OP,
(p, p, d) for DP, Y[mu, nu] = y^mu_nu), so that anyone can re-check the verdict with numpy.
"""
from __future__ import annotations

import argparse
import json
import math

from lamcap.errors import InvalidInput

SAVE_LIMIT_BYTES = 1 << 30  # float64 size of the arrays --save may write (1 GiB)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("trial", help="solve and verify one instance (a probe)", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", required=True, help="op (shared outputs) or dp (private competitors)")
    parser.add_argument("--d", type=int, required=True, help="dimension d >= 2")
    load = parser.add_mutually_exclusive_group(required=True)
    load.add_argument("--p", type=int, help="number of associations p >= 2")
    load.add_argument("--alpha", type=float, help="load alpha; p is the integer nearest to p ln p = alpha d^2")
    rank = parser.add_mutually_exclusive_group()
    rank.add_argument("--rank", type=int, help="rank r of W = A B, 1..d (default d: full rank)")
    rank.add_argument("--rho", type=float, help="rank fraction in (0, 1]; r = max(1, round(rho d))")
    parser.add_argument("--seed", type=int, default=0, help="disorder seed >= 0 (default 0)")
    parser.add_argument("--solver", required=True, help="adam, hebbian or lp")
    parser.add_argument("--steps", type=int, default=None, help="Adam step budget (default: SolverSettings)")
    parser.add_argument("--lr", type=float, default=None, help="Adam peak learning rate (default: SolverSettings)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default auto)")
    parser.add_argument("--mode", default="auto", help="DP competitors: auto, materialize or regenerate")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    parser.add_argument("--save", metavar="FILE.npz", default=None, help="write W, X, Y (float64) to FILE.npz")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: 1 for small problems, else the idle cores)")
    parser.add_argument("--shards", type=int, default=1,
                        help="split the inputs over a gang of K Ray actors, one device each (default 1: here)")
    parser.add_argument("--address", default=None,
                        help="run the gang on this Ray cluster ('auto' or ray://...) instead of an embedded Ray")
    parser.set_defaults(run=run)
    return parser


def check_save(problem: str, d: int, p: int) -> None:
    """Refuse, before any work, an instance whose arrays exceed SAVE_LIMIT_BYTES."""
    outputs = p * d if problem == "op" else p * p * d
    nbytes = 8 * (d * d + p * d + outputs)
    if nbytes > SAVE_LIMIT_BYTES:
        raise InvalidInput(f"--save of a {problem} instance with d={d}, p={p} needs {nbytes / 2**30:.1f} GiB "
                           f"of float64 arrays; the limit is {SAVE_LIMIT_BYTES / 2**30:.0f} GiB")


def prepare(args: argparse.Namespace):
    """Every check of the command line, before any work: an api.TrialPlan."""
    from lamcap.orchestrator.runtime.trial import plan_trial

    if args.d < 2:
        raise InvalidInput(f"--d {args.d!r} is below 2")
    if args.p is not None and args.p < 2:
        raise InvalidInput(f"--p {args.p!r} is below 2")
    if args.alpha is not None and not (math.isfinite(args.alpha) and args.alpha > 0):
        raise InvalidInput(f"--alpha {args.alpha!r} must be a positive number")
    if args.rho is not None and not (math.isfinite(args.rho) and 0 < args.rho <= 1):
        raise InvalidInput(f"--rho {args.rho!r} is not in (0, 1]")
    if args.rank is not None and not 1 <= args.rank <= args.d:
        raise InvalidInput(f"--rank {args.rank!r} is not in 1..d = 1..{args.d}")
    if args.seed < 0:
        raise InvalidInput(f"--seed {args.seed!r} is negative")
    if args.shards < 1:
        raise InvalidInput(f"--shards {args.shards!r} is below 1")
    if args.save is not None:
        check_output_file(args.save, "--save")
    plan = plan_trial(args.problem, args.d, args.p, alpha=args.alpha, rank=args.rank, rho=args.rho,
                      seed=args.seed, solver=args.solver, steps=args.steps, lr=args.lr, device=args.device,
                      mode=args.mode, threads=args.threads, shards=args.shards, address=args.address)
    if args.save is not None:
        check_save(plan.spec.problem, plan.spec.d, plan.spec.p)
    return plan


def check_output_file(path: str, flag: str) -> None:
    """Refuse, before any work, a file path that cannot be written: a folder, or a missing or read-only folder."""
    import os

    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InvalidInput(f"{flag} {path!r} is a folder, not a file")
    if not os.path.isdir(folder):
        raise InvalidInput(f"{flag} {path!r}: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise InvalidInput(f"{flag} {path!r} cannot be written (permission denied or a read-only filesystem)")


def save_npz(path: str, spec, w, device: str) -> None:
    """W, X, Y as float64 arrays, Y in the paper's index order."""
    import numpy as np

    from lamcap.kernels.disorder import Instance

    instance = Instance(spec, device)
    np.savez(path, W=w.numpy(), X=instance.inputs.double().cpu().numpy(),
             Y=instance.materialize().double().cpu().numpy())


def summary(record: dict, alpha_asked: float | None) -> str:
    """The readable report of one trial record (api.trial_record)."""
    o = record
    load = f"alpha = {o['alpha']:.4f}"
    if alpha_asked is not None:
        load += f", the p nearest to --alpha {alpha_asked:g}"
    ratio = o["target_var"] / o["offtarget_var"] if o["offtarget_var"] else math.nan
    svs = o["singular_values"]
    lines = [
        f"{o['problem']}, d = {o['d']}, p = {o['p']} ({load}), rank {o['rank']} (rho = {o['rho']:.3g}), "
        f"seed {o['seed']}, solver {o['solver']} on {o['device']}"
        + (f" ({o['shards']} shards)" if o.get("shards", 1) > 1 else ""),
        f"  SAT: {'yes' if o['sat'] else 'no'}: {o['p'] - o['n_violations']} of {o['p']} associations stored "
        f"(accuracy {o['accuracy']:.4f})",
        f"  status {o['status']} after {o['steps']} {'rounds' if o['solver'] == 'lp' else 'steps'}; "
        f"final loss {o['final_loss']:.4g}; min margin {o['min_margin']:.4g} sigma_off",
        f"  normalised scores: target mean {o['target_mean']:.3f}, var {o['target_var']:.3f}; "
        f"var(target)/var(off-target) = {ratio:.3f}",
        f"  singular values of W: largest {svs[0]:.4g}, smallest {svs[-1]:.4g}",
        f"  {o['wall_seconds']:.2f} s, peak memory {o['peak_bytes'] / 2**20:.1f} MiB",
    ]
    if o["solver"] == "adam":
        s = o["settings"]
        lines.append(f"  settings: lr {s['lr']:g}, max_steps {s['max_steps']}, "
                     f"warmup_frac {s['warmup_frac']:g}, mode {s['mode']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import sys

    from lamcap.api import run_trial

    plan = prepare(args)
    gang_failed: tuple = ()  # Ray is imported for gang trials only
    if plan.shards > 1 or plan.address is not None:
        from lamcap.orchestrator.runtime.gangs import GangFailed

        gang_failed = (GangFailed,)
    try:
        record, w = run_trial(plan)
    except gang_failed as exc:
        print(f"lamcap trial: error: {exc}", file=sys.stderr)
        return 1
    if args.save is not None:
        save_npz(args.save, plan.spec, w, plan.device if plan.device != "auto" else "cpu")
    if args.json:
        print(json.dumps(record))
    else:
        print(summary(record, args.alpha))
        if args.save is not None:
            print(f"  saved W, X, Y (float64) to {args.save}")
    return 0 if record["status"] != "error" else 1
