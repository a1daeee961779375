#!/bin/sh
# Seeds for fuzz_onnx: the models of the ONNX backend test data (Debian's
# libonnx-testdata) and kiln's own fixtures. Usage: make_seed_onnx.sh CORPUS_DIR
set -eu
out=$1
data=/usr/share/libonnx-testdata/data
here=$(dirname "$0")
mkdir -p "$out"
for m in "$data"/*/test_*/model.onnx; do
    [ -f "$m" ] || continue
    t=$(basename "$(dirname "$m")")
    s=$(basename "$(dirname "$(dirname "$m")")")
    cp "$m" "$out/$s-$t.onnx"
done
cp "$here"/../onnx/fixtures/*.onnx "$out"/ 2>/dev/null || true
echo "$(ls "$out" | wc -l) seeds in $out"
