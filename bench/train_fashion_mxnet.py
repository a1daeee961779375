"""LeNet with batch norm on Fashion-MNIST in MXNet 1.9.1 Gluon, hybridized:
the second peer of `kiln train --model lenet` (same layers, initialisation
family, normalisation, batch 128, SGD lr 0.1 momentum 0.9, constant lr).
Runs in the venv bench/setup_mxnet.sh makes (MXNet 1.9.1 needs numpy<1.24).
   train_fashion_mxnet.py [DATA_DIR] [EPOCHS] [THREADS]"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
threads = sys.argv[3] if len(sys.argv) > 3 else "2"
os.environ.setdefault("OMP_NUM_THREADS", threads)
os.environ.setdefault("MXNET_CPU_WORKER_NTHREADS", threads)

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402
from mxnet.gluon import nn  # noqa: E402

from idx import load_idx  # noqa: E402


def lenet():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(6, 5, padding=2), nn.BatchNorm(), nn.Activation("relu"), nn.MaxPool2D(2),
            nn.Conv2D(16, 5), nn.BatchNorm(), nn.Activation("relu"), nn.MaxPool2D(2),
            nn.Flatten(),
            nn.Dense(120), nn.BatchNorm(), nn.Activation("relu"),
            nn.Dense(84), nn.BatchNorm(), nn.Activation("relu"),
            nn.Dense(10))
    return net


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    mx.random.seed(1)
    np.random.seed(1)

    def prep(name):
        x = load_idx(f"{d}/{name}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
        return ((x - 0.2860) / 0.3530)[:, None, :, :]
    xtr, ytr = prep("train"), load_idx(f"{d}/train-labels-idx1-ubyte.gz").astype(np.float32)
    xte, yte = prep("t10k"), load_idx(f"{d}/t10k-labels-idx1-ubyte.gz").astype(np.float32)
    net = lenet()
    net.initialize(mx.init.Xavier(magnitude=2.24))
    net.hybridize(static_alloc=True, static_shape=True)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    rng = np.random.default_rng(42)
    for e in range(1, epochs + 1):
        perm = rng.permutation(len(xtr))
        total, n = 0.0, 0
        t0 = time.perf_counter()
        for i in range(0, len(xtr), 128):
            idx = perm[i:i + 128]
            x, y = mx.nd.array(xtr[idx]), mx.nd.array(ytr[idx])
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(len(idx))
            total += loss.mean().asscalar()
            n += 1
        mx.nd.waitall()
        secs = time.perf_counter() - t0
        correct = 0
        for i in range(0, len(xte), 1000):
            pred = net(mx.nd.array(xte[i:i + 1000])).argmax(axis=1).asnumpy()
            correct += int((pred == yte[i:i + 1000]).sum())
        print(f"mxnet epoch {e}/{epochs}  train loss {total / n:.3f}  test acc {correct / len(xte):.4f}  "
              f"{secs:.1f} s", flush=True)


if __name__ == "__main__":
    main()
