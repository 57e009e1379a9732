#!/usr/bin/env bash
# One command of the `gpu` preset's run (Adam thresholds at OP d <= 512, DP d <= 256 on one GPU), made to be
# repeated: it unpacks the store from the archive of the previous command if one is given, sweeps for at most
# LIMIT seconds (then SIGINT: the sweep stops cleanly and every committed batch stays), packs the store into
# $OUT/gpu.zarr.tar.gz and analyses what is there. The next command, given that archive, resumes.
#
#   benchmarks/gpu_scale.sh [--archive gpu.zarr.tar.gz] [--limit 540] [-- extra lamcap sweep flags]
#
# Rehearsal on a CPU (a tiny gpu-like spec, the whole path): benchmarks/gpu_scale.sh -- --device cpu --d 8 12 --seeds 1
set -euo pipefail

ARCHIVE=""
LIMIT=540
while [ $# -gt 0 ]; do
    case "$1" in
        --archive) ARCHIVE="$2"; shift 2 ;;
        --limit) LIMIT="$2"; shift 2 ;;
        --) shift; break ;;
        *) echo "gpu_scale.sh: unknown argument $1 (expected --archive FILE, --limit SECONDS, -- sweep flags)" >&2; exit 2 ;;
    esac
done

OUT="${OUT:-out/gpu-scale}"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
STORE="$WORK/gpu.zarr"
if [ -n "$ARCHIVE" ]; then
    tar -xzf "$ARCHIVE" -C "$WORK"
fi

{ date -u +%FT%TZ; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
  python -c "import torch, lamcap; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'lamcap', lamcap.__version__)"
} >> "$OUT/versions.txt"

rc=0
start=$(date +%s)
timeout -s INT -k 60 "$LIMIT" lamcap sweep --preset gpu --store "$STORE" --no-progress "$@" \
    2>> "$OUT/sweep.log" || rc=$?
echo "sweep exit status $rc after $(( $(date +%s) - start )) s (124/130: stopped at the limit; rerun with --archive)" \
    | tee -a "$OUT/sweep.log"

tar -czf "$OUT/gpu.zarr.tar.gz" -C "$WORK" gpu.zarr
lamcap analyze "$STORE" --out "$OUT/analysis" > "$OUT/analysis.txt" 2>&1 || true
rm -rf "$WORK"
