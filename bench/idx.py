"""IDX (MNIST / Fashion-MNIST) files, gzip'd, as NumPy arrays: shared by the
train_fashion peers."""
import gzip
import struct

import numpy as np


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = struct.unpack(">I", data[:4])[0] & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)
