#!/bin/sh
# Runs every benchmark against the build in $1 (default build). Benchmarks
# print kiln's figure beside the peer's; they never fail the build.
set -u
build=${1:-build}
py=/usr/bin/python3
[ -x "$py" ] || py=python3
cd "$(dirname "$0")/.." || exit 1
"$py" bench/eager.py "$build" || echo "bench: eager failed"
"$py" bench/hybridize.py "$build" || echo "bench: hybridize failed"
"$py" bench/resnet50.py "$build" 1 5 || echo "bench: resnet50 failed"
sh bench/train_fashion.sh "$build" || echo "bench: train_fashion failed"
bench/setup_ort.sh && "$py" bench/onnx.py --build "$build" || echo "bench: onnx failed"
for b in kernels conv norm eltwise gemm_s8; do
    if [ -x "$build/bench_$b" ]; then "$build/bench_$b" || echo "bench: $b failed"; fi
done
