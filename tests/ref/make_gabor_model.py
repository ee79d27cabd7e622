#!/usr/bin/python3
"""A tiny ONNX model whose second conv has known preferred orientations, for
the grating measurement of 'lucidvk kernels' (tests/test_kernels.c).

  image [1, 1, 32, 32] in [0, 1]
  -> Conv 'gabor' (16 filters 9x9, pad 4): for each of the 8 angles in ANGLES,
     an even (cosine) and an odd (sine) Gabor, zero mean, bias 0
  -> Relu 'gabor_relu'
  -> Conv 'mix' (1x1, 8 outputs): output j = relu(even) + relu(odd) of the
     angle ANGLES[PERM[j]], so each output is a phase-tolerant unit of one
     orientation past the first layer, stored in an order unrelated to it.

Gabors as in skimage.filters.gabor_kernel: exp(-(x^2 + y^2) / 2 sigma^2)
cos(2 pi (x cos theta + y sin theta) / lambda + phase), x to the right and y
UP from the kernel's centre, so theta is the direction across the stripes,
the angle 'lucidvk kernels' reports. Wavelengths alternate 4, 5 and 5.66
pixels (0.25, 0.2 and 0.177 cycles/pixel: on and between the grating
frequencies).

Writes tests/data/kernels/gabor_later.onnx.
Run: /usr/bin/python3 tests/ref/make_gabor_model.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ANGLES = [0.0, 17.0, 41.0, 73.0, 90.0, 118.0, 152.0, 166.0]
PERM = [5, 2, 7, 0, 3, 6, 1, 4]
LAMBDAS = [4.0, 5.0, 5.66]
SIZE, SIGMA = 9, 2.0


def gabor(theta_deg, lam, phase):
    th = np.radians(theta_deg)
    c = (SIZE - 1) / 2
    r, s = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    x, y = s - c, c - r
    g = np.exp(-(x * x + y * y) / (2 * SIGMA * SIGMA)) * np.cos(
        2 * np.pi * (x * np.cos(th) + y * np.sin(th)) / lam + phase)
    return g - g.mean()


def main():
    k = len(ANGLES)
    w1 = np.zeros((2 * k, 1, SIZE, SIZE), np.float32)
    for i, a in enumerate(ANGLES):
        lam = LAMBDAS[i % len(LAMBDAS)]
        w1[2 * i, 0] = gabor(a, lam, 0.0)
        w1[2 * i + 1, 0] = gabor(a, lam, np.pi / 2)
    w2 = np.zeros((k, 2 * k, 1, 1), np.float32)
    for j, i in enumerate(PERM):
        w2[j, 2 * i] = w2[j, 2 * i + 1] = 1.0
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "gabor_w", "gabor_b"], ["gabor"], name="gabor",
                             kernel_shape=[SIZE, SIZE], pads=[SIZE // 2] * 4),
            helper.make_node("Relu", ["gabor"], ["gabor_relu"], name="gabor_relu"),
            helper.make_node("Conv", ["gabor_relu", "mix_w"], ["mix"], name="mix", kernel_shape=[1, 1]),
        ],
        "gabor_later",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 32, 32])],
        [helper.make_tensor_value_info("mix", TensorProto.FLOAT, [1, k, 32, 32])],
        [numpy_helper.from_array(w1, "gabor_w"),
         numpy_helper.from_array(np.zeros(2 * k, np.float32), "gabor_b"),
         numpy_helper.from_array(w2, "mix_w")],
    )
    model = helper.make_model(graph, producer_name="lucid-vk tests/ref/make_gabor_model.py",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "kernels",
                       "gabor_later.onnx")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    onnx.save(model, out)


if __name__ == "__main__":
    main()
