#!/usr/bin/python3
"""Generates the golden files of tests/test_fft.c under tests/data/fft/.

Inputs are not stored: both sides draw them from the same integer generator
(splitmix64, below; the C twin is in tests/test_fft.c and src/optvis/spectral.c),
so only numpy's outputs are written, as float32 .npy:

  r2c_BxHxW.npy        np.fft.rfft2(x), x = uniform_stream(seed_r2c) as (B,H,W),
                       stored as (B, H, W//2+1, 2) (re, im interleaved)
  c2r_BxHxW.npy        np.fft.irfft2(z, s=(H,W)) * H*W, z = uniform_stream(seed_c2r)
                       as (B, H, W//2+1, 2): a random half spectrum, not Hermitian
                       along H in its kx = 0 and kx = W/2 columns; numpy uses
                       their Hermitian part, which is what the test hands the device
  spectral_BxCxHxW_dD.npy   Lucid's fft_image forward for params drawn by
                       lvk_spectral_create(seed): (B, C, H, W) raw pixels
  spectral_BxCxHxW_dD_params.npy   those params, (B, C, H, W//2+1, 2), which
                       checks the C generator bit for bit (up to float rounding)

Lucid's fft_image (lucid/optvis/param/spatial.py), in numpy:
  scale = sqrt(H*W) / max(sqrt(fy^2 + fx^2), 1/max(H,W))^decay,
  fy = fftfreq(H), fx = rfftfreq(W)   (cycles per pixel)
  pixels = irfft2((re + i im) * scale, s=(H,W)) / 4
For odd W, Lucid keeps one extra column and crops the result; here (as in
lucid-vk) the spectrum is numpy's exact W//2+1 columns.

Run from anywhere with /usr/bin/python3; the output is deterministic.
"""
import math
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "fft")
MASK = (1 << 64) - 1

# ---- the shared generator ------------------------------------------------------


class SplitMix64:
    """Steele, Lea & Flood's splitmix64 (the seeding generator of xoshiro)."""

    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


def uniform_stream(seed, n):
    """n floats in [-1, 1): the top 24 bits of each draw, exact in float32."""
    g = SplitMix64(seed)
    return np.array([(g.next() >> 40) / float(1 << 23) - 1.0 for _ in range(n)], dtype=np.float32)


def normal_stream(seed, n, sd):
    """n normals * sd (n even), Box-Muller on pairs of draws in (0, 1]:
    u = ((z >> 11) + 1) / 2^53, r = sqrt(-2 ln u1), (r cos 2 pi u2, r sin 2 pi u2),
    computed in double, multiplied by sd, rounded to float32."""
    g = SplitMix64(seed)
    out = np.empty(n, dtype=np.float64)
    for k in range(n // 2):
        u1 = ((g.next() >> 11) + 1) / 9007199254740992.0
        u2 = ((g.next() >> 11) + 1) / 9007199254740992.0
        r = math.sqrt(-2.0 * math.log(u1))
        out[2 * k] = r * math.cos(2.0 * math.pi * u2)
        out[2 * k + 1] = r * math.sin(2.0 * math.pi * u2)
    return (out * sd).astype(np.float32)


def seed_r2c(h, w):
    return 1000003 * h + w


def seed_c2r(h, w):
    return 1000003 * h + w + 7


# ---- goldens -------------------------------------------------------------------


def save(name, a):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(a, dtype=np.float32))


def fft_goldens(b, h, w):
    wh = w // 2 + 1
    x = uniform_stream(seed_r2c(h, w), b * h * w).reshape(b, h, w).astype(np.float64)
    X = np.fft.rfft2(x)
    save("r2c_%dx%dx%d.npy" % (b, h, w), np.stack([X.real, X.imag], axis=-1))

    z = uniform_stream(seed_c2r(h, w), b * h * wh * 2).reshape(b, h, wh, 2).astype(np.float64)
    y = np.fft.irfft2(z[..., 0] + 1j * z[..., 1], s=(h, w)) * (h * w)
    save("c2r_%dx%dx%d.npy" % (b, h, w), y)


def spectral_golden(b, c, h, w, decay, seed):
    wh = w // 2 + 1
    p = normal_stream(seed, b * c * h * wh * 2, 0.01).reshape(b, c, h, wh, 2)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    freqs = np.sqrt(fy * fy + fx * fx)
    scale = np.sqrt(h * w) / np.maximum(freqs, 1.0 / max(h, w)) ** decay
    spec = (p[..., 0].astype(np.float64) + 1j * p[..., 1]) * scale
    pixels = np.fft.irfft2(spec, s=(h, w)) / 4.0
    tag = "spectral_%dx%dx%dx%d_d%g" % (b, c, h, w, decay)
    save(tag + ".npy", pixels)
    save(tag + "_params.npy", p)


def main():
    os.makedirs(OUT, exist_ok=True)
    for h, w in [(28, 28), (32, 32), (128, 128), (224, 224), (27, 33)]:
        fft_goldens(3, h, w)
    # (seed values are repeated in tests/test_fft.c)
    spectral_golden(2, 3, 28, 28, 1.0, 42)
    spectral_golden(1, 3, 27, 33, 1.5, 7)


if __name__ == "__main__":
    main()
