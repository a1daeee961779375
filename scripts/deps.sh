#!/bin/sh
# Installs the Debian packages that building and testing kiln need, and only
# those that are missing (dpkg -s first, apt-get only when something lacks).
# Idempotent: a second run does nothing.
set -eu

NEEDED="cmake make gcc libc6-dev pkg-config clang libclang-rt-14-dev zlib1g-dev"
# ONNX import/export (protobuf-c + the ONNX schema) and the ONNX backend test
# data the conformance test runs
NEEDED="$NEEDED protobuf-c-compiler libprotobuf-c-dev libonnx-dev libonnx-testdata"
# `deps.sh --bench` adds the peers the benchmarks compare against.
if [ "${1:-}" = "--bench" ]; then
    NEEDED="$NEEDED libopenblas-dev libdnnl-dev python3-torch python3-torchvision python3-numpy python3-onnx"
fi
# `deps.sh --demo` adds the demo's dataset and gnuplot for its PNG plot.
if [ "${1:-}" = "--demo" ]; then
    NEEDED="$NEEDED dataset-fashion-mnist gnuplot-nox"
fi

missing=""
for pkg in $NEEDED; do
    if ! dpkg -s "$pkg" >/dev/null 2>&1; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

echo "deps: installing$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
