#!/usr/bin/env python3
"""gen_onnx.py — small ONNX fixtures for tests/test_onnx.c, written with the
onnx Python package (1.12): a tiny dynamic-batch model, models that must be
refused at load (corrupt, truncated, cyclic, undefined input, duplicate
output, huge shape, type-confused data, unsupported nodes, a too-new opset),
external-data models (good, missing file, escaping path, out-of-range
offset) and TensorProto files written by ONNX's own helpers (typed fields).
Writes tests/onnx/fixtures/. Run from anywhere: /usr/bin/python3 tests/gen/gen_onnx.py"""
import os
import shutil

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "onnx", "fixtures")
if os.path.isdir(OUT):
    shutil.rmtree(OUT)
os.makedirs(OUT)
F = TensorProto.FLOAT


def model(nodes, inputs, outputs, inits=(), opset=13, check=True, **kw):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="gen_onnx",
                          **kw)
    m.ir_version = 8
    if check:
        onnx.checker.check_model(m)
    return m


def save(m, name):
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(m.SerializeToString() if hasattr(m, "SerializeToString") else m)
    return path


def vi(name, shape, t=F):
    return helper.make_tensor_value_info(name, t, shape)


# ---- the tiny model: y = relu(x + b), x (N, 3) with a dynamic batch, plus
# z = x passed straight through and c, a constant output
B = np.array([0.5, -1.0, 2.0], np.float32)
tiny = model([helper.make_node("Add", ["x", "b"], ["s"], name="add"),
              helper.make_node("Relu", ["s"], ["y"], name="relu"),
              helper.make_node("Identity", ["x"], ["z"], name="pass"),
              helper.make_node("Constant", [], ["c"], name="const",
                               value_ints=[7, -8, 9])],
             [vi("x", ["N", 3])], [vi("y", ["N", 3]), vi("z", ["N", 3]), vi("c", [3], TensorProto.INT64)],
             [numpy_helper.from_array(B, "b")])
tiny_bytes = tiny.SerializeToString()
save(tiny, "tiny.onnx")

# ---- Reshape's shape as a graph input: graphs are built for its values
save(model([helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")],
           [vi("x", [6]), vi("shape", [2], TensorProto.INT64)], [vi("y", [None, None])]), "reshape_input.onnx")

# ---- sequences between nodes: y = concat(split_to_sequence(x, 1)[::-1])
save(model([helper.make_node("SplitToSequence", ["x"], ["s"], axis=0),
            helper.make_node("SequenceAt", ["s", "last"], ["a"]),
            helper.make_node("SequenceErase", ["s"], ["s2"]),
            helper.make_node("SequenceInsert", ["s2", "a", "zero"], ["s3"]),
            helper.make_node("ConcatFromSequence", ["s3"], ["y"], axis=0)],
           [vi("x", [3, 2])], [vi("y", [3, 2])],
           [numpy_helper.from_array(np.array(-1, np.int64), "last"),
            numpy_helper.from_array(np.array(0, np.int64), "zero")]), "sequence.onnx")

# ---- control flow: y = flag ? x + 1 : x * 2 (reads x from the outer graph);
# then three iterations of v = v * 2 + i, with every v as a scan output
one = numpy_helper.from_array(np.array([1.0], np.float32), "one")
two = numpy_helper.from_array(np.array([2.0], np.float32), "two")
then_g = helper.make_graph([helper.make_node("Add", ["x", "one"], ["t"])], "then", [], [vi("t", [3])])
else_g = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["e"])], "else", [], [vi("e", [3])])
body = helper.make_graph(
    [helper.make_node("Identity", ["c_in"], ["c_out"]),
     helper.make_node("Cast", ["i"], ["fi"], to=F),
     helper.make_node("Mul", ["v_in", "two"], ["d"]),
     helper.make_node("Add", ["d", "fi"], ["v_out"]),
     helper.make_node("Identity", ["v_out"], ["scan"])],
    "body", [vi("i", [], TensorProto.INT64), vi("c_in", [], TensorProto.BOOL), vi("v_in", [3])],
    [vi("c_out", [], TensorProto.BOOL), vi("v_out", [3]), vi("scan", [3])])
save(model([helper.make_node("If", ["flag"], ["y"], then_branch=then_g, else_branch=else_g, name="if"),
            helper.make_node("Loop", ["trips", "yes", "y"], ["v", "vs"], body=body, name="loop")],
           [vi("x", [3]), vi("flag", [], TensorProto.BOOL)], [vi("v", [3]), vi("vs", [3, 3])],
           [one, two, numpy_helper.from_array(np.array(3, np.int64), "trips"),
            numpy_helper.from_array(np.array(True), "yes")]), "control_flow.onnx")

# ---- refused at load
save(bytes(range(7, 250, 3)) * 3, "corrupt.onnx")
save(tiny_bytes[: len(tiny_bytes) // 2], "truncated.onnx")
save(model([helper.make_node("Identity", ["b2"], ["a2"], name="first"),
            helper.make_node("Identity", ["a2"], ["b2"], name="second")],
           [vi("x", [3])], [vi("a2", [3])], check=False), "cyclic.onnx")
save(model([helper.make_node("Relu", ["nope"], ["y"], name="r")], [vi("x", [3])], [vi("y", [3])],
           check=False), "undefined_input.onnx")
save(model([helper.make_node("Relu", ["x"], ["y"], name="r1"),
            helper.make_node("Relu", ["x"], ["y"], name="r2")], [vi("x", [3])], [vi("y", [3])],
           check=False), "duplicate_output.onnx")
huge = TensorProto(name="w", data_type=F, dims=[1 << 40, 1 << 40], raw_data=b"\0" * 16)
save(model([helper.make_node("Add", ["x", "w"], ["y"])], [vi("x", [3])], [vi("y", [3])], [huge],
           check=False), "huge_shape.onnx")
huge_input = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1 << 62, 1 << 62])],
                   [vi("y", [1 << 62, 1 << 62])], check=False)
