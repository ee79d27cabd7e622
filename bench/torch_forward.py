#!/usr/bin/python3
"""The PyTorch side of `make bench`, and the driver that runs it next to lucid-vk.

    torch_forward.py worker MODEL.onnx [--target NAME] [--device DEV] < commands
        Rebuilds MODEL in PyTorch (a small ONNX -> torch converter for the ops
        of the benchmark networks) on DEV (cpu, the default, or cuda) and
        answers the command protocol of bench/bench_forward.c (batch B,
        input, fwd K, fwdbwd K, save, savegrad, rss, quit), one JSON line per
        command.

    torch_forward.py compare --lvk BENCH_FORWARD --net NAME=MODEL.onnx[:LO,HI] ...
                             [--variant LABEL:VAR=VALUE] ... [--torch-device DEV]
        For each network: starts a lucid-vk worker (bench_forward), a PyTorch
        worker and a lucid-vk worker per variant (an environment setting);
        for each batch size, feeds all the same uniform random input in
        [LO, HI], checks that their logits and input gradients agree, then
        alternates timed runs between them (so that all see the same machine
        load) and prints Markdown tables: times, FLOPs, GFLOP/s, time ratios,
        peak memory and a per-op breakdown of lucid-vk's time. Progress goes
        to stderr.

Only Debian's python3-torch, python3-numpy and python3-onnx are needed (and
a CUDA build of PyTorch for --torch-device cuda).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

# libgomp's default spin-waiting makes PyTorch 10-100x slower whenever the
# machine has more runnable threads than cores (measured on the shared 2-core
# machine); lavapipe's threads sleep when idle. libgomp reads this when torch
# loads it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnx.helper  # noqa: E402
import onnx.numpy_helper  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# ---- ONNX -> torch ------------------------------------------------------------


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pairs(pads):
    """ONNX pads [t, l, b, r] as F.pad's (l, r, t, b)."""
    t, l, b, r = pads
    return (l, r, t, b)


def _conv(a, consts, node, opset):
    kshape = consts[node.input[1]].shape[2:]
    if len(kshape) != 2 or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID"):
        raise NotImplementedError("Conv: only 2-D with explicit pads")
    pads = list(a.get("pads", [0, 0, 0, 0]))
    stride = tuple(a.get("strides", [1, 1]))
    dil = tuple(a.get("dilations", [1, 1]))
    groups = a.get("group", 1)
    if pads[:2] == pads[2:]:
        padding, extra = tuple(pads[:2]), None
    else:  # asymmetric (TensorFlow SAME): pad explicitly, as torch's 'same' does
        padding, extra = (0, 0), _pairs(pads)

    def conv(x, w, bias=None):
        if extra:
            x = F.pad(x, extra)
        return F.conv2d(x, w, bias, stride, padding, dil, groups)

    return conv


def _maxpool(a, consts, node, opset):
    k = tuple(a["kernel_shape"])
    if len(k) != 2 or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID"):
        raise NotImplementedError("MaxPool: only 2-D with explicit pads")
    pads = list(a.get("pads", [0, 0, 0, 0]))
    stride = tuple(a.get("strides", k))
    dil = tuple(a.get("dilations", [1, 1]))
    ceil = bool(a.get("ceil_mode", 0))
    if pads[:2] == pads[2:]:
        padding, extra = tuple(pads[:2]), None
    else:
        padding, extra = (0, 0), _pairs(pads)

    def maxpool(x):
        if extra:
            x = F.pad(x, extra, value=float("-inf"))
        return F.max_pool2d(x, k, stride, padding, dil, ceil_mode=ceil)

    return maxpool


def _clip(a, consts, node, opset):
    if opset < 11:
        lo, hi = a.get("min", None), a.get("max", None)
    else:
        def const(i):
            if len(node.input) <= i or not node.input[i]:
                return None
            if node.input[i] not in consts:
                raise NotImplementedError("Clip: min/max must be initializers")
            return float(consts[node.input[i]].reshape(()))
        lo, hi = const(1), const(2)
    return lambda x: torch.clamp(x, lo, hi)


