"""LeNet with batch norm on Fashion-MNIST in PyTorch: the peer of
`kiln train --model lenet`. Same architecture, initialisation family, data
normalisation, batch size, optimizer and epochs; prints seconds per epoch
and test accuracy.
   train_fashion.py [DATA_DIR] [EPOCHS] [THREADS]"""
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idx import load_idx  # noqa: E402


def lenet():
    """kiln's model zoo "lenet": batch norm after every conv and dense layer."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120), nn.BatchNorm1d(120), nn.ReLU(),
        nn.Linear(120, 84), nn.BatchNorm1d(84), nn.ReLU(),
        nn.Linear(84, 10))


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
    torch.manual_seed(1)
    def prep(name):
        x = load_idx(f"{d}/{name}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
        return torch.from_numpy((x - 0.2860) / 0.3530).unsqueeze(1)
    xtr, ytr = prep("train"), torch.from_numpy(load_idx(f"{d}/train-labels-idx1-ubyte.gz").astype(np.int64))
    xte, yte = prep("t10k"), torch.from_numpy(load_idx(f"{d}/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    net = lenet()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(42)
    for e in range(1, epochs + 1):
        net.train()
        t0 = time.perf_counter()
        perm = torch.randperm(len(xtr), generator=g)
        total, n = 0.0, 0
        for i in range(0, len(xtr), 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            loss = loss_fn(net(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            total += loss.item()
            n += 1
        secs = time.perf_counter() - t0
        net.eval()
        with torch.no_grad():
            acc = (net(xte).argmax(1) == yte).float().mean().item()
        print(f"pytorch epoch {e}/{epochs}  train loss {total / n:.3f}  test acc {acc:.4f}  {secs:.1f} s",
              flush=True)


if __name__ == "__main__":
    main()