save(huge_input, "huge_input.onnx")
bad_raw = TensorProto(name="w", data_type=F, dims=[4], raw_data=b"\0" * 12)  # 3 floats for 4
save(model([helper.make_node("Add", ["x", "w"], ["y"])], [vi("x", [4])], [vi("y", [4])], [bad_raw],
           check=False), "short_raw.onnx")
confused = TensorProto(name="w", data_type=F, dims=[2], int64_data=[1, 2])  # floats stored as int64
save(model([helper.make_node("Add", ["x", "w"], ["y"])], [vi("x", [2])], [vi("y", [2])], [confused],
           check=False), "type_confused.onnx")
save(model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [2], 999)], [vi("y", [2])], check=False),
     "bad_elem_type.onnx")
save(model([helper.make_node("FooOp", ["x"], ["a"], name="foo1"),
            helper.make_node("Relu", ["a"], ["b"], name="fine"),
            helper.make_node("BarOp", ["b"], ["c"], name="bar"),
            helper.make_node("Custom", ["c"], ["y"], name="mine", domain="com.example")],
           [vi("x", [2])], [vi("y", [2])], check=False,
           ), "unsupported_nodes.onnx")
m = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [2])], [vi("y", [2])], check=False)
m.opset_import[0].version = 99
save(m, "opset_99.onnx")
save(model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [2], TensorProto.UINT16)],
           [vi("y", [2], TensorProto.UINT16)], check=False), "uint16_input.onnx")

# ---- external data: w (2, 3) float32 stored in weights.bin at offset 16
W = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
with open(os.path.join(OUT, "weights.bin"), "wb") as f:
    f.write(b"\xee" * 16 + W.tobytes())


def external(name, location, offset=16, length=24):
    t = TensorProto(name="w", data_type=F, dims=[2, 3])
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", offset), ("length", length)):
        if v is not None:
            e = t.external_data.add()
            e.key, e.value = k, str(v)
    save(model([helper.make_node("Add", ["x", "w"], ["y"])], [vi("x", [2, 3])], [vi("y", [2, 3])], [t],
               check=False), name)


external("external_good.onnx", "weights.bin")
external("external_missing.onnx", "no_such_file.bin")
external("external_escape.onnx", "../fixtures/weights.bin")
external("external_absolute.onnx", "/etc/passwd", 0, None)
external("external_offset.onnx", "weights.bin", 1 << 20)
external("external_length.onnx", "weights.bin", 16, 20)

# ---- TensorProto files from ONNX's own writer (typed fields, not raw_data)
def tensor_file(name, t):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(t.SerializeToString())


tensor_file("typed_f16.pb", helper.make_tensor("h", TensorProto.FLOAT16, [3],
                                               np.array([1.5, -2.0, 65504.0], np.float16)))
# ---- ai.onnx.preview.training Gradient: dy/dx and dy/dw of y = sum(tanh(x * w) + x) (w an
# input), a gradient with respect to a value y does not depend on (zero), and a y that
# no node reads after the Gradient node and that is no graph output (not available)
def training_model(nodes, inputs, outputs):
    g = helper.make_graph(nodes, "g", inputs, outputs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                            helper.make_opsetid("ai.onnx.preview.training", 1)],
                          producer_name="gen_onnx")
    m.ir_version = 8
    return m


grad_nodes = [helper.make_node("Mul", ["x", "w"], ["p"]),
              helper.make_node("Tanh", ["p"], ["t"]),
              helper.make_node("Add", ["t", "x"], ["u"]),
              helper.make_node("ReduceSum", ["u"], ["y"], keepdims=0),
              helper.make_node("Gradient", ["x", "w", "z"], ["dx", "dw", "dz"], xs=["x", "w", "z"], y="y",
                               domain="ai.onnx.preview.training")]
save(training_model(grad_nodes, [vi("x", [2, 3]), vi("w", [2, 3]), vi("z", [2])],
                    [vi("y", []), vi("dx", [2, 3]), vi("dw", [2, 3]), vi("dz", [2])]), "gradient.onnx")
save(training_model([helper.make_node("Mul", ["x", "x"], ["q"]),
                     helper.make_node("Gradient", ["x"], ["dx"], xs=["x"], y="q",
                                      domain="ai.onnx.preview.training")],
                    [vi("x", [2])], [vi("dx", [2])]), "gradient_gone.onnx")

tensor_file("typed_bool.pb", helper.make_tensor("b", TensorProto.BOOL, [2, 2], [True, False, False, True]))
tensor_file("typed_i8.pb", helper.make_tensor("i", TensorProto.INT8, [3], [-128, 0, 127]))
tensor_file("typed_f64.pb", helper.make_tensor("d", TensorProto.DOUBLE, [2], [0.1, -1e300]))
tensor_file("typed_i64.pb", helper.make_tensor("l", TensorProto.INT64, [2], [-(1 << 62), 5]))
tensor_file("raw_f32.pb", numpy_helper.from_array(np.array([[1.0, 2.0], [3.0, -4.25]], np.float32), "r"))
tensor_file("string.pb", helper.make_tensor("s", TensorProto.STRING, [1], [b"hi"]))
tensor_file("string_nul.pb", helper.make_tensor("s", TensorProto.STRING, [2], [b"a", b"b\x00c"]))
bad_count = helper.make_tensor("s", TensorProto.STRING, [1], [b"a"])
bad_count.dims[0] = 2  # two strings declared, one present
tensor_file("string_count.pb", bad_count)
print("wrote", OUT, "(%d files)" % len(os.listdir(OUT)))