def _gemm(a, consts, node, opset):
    alpha, beta = a.get("alpha", 1.0), a.get("beta", 1.0)
    ta, tb = a.get("transA", 0), a.get("transB", 0)
    if alpha == 1.0 and beta == 1.0 and not ta and tb:
        return lambda x, w, c=None: F.linear(x, w, c)

    def gemm(x, w, c=None):
        y = alpha * ((x.t() if ta else x) @ (w.t() if tb else w))
        return y if c is None else y + beta * c

    return gemm


def _softmax(a, consts, node, opset):
    if opset >= 13:
        axis = a.get("axis", -1)
        return lambda x: torch.softmax(x, axis)
    axis = a.get("axis", 1)  # before 13: softmax of the 2-D coercion at axis

    def softmax(x):
        return torch.softmax(x.reshape(int(np.prod(x.shape[:axis])), -1), 1).reshape(x.shape)

    return softmax


def _flatten(a, consts, node, opset):
    axis = a.get("axis", 1)
    return lambda x: x.reshape(int(np.prod(x.shape[:axis])), -1)


def _concat(a, consts, node, opset):
    axis = a["axis"]
    return lambda *xs: torch.cat(xs, axis)


# op type -> f(attributes, initializers as numpy arrays, node, opset) that
# returns the node as a function of its inputs (those not bound at conversion).
CONVERTERS = {
    "Conv": _conv,
    "MaxPool": _maxpool,
    "Clip": _clip,
    "Gemm": _gemm,
    "Softmax": _softmax,
    "Flatten": _flatten,
    "Concat": _concat,
    "Relu": lambda *_: F.relu,
    "Add": lambda *_: torch.add,
    "GlobalAveragePool": lambda *_: lambda x: F.adaptive_avg_pool2d(x, 1),
}


class OnnxNet:
    """An ONNX graph run op by op with torch.nn.functional; weights are
    frozen (no requires_grad), so autograd differentiates w.r.t. the input
    only, as lucid-vk does."""

    def __init__(self, path):
        model = onnx.load(path)
        g = model.graph
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        arrays = {t.name: onnx.numpy_helper.to_array(t) for t in g.initializer}
        self.consts = {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}
        self.input = next(i.name for i in g.input if i.name not in arrays)
        self.outputs = [o.name for o in g.output]
        self.steps = []
        for node in g.node:
            conv = CONVERTERS.get(node.op_type)
            if conv is None:
                raise NotImplementedError("%s: op %s is not supported by the converter"
                                          % (path, node.op_type))
            fn = conv(_attrs(node), arrays, node, opset)
            # Clip's min/max were bound at conversion; other inputs are passed.
            ins = list(node.input[:1]) if node.op_type == "Clip" else list(node.input)
            self.steps.append((fn, ins, node.output[0]))

    def to(self, device):
        self.consts = {k: v.to(device) for k, v in self.consts.items()}
        return self

    def __call__(self, x):
        env = dict(self.consts)
        env[self.input] = x
        for fn, ins, out in self.steps:
            env[out] = fn(*[env[i] for i in ins if i])
        return {name: env[name] for name in self.outputs}


# ---- the PyTorch worker ---------------------------------------------------------


def torch_device(name):
    """Sets PyTorch up on `name` (cpu, cuda, cuda:N) as lucid-vk's
    counterpart; returns the device and what the tables say of it. On the
    CPU: a thread per core. On CUDA: float32 throughout, as lucid-vk computes
    (cuDNN's default TF32 convolutions on Ampere and later round the inputs
    to 10-bit mantissas), and cuDNN's autotuner on, the fastest PyTorch
    offers without changing the arithmetic."""
    dev = torch.device(name)
    info = {"torch": torch.__version__, "device_type": dev.type}
    if dev.type == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
        info["where"] = "on %s (CUDA %s, cuDNN %s, TF32 off, cuDNN autotuner on)" % (
            torch.cuda.get_device_name(dev), torch.version.cuda, torch.backends.cudnn.version())
    else:
        torch.set_num_threads(os.cpu_count())
        info["where"] = "with %d threads (OMP_WAIT_POLICY=%s) on the same CPU" % (
            torch.get_num_threads(), os.environ["OMP_WAIT_POLICY"])
    return dev, info


