#!/usr/bin/python3
"""Train and export the small Fashion-MNIST CNN that ships with lucid-vk.

lucid-vk has to render feature visualizations on a machine that cannot
download anything, so the repository carries its own demo model. This script
produces every file under assets/demo/ from scratch:

  * trains a small fully convolutional CNN (BatchNorm during training) on the
    Fashion-MNIST training set from the Debian package dataset-fashion-mnist;
  * folds BatchNorm into the convolutions and checks the folded network
    against the trained one;
  * exports the folded network to ONNX (opset 13) with readable tensor names
    (conv1, conv1_relu, pool1, ..., gap, logits) that users pass as layer
    names, and checks that the graph only uses ops lucid-vk implements;
  * re-evaluates the exported file with an independent numpy interpreter of
    the ONNX graph on all 10000 test images;
  * writes one test PNG per class, the labels file, the preprocessing sidecar
    and reference.json (logits and per-layer activation means) that engine
    tests compare against.

Preprocessing lives outside the network: pixels are scaled to [0, 1] and then
normalised with the Fashion-MNIST mean/std, exactly what lucid-vk does from
the sidecar file.

Run with Debian's interpreter (it has python3-torch, python3-numpy and
python3-onnx):

    /usr/bin/python3 tools/train_demo/train.py

Everything is seeded and torch runs with deterministic algorithms on two
threads, so a re-run on the same machine reproduces the same weights.
"""

import argparse
import gzip
import json
import os
import struct
import sys
import time
import zlib

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper

DATA_DIR = "/usr/share/datasets/fashion-mnist"
REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT_DIR = os.path.join(REPO_ROOT, "assets", "demo")

MEAN = 0.2860
STD = 0.3530
LABELS = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
# Ops the exported graph may contain; lucid-vk implements these.
ALLOWED_OPS = {"Conv", "Relu", "MaxPool", "GlobalAveragePool", "Flatten",
               "Reshape", "Gemm"}
# (name, in_channels, out_channels, followed_by_pool)
CONV_SPEC = [
    ("conv1", 1, 32, None),
    ("conv2", 32, 32, "pool1"),
    ("conv3", 32, 64, None),
    ("conv4", 64, 64, "pool2"),
    ("conv5", 64, 128, None),
]
NUM_CLASSES = 10


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------

def read_idx(path):
    """Read a (gzip) IDX file into a numpy array of its declared shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return arr.reshape(dims)


def load_split(prefix):
    images = read_idx(os.path.join(DATA_DIR, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(DATA_DIR, f"{prefix}-labels-idx1-ubyte.gz"))
    assert images.shape[0] == labels.shape[0]
    return images, labels.astype(np.int64)


def to_input(images_u8):
    """uint8 [N,28,28] -> normalised float tensor [N,1,28,28].

    Same arithmetic as lucid-vk's sidecar: pixel/255 in [0,1], then
    (x - mean) / std.
    """
    x = torch.from_numpy(images_u8.astype(np.float32) / 255.0).unsqueeze(1)
    return (x - MEAN) / STD


def augment(x, gen):
    """Random horizontal flip and a random shift of up to 2 pixels.

    Garments are left/right symmetric enough that flips are label-preserving;
    small shifts make the features less tied to the exact centring of the
    dataset, which helps when lucid-vk renders at other sizes. The shift pads
    with the normalised value of a black pixel so the border looks like
    background, not like mid-grey.
    """
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    pad = 2
    bg = (0.0 - MEAN) / STD
    padded = F.pad(x, (pad, pad, pad, pad), value=bg)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    out = torch.empty_like(x)
    # Group by offset: 25 slicing ops per batch instead of one per image.
    for oy in range(2 * pad + 1):
        for ox in range(2 * pad + 1):
            idx = ((dy == oy) & (dx == ox)).nonzero(as_tuple=True)[0]
            if idx.numel():
                out[idx] = padded[idx, :, oy:oy + 28, ox:ox + 28]
    return out


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------

class TrainNet(nn.Module):
    """The training-time network: conv (no bias) + BatchNorm + ReLU blocks."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList()
        self.bns = nn.ModuleList()
        for _, cin, cout, _ in CONV_SPEC:
            # The bias would be cancelled by BatchNorm's mean subtraction.
            self.convs.append(nn.Conv2d(cin, cout, 3, padding=1, bias=False))
            self.bns.append(nn.BatchNorm2d(cout))
        self.fc = nn.Linear(CONV_SPEC[-1][2], NUM_CLASSES)

    def forward(self, x):
        for (_, _, _, pool), conv, bn in zip(CONV_SPEC, self.convs, self.bns):
            x = F.relu(bn(conv(x)))
            if pool:
                x = F.max_pool2d(x, 2)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class DemoNet(nn.Module):
    """The exported, BatchNorm-free network.

    Every step is its own attribute, named like the tensor it produces, so the
    ONNX node names torch generates ("/conv1_relu/Relu", ...) carry the name
    the output tensor is renamed to afterwards.
    """

    def __init__(self):
        super().__init__()
        self.order = []
        for name, cin, cout, pool in CONV_SPEC:
            setattr(self, name, nn.Conv2d(cin, cout, 3, padding=1))
            setattr(self, name + "_relu", nn.ReLU())
            self.order += [name, name + "_relu"]
            if pool:
                setattr(self, pool, nn.MaxPool2d(2))
                self.order.append(pool)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.logits = nn.Linear(CONV_SPEC[-1][2], NUM_CLASSES)
        self.order += ["gap", "flatten", "logits"]

    def forward(self, x):
        for name in self.order:
            x = getattr(self, name)(x)
        return x

    def forward_all(self, x):
        """Return {tensor name: activation} for every step."""
        acts = {}
        for name in self.order:
            x = getattr(self, name)(x)
            acts[name] = x
        return acts


