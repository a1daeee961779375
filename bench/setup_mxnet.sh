#!/bin/sh
# Makes bench/.venv-mxnet with MXNet 1.9.1 (pinned in requirements-mxnet.txt)
# for the train_fashion benchmark's second peer. MXNet 1.9.1 needs
# numpy < 1.24, which Debian's python3-numpy is not, hence a venv. Benchmark
# set-up only: nothing in `make test` uses it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=$here/.venv-mxnet
[ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import mxnet" 2>/dev/null && exit 0
/usr/bin/python3 -m venv "$venv"
"$venv/bin/pip" install -q -r "$here/requirements-mxnet.txt"
"$venv/bin/python" -c "import mxnet; print('mxnet', mxnet.__version__)"
