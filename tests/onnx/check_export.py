#!/usr/bin/python3
"""check_export.py — checks an ONNX file kiln exported (test_onnx_export runs it).

usage: check_export.py MODEL.onnx [--inputs a.npy,b.npy --outputs y.npy,... --rtol R --atol A]
       check_export.py --list FILE [--rtol R --atol A]
       (FILE: one "MODEL.onnx|a.npy,b.npy|y.npy,..." per line; every model is checked)

1. onnx.checker.check_model(full_check=True): the model is valid and its
   types and shapes infer (exit 1 otherwise).
2. When `import onnxruntime` works and inputs are given: runs the model on
   the inputs and compares every output with the expected .npy within
   |got - want| <= atol + rtol * |want| (exit 1 on a mismatch; f16 outputs
   get 4e-3 for both, a few units in their last place). Without
   onnxruntime it prints "onnxruntime: skipped (...)" and exits 0.
Exit 2: onnx itself is missing (the caller reports a skip).
"""
import argparse
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?")
    ap.add_argument("--list", default="")
    ap.add_argument("--inputs", default="")
    ap.add_argument("--outputs", default="")
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--atol", type=float, default=1e-5)
    args = ap.parse_args()
    try:
        import numpy  # noqa: F401
        import onnx  # noqa: F401
    except ImportError as e:
        print(f"skipped: {e}")
        return 2
    if not args.list:
        return check(args.model, args.inputs, args.outputs, args.rtol, args.atol)
    status = 0
    with open(args.list) as f:
        for line in f:
            if line.strip():
                model, inputs, outputs = (line.rstrip("\n").split("|") + ["", ""])[:3]
                print(f"{model}:")
                status |= check(model, inputs, outputs, args.rtol, args.atol)
    return status


def check(path, inputs, outputs, rtol, atol):
    import numpy as np
    import onnx
    import onnx.checker
    model = onnx.load(path)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # checker and shape-inference errors
        print(f"onnx.checker: FAILED: {e}")
        return 1
    print(f"onnx.checker: ok (opset {model.opset_import[0].version}, {len(model.graph.node)} nodes)")
    if not inputs:
        return 0
    try:
        import onnxruntime as ort
    except Exception as e:  # ImportError, or a broken build
        print(f"onnxruntime: skipped ({type(e).__name__}: {e})")
        return 0
    inputs = [np.load(p) for p in inputs.split(",")]
    expected = [np.load(p) for p in outputs.split(",")] if outputs else []
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    got = sess.run(None, dict(zip(names, inputs)))
    ok = len(got) == len(expected)
    if not ok:
        print(f"onnxruntime: {len(got)} outputs, expected {len(expected)}")
    for k, (g, w) in enumerate(zip(got, expected)):
        if g.shape != w.shape:
            print(f"onnxruntime: output {k} has shape {g.shape}, expected {w.shape}")
            ok = False
            continue
        if w.dtype.kind in "biu":
            bad = int(np.count_nonzero(g != w))
            err = float(bad)
        else:
            g64, w64 = g.astype(np.float64), w.astype(np.float64)
            diff = np.abs(g64 - w64)
            # f16 results are rounded to 11 bits (and ONNX Runtime may
            # accumulate in f16): a few units in the last place
            half = w.dtype == np.float16
            rt, at = (max(rtol, 4e-3), max(atol, 4e-3)) if half else (rtol, atol)
            bad = int(np.count_nonzero(~(diff <= at + rt * np.abs(w64))
                                       & ~(np.isnan(g64) & np.isnan(w64))))
            err = float(np.nanmax(diff)) if diff.size else 0.0
        if bad:
            print(f"onnxruntime: output {k}: {bad} of {w.size} values differ (max |diff| {err:g})")
            ok = False
    print(f"onnxruntime {ort.__version__}: {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
