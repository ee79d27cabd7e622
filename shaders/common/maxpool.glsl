// Max pooling over the two spatial dims of [P, H, W] (P = N * C planes), and
// its gradient: the bodies of maxpool_{fwd,bwd}.comp (storage-buffer loads,
// for GPUs) and maxpool_{fwd,bwd}_texel.comp (texel-buffer loads, which
// lavapipe vectorises where it turns lane-varying storage-buffer loads into
// a loop over the SIMD lanes). The includer declares the outputs, as vec4
// arrays (y4, argmax4: ivec4; dx4), and the loads: LOAD_X(i) and LOAD_X4(t),
// 4 columns of x at once (forward), LOAD_DY(o), LOAD_ARG(o), LOAD_ACT4(t)
// (backward). Each invocation handles 4 consecutive elements and stores them
// as one vec4 (lavapipe loops over the lanes for every store too); buffers
// are padded to whole vec4s (lvk_arena_create). The includer also declares
// the workgroup size and includes common/index.glsl and, for the backward,
// common/relu_mode.glsl.

layout(constant_id = 0) const uint P = 1;      // planes: N * C
layout(constant_id = 1) const int H = 1;       // input height
layout(constant_id = 2) const int W = 1;       // input width
layout(constant_id = 3) const int OH = 1;      // output height
layout(constant_id = 4) const int OW = 1;      // output width
layout(constant_id = 5) const int KH = 1;      // kernel height
layout(constant_id = 6) const int KW = 1;      // kernel width
layout(constant_id = 7) const int SH = 1;      // stride
layout(constant_id = 8) const int SW = 1;
layout(constant_id = 9) const int PH = 0;      // top / left padding (the far side
layout(constant_id = 10) const int PW = 0;     // only shows in OH, OW)
layout(constant_id = 11) const int DH = 1;     // dilation
layout(constant_id = 12) const int DW = 1;
// 1: an invocation's 4 elements lie in one row (forward: OW % 4 == 0;
// backward: W % 4 == 0), so they share the loads of the windows they
// overlap; 2 (forward): x is read 4 columns at a time through LOAD_X4
// (W % 4 == 0 too); 4 (backward): the input is the output of a Relu/ReLU6
// whose backward this pass applies (lvk_node.bwd_fused): dx is masked by
// it, read through LOAD_ACT4, with bounds ACT_LO, ACT_HI; 8 (backward): dx
// is stored rather than added to (lvk_node.grad_store).
layout(constant_id = 13) const uint FLAGS = 0;
layout(constant_id = 14) const float ACT_LO = 0.0;
layout(constant_id = 15) const float ACT_HI = 0.0;
const bool ROWS = (FLAGS & 1) != 0, XV4 = (FLAGS & 2) != 0, MASK = (FLAGS & 4) != 0;
const bool STORE = (FLAGS & 8) != 0;

// Forward, one output per window: y and the window's arg-max, as an index
// into its H * W plane, so that the backward can route gradients by
// gathering. Padding never wins: only pixels inside the input compete. A
// strict '>' keeps the first maximum in window order on ties (as PyTorch
// and onnxruntime do). A window with no pixel inside (possible only with
// dilation) gives the lowest float and no arg-max, as onnxruntime does.
#ifdef LOAD_X
// The windows of outputs i .. i + ns - 1 (one row) read columns c0 to c0 +
// span - 1 of each of their rows; those are loaded once per row. With XV4
// (and ns = 4) as texels from the one holding c0, at LEAD within it (c0 =
// ow * SW - PW with ow a multiple of 4, so LEAD is the same for every
// strip); a texel lies wholly inside or outside the row, as W % 4 == 0.
const int LEAD = XV4 ? (4 - PW % 4) % 4 : 0;
const int MAX_SPAN = 3 * SW + (KW - 1) * DW + 1;
const int MAX_ROW = XV4 ? (LEAD + MAX_SPAN + 3) / 4 * 4 : MAX_SPAN;