@torch.no_grad()
def fold_batchnorm(train_net):
    """Build a DemoNet whose convolutions absorb the BatchNorm statistics.

    In eval mode BN is y = gamma * (z - mean) / sqrt(var + eps) + beta, an
    affine map per output channel, so it folds into the conv weight (scale)
    and a new bias (shift).
    """
    demo = DemoNet()
    for (name, _, _, _), conv, bn in zip(CONV_SPEC, train_net.convs, train_net.bns):
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        target = getattr(demo, name)
        target.weight.copy_(conv.weight * scale[:, None, None, None])
        target.bias.copy_(bn.bias - bn.running_mean * scale)
    demo.logits.weight.copy_(train_net.fc.weight)
    demo.logits.bias.copy_(train_net.fc.bias)
    return demo.eval()


@torch.no_grad()
def predict(model, x, batch=1000):
    model.eval()
    return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------

def train(args, x_train, y_train, x_test, y_test):
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    model = TrainNet()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9,
                          nesterov=True, weight_decay=5e-4)
    steps_per_epoch = (len(x_train) + args.batch - 1) // args.batch
    # One-cycle schedule: a short warm-up then annealing to ~0 gets the most
    # accuracy out of the few epochs the CPU budget allows.
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch,
        pct_start=0.2)
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x_train), generator=gen)
        total_loss, correct = 0.0, 0
        for i in range(0, len(x_train), args.batch):
            idx = perm[i:i + args.batch]
            xb = augment(x_train[idx], gen)
            yb = y_train[idx]
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(idx)
            correct += (out.argmax(1) == yb).sum().item()
        test_acc = (predict(model, x_test).argmax(1) == y_test).float().mean().item()
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total_loss / len(x_train):.4f} "
              f"train acc {correct / len(x_train):.4f} test acc {test_acc:.4f} "
              f"({time.time() - t0:.0f} s)", flush=True)
    return model.eval(), time.time() - t0


# --------------------------------------------------------------------------
# ONNX export and independent check
# --------------------------------------------------------------------------

def export_onnx(demo, path):
    dummy = torch.zeros(1, 1, 28, 28)
    torch.onnx.export(demo, dummy, path, opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      do_constant_folding=True)
    model = onnx.load(path)
    graph = model.graph

    # torch names intermediate tensors "/conv1/Conv_output_0"; rename each to
    # the module that produced it (taken from the node name "/conv1/Conv").
    rename = {}
    for node in graph.node:
        if node.op_type not in ALLOWED_OPS:
            raise RuntimeError(f"unexpected op {node.op_type} in exported graph")
        module = node.name.strip("/").split("/")[0]
        assert len(node.output) == 1
        old = node.output[0]
        new = "logits" if old == "logits" else module
        if new in rename.values():
            raise RuntimeError(f"two nodes would produce tensor {new}")
        rename[old] = new
        node.name = new
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
        for i, name in enumerate(node.output):
            node.output[i] = rename.get(name, name)
        # Source locations are noise in a shipped file.
        node.doc_string = ""
    for vi in list(graph.value_info) + list(graph.output):
        vi.name = rename.get(vi.name, vi.name)

    graph.name = "fashion_cnn"
    model.producer_name = "lucid-vk tools/train_demo"
    model.doc_string = ("Small CNN trained on Fashion-MNIST for lucid-vk demos. "
                        "Input: grayscale pixels in [0,1], normalised with "
                        f"mean {MEAN}, std {STD}.")
    # Shape inference records every intermediate shape in the file, which
    # lets tools show layer shapes without running the graph.
    del graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return model


