#!/usr/bin/env bash
# The device check: one prepared run on one H100/H200 that finishes in under 8 minutes with nothing to
# download (benchmarks/bench_device.py says what it measures; docs/BENCHMARKS.md "GPU" how to run it).
#
#   bash benchmarks/device_check.sh [--steps ...] [--budget S]   on the device: results in $OUT
#   bash benchmarks/device_check.sh --cpu-dry-run --out DIR        the same steps at toy size (CI)
#
# Wheels in .whl/ (benchmarks/device_wheels.sh) are installed into a scratch folder first; a gsplat
# wheel with compiled kernels (device_wheels.sh --build-gsplat) replaces the pure-Python one. The
# backend is imported from this checkout (no install); PYTHON picks the interpreter (default python3).
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
site=${KEYDIFF3D_DEVICE_SITE:-$(mktemp -d "${TMPDIR:-/tmp}/keydiff3d-device-site.XXXXXX")}
shopt -s nullglob
wheels=("$repo"/.whl/*.whl)
[[ " $* " == *" --cpu-dry-run "* ]] && wheels=()  # the CPU machines have the packages (pyproject.toml); .whl/ is py3.12
compiled=("$repo"/.whl/gsplat-*-cp3*.whl)
if (( ${#compiled[@]} )); then
    kept=()
    for w in "${wheels[@]}"; do [[ "$w" == */gsplat-*-py3-none-any.whl ]] || kept+=("$w"); done
    wheels=("${kept[@]}")
fi
if (( ${#wheels[@]} )) && (( ! ${#compiled[@]} )); then
    echo "device check: no gsplat wheel with compiled kernels in .whl/: the gsplat step JIT-compiles them now" \
         "(minutes, outside the budget; build the wheel once with benchmarks/device_wheels.sh --build-gsplat)"
fi
if (( ${#wheels[@]} )); then
    start=$(date +%s)
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "${wheels[@]}" \
        || { echo "device check: installing the wheels of .whl/ failed"; exit 1; }
    echo "device check: ${#wheels[@]} wheels installed in $(( $(date +%s) - start )) s"
fi
mkdir -p "$site"
ln -sfn "$repo/backend" "$site/keydiff3d"  # `keydiff3d` = backend/, as setup.py maps it
export PYTHONPATH="$site:$repo${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export MAX_JOBS=${MAX_JOBS:-$(nproc)} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
exec "$python" -m keydiff3d.cli bench device "$@"
