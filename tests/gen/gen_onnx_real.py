#!/usr/bin/env python3
"""gen_onnx_real.py — real models exported from PyTorch (1.13) to ONNX for
tests/test_onnx_real.c: torchvision's resnet18, resnet50, mobilenet_v2 and
squeezenet1_1, a small nn.TransformerEncoder (dynamic batch and sequence
length), a small BERT-like encoder (token ids and a padding mask in) and an
LSTM + GRU sequence model, at opset 13, and the first encoder again at
opset 17 (LayerNormalization). Each model gets a folder in the
layout of ONNX's own tests: model.onnx, test_data_set_N/input_0.pb and
output_0.pb, the outputs being PyTorch's in eval mode; dynamic-batch
models also get a batch-3 data set.

Weights are random with a fixed seed (nothing is downloaded); batch norm
running statistics are calibrated by a few training-mode passes over random
inputs so that activations keep a realistic scale through deep networks.
The files are large (about 170 MB) and are generated, not committed;
`make test` does not need them (the test is skipped when they are absent).

Run: /usr/bin/python3 tests/gen/gen_onnx_real.py [OUT_DIR]   (default build/onnx-real)"""
import os
import shutil
import sys
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn
import torchvision
from onnx import numpy_helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
warnings.filterwarnings("ignore", category=UserWarning)  # the exporter's notes on shape inference
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "onnx-real")


def calibrate_bn(model, shape, passes=4):
    """Sets batch norm running statistics from training-mode passes over
    random inputs (cumulative average), then puts the model in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(passes):
            model(torch.randn(*shape))
    model.eval()


def gelu(x):
    """GELU (erf form) as a plain function: nn.TransformerEncoderLayer takes
    its fused inference path (aten::_transformer_encoder_layer_fwd, which
    the exporter cannot export) only for activation="relu"/"gelu"."""
    return nn.functional.gelu(x)


def distinct_layers(encoder):
    """nn.TransformerEncoder deep-copies one layer, so every layer starts
    with the same weights (and the exporter would store them once): draw
    each layer's anew, LayerNorm's scale and shift too (not 1 and 0)."""
    for layer in encoder.layers:
        for m in layer.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()
            elif isinstance(m, nn.MultiheadAttention):
                m._reset_parameters()
            elif isinstance(m, nn.LayerNorm):
                nn.init.normal_(m.weight, 1.0, 0.1)
                nn.init.normal_(m.bias, 0.0, 0.1)


class Encoder(nn.Module):
    """A small BERT-like encoder: input projection, learned positions (sliced
    to the sequence length), nn.TransformerEncoder (post-norm, GELU), final
    norm and a token-wise head. x is (batch, seq, 32), out (batch, seq, 10)."""

    def __init__(self, d_in=32, d_model=64, heads=4, layers=2, max_len=64):
        super().__init__()
        self.proj = nn.Linear(d_in, d_model)
        self.pos = nn.Parameter(torch.randn(max_len, d_model) * 0.1)
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=128, dropout=0.1,
                                           activation=gelu, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d_model))
        distinct_layers(self.encoder)
        self.head = nn.Linear(d_model, 10)

    def forward(self, x):
        h = self.proj(x) + self.pos[: x.shape[1]]
        return self.head(self.encoder(h))


class Recurrent(nn.Module):
    """A sequence model: a 2-layer bidirectional LSTM, a GRU over its
    outputs, and a linear head on every step. x is (seq, batch, 16), out
    (seq, batch, 5)."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(16, 24, num_layers=2, bidirectional=True)
        self.gru = nn.GRU(48, 20)
        self.head = nn.Linear(20, 5)

    def forward(self, x):
        h, _ = self.lstm(x)
        h, _ = self.gru(h)
        return self.head(h)


class BertLike(nn.Module):
    """A BERT-style encoder: token and position embeddings, LayerNorm,
    nn.TransformerEncoder (post-norm, GELU, batch first) and, when a mask is
    given, key padding from it. ids (batch, seq) int64, mask (batch, seq)
    int64 (1 = token, 0 = padding); out (batch, seq, hidden). Also used by
    bench/onnx.py at BERT-base size."""

    def __init__(self, vocab=1000, hidden=64, heads=4, layers=2, ff=256, max_len=128):
        super().__init__()
        self.tok = nn.Embedding(vocab, hidden)
        self.pos = nn.Embedding(max_len, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=ff, dropout=0.1,
                                           activation=gelu, batch_first=True, layer_norm_eps=1e-12)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        distinct_layers(self.encoder)

    def forward(self, ids, mask=None):
        pos = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        h = self.norm(self.tok(ids) + self.pos(pos))
        return self.encoder(h, src_key_padding_mask=None if mask is None else mask == 0)


