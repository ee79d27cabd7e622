#!/usr/bin/python3
"""The render benchmark of `make bench`: Lucid's feature-visualisation recipe in
PyTorch, and the driver that runs it next to lucid-vk's.

    torch_render.py worker MODEL.onnx --layer L --channels C0,C1,... [--size S]
                           [--range LO,HI] [--mean M0,M1,M2] [--std S0,S1,S2] [--bgr]
                           [--device DEV]
        The recipe of src/optvis/render.c in PyTorch on DEV (cpu, the default,
        or cuda), on the network rebuilt from MODEL by
        bench/torch_forward.py's converter and cut after L.
        Image i maximises the mean of channel C_i of L. Answers the command
        protocol of bench/bench_render.c (render STEPS SEED, rss, quit), one
        JSON line per command.

    torch_render.py compare --lvk BENCH_RENDER --net "name=N;model=M;layer=L[;range=LO,HI]
                            [;mean=..][;std=..]" ... [--batch B] ... [--steps N] [--reps R]
                            [--torch-device DEV]
        For each network and batch size (channels 0..B-1): starts a lucid-vk
        worker (bench_render) and a PyTorch worker, checks that both start
        from the same objective value (same images, same transforms), runs
        whole renders alternately, R of each, and prints Markdown tables:
        time per step, GFLOP/s, the ratio, peak memory, the objective values
        reached, and lucid-vk's time by phase. Progress goes to stderr.

Same recipe, step for step (src/optvis/*.c): spectral image (irfft2 of
the parameters times Lucid's 1/f scale, / 4), decorrelated colour and
sigmoid, Lucid's standard transforms as one bilinear affine resampling per
image with grey (0.5) outside, the model's preprocessing, Adam at 0.05
ascending the objective, and for the first 16 steps Lucid's redirected ReLU
gradient. Even the random numbers are the same: the initial parameters and
the transform draws come from the same splitmix64 streams, so at step 1
both sides compute the same objective up to float rounding.

Only Debian's python3-torch, python3-numpy and python3-onnx are needed (and
a CUDA build of PyTorch for --torch-device cuda).
"""
import argparse
import json
import math
import os
import sys
import time

# As in torch_forward.py (which sets it too): libgomp's default spin-waiting
# makes PyTorch many times slower when other processes want the CPU.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from torch_forward import (OnnxNet, Worker, fmt_ms, log, peak_memory, stats,  # noqa: E402
                           sync, torch_device)

# ---- the random streams of src/optvis (splitmix64) --------------------------------

GAMMA = 0x9E3779B97F4A7C15
MASK = (1 << 64) - 1


