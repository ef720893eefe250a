#!/usr/bin/env bash
# The wheelhouse the device check carries: what the backend needs that the device machine's image
# (Python 3.12, torch 2.11 cu130, numpy 2, no registry) lacks - see docs/BENCHMARKS.md "GPU".
#
#   bash benchmarks/device_wheels.sh [DEST]        here (pip reaches PyPI): py3.12 wheels + gsplat's
#                                                  source into DEST (default .whl/, git-ignored; ~45 MB,
#                                                  within the device's 64 MiB carry limit)
#   bash benchmarks/device_wheels.sh --build-gsplat   on the device, once per torch/CUDA version: builds
#                                                  gsplat's CUDA kernels (sm_90) into a wheel in $OUT;
#                                                  copy it into .whl/ and the device check loads it
#                                                  instead of JIT-compiling (timed, outside the check)
# Versions are the ones pyproject.toml's ranges resolve to on the CPU machines (docs/DEVELOPING.md).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GSPLAT=1.5.3

if [[ "${1:-}" == "--build-gsplat" ]]; then
    sdist=$(ls "$repo"/.whl/gsplat-$GSPLAT.tar.gz)
    out=${OUT:-$repo/.whl}
    export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-$(nproc)} BUILD_NO_CUDA=0
    start=$(date +%s)
    python3 -m pip wheel --no-deps --no-build-isolation --no-index --no-cache-dir -w "$out" "$sdist"
    echo "gsplat $GSPLAT kernels (arch $TORCH_CUDA_ARCH_LIST, $MAX_JOBS jobs) built in $(( $(date +%s) - start )) s:"
    ls -la "$out"/gsplat-$GSPLAT-cp*.whl
    exit 0
fi

dest=${1:-$repo/.whl}
mkdir -p "$dest"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
# numpy, torch, scipy, scikit-image, transformers, accelerate, safetensors, huggingface-hub, pillow,
# matplotlib, tensorboard, tqdm, networkx, attrs, jaxtyping, rich, ninja, pytest are on the device already
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d "$dest" \
    diffusers==0.42.1 importlib_metadata==10.2.0 trimesh==5.2.0 gsplat==$GSPLAT rtree==1.4.1 \
    fast_simplification==0.2.0 xatlas==0.0.11 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 \
    referencing==0.37.0 rpds-py==2026.9.1 \
    libigl==2.6.3 embreex==4.4.0.post1  # the curve skeleton's winding numbers (`import igl`); heat skinning's rays
# gsplat's source, for --build-gsplat on the device (pip prepares its metadata with torch: use a venv that has it)
python=${PYTHON:-$repo/.venv/bin/python}
"$python" -m pip download --no-deps --no-binary=:all: --no-build-isolation -d "$dest" gsplat==$GSPLAT
du -sh "$dest"
