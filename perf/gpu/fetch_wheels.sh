#!/usr/bin/env bash
# Download, on a machine with PyPI access, the wheels the lent GPU machine lacks for the issue-7 benchmark
# (it has torch 2.11 / torchvision 0.26 / timm / pandas / pyarrow, Python 3.12, no internet). They land in .whl/
# (git-ignored) and travel with the device tool's `carry: [".whl"]`. All but wcwidth (abi3, x86-64) are pure Python.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
    open_clip_torch==3.3.0 webdataset==0.2.86 braceexpand==0.1.7 ftfy==6.3.1 wcwidth==0.9.4
ls -l .whl
