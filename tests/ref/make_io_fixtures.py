#!/usr/bin/python3
"""Generates the fixtures of tests/test_io.c under tests/data/io/.

Independent references for the C readers:
  * PNG files are encoded here by hand (zlib + struct, no libpng), in the
    layouts the reader must convert: 16-bit gray, 2-bit gray, 4- and 8-bit
    palette with transparency, RGBA, 16-bit gray+alpha and Adam7-interlaced
    16-bit RGB. Next to each, NAME.npy holds the expected planar float32
    image (alpha dropped, samples divided by 2^depth - 1).
  * .npy files are written by numpy itself, including format versions 2.0
    and 3.0 and dtypes/orders the reader must refuse.
  * Bilinear resize references come from torch.nn.functional.interpolate
    (mode="bilinear", align_corners=False, antialias=False) when torch is
    importable; a numpy transcription of the same convention is always
    computed and must agree with torch.

Run from anywhere with /usr/bin/python3; the output is deterministic.
"""
import os
import struct
import zlib

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "io")

# ---- PNG encoding -------------------------------------------------------------

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
         (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def pack_rows(samples, depth):
    """samples: (h, w, channels) unsigned ints -> list of raw row bytes."""
    rows = []
    for row in samples:
        flat = row.reshape(-1)
        if depth == 16:
            rows.append(flat.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(flat.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            padded = np.zeros(-(-len(flat) // per) * per, dtype=np.uint32)
            padded[:len(flat)] = flat
            b = np.zeros(len(padded) // per, dtype=np.uint32)
            for k in range(per):
                b |= padded[k::per] << (8 - depth * (k + 1))
            rows.append(b.astype(np.uint8).tobytes())
    return rows


def png(path, samples, depth, color_type, palette=None, trns=None, interlace=False):
    h, w = samples.shape[:2]
    raw = b""
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += b"".join(b"\x00" + r for r in pack_rows(sub, depth))
    else:
        raw = b"".join(b"\x00" + r for r in pack_rows(samples, depth))
    data = b"\x89PNG\r\n\x1a\n"
    data += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0,
                                       1 if interlace else 0))
    if palette is not None:
        data += chunk(b"PLTE", palette.astype(np.uint8).tobytes())
    if trns is not None:
        data += chunk(b"tRNS", trns.astype(np.uint8).tobytes())
    data += chunk(b"IDAT", zlib.compress(raw, 9))
    data += chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def planar(img):
    """(h, w, c) float -> (c, h, w) float32."""
    return np.ascontiguousarray(np.transpose(img, (2, 0, 1))).astype(np.float32)


def make_pngs(rng):
    g16 = rng.randint(0, 65536, size=(4, 5, 1))
    g16[0, 0, 0], g16[0, 1, 0], g16[0, 2, 0] = 0, 65535, 257
    png(f"{OUT}/gray16.png", g16, 16, 0)
    np.save(f"{OUT}/gray16.npy", planar(g16 / 65535.0))

    g2 = rng.randint(0, 4, size=(3, 6, 1))
    png(f"{OUT}/gray2.png", g2, 2, 0)
    np.save(f"{OUT}/gray2.npy", planar(g2 / 3.0))

    pal = rng.randint(0, 256, size=(16, 3))
    idx = rng.randint(0, 16, size=(3, 5, 1))
    png(f"{OUT}/palette4.png", idx, 4, 3, palette=pal, trns=np.arange(16) * 16)
    np.save(f"{OUT}/palette4.npy", planar(pal[idx[..., 0]] / 255.0))

    pal = rng.randint(0, 256, size=(200, 3))
    idx = rng.randint(0, 200, size=(6, 7, 1))
    png(f"{OUT}/palette8.png", idx, 8, 3, palette=pal, trns=np.full(7, 100))
    np.save(f"{OUT}/palette8.npy", planar(pal[idx[..., 0]] / 255.0))

    rgba = rng.randint(0, 256, size=(3, 4, 4))
    png(f"{OUT}/rgba8.png", rgba, 8, 6)
    np.save(f"{OUT}/rgba8.npy", planar(rgba[..., :3] / 255.0))

    ga = rng.randint(0, 65536, size=(5, 3, 2))
    png(f"{OUT}/graya16.png", ga, 16, 4)
    np.save(f"{OUT}/graya16.npy", planar(ga[..., :1] / 65535.0))

    rgb = rng.randint(0, 65536, size=(7, 9, 3))
    png(f"{OUT}/rgb16_adam7.png", rgb, 16, 2, interlace=True)
    np.save(f"{OUT}/rgb16_adam7.npy", planar(rgb / 65535.0))


# ---- bilinear resize ----------------------------------------------------------

RESIZE_SIZES = [(13, 11), (3, 2), (7, 5), (1, 1), (16, 3), (2, 9), (21, 15)]


def resize_numpy(src, h, w):
    """PyTorch's align_corners=False bilinear, transcribed in float32."""
    def taps(n_in, n_out):
        scale = np.float32(n_in) / np.float32(n_out)
        d = np.arange(n_out, dtype=np.float32)
        s = np.maximum(scale * (d + np.float32(0.5)) - np.float32(0.5), np.float32(0))
        i0 = np.minimum(np.floor(s).astype(np.int64), n_in - 1)
        l1 = np.clip(s - i0.astype(np.float32), 0, 1).astype(np.float32)
        i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
        return i0, i1, l1

    y0, y1, yl = taps(src.shape[1], h)
    x0, x1, xl = taps(src.shape[2], w)
    one = np.float32(1)
    top = src[:, y0][:, :, x0] * (one - xl) + src[:, y0][:, :, x1] * xl
    bot = src[:, y1][:, :, x0] * (one - xl) + src[:, y1][:, :, x1] * xl
    return (top * (one - yl)[:, None] + bot * yl[:, None]).astype(np.float32)


def make_resize(rng):
    src = rng.rand(3, 7, 5).astype(np.float32)
    np.save(f"{OUT}/resize_src.npy", src)
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        torch = None
    for h, w in RESIZE_SIZES:
        ref = resize_numpy(src, h, w)
        if torch is not None:
            t = F.interpolate(torch.from_numpy(src)[None], size=(h, w), mode="bilinear",
                              align_corners=False, antialias=False)[0].numpy()
            assert np.abs(t - ref).max() < 1e-6, (h, w, np.abs(t - ref).max())
            ref = t
        np.save(f"{OUT}/resize_{h}x{w}.npy", ref)
    print("resize reference:", "torch " + torch.__version__ if torch else "numpy")


# ---- npy ----------------------------------------------------------------------

def make_npy():
    np.save(f"{OUT}/f4_2x3x4.npy", (np.arange(24, dtype=np.float32) * 0.25 - 3).reshape(2, 3, 4))
    np.save(f"{OUT}/f4_7.npy", np.array([0.5, -1.25, 3e-8, 1e20, -0.0, 7, 1 / 3], np.float32))
    np.save(f"{OUT}/f4_scalar.npy", np.array(2.75, np.float32))
    np.save(f"{OUT}/f4_0x3.npy", np.zeros((0, 3), np.float32))
    np.save(f"{OUT}/f8_5.npy", np.array([1 / 3, -1e10, 1e-3, 0, 2.5]))
    np.save(f"{OUT}/i8_3x2.npy", np.array([[-5, 2**40], [7, 0], [1, -1]], np.int64))
    np.save(f"{OUT}/i4_4.npy", np.array([-2**31, 2**31 - 1, 0, 42], np.int32))
    np.save(f"{OUT}/u1_2x2.npy", np.array([[0, 255], [128, 1]], np.uint8))
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    for ver in [(2, 0), (3, 0)]:
        with open(f"{OUT}/f4_v{ver[0]}.npy", "wb") as f:
            np.lib.format.write_array(f, arr, version=ver)
    np.save(f"{OUT}/f4_fortran.npy", np.asfortranarray(arr))
    np.save(f"{OUT}/f4_bigendian.npy", arr.astype(">f4"))
    np.save(f"{OUT}/f2.npy", arr.astype(np.float16))


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.RandomState(20240611)
    make_pngs(rng)
    make_resize(rng)
    make_npy()


if __name__ == "__main__":
    main()