def np_conv2d(x, w, b, pads, strides, dilations, group):
    """Direct NCHW convolution via im2col; enough for this graph."""
    if group != 1 or any(d != 1 for d in dilations):
        raise NotImplementedError("grouped/dilated conv")
    n, c, h, wd = x.shape
    oc, ic, kh, kw = w.shape
    pt, pl, pb, pr = pads[0], pads[1], pads[2], pads[3]
    sh, sw = strides
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = (h + pt + pb - kh) // sh + 1
    ow = (wd + pl + pr - kw) // sw + 1
    # Patch matrix laid out [C*KH*KW, N*OH*OW] so the whole batch is one GEMM.
    xp = xp.transpose(1, 0, 2, 3)
    cols = np.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = xp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]
    out = w.reshape(oc, -1) @ cols.reshape(c * kh * kw, -1)
    out = out.reshape(oc, n, oh, ow).transpose(1, 0, 2, 3)
    if b is not None:
        out += b[None, :, None, None]
    return out


def np_maxpool(x, kernel, strides, pads):
    if any(pads):
        raise NotImplementedError("padded max pool")
    n, c, h, w = x.shape
    kh, kw = kernel
    sh, sw = strides
    oh = (h - kh) // sh + 1
    ow = (w - kw) // sw + 1
    out = np.full((n, c, oh, ow), -np.inf, dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            out = np.maximum(out, x[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw])
    return out


def run_onnx_numpy(model, x):
    """Evaluate an ONNX graph with numpy, from the file's own weights.

    Deliberately independent of torch so it checks the exported file (names,
    attributes, folded constants), not just the torch module.
    """
    env = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    env[model.graph.input[0].name] = x
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        ins = [env[name] if name else None for name in node.input]
        op = node.op_type
        if op == "Conv":
            w = ins[1]
            k = len(w.shape) - 2
            y = np_conv2d(ins[0], w, ins[2] if len(ins) > 2 else None,
                          attrs.get("pads", [0] * 2 * k),
                          attrs.get("strides", [1] * k),
                          attrs.get("dilations", [1] * k),
                          attrs.get("group", 1))
        elif op == "Relu":
            y = np.maximum(ins[0], 0)
        elif op == "MaxPool":
            k = attrs["kernel_shape"]
            y = np_maxpool(ins[0], k, attrs.get("strides", [1] * len(k)),
                           attrs.get("pads", [0] * 2 * len(k)))
        elif op == "GlobalAveragePool":
            y = ins[0].mean(axis=(2, 3), keepdims=True)
        elif op == "Flatten":
            axis = attrs.get("axis", 1)
            y = ins[0].reshape(int(np.prod(ins[0].shape[:axis])), -1)
        elif op == "Reshape":
            y = ins[0].reshape(ins[1])
        elif op == "Gemm":
            a, b = ins[0], ins[1]
            if attrs.get("transA", 0):
                a = a.T
            if attrs.get("transB", 0):
                b = b.T
            y = attrs.get("alpha", 1.0) * (a @ b)
            if len(ins) > 2:
                y = y + attrs.get("beta", 1.0) * ins[2]
        else:
            raise NotImplementedError(op)
        env[node.output[0]] = y.astype(np.float32)
    return env


# --------------------------------------------------------------------------
# Asset files
# --------------------------------------------------------------------------

def write_png_gray8(path, img):
    """Write an 8-bit grayscale PNG with zlib; no imaging library needed."""
    img = np.ascontiguousarray(img, dtype=np.uint8)
    h, w = img.shape

    def chunk(kind, payload):
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    # Filter type 0 (None) in front of each row.
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def read_png_gray8(path):
    """Minimal reader for the PNGs written above (round-trip check)."""
    with open(path, "rb") as f:
        data = f.read()
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        payload = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            w, h = struct.unpack(">II", payload[:8])
        elif kind == b"IDAT":
            idat += payload
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, w + 1)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].copy()


