#!/usr/bin/env python3
"""Normalization, softmax, pooling and reductions: runs kiln's bench_norm and
the same cases in PyTorch (2 threads) on this machine, and prints them side by
side with the ratio kiln/PyTorch (below 1: kiln is faster).
Usage: bench/norm.py BUILD_DIR [filter]   (PyTorch optional: without it, kiln only)."""
import subprocess
import sys
import time


def kiln_figures(build, filt):
    out = subprocess.run([f"{build}/bench_norm", filt], check=True, capture_output=True,
                         text=True).stdout
    head = [l for l in out.splitlines() if l.startswith("#")]
    vals = dict((l.split()[0], float(l.split()[1])) for l in out.splitlines()
                if l and not l.startswith("#"))
    return vals, head[0] if head else ""


def torch_cases():
    import torch
    import torch.nn.functional as F
    torch.manual_seed(1)
    cl = torch.channels_last
    r = torch.randn

    def ln(shape, bwd=False):
        x, g, b = r(*shape), r(shape[-1]), r(shape[-1])
        if not bwd:
            return lambda: F.layer_norm(x, (shape[-1],), g, b, 1e-5)
        for t in (x, g, b):
            t.requires_grad_(True)
        gy = r(*shape)

        def f():
            y = F.layer_norm(x, (shape[-1],), g, b, 1e-5)
            y.backward(gy)
            x.grad = g.grad = b.grad = None
        return f

    def bn(nhwc, training, bwd=False):
        x = r(16, 64, 56, 56)
        if nhwc:
            x = x.contiguous(memory_format=cl)
        g, b, rm, rv = r(64), r(64), torch.zeros(64), torch.ones(64)
        if not bwd:
            return lambda: F.batch_norm(x, rm, rv, g, b, training, 0.1, 1e-5)
        for t in (x, g, b):
            t.requires_grad_(True)
        gy = torch.randn_like(x)

        def f():
            y = F.batch_norm(x, rm, rv, g, b, True, 0.1, 1e-5)
            y.backward(gy)
            x.grad = g.grad = b.grad = None
        return f

    def pool(nhwc, mx, bwd=False):
        x = r(16, 64, 112, 112)
        if nhwc:
            x = x.contiguous(memory_format=cl)
        op = (lambda t: F.max_pool2d(t, 3, 2, 1)) if mx else (lambda t: F.avg_pool2d(t, 3, 2, 1))
        if not bwd:
            return lambda: op(x)
        x.requires_grad_(True)
        gy = torch.randn_like(op(x))
        if nhwc:
            gy = gy.contiguous(memory_format=cl)

        def f():
            op(x).backward(gy)
            x.grad = None
        return f

    gapx, gaph = r(16, 2048, 7, 7), r(16, 2048, 7, 7).contiguous(memory_format=cl)
    att, cls, red = r(12, 128, 128), r(1, 1000), r(4096, 1024)
    return {
        "layer_norm_128x768": ln((128, 768)),
        "layer_norm_512x1024": ln((512, 1024)),
        "layer_norm_fwd_bwd_512x1024": ln((512, 1024), True),
        "softmax_12x128x128": lambda: torch.softmax(att, -1),
        "log_softmax_12x128x128": lambda: torch.log_softmax(att, -1),
        "softmax_axis1_12x128x128": lambda: torch.softmax(att, 1),
        "softmax_1x1000": lambda: torch.softmax(cls, -1),
        "bn_train_nchw_16x64x56x56": bn(False, True),
        "bn_train_nhwc_16x64x56x56": bn(True, True),
        "bn_eval_nchw_16x64x56x56": bn(False, False),
        "bn_eval_nhwc_16x64x56x56": bn(True, False),
        "bn_train_fwd_bwd_nchw_16x64x56x56": bn(False, True, True),
        "bn_train_fwd_bwd_nhwc_16x64x56x56": bn(True, True, True),
        "maxpool3s2_nchw_16x64x112x112": pool(False, True),
        "maxpool3s2_nhwc_16x64x112x112": pool(True, True),
        "avgpool3s2_nchw_16x64x112x112": pool(False, False),
        "avgpool3s2_nhwc_16x64x112x112": pool(True, False),
        "maxpool_fwd_bwd_nchw_16x64x112x112": pool(False, True, True),
        "maxpool_fwd_bwd_nhwc_16x64x112x112": pool(True, True, True),
        "global_avg_pool_nchw_16x2048x7x7": lambda: F.adaptive_avg_pool2d(gapx, 1),
        "global_avg_pool_nhwc_16x2048x7x7": lambda: F.adaptive_avg_pool2d(gaph, 1),
        "sum_last_4096x1024": lambda: red.sum(-1),
        "sum_all_4096x1024": lambda: red.sum(),
        "max_last_4096x1024": lambda: red.amax(-1),
        "mean_axis0_4096x1024": lambda: red.mean(0),
        "var_last_4096x1024": lambda: red.var(-1),
    }, torch.__version__


def torch_figures(names):
    try:
        import torch
    except ImportError:
        return {}, None
    torch.set_num_threads(2)
    cases, version = torch_cases()
    out = {}
    for name in names:
        f = cases.get(name)
        if not f:
            continue
        reps = 10 if ("fwd_bwd" in name or "112" in name) else 30
        f()
        best = 1e30
        for _ in range(reps):
            t0 = time.perf_counter()
            f()
            best = min(best, (time.perf_counter() - t0) * 1e3)
        out[name] = best
    return out, version


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    filt = sys.argv[2] if len(sys.argv) > 2 else ""
    kiln, head = kiln_figures(build, filt)
    torch_vals, version = torch_figures(kiln.keys())
    print(head)
    print("peer: " + (f"PyTorch {version}, 2 threads" if version else "PyTorch not installed"))
    print(f"{'case':<38}{'kiln ms':>10}{'torch ms':>10}{'kiln/torch':>12}")
    for case, k in kiln.items():
        t = torch_vals.get(case)
        ratio = f"{k / t:.2f}" if t else "-"
        tv = f"{t:.3f}" if t else "-"
        print(f"{case:<38}{k:>10.3f}{tv:>10}{ratio:>12}")


if __name__ == "__main__":
    main()
