#!/usr/bin/env python3
"""Eager dispatch overhead: runs kiln's bench_eager and the same chains in
PyTorch on this machine, and prints them side by side with the ratio.
Usage: bench/eager.py BUILD_DIR   (PyTorch optional: without it, kiln only)."""
import subprocess
import sys
import time

CHAIN, REPEATS = 1000, 20


def kiln_figures(build):
    out = subprocess.run([f"{build}/bench_eager"], check=True, capture_output=True, text=True).stdout
    return dict((l.split()[0], float(l.split()[1])) for l in out.splitlines() if l and not l.startswith("#"))


def torch_figures():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(2)
    torch.set_grad_enabled(False)
    a, b = torch.full((1, 16), 0.5), torch.full((1, 16), 1e-3)
    m, e = torch.rand(16, 16) * 0.2 - 0.1, torch.eye(16)

    def chain(step, x, ops=1):
        best = 1e30
        for _ in range(REPEATS):
            y = x
            t0 = time.perf_counter()
            for _ in range(CHAIN):
                y = step(y)
            best = min(best, (time.perf_counter() - t0) * 1e6 / (CHAIN * ops))
        return best

    return {
        "add_1x16": chain(lambda x: torch.add(x, b), a),
        "mul_1x16": chain(lambda x: torch.mul(x, b), a),
        "relu_1x16": chain(torch.relu, a),
        "matmul_16x16": chain(lambda x: torch.matmul(x, e), m),
        "sum_expand_1x16": chain(lambda x: x.sum(1, keepdim=True).expand(1, 16), a, 2),
    }, torch.__version__


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    kiln = kiln_figures(build)
    peer = torch_figures()
    torch_vals, version = peer if peer else ({}, None)
    print(f"eager dispatch overhead, us/op (chains of {CHAIN}, best of {REPEATS}); peer: "
          + (f"PyTorch {version}" if version else "PyTorch not installed"))
    print(f"{'case':<18}{'kiln':>10}{'pytorch':>10}{'kiln/pytorch':>14}")
    for case, k in kiln.items():
        t = torch_vals.get(case)
        ratio = f"{k / t:.2f}" if t else "-"
        tv = f"{t:.3f}" if t else "-"
        print(f"{case:<18}{k:>10.3f}{tv:>10}{ratio:>14}")


if __name__ == "__main__":
    main()
