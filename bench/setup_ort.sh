#!/bin/sh
# Makes bench/.venv-ort with ONNX Runtime (pinned in requirements-ort.txt),
# the peer of bench/onnx.py. The venv sees Debian's site packages, so torch,
# torchvision, onnx and numpy are Debian's; only onnxruntime (and what it
# needs that Debian lacks) comes from PyPI. Benchmark set-up only: nothing in
# `make test` uses it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=$here/.venv-ort
[ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import onnxruntime, torch, onnx" 2>/dev/null && exit 0
/usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/pip" install -q -r "$here/requirements-ort.txt"
"$venv/bin/python" -c "import onnxruntime, torch; print('onnxruntime', onnxruntime.__version__, 'torch', torch.__version__)"
