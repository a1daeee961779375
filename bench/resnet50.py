#!/usr/bin/env python3
"""ResNet-50 at 224x224 f32: kiln (bench_resnet50: eager, hybridized, memory
plan) beside torchvision's ResNet-50 in PyTorch eager and torch.jit (frozen),
same threads. Usage: bench/resnet50.py BUILD_DIR [batch] [iterations]"""
import statistics
import subprocess
import sys
import time


def kiln(build, batch, iters):
    out = subprocess.run([f"{build}/bench_resnet50", str(batch), str(iters)], check=True,
                         capture_output=True, text=True).stdout
    return dict(l.split(maxsplit=1) for l in out.splitlines() if l and not l.startswith("#"))


def torch_ms(batch, iters):
    try:
        import torch
        import torchvision
    except ImportError:
        return None
    torch.set_num_threads(2)
    torch.set_grad_enabled(False)
    model = torchvision.models.resnet50().eval()
    x = torch.randn(batch, 3, 224, 224)

    def median(fn):
        fn(x)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn(x)
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    frozen = torch.jit.freeze(torch.jit.script(model))
    return {"eager_ms": median(model), "jit_ms": median(frozen), "version": torch.__version__}


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    iters = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    k = kiln(build, batch, iters)
    t = torch_ms(batch, iters)
    print(f"ResNet-50 f32 NCHW batch {batch}, median of {iters} (ms); peer: "
          + (f"PyTorch {t['version']}" if t else "PyTorch/torchvision not installed"))
    ke, kh = float(k["eager_ms"]), float(k["hybridized_ms"])
    print(f"kiln eager {ke:.1f}  kiln hybridized {kh:.1f}", end="")
    if t:
        print(f"  torch eager {t['eager_ms']:.1f}  torch jit {t['jit_ms']:.1f}  "
              f"kiln hybridized / torch eager {kh / t['eager_ms']:.2f}")
    else:
        print()
    print(f"memory plan: arena {k['arena_mb']} MB for {k['intermediates_mb']} MB of intermediates "
          f"({k['arena_share']}), {k['graph_nodes']} nodes")


if __name__ == "__main__":
    main()