def slug(label):
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=20240)
    parser.add_argument("--out", default=OUT_DIR)
    args = parser.parse_args()

    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    np.random.seed(args.seed)
    os.makedirs(args.out, exist_ok=True)

    train_u8, y_train_np = load_split("train")
    test_u8, y_test_np = load_split("t10k")
    x_train, y_train = to_input(train_u8), torch.from_numpy(y_train_np)
    x_test, y_test = to_input(test_u8), torch.from_numpy(y_test_np)
    print(f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}", flush=True)

    trained, train_seconds = train(args, x_train, y_train, x_test, y_test)

    # Fold BN and check the folded network against the trained one.
    demo = fold_batchnorm(trained)
    logits_bn = predict(trained, x_test)
    logits_folded = predict(demo, x_test)
    fold_err = (logits_bn - logits_folded).abs().max().item()
    acc_bn = (logits_bn.argmax(1) == y_test).float().mean().item()
    acc_folded = (logits_folded.argmax(1) == y_test).float().mean().item()
    print(f"BN folding: max |logit diff| {fold_err:.2e}, "
          f"accuracy {acc_bn:.4f} -> {acc_folded:.4f}")
    if fold_err > 1e-3:
        sys.exit("BatchNorm folding changed the network")

    onnx_path = os.path.join(args.out, "fashion_cnn.onnx")
    model = export_onnx(demo, onnx_path)
    ops = sorted({n.op_type for n in model.graph.node})
    print("ONNX ops:", ", ".join(ops))
    print("ONNX tensors:", ", ".join(n.output[0] for n in model.graph.node))

    # Independent check of the exported file on the whole test set.
    onnx_logits = np.concatenate([
        run_onnx_numpy(model, x_test[i:i + 500].numpy())["logits"]
        for i in range(0, len(x_test), 500)])
    onnx_err = float(np.abs(onnx_logits - logits_folded.numpy()).max())
    onnx_acc = float((onnx_logits.argmax(1) == y_test_np).mean())
    print(f"numpy run of the ONNX file: max |logit diff| vs torch {onnx_err:.2e}, "
          f"test accuracy {onnx_acc:.4f}")
    if onnx_err > 1e-3:
        sys.exit("exported ONNX graph disagrees with the torch model")

    # Labels and preprocessing sidecar.
    with open(os.path.join(args.out, "fashion_cnn.labels.txt"), "w") as f:
        f.write("\n".join(LABELS) + "\n")
    sidecar = {"range": [0, 1], "mean": [MEAN], "std": [STD], "bgr": False,
               "labels": "fashion_cnn.labels.txt"}
    with open(os.path.join(args.out, "fashion_cnn.lucidvk.json"), "w") as f:
        json.dump(sidecar, f, indent=2)
        f.write("\n")

    # One test PNG per class: the first test image of each class.
    images = []
    for cls, label in enumerate(LABELS):
        index = int(np.nonzero(y_test_np == cls)[0][0])
        name = f"test_{index}_{slug(label)}.png"
        path = os.path.join(args.out, name)
        write_png_gray8(path, test_u8[index])
        assert (read_png_gray8(path) == test_u8[index]).all()
        images.append((name, index, cls))

    # Reference outputs computed from the PNG pixels, as an engine would.
    pngs = np.stack([read_png_gray8(os.path.join(args.out, n)) for n, _, _ in images])
    with torch.no_grad():
        acts = demo.forward_all(to_input(pngs))
    ref_images = []
    for k, (name, index, cls) in enumerate(images):
        logits = acts["logits"][k]
        ref_images.append({
            "file": name,
            "test_index": index,
            "label": cls,
            "label_name": LABELS[cls],
            "predicted": int(logits.argmax()),
            "logits": [float(v) for v in logits],
        })
    # Per-layer means of the first 4 channels for the first image: catches
    # layout or naming mistakes in intermediate layers, not only at the end.
    named = [n for n in demo.order if n != "flatten"]
    layer_means = {}
    for n in named:
        a = acts[n][0]
        if a.dim() == 3:  # C,H,W -> mean over space
            means = a[:4].mean(dim=(1, 2))
        else:             # logits: one value per channel already
            means = a[:4]
        layer_means[n] = {"shape": [1] + list(a.shape),
                          "channel_means": [float(v) for v in means]}
    # Cross-check those means with the numpy interpreter of the file.
    np_acts = run_onnx_numpy(model, to_input(pngs[:1]).numpy())
    for n in named:
        a = np_acts[n][0]
        m = a[:4].mean(axis=(1, 2)) if a.ndim == 3 else a.reshape(-1)[:4]
        assert np.allclose(m, layer_means[n]["channel_means"], atol=1e-4), n

    reference = {
        "model": "fashion_cnn.onnx",
        "input": {"name": "input", "shape": [1, 1, 28, 28],
                  "preprocessing": "x = pixel / 255; x = (x - mean) / std",
                  "mean": MEAN, "std": STD},
        "test_accuracy": onnx_acc,
        "test_images": len(y_test_np),
        "training": {"epochs": args.epochs, "batch": args.batch,
                     "max_lr": args.lr, "seed": args.seed,
                     "torch": torch.__version__},
        "images": ref_images,
        "layer_means": {"file": images[0][0], "layers": layer_means},
    }
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(reference, f, indent=2)
        f.write("\n")

    print(f"test accuracy of the exported network: {onnx_acc:.4f}")
    print(f"training time: {train_seconds:.0f} s")
    for name in sorted(os.listdir(args.out)):
        print(f"  {name}: {os.path.getsize(os.path.join(args.out, name))} bytes")


if __name__ == "__main__":
    main()
