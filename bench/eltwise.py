#!/usr/bin/env python3
"""PyTorch side of bench_eltwise: the same elementwise cases on the same
sizes with 2 threads. Prints "case dtype n seconds" lines (best of repeats).
Run by bench_eltwise; usable alone: bench/eltwise.py."""
import time

import torch

REPEATS = {1 << 20: 50, 1 << 24: 8}
LAYOUT_SHAPES = ((32, 64, 56, 56), (32, 256, 14, 14), (8, 3, 224, 224))


def best(fn, reps):
    fn()
    t = 1e30
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def main():
    torch.set_num_threads(2)
    torch.set_grad_enabled(False)
    for dt_name, dt in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        for n in (1 << 20, 1 << 24):
            g = torch.Generator().manual_seed(1)
            a = (torch.rand(n, generator=g) * 8 - 4).to(dt)
            b = (torch.rand(n, generator=g) * 8 - 4).to(dt)
            row = b[:1024].clone()
            a2 = a.view(n // 1024, 1024)
            cases = {
                "add": lambda: torch.add(a, b),
                "mul": lambda: torch.mul(a, b),
                "add_row": lambda: torch.add(a2, row),
                "relu": lambda: torch.relu(a),
                "gelu": lambda: torch.nn.functional.gelu(a),
                "exp": lambda: torch.exp(a),
                "tanh": lambda: torch.tanh(a),
            }
            for name, fn in cases.items():
                print(f"{name} {dt_name} {n} {best(fn, REPEATS[n]):.9f}", flush=True)
    # layout conversion: NCHW -> NHWC and back, as .contiguous() of a permute
    for dt_name, dt in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        for shape in LAYOUT_SHAPES:
            n = shape[0] * shape[1] * shape[2] * shape[3]
            x = torch.rand(*shape).to(dt)
            xh = x.permute(0, 2, 3, 1).contiguous()
            t1 = best(lambda: x.permute(0, 2, 3, 1).contiguous(), 10)
            t2 = best(lambda: xh.permute(0, 3, 1, 2).contiguous(), 10)
            tag = "x".join(str(d) for d in shape)
            print(f"to_nhwc_{tag} {dt_name} {n} {t1:.9f}", flush=True)
            print(f"to_nchw_{tag} {dt_name} {n} {t2:.9f}", flush=True)


if __name__ == "__main__":
    main()
