#!/usr/bin/env python3
"""gen_elementwise.py — golden values for tests/test_elementwise.c.

Run once with PyTorch and NumPy (`python3 tests/gen/gen_elementwise.py`); it
writes tests/golden/elementwise.h. Inputs lie on a grid that bf16, f16, f32
and f64 all hold exactly, so every dtype sees the same inputs; outputs are
computed in float64 and rounded to 9 significant digits. Names:
U_<case> unary on UX, S_<case> unary on special values (NaN, inf, -0),
I_<case> unary on integers (i32), B_<op> binary on BA, BB (floats),
P_pow on PA, PB, IB_<op> binary on IA, IB (i32), L_<op> logical on LA, LB,
W_where on WC, WA, WB.
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "golden", "elementwise.h")

arrays = []  # (name, np.ndarray)


def add(name, a):
    a = np.asarray(a)
    if a.dtype == np.bool_:
        a = a.astype(np.float64)
    arrays.append((name, np.asarray(a, dtype=np.float64)))


def fmt(v):
    if math.isnan(v):
        return "NAN"
    if math.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    s = "%.9g" % v
    if v == 0 and math.copysign(1, v) < 0:
        return "-0.0"  # "-0" would be the integer 0 in C
    return s


def t(a):
    return torch.tensor(np.asarray(a, dtype=np.float64))


UX = np.array([-7.5, -6, -5.25, -3, -2.5, -2, -1.5, -1, -0.75, -0.5, -0.25, -0.125, 0, 0.125,
               0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4.25, 5, 6, 6.5, 7.5]).reshape(4, 7)
US = np.array([math.nan, math.inf, -math.inf, -0.0, 0.0])
UI = np.array([-7, -6, -3, -1, 0, 1, 2, 5, 6, 9], dtype=np.int64).reshape(2, 5)

SELU = (F.selu,)


def hard_sigmoid(x, a, b):
    return torch.clamp(a * x + b, 0, 1)


# (case, function on a float64 tensor, applies to ints: None | "same" | "float" | "bool")
UNARY = [
    ("neg", torch.neg, "same"),
    ("exp", torch.exp, "float"),
    ("log", torch.log, "float"),
    ("abs", torch.abs, "same"),
    ("sign", torch.sign, "same"),
    ("expm1", torch.expm1, "float"),
    ("log1p", torch.log1p, "float"),
    ("sqrt", torch.sqrt, "float"),
    ("rsqrt", torch.rsqrt, "float"),
    ("reciprocal", torch.reciprocal, "float"),
    ("square", torch.square, "same"),
    ("sin", torch.sin, "float"),
    ("cos", torch.cos, "float"),
    ("tan", torch.tan, "float"),
    ("tanh", torch.tanh, "float"),
    ("sigmoid", torch.sigmoid, "float"),
    ("erf", torch.erf, "float"),
    ("relu", torch.relu, "same"),
    ("relu6", F.relu6, "same"),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.01), None),
    ("leaky_relu_b", lambda x: F.leaky_relu(x, 0.2), None),
    ("elu", lambda x: F.elu(x, 1.0), None),
    ("elu_b", lambda x: F.elu(x, 1.3), None),
    ("selu", F.selu, None),
    ("gelu", F.gelu, None),
    ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), None),
    ("silu", F.silu, None),
    ("softplus", lambda x: F.softplus(x, 1, 20), None),
    ("softplus_b", lambda x: F.softplus(x, 2, 3), None),
    ("softsign", F.softsign, None),
    ("mish", F.mish, None),
    ("hard_sigmoid", F.hardsigmoid, None),
    ("hard_sigmoid_b", lambda x: hard_sigmoid(x, 0.2, 0.5), None),
    ("hard_swish", F.hardswish, None),
    ("floor", torch.floor, "same"),
    ("ceil", torch.ceil, "same"),
    ("round", torch.round, "same"),
    ("trunc", torch.trunc, "same"),
    ("clip", lambda x: torch.clamp(x, -2, 3.5), None),
    ("clip_b", lambda x: torch.clamp(x, 3, -1), "same"),
    ("clip_c", lambda x: torch.clamp(x, -math.inf, 1), "same"),
    ("clip_i", lambda x: torch.clamp(x, -2, 3), "same"),
    ("isnan", torch.isnan, "bool"),
    ("isinf", torch.isinf, "bool"),
    ("logical_not", torch.logical_not, "bool"),
]

add("UX", UX)
add("US", US)
add("UI", UI)
for case, fn, ints in UNARY:
    add("U_" + case, fn(t(UX)).numpy())
    add("S_" + case, fn(t(US)).numpy())
    if ints:
        # integer results: exact in float64 (PyTorch on int64 where it has the
        # op; the float functions on the values otherwise)
        xi = torch.tensor(UI)
        try:
            r = fn(xi)
        except RuntimeError:
            r = fn(xi.double())
        add("I_" + case, r.double().numpy())

BA = (np.arange(15).reshape(3, 1, 5) - 7) / 2.0  # -3.5 .. 3.5
BB = np.array([-2, -0.5, 0, 1.5]).reshape(4, 1)
PA = np.array([-2, -1.5, -1, -0.5, 0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 3, 4]).reshape(3, 1, 5)
PB = np.array([-2, -0.5, 0, 3]).reshape(4, 1)
IA = np.array([-7, -6, -5, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 100], dtype=np.int64).reshape(3, 1, 5)
IB = np.array([-3, -1, 2, 5], dtype=np.int64).reshape(4, 1)
LA = np.array([0, 1, -2, math.nan, 0, 0.5, 0, 0, 3, -0.0, 1, 1, 0, 2, 0]).reshape(3, 1, 5)
LB = np.array([0, 1, math.nan, -0.0]).reshape(4, 1)
WC = np.array([0, 1, -2, math.nan, 0, 0.5, 0, 0, 3, -0.0, 1, 1, 0, 2, 0]).reshape(3, 1, 5)
WA = np.array([10, 20, 30, 40]).reshape(4, 1)
WB = np.array([-1, -2, -3, -4, -5])

for name, a in [("BA", BA), ("BB", BB), ("PA", PA), ("PB", PB), ("IA", IA), ("IB", IB),
                ("LA", LA), ("LB", LB), ("WC", WC), ("WA", WA), ("WB", WB)]:
    add(name, a)

BINARY = [
    ("add", torch.add), ("sub", torch.sub), ("mul", torch.mul), ("div", torch.div),
    ("maximum", torch.maximum), ("minimum", torch.minimum), ("fmod", torch.fmod),
    ("atan2", torch.atan2), ("eq", torch.eq), ("ne", torch.ne), ("lt", torch.lt),
    ("le", torch.le), ("gt", torch.gt), ("ge", torch.ge),
]
for op, fn in BINARY:
    add("B_" + op, fn(t(BA), t(BB)).double().numpy())
    add("IB_" + op, fn(torch.tensor(IA), torch.tensor(IB)).double().numpy())
add("P_pow", torch.pow(t(PA), t(PB)).numpy())


def int_pow(a, b):
    """kiln's integer pow: wraps in 64 bits; negative exponents give 0 except
    for the bases 1 and -1."""
    if b < 0:
        return 1 if a == 1 else ((-1 if b % 2 else 1) if a == -1 else 0)
    r = pow(int(a), int(b), 1 << 64)
    return r - (1 << 64) if r >= (1 << 63) else r


add("IB_pow", np.vectorize(int_pow)(*np.broadcast_arrays(IA, IB)).astype(np.float64))
for op, fn in [("logical_and", torch.logical_and), ("logical_or", torch.logical_or),
               ("logical_xor", torch.logical_xor)]:
    add("L_" + op, fn(t(LA), t(LB)).double().numpy())
add("W_where", torch.where(t(WC) != 0, t(WA), t(WB)).numpy())

with open(OUT, "w") as f:
    f.write("/* elementwise.h — golden values for tests/test_elementwise.c, written by\n"
            " * tests/gen/gen_elementwise.py (PyTorch %s, NumPy %s). Do not edit. */\n"
            % (torch.__version__, np.__version__))
    f.write("#ifndef KILN_GOLDEN_ELEMENTWISE_H\n#define KILN_GOLDEN_ELEMENTWISE_H\n\n")
    for name, a in arrays:
        shape = ", ".join(str(d) for d in a.shape) if a.ndim else "0"
        vals = ", ".join(fmt(float(v)) for v in a.reshape(-1))
        f.write("static const kt_array %s = {%d, {%s}, %d, (const double[]){%s}};\n"
                % (name, a.ndim, shape, a.size, vals))
    f.write("\ntypedef struct golden_entry {\n    const char *name;\n    const kt_array *a;\n"
            "} golden_entry;\nstatic const golden_entry GOLDEN[] = {\n")
    for name, _ in arrays:
        f.write("    {\"%s\", &%s},\n" % (name, name))
    f.write("};\n\n#endif\n")
print("wrote", OUT, os.path.getsize(OUT), "bytes,", len(arrays), "arrays")
