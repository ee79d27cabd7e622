#!/usr/bin/python3
"""Golden data for lvk_upsample_fwd (tests/test_image_ops.c): PyTorch's
F.interpolate(mode="bilinear", align_corners=False) on random planes.

Writes tests/data/optvis/upsample.bin, little-endian:
  uint32 magic 0x5055564c ("LVUP"), uint32 version 1, uint32 ncases,
  then per case: uint32 n, h, w, H, W; float32 x[n*h*w]; float32 y[n*H*W].
Run: /usr/bin/python3 tests/ref/make_upsample_golden.py
"""
import os
import struct

import torch
import torch.nn.functional as F

# (planes, h, w, H, W): non-integer and integer factors, a downsize and a
# single pixel, as lowres parameterizations and odd model sizes produce.
CASES = [(3, 5, 7, 13, 17), (2, 4, 4, 16, 16), (1, 7, 5, 3, 4), (2, 1, 1, 3, 5), (3, 7, 7, 56, 56)]


def main():
    torch.manual_seed(20240611)
    out = os.path.join(os.path.dirname(__file__), "..", "data", "optvis", "upsample.bin")
    with open(out, "wb") as f:
        f.write(struct.pack("<III", 0x5055564C, 1, len(CASES)))
        for n, h, w, H, W in CASES:
            x = torch.rand(1, n, h, w, dtype=torch.float32) * 2 - 1
            y = F.interpolate(x, size=(H, W), mode="bilinear", align_corners=False)
            f.write(struct.pack("<5I", n, h, w, H, W))
            f.write(x.numpy().astype("<f4").tobytes())
            f.write(y.numpy().astype("<f4").tobytes())


if __name__ == "__main__":
    main()
