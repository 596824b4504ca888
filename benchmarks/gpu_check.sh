#!/usr/bin/env bash
# vae_lab on a bare CUDA machine: PyTorch, lightning, tensorboard, imageio, torchvision there; no package index, no
# hydra-core/omegaconf, no `pip install -e .`. From the repo root:
#
#     bash benchmarks/gpu_check.sh            # about 5 minutes; PYTHON=python3.12 to pick the interpreter
#
# 1. installs the missing packages from benchmarks/wheels/ (hydra-core, omegaconf, antlr4, pytest and
#    its own; PyYAML for CPython 3.12) into a temporary folder on PYTHONPATH, never into the system's site-packages;
# 2. runs the tests marked `gpu` (tests/test_gpu.py);
# 3. prints training images/s of vae_lab (fp32 and bf16-mixed, with and without
#    callbacks.runtime.compile=reduce-overhead) and of a plain PyTorch loop on the same GPU (benchmarks/gpu_speed.py).
# Each section reports even if another failed; the run ends with a markdown table. Without CUDA it refuses at once.
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "error: benchmarks/gpu_check.sh needs PyTorch with a CUDA GPU, and torch.cuda.is_available() is not True for $PYTHON here; run it on a GPU machine." >&2
    exit 2
fi

SITE=$(mktemp -d "${TMPDIR:-/tmp}/vae_lab_gpu_check.XXXXXX")
trap 'rm -rf "$SITE"' EXIT
export PYTHONPATH="$PWD/src:$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1

echo "## vae_lab gpu_check, $(date -u '+%Y-%m-%d %H:%M UTC')"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/GPU: /'

# ---- 1. packages: only those this Python cannot import already --------------------------------------------------
missing=()
for pair in hydra:hydra_core omegaconf:omegaconf antlr4:antlr4_python3_runtime pytest:pytest pluggy:pluggy \
            iniconfig:iniconfig pygments:pygments yaml:pyyaml \
            packaging:packaging; do
    module=${pair%%:*} wheel=${pair##*:}
    "$PYTHON" -c "import $module" 2>/dev/null || missing+=(benchmarks/wheels/"$wheel"-*.whl)
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing into $SITE: ${missing[*]##*/}"
    if "$PYTHON" -m pip install --quiet --no-index --no-deps --target "$SITE" "${missing[@]}"; then
        install_result="installed ${#missing[@]} wheels"
    else  # no pip in this Python: these wheels are pure Python (py3-none-any), so unpacking them is installing them
        for wheel in "${missing[@]}"; do "$PYTHON" -m zipfile -e "$wheel" "$SITE"; done
        install_result="unpacked ${#missing[@]} wheels (no pip)"
    fi
else
    install_result="nothing missing"
fi
need=$("$PYTHON" -c '
import importlib.util as u
print(" ".join(m for m in ("torch", "lightning", "hydra", "omegaconf", "tensorboard", "imageio", "matplotlib",
                           "numpy", "pytest", "vae_lab") if u.find_spec(m) is None))')
echo "packages: $install_result; not importable: ${need:-none}"

# ---- 2. the tests marked gpu ------------------------------------------------------------------------------------
tests_log="$SITE/tests.log"
timeout 150 "$PYTHON" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py 2>&1 | tee "$tests_log" | tail -15
tests_result=$(grep -E '[0-9]+ (passed|failed|skipped|error)' "$tests_log" | tail -1 | tr -d '=' | xargs)
tests_result=${tests_result:-"did not finish (exit ${PIPESTATUS[0]})"}

# ---- 3. training speed ------------------------------------------------------------------------------------------
speed_log="$SITE/speed.log"
timeout 330 "$PYTHON" benchmarks/gpu_speed.py 2>"$SITE/speed.err" | tee "$speed_log"
speed_status=${PIPESTATUS[0]}
[ "$speed_status" -ne 0 ] && tail -20 "$SITE/speed.err"

# ---- the summary ------------------------------------------------------------------------------------------------
echo
echo "| section | result |"
echo "|---|---|"
echo "| packages from benchmarks/wheels | $install_result; not importable: ${need:-none} |"
echo "| tests marked gpu | $tests_result |"
grep '^| ' "$speed_log" | grep -v '^| run |'
grep -q '^| ' "$speed_log" || echo "| training speed | did not finish (exit $speed_status) |"
[[ "$tests_result" == *passed* && "$tests_result" != *failed* && "$speed_status" -eq 0 ]]