// Outputs i .. i + ns - 1, into best[k0 ..] and arg[k0 ..] (unchanged past
// the end of y).
void maxpool_windows(uint i, int ns, int k0, inout vec4 best, inout ivec4 arg)
{
    if (i >= P * uint(OH * OW))
        return;
    int ow = int(i % uint(OW));
    int oh = int(i / uint(OW) % uint(OH));
    uint base = i / uint(OH * OW) * uint(H * W);
    int h0 = oh * SH - PH;
    int c0 = ow * SW - PW;
    int span = (ns - 1) * SW + (KW - 1) * DW + 1;
    for (int kh = 0; kh < KH; kh++) {
        int ih = h0 + kh * DH;
        if (ih < 0 || ih >= H)
            continue;
        float row[MAX_ROW];
        if (XV4) {
            for (int t = 0; t < (LEAD + span + 3) / 4; t++) {
                int tc = (c0 - LEAD) / 4 + t;   // exact: c0 - LEAD is a multiple of 4
                vec4 v = tc >= 0 && tc < W / 4 ? LOAD_X4((base + uint(ih * W)) / 4u + uint(tc))
                                               : vec4(0.0);
                row[4 * t] = v.x; row[4 * t + 1] = v.y; row[4 * t + 2] = v.z; row[4 * t + 3] = v.w;
            }
        } else {
            for (int t = 0; t < span; t++) {
                int iw = c0 + t;
                row[t] = iw >= 0 && iw < W ? LOAD_X(base + uint(ih * W + iw)) : 0.0;
            }
        }
        for (int k = 0; k < ns; k++)
            for (int kw = 0; kw < KW; kw++) {
                int col = k * SW + kw * DW;
                int iw = c0 + col;
                if (iw < 0 || iw >= W)
                    continue;
                float v = row[LEAD + col];
                if (arg[k0 + k] < 0 || v > best[k0 + k]) {
                    best[k0 + k] = v;
                    arg[k0 + k] = ih * W + iw;
                }
            }
    }
}

void main()
{
    const uint i = lvk_flat_index() * 4u;
    if (i >= P * uint(OH * OW))
        return;
    vec4 best = vec4(-3.402823466e38);
    ivec4 arg = ivec4(-1);
    if (ROWS)
        maxpool_windows(i, 4, 0, best, arg);
    else
        for (int k = 0; k < 4; ++k)
            maxpool_windows(i + uint(k), 1, k, best, arg);
    y4[i / 4u] = best;
    argmax4[i / 4u] = arg;
}
#endif

// Backward, one invocation per 4 input pixels: each gets the sum of dy over
// the windows whose saved arg-max is that pixel, so every element has one
// writer (no atomics); a window whose arg-max is the pixel holds it. It
// visits only the windows that may hold the pixels: window rows from the
// last one starting at or before them, back NH - 1 more; columns alike,
// from the last one starting at or before the last pixel, back over the
// candidates of the first (with ROWS the 4 pixels of a row share them:
// ceil(3 / SW) more); never more than there are windows (a global pool has
// one). Fixed trip counts unroll, and loads at clamped indices need no
// branch; candidates outside the output add nothing.
const int NH0 = (KH - 1) * DH / SH + 1;
const int NW0 = (KW - 1) * DW / SW + 1;
const int NH = NH0 < OH ? NH0 : OH;

#ifdef LOAD_DY
// Pixels i .. i + ns - 1 (one row), into the first ns components.
vec4 maxpool_grad(uint i, int ns)
{
    int me = int(i % uint(H * W));
    int ih = me / W;
    int iw = me % W;
    uint obase = i / uint(H * W) * uint(OH * OW);
    int ohl = min((ih + PH) / SH, OH - 1);
    int owl = min((iw + ns - 1 + PW) / SW, OW - 1);
    int nw = min((ns - 1 + SW - 1) / SW + NW0, OW);
    vec4 acc = vec4(0.0);
    for (int t = 0; t < NH; t++) {
        int oh = ohl - t;
        for (int u = 0; u < nw; u++) {
            int ow = owl - u;
            uint o = obase + uint(max(oh, 0) * OW + max(ow, 0));
            int a = LOAD_ARG(o);
            float g = LOAD_DY(o);
            for (int k = 0; k < ns; k++)
                acc[k] += oh >= 0 && ow >= 0 && a == me + k ? g : 0.0;
        }
    }
    return acc;
}

void main()
{
    const uint i = lvk_flat_index() * 4u, n = P * uint(H * W);
    if (i >= n)
        return;
    vec4 acc;
    if (ROWS)
        acc = maxpool_grad(i, 4);
    else
        for (uint k = 0; k < 4u; ++k)
            acc[k] = i + k < n ? maxpool_grad(i + k, 1).x : 0.0;
    if (MASK) {
        const uint mode = ctrl.relu_mode;
        const vec4 s = LOAD_ACT4(i / 4u);
        for (uint k = 0; k < 4u; ++k)
            acc[k] = lvk_relu_grad(mode, s[k], acc[k], ACT_LO, ACT_HI);
    }
    if (!STORE)
        acc += dx4[i / 4u];
    dx4[i / 4u] = acc;
}
#endif
