#!/bin/sh
# kiln run / bench / convert on models from ONNX's backend test data (Debian
# libonnx-testdata): outputs equal the expected ones (pb and npy), bench
# prints its figures, convert writes a kiln graph the other commands read,
# bad arguments and files fail with one line and a non-zero status.
set -eu
build=$1
data=/usr/share/libonnx-testdata/data
kiln=$build/kiln
if ! "$kiln" info | grep -q "ONNX yes" || [ ! -d "$data/node" ]; then
    echo "onnx cli: skipped (kiln without ONNX or no $data)"
    exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
m=$data/node/test_relu
"$kiln" run "$m/model.onnx" --input "$m/test_data_set_0/input_0.pb" --output "$dir/pb" > "$dir/run.txt"
grep -q "output_0.pb: y f32" "$dir/run.txt"
# relu is exact, and kiln writes TensorProtos as ONNX does (name, dims, type, raw data)
cmp "$dir/pb/output_0.pb" "$m/test_data_set_0/output_0.pb"
"$kiln" run "$m/model.onnx" --output "$dir/npy" --format npy --profile > "$dir/prof.txt"
grep -q "^relu " "$dir/prof.txt"
head -c 6 "$dir/npy/output_0.npy" | od -c | grep -q "N   U   M   P   Y"
"$kiln" bench "$m/model.onnx" --iterations 5 --warmup 1 > "$dir/bench.txt"
grep -q "^latency  median .* ms  p90 .* ms" "$dir/bench.txt"
grep -q "^throughput " "$dir/bench.txt"
"$kiln" bench "$m/model.onnx" --iterations 3 --warmup 1 --profile > "$dir/bench_profile.txt"
grep -q "^per op, summed over the 3 measured iterations" "$dir/bench_profile.txt"
grep -q "^total " "$dir/bench_profile.txt"
"$kiln" convert "$data/node/test_matmul_2d/model.onnx" "$dir/mm.json" > /dev/null
"$kiln" summary "$dir/mm.json" | grep -q "matmul"
# and back: the kiln graph exported to ONNX gives the test's expected output
mm=$data/node/test_matmul_2d
"$kiln" convert "$dir/mm.json" "$dir/mm.onnx" > /dev/null
"$kiln" run "$dir/mm.onnx" --input "$mm/test_data_set_0/input_0.pb" --input "$mm/test_data_set_0/input_1.pb" \
    --output "$dir/mm" --format npy > /dev/null
"$kiln" run "$mm/model.onnx" --input "$mm/test_data_set_0/input_0.pb" --input "$mm/test_data_set_0/input_1.pb" \
    --output "$dir/mm_ref" --format npy > /dev/null
cmp "$dir/mm/output_0.npy" "$dir/mm_ref/output_0.npy" || { echo "round trip through ONNX changed the output"; exit 1; }
# errors: one line, status 1 (runtime) or 2 (usage)
expect() { # STATUS TEXT CMD...
    want=$1 text=$2
    shift 2
    set +e
    "$@" > /dev/null 2> "$dir/err.txt"
    got=$?
    set -e
    [ "$got" = "$want" ] || { echo "status $got, expected $want: $*"; cat "$dir/err.txt"; exit 1; }
    [ "$(wc -l < "$dir/err.txt")" = 1 ] || { echo "not one line: $*"; cat "$dir/err.txt"; exit 1; }
    grep -q -e "$text" "$dir/err.txt" || { echo "no '$text': $*"; cat "$dir/err.txt"; exit 1; }
}
expect 2 "output DIR is required" "$kiln" run "$m/model.onnx"
expect 2 "no model given" "$kiln" bench
expect 2 "unknown option '--frob'" "$kiln" run "$m/model.onnx" --frob
expect 2 "--iterations needs a positive integer" "$kiln" bench "$m/model.onnx" --iterations 0
expect 2 "--format is pb or npy" "$kiln" run "$m/model.onnx" --output "$dir/x" --format csv
expect 1 "cannot open" "$kiln" run "$dir/missing.onnx" --output "$dir/x"
printf 'not a model' > "$dir/bad.onnx"
expect 1 "bad.onnx" "$kiln" run "$dir/bad.onnx" --output "$dir/x"
expect 1 "missing.pb" "$kiln" run "$m/model.onnx" --input "$dir/missing.pb" --output "$dir/x"
expect 2 "takes 1 inputs, 2 given" "$kiln" run "$m/model.onnx" --input "$m/test_data_set_0/input_0.pb" \
    --input "$m/test_data_set_0/input_0.pb" --output "$dir/x"
echo "onnx cli: ok"
