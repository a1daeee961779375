#!/usr/bin/env python3
"""Hybridize overhead: kiln's bench_hybridize (eager vs hybridized) beside
PyTorch eager and torch.jit (script) on the same cases, 2 threads.
Usage: bench/hybridize.py BUILD_DIR"""
import subprocess
import sys
import time

CHAIN, REPEATS = 1000, 20


def kiln(build):
    out = subprocess.run([f"{build}/bench_hybridize"], check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        if line and not line.startswith("#"):
            case, mode, value = line.split()
            rows[(case, mode)] = float(value)
    return rows


def best_us(fn, x):
    best = 1e30
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn(x)
        best = min(best, (time.perf_counter() - t0) * 1e6)
    return best


def torch_rows():
    try:
        import torch
    except ImportError:
        return {}, None
    torch.set_num_threads(2)
    torch.set_grad_enabled(False)
    c = torch.full((1, 16), 0.5)

    def chain(x):
        for i in range(CHAIN):
            k = i % 4
            x = x + c if k == 0 else x * c if k == 1 else torch.relu(x) if k == 2 else torch.sigmoid(x)
        return x

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l1, self.l2 = torch.nn.Linear(32, 64), torch.nn.Linear(64, 10)

        def forward(self, x):
            return torch.softmax(self.l2(torch.relu(self.l1(x))), -1)

    x, xm, mlp = torch.full((1, 16), 0.1), torch.randn(1, 32), MLP().eval()
    rows = {("chain", "eager"): best_us(chain, x) / CHAIN}
    try:
        scripted = torch.jit.trace(chain, x)
        scripted(x)
        rows[("chain", "jit")] = best_us(scripted, x) / CHAIN
    except Exception as e:  # noqa: BLE001 - report and go on
        print(f"# torch.jit failed on the chain: {e}")
    rows[("mlp", "eager")] = best_us(mlp, xm)
    traced = torch.jit.freeze(torch.jit.script(mlp))
    traced(xm)
    rows[("mlp", "jit")] = best_us(traced, xm)
    return rows, torch.__version__


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    k = kiln(build)
    t, version = torch_rows()
    print(f"hybridize: chain of {CHAIN} tiny ops (us per op) and a 32-64-10 MLP at batch 1 (us per call)")
    print(f"peer: {'PyTorch ' + version if version else 'PyTorch not installed'}")
    print(f"{'case':<8}{'kiln eager':>12}{'kiln hybrid':>13}{'torch eager':>13}{'torch jit':>11}{'eager/hybrid':>14}{'torch eager/kiln hybrid':>25}")
    for case in ("chain", "mlp"):
        ke, kh = k.get((case, "eager")), k.get((case, "hybridized"))
        te, tj = t.get((case, "eager")), t.get((case, "jit"))
        fmt = lambda v: f"{v:.3f}" if v else "-"
        print(f"{case:<8}{fmt(ke):>12}{fmt(kh):>13}{fmt(te):>13}{fmt(tj):>11}"
              f"{(ke / kh if ke and kh else 0):>14.2f}{(te / kh if te and kh else 0):>25.2f}")
    print(f"hybridized  {k.get(('chain', 'hybridized'), 0):.2f} us/op")


if __name__ == "__main__":
    main()