def write_set(folder, idx, in_names, inputs, outputs):
    d = os.path.join(folder, "test_data_set_%d" % idx)
    os.makedirs(d)
    for i, (n, a) in enumerate(zip(in_names, inputs)):
        with open(os.path.join(d, "input_%d.pb" % i), "wb") as f:
            f.write(numpy_helper.from_array(a, n).SerializeToString())
    for i, a in enumerate(outputs):
        with open(os.path.join(d, "output_%d.pb" % i), "wb") as f:
            f.write(numpy_helper.from_array(a, "output").SerializeToString())


def export_onnx(model, example, path, opset, input_names, dynamic_axes=None):
    """torch.onnx.export of model in eval mode on the tuple of arrays example;
    one output named "output"; checks the file."""
    model.eval()
    with torch.no_grad():
        torch.onnx.export(model, tuple(torch.from_numpy(x) for x in example), path,
                          opset_version=opset, input_names=list(input_names),
                          output_names=["output"], dynamic_axes=dynamic_axes,
                          do_constant_folding=True)
    onnx.checker.check_model(path)


def export(name, model, sets, opset, input_names=("input",), dynamic_axes=None):
    """Exports model at opset into OUT/name/model.onnx with a data set per
    tuple of input arrays in sets (the first is the export's example)."""
    folder = os.path.join(OUT, name)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    path = os.path.join(folder, "model.onnx")
    export_onnx(model, sets[0], path, opset, input_names, dynamic_axes)
    for i, xs in enumerate(sets):
        with torch.no_grad():
            y = model(*(torch.from_numpy(x) for x in xs)).numpy()
        assert np.isfinite(y).all(), name
        write_set(folder, i, input_names, xs, [y])
    ops = sorted({n.op_type for n in onnx.load(path).graph.node})
    print("%-27s opset %d, %d data set(s), %5.1f MB: %s" % (
        name, opset, len(sets), os.path.getsize(path) / 1e6, " ".join(ops)))


def randn(*shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def main():
    os.makedirs(OUT, exist_ok=True)
    image = randn(1, 3, 224, 224, seed=1)
    batch = {0: "batch"}
    for seed, (name, ctor, dyn) in enumerate([("resnet18", torchvision.models.resnet18, False),
                                              ("resnet50", torchvision.models.resnet50, False),
                                              ("mobilenet_v2", torchvision.models.mobilenet_v2, True),
                                              ("squeezenet1_1", torchvision.models.squeezenet1_1, False)]):
        torch.manual_seed(100 + seed)
        model = ctor(weights=None)
        calibrate_bn(model, (8, 3, 224, 224))
        sets = [(image,)] + ([(randn(3, 3, 224, 224, seed=2),)] if dyn else [])
        export(name, model, sets, 13, dynamic_axes={"input": batch, "output": batch} if dyn else None)

    torch.manual_seed(7)
    enc = Encoder()
    seq_axes = {"input": {0: "batch", 1: "seq"}, "output": {0: "batch", 1: "seq"}}
    sets = [(randn(2, 16, 32, seed=3),), (randn(3, 16, 32, seed=4),), (randn(1, 40, 32, seed=5),)]
    export("transformer_encoder", enc, sets, 13, dynamic_axes=seq_axes)
    export("transformer_encoder_opset17", enc, sets, 17, dynamic_axes=seq_axes)

    torch.manual_seed(9)
    bert = BertLike()
    rng = np.random.default_rng(8)
    ids = rng.integers(0, 1000, (2, 24)).astype(np.int64)
    mask = np.ones((2, 24), np.int64)
    mask[1, 17:] = 0  # the second sequence is padded
    ids3 = rng.integers(0, 1000, (3, 24)).astype(np.int64)
    mask3 = (np.arange(24)[None, :] < np.array([[24], [5], [12]])).astype(np.int64)
    axes = {"ids": {0: "batch", 1: "seq"}, "mask": {0: "batch", 1: "seq"}, "output": {0: "batch", 1: "seq"}}
    export("bert_tiny", bert, [(ids, mask), (ids3, mask3)], 13, ("ids", "mask"), axes)

    torch.manual_seed(11)
    rnn = Recurrent()
    sets = [(randn(12, 2, 16, seed=6),), (randn(12, 3, 16, seed=7),)]
    export("lstm_gru", rnn, sets, 13, dynamic_axes={"input": {1: "batch"}, "output": {1: "batch"}})


if __name__ == "__main__":
    main()
