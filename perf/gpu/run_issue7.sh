#!/usr/bin/env bash
# Issue 7 on the lent GPU machine, as ONE command (< 5 min on an H100): install the carried wheels, check the CUDA
# data path against the CPU one, then the throughput benchmark (compute-only vs end to end, ViT-B/32 ctx 32 bf16).
#
#   here:    bash perf/gpu/fetch_wheels.sh
#   device:  run(command="bash perf/gpu/run_issue7.sh", carry=[".whl"], timeout_s=420)
#
# Results: $OUT/bench_train_throughput.json (table_md inside), $OUT/run_issue7.log, $OUT/cuda_tests.log.
# PATHS / SIZES / STEPS / WORKERS override the benchmark's selection (defaults below: 8 end-to-end runs, ~4 min).
# CPU smoke test of this script: DEVICE=cpu MODEL=EntityNet-tiny-ctx32 BATCH=16 PRECISION=fp32 WORKERS=1 STEPS=6 \
#   SKIP=2 LOG_EVERY=1 SIZES=256 PATHS=gpu,hybrid PY=.venv/bin/python bash perf/gpu/run_issue7.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/entitynet_issue7}
mkdir -p "$OUT"
exec > >(tee "$OUT/run_issue7.log") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1
PY=${PY:-python3}
if ! "$PY" -c "import open_clip, webdataset" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "wheel install failed: run perf/gpu/fetch_wheels.sh here and carry .whl"; exit 2; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
date -u +"%Y-%m-%dT%H:%M:%SZ"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
echo "cpus: $(nproc)"
"$PY" -c "import torch, torchvision, open_clip, webdataset, PIL; print('torch', torch.__version__, 'torchvision', \
torchvision.__version__, 'open_clip', open_clip.__version__, 'webdataset', webdataset.__version__, 'pillow', \
PIL.__version__, 'cuda', torch.cuda.is_available())"
# 1. correctness on the device (nvJPEG + fp16 kernel + prefetch thread vs the CPU path), ~30 s
timeout 120 "$PY" -m pytest -q -p no:cacheprovider tests/unit/test_fast_data.py \
    -k "cuda or batched_crop or normalize or hybrid_crop or gpu_path" 2>&1 | tee "$OUT/cuda_tests.log" | tail -5
# 2. throughput: compute-only, upstream, and our paths at the paper's 512-px storage and at 384 px (resize_shards)
timeout 330 "$PY" perf/bench_train_throughput.py --device "${DEVICE:-cuda}" --model "${MODEL:-ViT-B-32-ctx32}" \
    --batch-size "${BATCH:-512}" --precision "${PRECISION:-amp_bf16}" --workers "${WORKERS:-14}" \
    --steps "${STEPS:-30}" --skip-steps "${SKIP:-10}" --log-every "${LOG_EVERY:-5}" --sizes "${SIZES:-512,384}" \
    --paths "${PATHS:-upstream,gpu,hybrid,lean}" --run-timeout 90 --json-out "$OUT/bench_train_throughput.json"
echo "bench rc $?"
