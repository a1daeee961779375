#!/bin/sh
# train_fashion.sh — `kiln train --model lenet` on Fashion-MNIST, eager and
# hybridized, beside the PyTorch peer bench/train_fashion.py (same LeNet with
# batch norm, batch 128, SGD lr 0.1 momentum 0.9, constant lr as the peer):
# seconds per epoch (training only, as the peer times it) and test accuracy,
# with kiln's time as a ratio of PyTorch's (below 1: kiln is faster).
#   bench/train_fashion.sh [BUILD_DIR] [DATA_DIR] [EPOCHS] [THREADS]
# PYTHON names the interpreter with torch (default /usr/bin/python3);
# MXNET_PYTHON one with MXNet 1.9.1 (default bench/.venv-mxnet, made by
# bench/setup_mxnet.sh; the MXNet row is left out when it is missing).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
data=${2:-/usr/share/datasets/fashion-mnist}
epochs=${3:-1}
threads=${4:-2}
python=${PYTHON:-/usr/bin/python3}
mxnet_python=${MXNET_PYTHON:-$root/bench/.venv-mxnet/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

[ -x "$build/kiln" ] || { echo "train_fashion.sh: no $build/kiln (build kiln first)" >&2; exit 1; }

# kiln: NAME [extra options]; the CSV gives seconds (column 6) and test acc (4)
run_kiln() {
    name=$1
    shift
    "$build/kiln" train --model lenet --data "$data" --epochs "$epochs" --batch-size 128 \
        --lr 0.1 --optimizer sgd --schedule const --threads "$threads" \
        --metrics "$tmp/$name.csv" --plot "$tmp/$name.svg" --quiet "$@" | sed -n "s/^epoch/  kiln $name: epoch/p"
    awk -F, 'NR > 1 { s += $6; n++; acc = $4 } END { if (n) printf "%.2f %.4f\n", s / n, acc }' \
        "$tmp/$name.csv" > "$tmp/$name.txt"
}

echo "LeNet-BN on Fashion-MNIST: batch 128, SGD lr 0.1 momentum 0.9, $epochs epoch(s), $threads threads"
run_kiln eager
run_kiln hybridized --hybridize
# run_peer NAME PYTHON SCRIPT: runs a peer script, echoes its lines and
# prints "mean-seconds last-test-acc" from its "NAME epoch E/N ... acc A  S s" lines
run_peer() {
    "$2" "$root/bench/$3" "$data" "$epochs" "$threads" > "$tmp/$1.out"
    sed 's/^/  /' "$tmp/$1.out" >&2
    awk -v tag="$1" '$1 == tag && $2 == "epoch" { for (i = 1; i <= NF; i++) { if ($i == "acc") acc = $(i + 1); if ($i == "s") { s += $(i - 1); n++ } } }
         END { if (n) printf "%.2f %.4f\n", s / n, acc }' "$tmp/$1.out"
}
peer=""
if "$python" -c "import torch" 2>/dev/null; then
    peer=$(run_peer pytorch "$python" train_fashion.py)
else
    echo "  (PyTorch is not installed for $python: no peer figures)"
fi
mx=""
if [ -x "$mxnet_python" ] && "$mxnet_python" -c "import mxnet" 2>/dev/null; then
    mx=$(run_peer mxnet "$mxnet_python" train_fashion_mxnet.py)
else
    echo "  (no MXNet at $mxnet_python: run bench/setup_mxnet.sh for the MXNet row)"
fi

echo
printf "%-22s %10s %10s %18s\n" "" "s/epoch" "test acc" "time vs PyTorch"
row() { # label "seconds acc"
    set -- "$1" $2
    if [ -n "$peer" ]; then
        ratio=$(echo "$2 ${peer%% *}" | awk '{ if ($2 > 0) printf "%.2fx", $1 / $2; else print "-" }')
    else
        ratio="-"
    fi
    printf "%-22s %10s %10s %18s\n" "$1" "$2" "$3" "$ratio"
}
[ -n "$peer" ] && row "PyTorch $("$python" -c 'import torch; print(torch.__version__)')" "$peer"
[ -n "$mx" ] && row "MXNet 1.9.1 (Gluon)" "$mx"
row "kiln eager" "$(cat "$tmp/eager.txt")"
row "kiln hybridized" "$(cat "$tmp/hybridized.txt")"