def splitmix64(state):
    """The output for a state already advanced by GAMMA (vectorised over a
    uint64 array, or one Python int)."""
    if isinstance(state, np.ndarray):
        z = state
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def spectral_init(n, seed, sd=0.01):
    """lvk_spectral_init_params: N(0, sd^2) by Box-Muller on pairs of
    uniforms in (0, 1], re from the cosine, im from the sine."""
    k = np.arange(1, n + 1, dtype=np.uint64)  # draw k sees state seed + k * GAMMA
    with np.errstate(over="ignore"):
        z = splitmix64(np.uint64(seed & MASK) + k * np.uint64(GAMMA))
    u = ((z >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0 ** -53
    r = np.sqrt(-2.0 * np.log(u[0::2]))
    out = np.empty(n, dtype=np.float32)
    out[0::2] = sd * r * np.cos(2.0 * np.pi * u[1::2])
    out[1::2] = sd * r * np.sin(2.0 * np.pi * u[1::2])
    return out


class Rng:
    """lvk_rng: splitmix64 with lvk_rng_below's multiply-shift."""

    def __init__(self, seed):
        self.state = seed & MASK

    def below(self, n):
        self.state = (self.state + GAMMA) & MASK
        return ((splitmix64(self.state) >> 32) * n) >> 32

    def choose(self, n):  # a draw only when there is a choice
        return self.below(n) if n > 1 else 0


# ---- Lucid's standard transforms (src/optvis/transforms.c) -------------------------


def transform_cfg(size):
    """lvk_transform_cfg_standard, then lvk_transform_cfg_scale_pixels."""
    f = min(1.0, size / 128.0)

    def scaled(amount):  # lround: halves away from zero
        return max(1, int(math.floor(amount * f + 0.5))) if amount > 0 else 0

    return {"pad": scaled(12), "jitter1": scaled(8), "jitter2": scaled(4),
            "scales": [1.0 + (i - 5) / 50.0 for i in range(11)],
            "angles": list(range(-10, 11)) + [0] * 5}


def transform_draw(cfg, rng):
    """lvk_transform_draw: o1x, o1y, scale, angle, o2x, o2y, in that order."""
    o1x, o1y = rng.choose(cfg["jitter1"] + 1), rng.choose(cfg["jitter1"] + 1)
    scale = float(np.float32(cfg["scales"][rng.choose(len(cfg["scales"]))]))
    angle = cfg["angles"][rng.choose(len(cfg["angles"]))]
    o2x, o2y = rng.choose(cfg["jitter2"] + 1), rng.choose(cfg["jitter2"] + 1)
    return o1x, o1y, scale, angle, o2x, o2y


def transform_compose(cfg, draw, in_h, in_w, out_h, out_w):
    """lvk_transform_compose: the map (a, b, c, e, tx, ty), in double, with
    input index s = [a b; c e] (p + 0.5) + t - 0.5 for output pixel p."""
    o1x, o1y, scale, angle, o2x, o2y = draw
    lw = in_w + 2.0 * cfg["pad"] - cfg["jitter1"] - cfg["jitter2"]
    lh = in_h + 2.0 * cfg["pad"] - cfg["jitter1"] - cfg["jitter2"]
    dx, dy = lw / out_w, lh / out_h
    th = angle * (math.pi / 180.0)
    cs, sn, inv_s = math.cos(th), math.sin(th), 1.0 / scale
    a, b = cs * dx * inv_s, -sn * dy * inv_s
    c, e = sn * dx * inv_s, cs * dy * inv_s
    j1x, j1y = o1x - cfg["jitter1"] / 2.0, o1y - cfg["jitter1"] / 2.0
    j2x, j2y = o2x - cfg["jitter2"] / 2.0, o2y - cfg["jitter2"] / 2.0
    tx = in_w / 2.0 + j1x + (cs * j2x - sn * j2y) * inv_s - (a * out_w / 2.0 + b * out_h / 2.0)
    ty = in_h / 2.0 + j1y + (sn * j2x + cs * j2y) * inv_s - (c * out_w / 2.0 + e * out_h / 2.0)
    return [float(np.float32(v)) for v in (a, b, c, e, tx, ty)]  # the device holds floats


def affine_theta(m, in_h, in_w, out_h, out_w):
    """The map as F.affine_grid's theta (align_corners=False: output pixel
    x sits at (2x + 1) / out_w - 1, input index s at (2s + 1) / in_w - 1)."""
    a, b, c, e, tx, ty = m
    return [[a * out_w / in_w, b * out_h / in_w, (a * out_w + b * out_h + 2.0 * tx) / in_w - 1.0],
            [c * out_w / in_h, e * out_h / in_h, (c * out_w + e * out_h + 2.0 * ty) / in_h - 1.0]]


# ---- spectral image and colour (src/optvis/spectral.c, image_ops.c) ----------------


def spectral_scale(h, w, decay_power=1.0):
    """Lucid's fft_image scale sqrt(h w) / max(f, 1 / max(h, w))^decay."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fy * fy + fx * fx)
    return (np.sqrt(h * w) / np.maximum(f, 1.0 / max(h, w)) ** decay_power).astype(np.float32)


def colour_matrix():
    """lvk_colour_matrix: Lucid's color_correlation_svd_sqrt over the largest
    column norm; rgb = M . raw per pixel."""
    m = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
    return (m / np.linalg.norm(m, axis=0).max()).astype(np.float32)


# ---- the network -----------------------------------------------------------------


class _Redirected(torch.autograd.Function):
    """Lucid's redirected ReLU gradient (shaders/common/relu_mode.glsl): a
    unit held at a bound of fn still passes gradients that would move it
    back into range. Whether x was held below or above shows in y vs x."""

    @staticmethod
    def forward(ctx, x, fn):
        y = fn(x)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        on = (y == x) | ((y > x) & (g > 0)) | ((y < x) & (g < 0))
        return g * on, None


class RenderNet:
    """OnnxNet cut after `target`, with Relu and Clip(0, ..) switchable to
    the redirected gradient, as lucid-vk's ReLU gradient mode."""

    def __init__(self, path, target, device):
        self.net = OnnxNet(path).to(device)
        ops = [n.op_type for n in onnx.load(path).graph.node]  # one step per node
        self.redirect = False
        for i, (fn, ins, out) in enumerate(self.net.steps):
            # A lower bound of exactly 0 makes it a ReLU (lucid-vk's rule).
            if ops[i] in ("Relu", "Clip") and float(fn(torch.tensor([-math.inf]))) == 0.0:
                self.net.steps[i] = (self._switchable(fn), ins, out)
        needed, keep = {target}, []
        for step in reversed(self.net.steps):
            if step[2] in needed:
                keep.append(step)
                needed.update(i for i in step[1] if i)
        if target not in {s[2] for s in keep}:
            raise ValueError("%s: no tensor '%s'" % (path, target))
        self.net.steps = keep[::-1]
        self.net.outputs = [target]
        self.target = target

    def _switchable(self, fn):
        return lambda x: _Redirected.apply(x, fn) if self.redirect else fn(x)

    def __call__(self, x):
        return self.net(x)[self.target]


def render(net, dev, channels, size, pre, steps, seed, redirect_steps=16, lr=0.05):
    """One render on `dev`; returns what bench_render's `render` command does."""
    t_setup = time.perf_counter()
    B, C, H, W = len(channels), 3, size, size
    Hn, Wn = H, W  # fully convolutional up to the layer: the network runs at the image size
    param = torch.from_numpy(spectral_init(B * C * H * (W // 2 + 1) * 2, seed)
                             .reshape(B, C, H, W // 2 + 1, 2)).to(dev).requires_grad_(True)
    scale = torch.from_numpy(spectral_scale(H, W)).to(dev)
    colour = torch.from_numpy(colour_matrix()).to(dev)
    lo, hi = pre["range"]
    mean = torch.tensor(pre["mean"], dtype=torch.float32, device=dev).view(1, C, 1, 1)
    std = torch.tensor(pre["std"], dtype=torch.float32, device=dev).view(1, C, 1, 1)
    cfg, rng = transform_cfg(size), Rng(seed ^ 0x5EED)
    for _ in range(B):  # lvk_transform_create draws a first set of maps that no step uses
        transform_draw(cfg, rng)
    opt = torch.optim.Adam([param], lr=lr, betas=(0.9, 0.999), eps=1e-8, maximize=True)
    images, chans = torch.arange(B, device=dev), torch.tensor(channels, device=dev)
    values, ends, cpu = [], [], []
    sync(dev)
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        net.redirect = step <= redirect_steps
        theta = torch.tensor([affine_theta(transform_compose(cfg, transform_draw(cfg, rng), H, W,
                                                             Hn, Wn), H, W, Hn, Wn)
                              for _ in range(B)], dtype=torch.float32, device=dev)
        opt.zero_grad()
        raw = torch.fft.irfft2(torch.view_as_complex(param) * scale, s=(H, W)) / 4
        img = torch.sigmoid(torch.einsum("ij,bjhw->bihw", colour, raw))
        grid = F.affine_grid(theta, (B, C, Hn, Wn), align_corners=False)
        # Bilinear taps outside the image read 0.5: the weights sum to 1.
        t_img = F.grid_sample(img - 0.5, grid, mode="bilinear", padding_mode="zeros",
                              align_corners=False) + 0.5
        x = (lo + t_img * (hi - lo) - mean) / std
        if pre["bgr"]:
            x = x.flip(1)
        act = net(x)
        per_image = act[images, chans].reshape(B, -1).mean(1)
        per_image.sum().backward()
        opt.step()
        values.append(per_image.detach().double())
        # CUDA queues the steps; the time per step spans steps 2..N, so only
        # the first and the last wait for the device.
        if step in (1, steps):
            sync(dev)
        ends.append(time.perf_counter())
        cpu.append(time.process_time())  # every thread of the process
    loop = time.perf_counter() - t0
    values = torch.stack(values).cpu().numpy()  # one copy from the device, after the timing
    return {"steps": steps,
            "step_ms": (ends[-1] - ends[0]) * 1e3 / (steps - 1) if steps > 1 else float("nan"),
            "step_cpu_ms": (cpu[-1] - cpu[0]) * 1e3 / (steps - 1) if steps > 1 else float("nan"),
            "setup_s": t0 - t_setup, "loop_s": loop, "net_size": [Hn, Wn],
            "value_start": values[0].tolist(), "value_end": values[-1].tolist(),
            "curve": [float(v.mean()) for v in values]}


# ---- the PyTorch worker -------------------------------------------------------------


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def floats(text, n):
    v = [float(s) for s in text.split(",")]
    if len(v) == 1:
        v = v * n
    if len(v) != n:
        raise argparse.ArgumentTypeError("expected 1 or %d numbers, got %r" % (n, text))
    return v


def worker(args):
    dev, info = torch_device(args.device)
    net = RenderNet(args.model, args.layer, dev)
    channels = [int(c) for c in args.channels.split(",")]
    pre = {"range": floats(args.range, 2), "mean": floats(args.mean, 3),
           "std": floats(args.std, 3), "bgr": args.bgr}
    reply(info)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        try:
            if cmd[0] == "render" and len(cmd) == 3:
                reply(render(net, dev, channels, args.size, pre, int(cmd[1]), int(cmd[2])))
            elif cmd[0] == "rss":
                reply(peak_memory(dev))
            elif cmd[0] == "quit":
                break
            else:
                reply({"error": "unknown command: " + line.strip()})
        except Exception as e:  # report and keep serving, like bench_render
            reply({"error": "%s: %s" % (type(e).__name__, e)})


# ---- the driver ----------------------------------------------------------------------


def parse_net(text):
    """"name=N;model=M;layer=L[;range=LO,HI][;mean=..][;std=..]"."""
    spec = dict(kv.split("=", 1) for kv in text.split(";") if kv)
    for key in ("name", "model", "layer"):
        if key not in spec:
            raise argparse.ArgumentTypeError("--net %r: no %s=" % (text, key))
    return spec


def rel_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def measure(net, batch, args):
    """One network at one batch size: the two engines' renders alternated."""
    channels = ",".join(str(c) for c in range(batch))
    pre_opts = []
    for key in ("range", "mean", "std"):
        if key in net:
            pre_opts += ["--" + key, net[key]]
    lvk = pt = None
    try:
        lvk = Worker("lucid-vk", [args.lvk, net["model"], "--layer", net["layer"], "--channels",
                                  channels, "--size", str(args.size)] + pre_opts)
        info = lvk.info  # the preprocessing lucid-vk resolved (sidecar and options)
        pt = Worker("pytorch", [sys.executable, os.path.abspath(__file__), "worker", net["model"],
                                "--layer", net["layer"], "--channels", channels, "--size",
                                str(args.size),  # "=": the values may start with '-'
                                "--range=%.9g,%.9g" % tuple(info["range"]),
                                "--mean=" + ",".join("%.9g" % v for v in info["mean"]),
                                "--std=" + ",".join("%.9g" % v for v in info["std"])]
                    + (["--bgr"] if info["bgr"] else []) + ["--device", args.torch_device])
        # Warm-up (lucid-vk compiles its pipelines; PyTorch's allocator and
        # oneDNN primitives), then the renders, alternating which goes first.
        first = {}
        for w in (lvk, pt):
            first[w.name] = w.ask("render %d %d" % (min(args.steps, 2), args.seed))
        runs = {"lucid-vk": [], "pytorch": []}
        for rep in range(args.reps):
            for w in ((lvk, pt) if rep % 2 == 0 else (pt, lvk)):
                t0 = time.time()
                runs[w.name].append(w.ask("render %d %d" % (args.steps, args.seed)))
                log("%s batch %d: %s render %d/%d: %.1f ms/step (%.0f s)" % (
                    net["name"], batch, w.name, rep + 1, args.reps, runs[w.name][-1]["step_ms"],
                    time.time() - t0))
        # One step's timestamps say little on a shared machine: several
        # profiled renders, the median of each phase.
        profile = [lvk.ask("profile %d %d" % (min(args.steps, args.profile_steps), args.seed))
                   for _ in range(args.profile_reps)]
        mem = {w.name: w.ask("rss") for w in (lvk, pt)}
        return {"net": net["name"], "layer": net["layer"], "batch": batch, "info": info,
                "torch": pt.info, "first": first, "runs": runs, "profile": profile, "mem": mem}
    finally:
        for w in (lvk, pt):
            if w:
                w.close()


def tail_mean(run):
    """Mean objective over the last quarter of the steps (at most 16; steps
    lucid-vk did not read back are NaN)."""
    curve = np.array([np.nan if v is None else v for v in run["curve"]], np.float64)
    return float(np.nanmean(curve[-max(1, min(16, len(curve) // 4)):]))


def check(r, args):
    """Whether both sides optimised the same thing. The objective at step 1
    must agree (same images, same transforms, same network). After that the
    trajectories part: Adam's first steps move every parameter by about the
    learning rate whatever the size of its gradient, so float rounding in
    small gradients changes the images from step 2 on. So over the last
    steps the objectives need only be alike: within 25% of each other, and
    moved from step 1 the same way, the smaller move at least a quarter of
    the larger (measured at 64 steps: up to 10% apart, moves up to 2x
    apart). Returns a reason, or None."""
    lv, pt = r["runs"]["lucid-vk"][0], r["runs"]["pytorch"][0]
    r["start_diff"] = rel_diff(pt["value_start"], lv["value_start"])
    if r["start_diff"] > args.tolerance:
        return "objective at step 1 differs by %.1e (relative)" % r["start_diff"]
    a, b = tail_mean(lv), tail_mean(pt)
    start = np.mean(lv["value_start"])
    da, db = a - start, b - start
    alike = (abs(a - b) <= 0.25 * max(abs(a), abs(b)) and da * db > 0
             and min(abs(da), abs(db)) >= 0.25 * max(abs(da), abs(db)))
    if not alike:
        return ("objective went from %.3g to %.3g (lucid-vk) and %.3g (PyTorch): not alike"
                % (start, a, b))
    return None


# Dispatch labels of lucid-vk's step (network ops record their op type or
# their kernel's name) by phase; anything else is shown under its label.
PHASES = [
    ("Conv", ("conv2d_fwd", "conv2d_bwd_data", "conv2d_wino_in", "conv2d_wino_out")),
    ("Relu / Clip", ("Relu", "Clip")),
    ("MaxPool", ("maxpool_fwd", "maxpool_bwd")),
    ("Concat (view_copy)", ("view_copy", "view_copy_bwd")),
    ("Add", ("Add",)),
    ("zeroing gradients (fill)", ("fill",)),
    ("objective", ("objective_seed", "objective_reduce")),
    ("FFT (VkFFT C2R, R2C)", ("fft_c2r", "fft_r2c")),
    ("spectral scaling", ("spectral_scale_fwd", "spectral_scale_bwd")),
    ("colour (decorrelate, sigmoid)", ("colour_fwd", "colour_bwd")),
    ("transforms (affine resampling)", ("affine_fwd", "affine_bwd")),
    ("preprocessing", ("prep_fwd", "prep_bwd")),
    ("optimizer (Adam)", ("adam",)),
]


def typical_profile(r):
    """Of the profiled renders, the one whose step took the median wall
    time: its phases add up to its wall time, which medians taken phase by
    phase would not."""
    runs = sorted(r["profile"], key=lambda p: p["last_step_ms"])
    return runs[len(runs) // 2]


def phase_rows(results):
    """Per phase, per result: (ms, dispatches) in the typical profiled step."""
    named = {label: name for name, labels in PHASES for label in labels}
    order = [name for name, _ in PHASES]
    rows = {}
    for k, r in enumerate(results):
        for p in typical_profile(r)["phases"]:
            name = named.get(p["label"], p["label"])
            if name not in order:
                order.append(name)
            cell = rows.setdefault(name, [(0.0, 0)] * len(results))
            cell[k] = (cell[k][0] + p["ms"], cell[k][1] + p["dispatches"])
    return [(name, rows[name]) for name in order if name in rows]


def cpu_table(results):
    cores = os.cpu_count()
    out = ["", "### CPU time", "",
           "CPU time of all threads of each engine's process over the same steps, per step, "
           "divided by the %d cores: an estimate of the time per step on an otherwise idle "
           "machine, steadier than wall time when other processes want the CPU." % cores, "",
           "| network | batch | lucid-vk CPU ms / step / cores | PyTorch CPU ms / step / cores "
           "| lucid-vk / PyTorch |", "|---|---:|---:|---:|---:|"]
    for r in results:
        lv = [x["step_cpu_ms"] / cores for x in r["runs"]["lucid-vk"]]
        pt = [x["step_cpu_ms"] / cores for x in r["runs"]["pytorch"]]
        ratio = "%.2f" % (stats(lv)[0] / stats(pt)[0]) if not r["problem"] else "– (see below)"
        out.append("| %s | %d | %s | %s | %s |" % (r["net"], r["batch"], fmt_ms(lv), fmt_ms(pt),
                                                   ratio))
    return out


def tables(results, args):
    mib = 1 << 20
    r0 = results[0]
    cuda = r0["torch"]["device_type"] == "cuda"
    out = ["Lucid's recipe on both engines: %d steps at %d px, spectral image with decorrelated "
           "colour, standard transforms, Adam at 0.05, redirected ReLU gradient for the first 16 "
           "steps; image i maximises the mean of channel i of the layer (batch 8: channels 0-7); "
           "seed %d. lucid-vk on %s (%s); PyTorch %s %s. Time per step: steps 2..%d of a render, "
           "median over %d renders per engine (fastest and slowest in parentheses), the engines "
           "alternating."
           % (args.steps, args.size, args.seed, r0["info"]["device"], r0["info"]["driver"],
              r0["torch"]["torch"], r0["torch"]["where"], args.steps, args.reps), "",
           "| network, layer | batch | steps | GFLOP / step | lucid-vk ms / step | GFLOP/s "
           "| PyTorch ms / step | GFLOP/s | lucid-vk / PyTorch | lucid-vk s / render "
           "| PyTorch s / render | lucid-vk device MiB | lucid-vk peak RSS MiB "
           "| PyTorch peak RSS MiB |" + (" PyTorch device MiB |" if cuda else ""),
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
           + ("---:|" if cuda else "")]
    for r in results:
        gflop = (r["info"]["flops_fwd"] + r["info"]["flops_bwd"]) / 1e9
        lv = [x["step_ms"] for x in r["runs"]["lucid-vk"]]
        pt = [x["step_ms"] for x in r["runs"]["pytorch"]]
        lvm, ptm = stats(lv)[0], stats(pt)[0]
        ratio = "%.2f" % (lvm / ptm) if not r["problem"] else "– (see below)"
        mem = r["mem"]
        out.append("| %s, `%s` | %d | %d | %.2f | %s | %.1f | %s | %.1f | %s | %.1f | %.1f "
                   "| %.0f | %.0f | %.0f |%s" % (
                       r["net"], r["layer"], r["batch"], args.steps, gflop, fmt_ms(lv),
                       gflop / (lvm / 1e3), fmt_ms(pt), gflop / (ptm / 1e3), ratio,
                       stats([x["loop_s"] for x in r["runs"]["lucid-vk"]])[0],
                       stats([x["loop_s"] for x in r["runs"]["pytorch"]])[0],
                       max(x["device_bytes"] for x in r["runs"]["lucid-vk"]) / mib,
                       mem["lucid-vk"]["peak_rss_bytes"] / mib,
                       mem["pytorch"]["peak_rss_bytes"] / mib,
                       " %.0f |" % (mem["pytorch"]["peak_device_bytes"] / mib) if cuda else ""))
    if not cuda:  # with PyTorch on a GPU, its CPU time says nothing of its speed
        out += cpu_table(results)
    out += ["", "### Same work: objective values, setup", "",
            "Objective: mean over the batch of each image's channel mean, in the first render "
            "of each engine. At step 1 both must agree; \"over the last steps\" averages the "
            "last quarter of the steps (at most 16), where both must be alike (bench/README.md). "
            "Otherwise no ratio is given.", "",
            "| network | batch | objective at step 1, lucid-vk / PyTorch (rel. diff) "
            "| at step %d, lucid-vk / PyTorch | over the last steps, lucid-vk / PyTorch "
            "| lucid-vk first setup s | PyTorch first setup s | check |" % args.steps,
            "|---|---:|---|---|---|---:|---:|---|"]
    for r in results:
        lv, pt = r["runs"]["lucid-vk"][0], r["runs"]["pytorch"][0]
        tail = (tail_mean(lv), tail_mean(pt))
        out.append("| %s | %d | %.4g / %.4g (%.1e) | %.4g / %.4g | %.4g / %.4g | %.1f | %.1f "
                   "| %s |" % (
            r["net"], r["batch"], np.mean(lv["value_start"]), np.mean(pt["value_start"]),
            r["start_diff"], np.mean(lv["value_end"]), np.mean(pt["value_end"]), tail[0], tail[1],
            r["first"]["lucid-vk"]["setup_s"], r["first"]["pytorch"]["setup_s"],
            r["problem"] or "ok"))
    out += ["", "### lucid-vk time by phase", "",
            "The last step of a %d-step render, with a timestamp after every dispatch: of %d "
            "such renders, the one whose step took the median wall time. Each phase's "
            "milliseconds, in parentheses its share of the step's wall time and its "
            "dispatches. Overhead: the step's wall time minus the "
            "sum of its dispatches (submit and wait, uploading the step's transforms and "
            "Adam's step, reading the objective back, gaps between dispatches)."
            % (min(args.steps, args.profile_steps), args.profile_reps), "",
            "| phase | " + " | ".join("%s, batch %d" % (r["net"], r["batch"]) for r in results)
            + " |", "|---|" + "---:|" * len(results)]
    walls = [(p["last_step_ms"], p["last_step_ms"] - p["device_ms"])
             for p in map(typical_profile, results)]
    for name, cells in phase_rows(results):
        out.append("| %s | %s |" % (name, " | ".join(
            "%.1f (%.0f%%, %d)" % (ms, 100 * ms / wall, n) if n else "–"
            for (ms, n), (wall, _) in zip(cells, walls))))
    out.append("| overhead | %s |" % " | ".join(
        "%.1f (%.0f%%)" % (over, 100 * over / wall) for wall, over in walls))
    out.append("| **step wall time** | %s |" % " | ".join("%.1f" % wall for wall, _ in walls))
    return "\n".join(out)


def compare(args):
    results = []
    t0 = time.time()
    for net in args.net:
        if not os.path.exists(net["model"]):
            log("%s: %s not found, skipped" % (net["name"], net["model"]))
            continue
        for batch in args.batch:
            r = measure(net, batch, args)
            r["problem"] = check(r, args)
            if r["problem"]:
                log("%s batch %d: %s: no ratio reported" % (net["name"], batch, r["problem"]))
            results.append(r)
    log("render part done in %.0f s" % (time.time() - t0))
    if not results:
        print("(no network found)")
        return
    print(tables(results, args))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker")
    w.add_argument("model")
    w.add_argument("--layer", required=True)
    w.add_argument("--channels", required=True, help="C0,C1,...: channel of each image")
    w.add_argument("--size", type=int, default=128)
    w.add_argument("--range", default="0,1")
    w.add_argument("--mean", default="0")
    w.add_argument("--std", default="1")
    w.add_argument("--bgr", action="store_true")
    w.add_argument("--device", default="cpu", help="PyTorch's device: cpu (default) or cuda")
    c = sub.add_parser("compare")
    c.add_argument("--lvk", required=True, help="the bench_render executable")
    c.add_argument("--net", action="append", required=True, type=parse_net,
                   help="name=N;model=M.onnx;layer=L[;range=LO,HI][;mean=..][;std=..] "
                        "(missing models are skipped)")
    c.add_argument("--batch", type=int, action="append", help="batch sizes (default 1 and 8)")
    c.add_argument("--size", type=int, default=128)
    c.add_argument("--steps", type=int, default=512)
    c.add_argument("--reps", type=int, default=3, help="renders per engine and workload")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--profile-steps", type=int, default=4,
                   help="steps of each profiled render (at most --steps)")
    c.add_argument("--profile-reps", type=int, default=3, help="profiled renders per workload")
    c.add_argument("--torch-device", default="cpu",
                   help="PyTorch's device: cpu (default; the same CPU as lavapipe) or cuda")
    c.add_argument("--tolerance", type=float, default=1e-3,
                   help="largest accepted relative difference of the step-1 objectives")
    args = ap.parse_args()
    if args.cmd == "worker":
        worker(args)
    else:
        args.batch = args.batch or [1, 8]
        if args.steps < 2 or args.reps < 1:
            ap.error("--steps must be at least 2 and --reps at least 1")
        compare(args)


if __name__ == "__main__":
    main()
