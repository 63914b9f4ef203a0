#!/usr/bin/env bash
# The GPU checks on the lent machine, as ONE command (< 5 min on an H100/H200): install the carried wheels, check the
# CUDA data path against the CPU one, a few steps of the rehearsal's vitb32 recipe on CUDA (hybrid path, text mix),
# then the throughput benchmark (compute-only vs end to end, ViT-B/32 ctx 32 bf16).
#
#   here:    bash perf/gpu/fetch_wheels.sh
#            .venv/bin/python tests/rehearsal/run.py results/rehearsal/shards results/rehearsal/text_candidates.parquet
#   device:  run(command="bash perf/gpu/run_issue7.sh", carry=[".whl", "results/rehearsal"], timeout_s=420)
#
# Results: $OUT/bench_train_throughput.json (table_md inside), $OUT/rehearsal_steps.json, $OUT/run_issue7.log,
# $OUT/cuda_tests.log. Exit status: non-zero if any step failed (each is still run), named in the last line.
# Torch: the pinned 2.14.1 when its wheels are in .whl/ (torch-2.14.1*.whl, torchvision-0.29.1*.whl), else the
# machine's own torch, with a warning.
# PATHS / SIZES / STEPS / WORKERS override the benchmark's selection (defaults below: 6 end-to-end runs, ~3 min;
# with the CUDA tests and the rehearsal steps the whole script stays under 5 min).
# CPU smoke test of this script: DEVICE=cpu MODEL=EntityNet-tiny-ctx32 BATCH=16 PRECISION=fp32 WORKERS=1 STEPS=6 \
#   SKIP=2 LOG_EVERY=1 SIZES=256 PATHS=gpu,hybrid PY=.venv/bin/python bash perf/gpu/run_issue7.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/entitynet_issue7}
mkdir -p "$OUT"
exec > >(tee "$OUT/run_issue7.log") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1
PY=${PY:-python3}
failed=()
if ls .whl/torch-2.14.1*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site-torch \
        .whl/torch-2.14.1*.whl .whl/torchvision-0.29.1*.whl || failed+=("pinned torch install")
    export PYTHONPATH=/tmp/site-torch${PYTHONPATH:+:$PYTHONPATH}
fi
if ! "$PY" -c "import open_clip, webdataset" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        $(ls .whl/*.whl | grep -v -e '/torch-' -e '/torchvision-') \
        || { echo "wheel install failed: run perf/gpu/fetch_wheels.sh here and carry .whl"; exit 2; }
    export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}/tmp/site
fi
"$PY" -c "import torch, sys; v = torch.__version__.split('+')[0]; \
print('WARNING: torch', v, 'is not the pinned 2.14.1 (carry its wheels in .whl/ to test the pin)') if v != '2.14.1' \
else None"
date -u +"%Y-%m-%dT%H:%M:%SZ"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
echo "cpus: $(nproc)"
"$PY" -c "import torch, torchvision, open_clip, webdataset, PIL; print('torch', torch.__version__, 'torchvision', \
torchvision.__version__, 'open_clip', open_clip.__version__, 'webdataset', webdataset.__version__, 'pillow', \
PIL.__version__, 'cuda', torch.cuda.is_available())"
# 1. correctness on the device (nvJPEG + fp16 kernel + prefetch thread vs the CPU path), ~30 s
timeout 120 "$PY" -m pytest -q -p no:cacheprovider tests/unit/test_fast_data.py \
    -k "cuda or batched_crop or normalize or hybrid_crop or gpu_path" > "$OUT/cuda_tests.log" 2>&1 \
    || failed+=("cuda tests (rc $?)")
tail -5 "$OUT/cuda_tests.log"
# 2. the rehearsal's vitb32 recipe on the device: hybrid path + text mix + amp_bf16, its real shards, ~30 s
if [[ -d results/rehearsal/shards ]]; then
    timeout 150 "$PY" perf/gpu/rehearsal_steps.py --device "${DEVICE:-cuda}" --out "$OUT/rehearsal_steps" \
        || failed+=("rehearsal steps (rc $?)")
    cp "$OUT/rehearsal_steps/rehearsal_steps.json" "$OUT/" 2>/dev/null || true
else
    failed+=("rehearsal steps (results/rehearsal/shards not carried)")
fi
# 3. throughput: compute-only, upstream, and our paths at the paper's 512-px storage and at 384 px (resize_shards)
timeout 240 "$PY" perf/bench_train_throughput.py --device "${DEVICE:-cuda}" --model "${MODEL:-ViT-B-32-ctx32}" \
    --batch-size "${BATCH:-512}" --precision "${PRECISION:-amp_bf16}" --workers "${WORKERS:-14}" \
    --steps "${STEPS:-30}" --skip-steps "${SKIP:-10}" --log-every "${LOG_EVERY:-5}" --sizes "${SIZES:-512,384}" \
    --paths "${PATHS:-upstream,gpu,hybrid}" --run-timeout 90 --json-out "$OUT/bench_train_throughput.json" \
    || failed+=("benchmark (rc $?)")
if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all steps passed"
