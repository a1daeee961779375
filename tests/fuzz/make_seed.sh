#!/bin/sh
# Writes fuzz seeds for fuzz_json: length-prefixed JSON + safetensors of the
# graph examples/export_mlp exports. Usage: make_seed.sh BUILD_DIR CORPUS_DIR
set -eu
build=$1
out=$2
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/export_mlp" "$tmp/g.json" "$tmp/g.safetensors"
python3 - "$tmp/g.json" "$tmp/g.safetensors" "$out/mlp.seed" <<'PY'
import struct, sys
j = open(sys.argv[1], 'rb').read()
s = open(sys.argv[2], 'rb').read()
open(sys.argv[3], 'wb').write(struct.pack('<I', len(j)) + j + s)
PY
echo "seed written to $out/mlp.seed"