def sync(dev):
    """Waits for the device's queued work: CUDA runs asynchronously."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def peak_memory(dev):
    """The `rss` reply: peak RSS, and on CUDA the peak memory PyTorch's
    allocator held on the device (its CUDA context not counted)."""
    r = {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if dev.type == "cuda":
        r["peak_device_bytes"] = torch.cuda.max_memory_reserved(dev)
    return r


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def worker(args):
    dev, info = torch_device(args.device)
    net = OnnxNet(args.model).to(dev)
    target = args.target or net.outputs[0]
    info["target"] = target
    reply(info)
    x, last, xg = None, None, None
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        try:
            if cmd[0] == "batch":  # the rebuilt network takes any batch
                reply(info)
            elif cmd[0] == "input":
                x = torch.from_numpy(np.load(cmd[1]).astype(np.float32)).to(dev)
                reply({"ok": True})
            elif cmd[0] == "fwd":
                ms = []
                with torch.no_grad():
                    for _ in range(int(cmd[1])):
                        t0 = time.perf_counter()
                        last = net(x)[target]
                        sync(dev)
                        ms.append((time.perf_counter() - t0) * 1e3)
                reply({"ms": ms})
            elif cmd[0] == "fwdbwd":
                ms = []
                for _ in range(int(cmd[1])):
                    t0 = time.perf_counter()
                    xg = x.detach().requires_grad_(True)
                    last = net(xg)[target]
                    last.backward(torch.ones_like(last))  # into xg.grad
                    sync(dev)
                    ms.append((time.perf_counter() - t0) * 1e3)
                reply({"ms": ms})
            elif cmd[0] == "save":
                np.save(cmd[1], last.detach().cpu().numpy())
                reply({"ok": True})
            elif cmd[0] == "savegrad":
                np.save(cmd[1], xg.grad.cpu().numpy())
                reply({"ok": True})
            elif cmd[0] == "rss":
                reply(peak_memory(dev))
            elif cmd[0] == "quit":
                break
            else:
                reply({"error": "unknown command: " + line.strip()})
        except Exception as e:  # report and keep serving, like bench_forward
            reply({"error": "%s: %s" % (type(e).__name__, e)})


# ---- the driver --------------------------------------------------------------------


class Worker:
    """A child process speaking the one-JSON-line-per-command protocol."""

    def __init__(self, name, argv, env=None):
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)
        self.info = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("%s: worker exited (status %s)" % (self.name, self.proc.wait()))
        obj = json.loads(line)
        if "error" in obj:
            raise RuntimeError("%s: %s" % (self.name, obj["error"]))
        return obj

    def ask(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.wait()


def log(msg):
    sys.stderr.write("bench: " + msg + "\n")
    sys.stderr.flush()


def reps_for(est_ms, target_ms):
    """Repetitions that fill about target_ms (at least 1)."""
    return max(1, min(50, int(round(target_ms / max(est_ms, 1e-3)))))


def measure_net(net, path, lo, hi, args, tmp):
    """One network at every batch size. The workers are kept from one batch
    size to the next (bench_forward reloads the model but keeps its compiled
    pipelines, which take minutes to build on lavapipe)."""
    argv = [args.lvk, path, "--batch", str(args.batch[0]), "--size", str(args.size)]
    lvk = pt = None
    variants, results = [], []
    try:
        lvk = Worker("lucid-vk", argv)
        pt = Worker("pytorch", [sys.executable, os.path.abspath(__file__), "worker", path,
                                "--target", lvk.info["target"], "--device", args.torch_device])
        if set(args.batch) & set(args.variant_batch):
            variants = [Worker(label, argv, dict(os.environ, **{var: value}))
                        for label, var, value in args.variant]
        for i, batch in enumerate(args.batch):
            if i > 0:
                for w in [lvk, pt] + variants:
                    w.info = w.ask("batch %d" % batch)
            workers = [lvk, pt] + (variants if batch in args.variant_batch else [])
            results.append(measure(net, lo, hi, batch, workers, args, tmp))
            if not set(args.batch[i + 1:]) & set(args.variant_batch):
                for w in variants:
                    w.close()
                variants = []
        return results
    finally:
        for w in [lvk, pt] + variants:
            if w:
                w.close()


def measure(net, lo, hi, batch, workers, args, tmp):
    """One network at one batch size: lucid-vk (workers[0]), PyTorch
    (workers[1]) and lucid-vk variants side by side."""
    lvk, pt = workers[:2]
    x = np.random.RandomState(batch).uniform(lo, hi, (batch, 3, args.size, args.size))
    xpath = os.path.join(tmp, "input.npy")
    np.save(xpath, x.astype(np.float32))
    # Warm-up (pipeline compilation, allocator growth), then the same-work
    # check: every lucid-vk output must agree with PyTorch's.
    est, outs = {}, {}
    for w in workers:
        w.ask("input " + xpath)
        for mode in ("fwd", "fwdbwd"):
            est[w.name, mode] = w.ask(mode + " 1")["ms"][0]
        for what in ("save", "savegrad"):
            out = os.path.join(tmp, "out.npy")
            w.ask("%s %s" % (what, out))
            outs[w.name, what] = np.load(out).astype(np.float64)
    # Logits: largest difference relative to the largest logit. Input
    # gradients: relative L2 norm, loosely: they are discontinuous at ReLU /
    # ReLU6 kinks and max-pool near-ties, where float32 rounding can flip a
    # unit (PyTorch's own float32 and float64 input gradients differ by 6e-3
    # on GoogLeNet, by 8e-3 on MobileNet V1 at batch 8, 2e-2 on one of its
    # samples), while a missing or wrong backward step gives errors of order 1.
    rel = {}
    for w in workers[:1] + workers[2:]:
        for what, tol in (("save", args.tolerance), ("savegrad", args.grad_tolerance)):
            ref, got = outs["pytorch", what], outs[w.name, what]
            if what == "save":
                e = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))
            else:
                e = float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30))
            if e > tol:
                raise RuntimeError("%s batch %d: %s and PyTorch %s differ by %.2e (relative), "
                                   "more than %.0e" % (net, batch, w.name, "outputs" if
                                                       what == "save" else "input gradients",
                                                       e, tol))
            rel[w.name, what] = e
    log("%s batch %d: outputs agree to %.1e, input gradients to %.1e; warm-up %s"
        % (net, batch, rel["lucid-vk", "save"], rel["lucid-vk", "savegrad"], ", ".join(
            "%s %.1f s" % (w.name, (est[w.name, "fwd"] + est[w.name, "fwdbwd"]) / 1e3)
            for w in workers)))

    # Rounds alternate the engines (rotating which goes first) until the
    # budget is spent, with at least min_rounds. Within a round, fast runs
    # are repeated to fill about rep_ms; the estimates come from the
    # warm-up, then from the medians so far.
    first = dict(est)
    samples = {k: [] for k in est}
    start, rounds = time.time(), 0
    while rounds < args.max_rounds:
        t_round = time.time()
        k = rounds % len(workers)
        order = workers[k:] + workers[:k]
        for mode in ("fwd", "fwdbwd"):
            for w in order:
                n = reps_for(est[w.name, mode], args.rep_ms)
                samples[w.name, mode] += w.ask("%s %d" % (mode, n))["ms"]
                est[w.name, mode] = float(np.median(samples[w.name, mode]))
        rounds += 1
        spent, last = time.time() - start, time.time() - t_round
        if rounds >= args.min_rounds and spent + last > args.round_budget:
            break
    log("%s batch %d: %d rounds in %.0f s" % (net, batch, rounds, time.time() - start))
    result = {
        "net": net, "batch": batch, "rounds": rounds, "rel": rel["lucid-vk", "save"],
        "rel_grad": rel["lucid-vk", "savegrad"],
        "flops_fwd": lvk.info["flops_fwd"], "flops_bwd": lvk.info["flops_bwd"],
        "arena": lvk.info["arena_bytes"], "device": lvk.info["device"],
        "driver": lvk.info["driver"], "torch": pt.info["torch"], "where": pt.info["where"],
        "torch_device": pt.info["device_type"],
        "samples": samples,
        "variants": [w.name for w in workers[2:]],
        "first": first,
        "mem": {w.name: w.ask("rss") for w in workers},
    }
    if batch == args.breakdown_batch:
        result["breakdown"] = lvk.ask("breakdown")
    return result


def stats(ms):
    a = np.array(ms)
    return float(np.median(a)), float(a.min()), float(a.max())


def fmt_ms(ms):
    med, lo, hi = stats(ms)
    return "%.1f (%.1f–%.1f)" % (med, lo, hi) if med < 100 else "%.0f (%.0f–%.0f)" % (med, lo, hi)


def tables(results):
    out = []
    for mode, title, key in (("fwd", "Forward", ("flops_fwd",)),
                             ("fwdbwd", "Forward + input gradient", ("flops_fwd", "flops_bwd"))):
        out += ["### %s" % title, "",
                "| network | batch | GFLOP | lucid-vk ms, median (min–max) | GFLOP/s "
                "| PyTorch ms, median (min–max) | GFLOP/s | lucid-vk / PyTorch |",
                "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in results:
            gflop = sum(r[k] for k in key) / 1e9
            lv, pt = r["samples"]["lucid-vk", mode], r["samples"]["pytorch", mode]
            lvm, ptm = stats(lv)[0], stats(pt)[0]
            out.append("| %s | %d | %.2f | %s | %.1f | %s | %.1f | %.1f |" % (
                r["net"], r["batch"], gflop, fmt_ms(lv), gflop / (lvm / 1e3),
                fmt_ms(pt), gflop / (ptm / 1e3), lvm / ptm))
        out.append("")
    variant_rows = [(r, v) for r in results for v in r["variants"]]
    if variant_rows:
        out += ["### lucid-vk with other kernels", "",
                "Timed in the same rounds as the tables above. \"slower\": this variant's "
                "median over the default's.", "",
                "| network | batch | variant | fwd ms, median (min–max) | GFLOP/s | slower "
                "| fwd+grad ms, median (min–max) | GFLOP/s | slower |",
                "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
        for r, v in variant_rows:
            cells = []
            for mode, key in (("fwd", ("flops_fwd",)), ("fwdbwd", ("flops_fwd", "flops_bwd"))):
                gflop = sum(r[k] for k in key) / 1e9
                ms = r["samples"][v, mode]
                med = stats(ms)[0]
                cells.append("%s | %.1f | %.1fx" % (
                    fmt_ms(ms), gflop / (med / 1e3), med / stats(r["samples"]["lucid-vk", mode])[0]))
            out.append("| %s | %d | %s | %s |" % (r["net"], r["batch"], v, " | ".join(cells)))
        out.append("")
    mib = 1 << 20
    # On CUDA, PyTorch's device memory too (lucid-vk's is its arena).
    cuda = bool(results) and results[0]["torch_device"] == "cuda"
    out += ["### Memory, first run, agreement, repetitions", "",
            "| network | batch | lucid-vk arena MiB | lucid-vk peak RSS MiB | PyTorch peak RSS MiB "
            + ("| PyTorch device MiB " if cuda else "") +
            "| lucid-vk first fwd / fwd+grad s | rel. diff logits / input grad | rounds "
            "| samples fwd / fwd+grad (lucid-vk; PyTorch) |",
            "|---|---:|---:|---:|---:|" + ("---:|" if cuda else "") + "---:|---:|---:|---|"]
    for r in results:
        s, mem = r["samples"], r["mem"]
        dev_mib = ("%.0f | " % (mem["pytorch"]["peak_device_bytes"] / mib)) if cuda else ""
        out.append("| %s | %d | %.0f | %.0f | %.0f | %s%.1f / %.1f | %.1e / %.1e | %d "
                   "| %d / %d; %d / %d |" % (
            r["net"], r["batch"], r["arena"] / mib, mem["lucid-vk"]["peak_rss_bytes"] / mib,
            mem["pytorch"]["peak_rss_bytes"] / mib, dev_mib, r["first"]["lucid-vk", "fwd"] / 1e3,
            r["first"]["lucid-vk", "fwdbwd"] / 1e3, r["rel"], r["rel_grad"], r["rounds"],
            len(s["lucid-vk", "fwd"]), len(s["lucid-vk", "fwdbwd"]),
            len(s["pytorch", "fwd"]), len(s["pytorch", "fwdbwd"])))
    out.append("")
    for r in results:
        b = r.get("breakdown")
        if not b:
            continue
        if "error" in b:
            out += ["### lucid-vk time by op: %s, batch %d" % (r["net"], r["batch"]), "",
                    "(not available: %s)" % b["error"], ""]
            continue
        total = b["timed_ms"]
        out += ["### lucid-vk time by op: %s, batch %d" % (r["net"], r["batch"]), "",
                "One forward + backward with a timestamp after every dispatch: %.0f ms timed "
                "(%.0f ms wall)." % (total, b["wall_ms"]), "",
                "| op | fwd ms | bwd ms | share | GFLOP fwd+bwd | GFLOP/s | dispatches |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for o in sorted(b["ops"], key=lambda o: -(o["fwd_ms"] + o["bwd_ms"])):
            ms = o["fwd_ms"] + o["bwd_ms"]
            gf = (o["fwd_flops"] + o["bwd_flops"]) / 1e9
            rate = "%.1f" % (gf / (ms / 1e3)) if gf > 0 and ms > 0 else "–"
            out.append("| %s | %.1f | %.1f | %.1f%% | %.3f | %s | %d |" % (
                o["name"], o["fwd_ms"], o["bwd_ms"], 100 * ms / total, gf, rate,
                o["dispatches"]))
        out += ["", "By kernel: " + ", ".join(
            "%s %.1f%%" % (k["name"], 100 * (k["fwd_ms"] + k["bwd_ms"]) / total)
            for k in sorted(b["kernels"], key=lambda k: -(k["fwd_ms"] + k["bwd_ms"]))), ""]
    return "\n".join(out)


def compare(args):
    nets = []
    for spec in args.net:
        name, rest = spec.split("=", 1)
        path, lo, hi = rest, -1.0, 1.0
        if ":" in rest:
            path, rng = rest.rsplit(":", 1)
            lo, hi = (float(v) for v in rng.split(","))
        if not os.path.exists(path):
            log("%s: %s not found, skipped" % (name, path))
            continue
        nets.append((name, path, lo, hi))
    results = []
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="lvk-bench-") as tmp:
        for name, path, lo, hi in nets:
            results += measure_net(name, path, lo, hi, args, tmp)
    log("done in %.0f s" % (time.time() - t0))
    r0 = results[0] if results else None
    head = []
    if r0:
        head = ["lucid-vk on %s (%s); PyTorch %s %s. %d px input, uniform random in the range "
                "given per network." % (r0["device"], r0["driver"], r0["torch"], r0["where"],
                                        args.size), ""]
    print("\n".join(head + [tables(results)]))


def parse_variant(text):
    label, colon, setting = text.partition(":")
    var, eq, value = setting.partition("=")
    if not (label and colon and var and eq):
        raise argparse.ArgumentTypeError("expected LABEL:VAR=VALUE, got %r" % text)
    return label, var, value


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker")
    w.add_argument("model")
    w.add_argument("--target", help="tensor to time and differentiate (default: output 0)")
    w.add_argument("--device", default="cpu", help="PyTorch's device: cpu (default) or cuda")
    c = sub.add_parser("compare")
    c.add_argument("--lvk", required=True, help="the bench_forward executable")
    c.add_argument("--net", action="append", required=True,
                   help="NAME=MODEL.onnx[:LO,HI] (input range, default -1,1); missing files "
                        "are skipped")
    c.add_argument("--batch", type=int, action="append", help="batch sizes (default 1 and 8)")
    c.add_argument("--size", type=int, default=224)
    c.add_argument("--round-budget", type=float, default=40,
                   help="seconds of timed rounds per network and batch (default 40; "
                        "min-rounds are run regardless)")
    c.add_argument("--min-rounds", type=int, default=3)
    c.add_argument("--max-rounds", type=int, default=10)
    c.add_argument("--rep-ms", type=float, default=300,
                   help="fast runs are repeated within a round to fill this many ms")
    c.add_argument("--variant", action="append", default=[], type=parse_variant,
                   metavar="LABEL:VAR=VALUE",
                   help="also time lucid-vk with environment variable VAR=VALUE (e.g. a "
                        "forced kernel), labelled LABEL")
    c.add_argument("--variant-batch", type=int, action="append",
                   help="batch sizes at which variants run (default 1)")
    c.add_argument("--breakdown-batch", type=int, default=1)
    c.add_argument("--torch-device", default="cpu",
                   help="PyTorch's device: cpu (default; the same CPU as lavapipe) or cuda")
    c.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest accepted relative output difference")
    c.add_argument("--grad-tolerance", type=float, default=0.1,
                   help="largest accepted relative L2 difference of the input gradients")
    args = ap.parse_args()
    if args.cmd == "worker":
        worker(args)
    else:
        args.batch = args.batch or [1, 8]
        args.variant_batch = args.variant_batch or [1]
        compare(args)


if __name__ == "__main__":
    main()
