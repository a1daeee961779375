#!/bin/sh
# The kiln command on a graph exported by examples/export_mlp: summary
# totals, a dot file, and clean failures on bad arguments and files.
set -eu
build=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$build/export_mlp" "$dir/mlp.json" "$dir/mlp.safetensors"
"$build/kiln" info | grep -q "^ops: "
"$build/kiln" summary "$dir/mlp.json" > "$dir/summary.txt"
grep -q "total: .* 50.89K parameters (50890)" "$dir/summary.txt" || { cat "$dir/summary.txt"; exit 1; }
"$build/kiln" graph "$dir/mlp.json" --dot "$dir/mlp.dot"
grep -q "digraph kiln" "$dir/mlp.dot"
grep -q "linear" "$dir/mlp.dot"
grep -q "linear.* 100.42K" "$dir/summary.txt" || { cat "$dir/summary.txt"; exit 1; }
if "$build/kiln" summary "$dir/missing.json" 2> "$dir/err.txt"; then exit 1; fi
grep -q "cannot open" "$dir/err.txt"
echo '{"format":"kiln-graph","version":7}' > "$dir/bad.json"
if "$build/kiln" summary "$dir/bad.json" --weights "$dir/mlp.safetensors" 2> "$dir/err.txt"; then exit 1; fi
grep -q "version 7" "$dir/err.txt"
if "$build/kiln" frobnicate 2> /dev/null; then exit 1; fi
echo "kiln tool smoke test: ok"
