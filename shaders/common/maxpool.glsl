// Max pooling over the two spatial dims of [P, H, W] (P = N * C planes), and
// its gradient: the bodies of maxpool_{fwd,bwd}.comp (storage-buffer loads,
// for GPUs) and maxpool_{fwd,bwd}_texel.comp (texel-buffer loads, which
// lavapipe vectorises where it turns lane-varying storage-buffer loads into
// a loop over the SIMD lanes). The includer declares the outputs, as vec4
// arrays (y4, argmax4: ivec4; dx4), and the loads: LOAD_X(i) (forward),
// LOAD_DY(o), LOAD_ARG(o) (backward). Each invocation handles 4 consecutive
// elements and stores them as one vec4 (lavapipe loops over the lanes for
// every store too); buffers are padded to whole vec4s (lvk_arena_create).
// The includer also declares the workgroup size and includes
// common/index.glsl.

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

// Forward, one invocation per output: y[i] and the window's arg-max, as an
// index into its H * W plane, so that the backward can route gradients by
// gathering. Padding never wins: only pixels inside the input compete. A
// strict '>' keeps the first maximum in window order on ties (as PyTorch
// and onnxruntime do). A window with no pixel inside (possible only with
// dilation) gives the lowest float and no arg-max, as onnxruntime does.
#ifdef LOAD_X
void maxpool_window(uint i, out float best, out int arg)
{
    best = -3.402823466e38;
    arg = -1;
    if (i >= P * uint(OH * OW))
        return;
    int ow = int(i % uint(OW));
    int oh = int(i / uint(OW) % uint(OH));
    uint base = i / uint(OH * OW) * uint(H * W);
    int h0 = oh * SH - PH;
    int w0 = ow * SW - PW;
    for (int kh = 0; kh < KH; kh++) {
        int ih = h0 + kh * DH;
        if (ih < 0 || ih >= H)
            continue;
        for (int kw = 0; kw < KW; kw++) {
            int iw = w0 + kw * DW;
            if (iw < 0 || iw >= W)
                continue;
            float v = LOAD_X(base + uint(ih * W + iw));
            if (arg < 0 || v > best) {
                best = v;
                arg = ih * W + iw;
            }
        }
    }
}

void main()
{
    const uint i = lvk_flat_index() * 4u;
    if (i >= P * uint(OH * OW))
        return;
    vec4 best;
    ivec4 arg;
    for (uint k = 0; k < 4u; ++k) {
        float b;
        int a;
        maxpool_window(i + k, b, a); // past the end: lowest float, -1, into the padding
        best[k] = b;
        arg[k] = a;
    }
    y4[i / 4u] = best;
    argmax4[i / 4u] = arg;
}
#endif

// Backward, one invocation per input pixel i: the sum of dy over the windows
// whose saved arg-max is this pixel, so every element has one writer (no
// atomics). It visits only the windows that may hold the pixel: the last
// one starting at or before it, and the NH - 1 (NW - 1) before that; never
// more than there are windows (a global pool has one). Fixed trip counts
// unroll, and loads at clamped indices need no branch; candidates that do
// not hold the pixel add nothing.
const int NH0 = (KH - 1) * DH / SH + 1;
const int NW0 = (KW - 1) * DW / SW + 1;
const int NH = NH0 < OH ? NH0 : OH;
const int NW = NW0 < OW ? NW0 : OW;

#ifdef LOAD_DY
float maxpool_grad(uint i)
{
    int me = int(i % uint(H * W));
    int ih = me / W;
    int iw = me % W;
    uint obase = i / uint(H * W) * uint(OH * OW);
    int ohl = min((ih + PH) / SH, OH - 1);
    int owl = min((iw + PW) / SW, OW - 1);
    float acc = 0.0;
    for (int t = 0; t < NH; t++) {
        int oh = ohl - t;
        bool vh = oh >= 0 && ih <= oh * SH - PH + (KH - 1) * DH;
        for (int u = 0; u < NW; u++) {
            int ow = owl - u;
            bool v = vh && ow >= 0 && iw <= ow * SW - PW + (KW - 1) * DW;
            uint o = obase + uint(max(oh, 0) * OW + max(ow, 0));
            int a = LOAD_ARG(o);
            float g = LOAD_DY(o);
            acc += v && a == me ? g : 0.0;
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
    for (uint k = 0; k < 4u; ++k)
        acc[k] = i + k < n ? maxpool_grad(i + k) : 0.0;
    dx4[i / 4u] += acc;
}
#endif
