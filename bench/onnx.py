#!/usr/bin/env python3
"""onnx.py — whole ONNX models on this machine: kiln (`kiln bench MODEL.onnx`)
vs ONNX Runtime (CPU execution provider) vs PyTorch eager, 2 threads each, at
batch 1 and 16, for ResNet-50, MobileNetV2 (torchvision, random weights with
a fixed seed, batch norm statistics calibrated on random images) and a
BERT-base-sized encoder (12 layers, hidden 768, 12 heads, FFN 3072, seq 128:
tests/gen/gen_onnx_real.py's BertLike; token ids in, hidden states out).
Nothing is downloaded. The ONNX files (opset 13, dynamic batch) are made
once into bench/results/onnx/ (or /tmp/kiln-bench-onnx when that cannot be
written) and reused.

ONNX Runtime comes from PyPI into bench/.venv-ort (bench/setup_ort.sh); this
script re-runs itself under that venv's python when onnxruntime is missing
here, and leaves the ORT column empty when there is no venv either.

Prints a table (medians, ms; with --repeat R, each engine's best median of
R interleaved rounds): model, batch, kiln, ORT, PyTorch, kiln/ORT,
kiln/PyTorch. PyTorch's BERT figure is nn.TransformerEncoder's own eval path
(the fused one for activation="gelu", same weights); the exported module
uses a plain-function GELU because the fused path cannot be exported.

Usage: bench/onnx.py [--build build] [--dir DIR] [--iterations 10] [--warmup 2]
                     [--models resnet50,mobilenet_v2,bert_base] [--batches 1,16] [--repeat 1]"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# this file is named onnx.py: keep its folder off the path so `import onnx`
# finds the package, not this script
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
ROOT = os.path.dirname(HERE)
VENV_PY = os.path.join(HERE, ".venv-ort", "bin", "python")
THREADS = 2
SEQ = 128

try:
    import onnxruntime as ort
except ImportError:
    ort = None
    if os.path.exists(VENV_PY) and os.path.realpath(sys.executable) != os.path.realpath(VENV_PY) \
            and not os.environ.get("KILN_BENCH_ONNX_REEXEC"):
        os.environ["KILN_BENCH_ONNX_REEXEC"] = "1"
        os.execv(VENV_PY, [VENV_PY] + sys.argv)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torchvision  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tests", "gen"))
from gen_onnx_real import BertLike, calibrate_bn, export_onnx  # noqa: E402


def bert_base(fused=False):
    """The BERT-base-sized encoder; fused=True swaps in activation="gelu"
    (same weights), which PyTorch runs with its fused inference kernel."""
    torch.manual_seed(3)
    m = BertLike(vocab=30522, hidden=768, heads=12, layers=12, ff=3072, max_len=512)
    if fused:
        for layer in m.encoder.layers:
            layer.activation = nn.functional.gelu
            layer.activation_relu_or_gelu = 2
    return m.eval()


def cnn(name):
    torch.manual_seed(1)
    m = getattr(torchvision.models, name)(weights=None)
    calibrate_bn(m, (8, 3, 224, 224), passes=2)
    return m.eval()


MODELS = {
    "resnet50": (lambda: cnn("resnet50"), "image"),
    "mobilenet_v2": (lambda: cnn("mobilenet_v2"), "image"),
    "bert_base": (bert_base, "ids"),
}


def inputs(kind, batch, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "image":
        return [rng.uniform(-1, 1, (batch, 3, 224, 224)).astype(np.float32)]
    return [rng.integers(0, 30522, (batch, SEQ)).astype(np.int64)]


def model_file(name, folder):
    path = os.path.join(folder, name + ".onnx")
    if os.path.exists(path):
        return path
    make, kind = MODELS[name]
    print(f"# exporting {name} to {path}", flush=True)
    names = ["input"] if kind == "image" else ["ids"]
    axes = {names[0]: {0: "batch"}, "output": {0: "batch"}}
    export_onnx(make(), inputs(kind, 1), path + ".tmp", 13, names, axes)
    os.replace(path + ".tmp", path)
    return path


def median_ms(fn, iters, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def kiln_ms(build, path, batch, iters, warmup):
    cmd = [os.path.join(build, "kiln"), "bench", path, "--batch", str(batch), "--threads", str(THREADS),
           "--iterations", str(iters), "--warmup", str(warmup)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"latency\s+median\s+([0-9.]+) ms", r.stdout)
    if r.returncode or not m:
        print(f"# kiln failed: {' '.join(cmd)}: {r.stderr.strip()}", flush=True)
        return None
    return float(m.group(1))


def ort_ms(path, kind, batch, iters, warmup):
    if ort is None:
        return None
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feed = {i.name: x for i, x in zip(sess.get_inputs(), inputs(kind, batch))}
    ms = median_ms(lambda: sess.run(None, feed), iters, warmup)
    del sess
    return ms


def torch_ms(model, kind, batch, iters, warmup):
    xs = [torch.from_numpy(x) for x in inputs(kind, batch)]
    with torch.no_grad():
        return median_ms(lambda: model(*xs), iters, warmup)


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "-"


def fmt(x):
    return f"{x:.1f}" if x else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--dir", default=os.path.join(ROOT, "bench", "results", "onnx"))
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--models", default="resnet50,mobilenet_v2,bert_base")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds per row; the table keeps each engine's best median (for a shared machine)")
    a = ap.parse_args()
    try:
        os.makedirs(a.dir, exist_ok=True)
    except OSError:
        a.dir = "/tmp/kiln-bench-onnx"
        os.makedirs(a.dir, exist_ok=True)
    torch.set_num_threads(THREADS)
    torch.set_grad_enabled(False)
    batches = [int(b) for b in a.batches.split(",")]
    print(f"# {THREADS} threads; median of {a.iterations} after {a.warmup} warm-up, best of {a.repeat} "
          f"round(s); PyTorch {torch.__version__}, "
          f"ONNX Runtime {ort.__version__ if ort else 'not installed (bench/setup_ort.sh)'}", flush=True)
    rows = []
    for name in a.models.split(","):
        path = model_file(name, a.dir)
        kind = MODELS[name][1]
        model = bert_base(fused=True) if name == "bert_base" else MODELS[name][0]()
        for b in batches:
            best = [None, None, None]
            for r in range(a.repeat):  # interleaved, so a busy spell hits all three alike
                got = (kiln_ms(a.build, path, b, a.iterations, a.warmup),
                       ort_ms(path, kind, b, a.iterations, a.warmup),
                       torch_ms(model, kind, b, a.iterations, a.warmup))
                best = [g if g and (not x or g < x) else x for g, x in zip(got, best)]
                print(f"# {name} batch {b} round {r + 1}: kiln {fmt(got[0])} ms, ORT {fmt(got[1])} ms, "
                      f"PyTorch {fmt(got[2])} ms (load average {os.getloadavg()[0]:.2f})", flush=True)
            rows.append((name, b, *best))
        del model
    print("| model | batch | kiln ms | ORT ms | PyTorch ms | kiln/ORT | kiln/PyTorch |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, b, k, o, t in rows:
        print(f"| {name} | {b} | {fmt(k)} | {fmt(o)} | {fmt(t)} | {ratio(k, o)} | {ratio(k, t)} |")


if __name__ == "__main__":
    main()
