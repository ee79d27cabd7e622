// Max pooling over the two spatial dims of [P, H, W] (P = N * C planes), and
// its gradient: the bodies of maxpool_{fwd,bwd}.comp (storage-buffer loads,
// for GPUs) and maxpool_{fwd,bwd}_texel.comp (texel-buffer loads, which
// lavapipe vectorises where it turns lane-varying storage-buffer loads into
// a loop over the SIMD lanes). The includer declares the outputs, as vec4
// arrays (y4, argmax4: ivec4; dx4), and the loads: LOAD_X(i) and LOAD_X4(t),
// 4 columns of x at once (forward), LOAD_DY(o), LOAD_ARG(o), LOAD_ACT4(t)
// (backward). Each invocation stores runs of 4 consecutive elements as one
// vec4 (lavapipe loops over the lanes for every store too); buffers are
// padded to whole vec4s (lvk_arena_create). The includer also declares the
// workgroup size and includes common/index.glsl and, for the backward,
// common/relu_mode.glsl, and enables GL_EXT_control_flow_attributes.

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
// With ROWS: an invocation's block of windows, MR rows by 4 * MC columns
// (forward: MC = 1).
layout(constant_id = 16) const int MR = 1;
layout(constant_id = 17) const int MC = 1;
const bool ROWS = (FLAGS & 1) != 0, XV4 = (FLAGS & 2) != 0, MASK = (FLAGS & 4) != 0;
const bool STORE = (FLAGS & 8) != 0;

#ifdef LOAD_X
// The windows of output rows oh0 .. oh0 + MR - 1 (those below OH left
// alone), columns ow0 .. ow0 + ns - 1, read columns c0 to c0 + span - 1 of
// rows h0 to h0 + (MR - 1) * SH + (KH - 1) * DH: each of those rows is
// loaded once and compared into every window that has it (stride-1 3x3
// pools: 4 rows for 2 rows of windows where each row of windows alone
// loads 3). With XV4 (and ns = 4) rows are read as texels from the one
// holding c0, at LEAD within it (c0 = ow0 * SW - PW with ow0 a multiple of
// 4, so LEAD is the same for every strip); a texel lies wholly inside or
// outside the row, as W % 4 == 0.
const int LEAD = XV4 ? (4 - PW % 4) % 4 : 0;
const int MAX_SPAN = 3 * SW + (KW - 1) * DW + 1;
const int MAX_ROW = XV4 ? (LEAD + MAX_SPAN + 3) / 4 * 4 : MAX_SPAN;
const int NU = (MR - 1) * SH + (KH - 1) * DH + 1;

// Into best[r][k0 + k], arg[r][k0 + k] for window row oh0 + r, column ow0 + k.
void maxpool_windows(uint base, int oh0, int ow0, int ns, int k0, inout vec4 best[MR],
                     inout ivec4 arg[MR])
{
    const int h0 = oh0 * SH - PH, c0 = ow0 * SW - PW;
    const int span = (ns - 1) * SW + (KW - 1) * DW + 1;
    [[unroll]] for (int u = 0; u < NU; u++) {
        // Rows between a dilated window's taps serve no window: not loaded.
        bool tapped = false;
        [[unroll]] for (int r = 0; r < MR; r++)
            tapped = tapped || (u - r * SH >= 0 && (u - r * SH) % DH == 0 && (u - r * SH) / DH < KH);
        const int ih = h0 + u;
        if (!tapped || ih < 0 || ih >= H)
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
        // Row u is tap row (u - r * SH) / DH of window row r, where that
        // divides; rows are visited in tap order, so ties keep the first.
        [[unroll]] for (int r = 0; r < MR; r++) {
            const int tap = u - r * SH;
            if (tap < 0 || tap % DH != 0 || tap / DH >= KH || oh0 + r >= OH)
                continue;
            for (int k = 0; k < ns; k++)
                for (int kw = 0; kw < KW; kw++) {
                    int col = k * SW + kw * DW;
                    int iw = c0 + col;
                    if (iw < 0 || iw >= W)
                        continue;
                    float v = row[LEAD + col];
                    if (arg[r][k0 + k] < 0 || v > best[r][k0 + k]) {
                        best[r][k0 + k] = v;
                        arg[r][k0 + k] = ih * W + iw;
                    }
                }
        }
    }
}

// Forward, one output per window: y and the window's arg-max, as an index
// into its H * W plane, so that the backward can route gradients by
// gathering. Padding never wins: only pixels inside the input compete. A
// strict '>' keeps the first maximum in window order on ties (as PyTorch
// and onnxruntime do). A window with no pixel inside (possible only with
// dilation) gives the lowest float and no arg-max, as onnxruntime does.
// ROWS: an invocation takes MR rows of 4 windows (OW % 4 == 0); else 4
// consecutive outputs (MR = 1), each on its own.
void main()
{
    const uint i = lvk_flat_index();
    vec4 best[MR];
    ivec4 arg[MR];
    [[unroll]] for (int r = 0; r < MR; r++) {
        best[r] = vec4(-3.402823466e38);
        arg[r] = ivec4(-1);
    }
    if (ROWS) {
        const uint nq = uint(OW / 4), nrb = uint((OH + MR - 1) / MR);
        if (i >= P * nrb * nq)
            return;
        const uint p = i / (nrb * nq);
        const int oh0 = int(i / nq % nrb) * MR, ow0 = int(i % nq) * 4;
        maxpool_windows(p * uint(H * W), oh0, ow0, 4, 0, best, arg);
        [[unroll]] for (int r = 0; r < MR; r++)
            if (oh0 + r < OH) {
                const uint o = (p * uint(OH * OW) + uint((oh0 + r) * OW + ow0)) / 4u;
                y4[o] = best[r];
                argmax4[o] = arg[r];
            }
        return;
    }
    const uint n = P * uint(OH * OW);
    if (i * 4u >= n)
        return;
    for (int k = 0; k < 4; ++k) {
        const uint e = i * 4u + uint(k);
        if (e < n)
            maxpool_windows(e / uint(OH * OW) * uint(H * W), int(e / uint(OW) % uint(OH)),
                            int(e % uint(OW)), 1, k, best, arg);
    }
    y4[i] = best[0];
    argmax4[i] = arg[0];
}
#endif

// Backward: each input pixel gets the sum of dy over the windows whose
// saved arg-max is that pixel, so every element has one writer (no
// atomics). Two shapes of work:
// - ROWS (W % 4 == 0): an invocation takes a block of BR = MR * SH rows by
//   BW = 4 * MC * SW columns (whole vec4s), which starts where window row
//   t * MR and column u * 4 * MC do. The windows that reach it are then the
//   same relative to it for every block: D0 .. D1 rows, E0 .. E1 columns of
//   them, and which of its pixels each window covers is known when the
//   pipeline is built, so the loops unroll into the pairs that can meet. A
//   stride-2 3x3 pool reads 10 windows for 16 pixels where a row of 4
//   pixels alone reads 8.
// - otherwise 4 consecutive pixels, each on its own: window rows from the
//   last one starting at or before it, back NH - 1 more; columns alike.
// Fixed trip counts unroll, and loads at clamped indices need no branch;
// windows outside the output add nothing.
const int BR = MR * SH, BW = 4 * MC * SW;
// The reach of a window past its first row / column, less the pad; never
// negative (pads are smaller than the kernel's extent).
const int REACH_H = (KH - 1) * DH - PH, REACH_W = (KW - 1) * DW - PW;
const int D0 = -(REACH_H / SH), D1 = (BR - 1 + PH) / SH;
const int E0 = -(REACH_W / SW), E1 = (BW - 1 + PW) / SW;
const int NH0 = (KH - 1) * DH / SH + 1;
const int NW0 = (KW - 1) * DW / SW + 1;
const int NH = NH0 < OH ? NH0 : OH;
const int NW = NW0 < OW ? NW0 : OW;

// Does a window starting at row (column) `first` of the block cover its
// row (column) `at`? Its taps lie every d from its start, up to reach.
bool covers(int at, int first, int reach, int d)
{
    const int off = at - first;
    return off >= 0 && off <= reach && off % d == 0;
}

#ifdef LOAD_DY
float maxpool_grad(int me, uint obase)
{
    int ih = me / W;
    int iw = me % W;
    int ohl = min((ih + PH) / SH, OH - 1);
    int owl = min((iw + PW) / SW, OW - 1);
    float acc = 0.0;
    for (int t = 0; t < NH; t++)
        for (int u = 0; u < NW; u++) {
            int oh = ohl - t, ow = owl - u;
            uint o = obase + uint(max(oh, 0) * OW + max(ow, 0));
            int a = LOAD_ARG(o);
            float g = LOAD_DY(o);
            acc += oh >= 0 && ow >= 0 && a == me ? g : 0.0;
        }
    return acc;
}

// The gradient of 4 consecutive elements from t4 * 4, masked and added
// or stored as FLAGS say.
void maxpool_store(uint t4, vec4 acc)
{
    if (MASK) {
        const uint mode = ctrl.relu_mode;
        const vec4 s = LOAD_ACT4(t4);
        for (uint k = 0; k < 4u; ++k)
            acc[k] = lvk_relu_grad(mode, s[k], acc[k], ACT_LO, ACT_HI);
    }
    if (!STORE)
        acc += dx4[t4];
    dx4[t4] = acc;
}

void main()
{
    const uint nbr = (uint(H) + uint(BR) - 1u) / uint(BR);
    const uint nbc = (uint(W) + uint(BW) - 1u) / uint(BW);
    const uint i = lvk_flat_index();
    if (!ROWS) {
        const uint n = P * uint(H * W);
        if (i * 4u >= n)
            return;
        vec4 acc = vec4(0.0);
        for (uint k = 0; k < 4u && i * 4u + k < n; ++k) {
            const uint e = i * 4u + k;
            acc[k] = maxpool_grad(int(e % uint(H * W)), e / uint(H * W) * uint(OH * OW));
        }
        maxpool_store(i, acc);
        return;
    }
    if (i >= P * nbr * nbc)
        return;
    const uint p = i / (nbr * nbc);
    const int t = int(i / nbc % nbr), u = int(i % nbc);
    const int r0 = t * BR, c0 = u * BW;
    const uint obase = p * uint(OH * OW);
    float acc[BR * BW];
    [[unroll]] for (int k = 0; k < BR * BW; ++k)
        acc[k] = 0.0;
    [[unroll]] for (int d = D0; d <= D1; ++d) {
        [[unroll]] for (int e = E0; e <= E1; ++e) {
            const int oh = t * MR + d, ow = u * 4 * MC + e;
            const bool inside = oh >= 0 && oh < OH && ow >= 0 && ow < OW;
            const uint o = obase + uint(clamp(oh, 0, OH - 1) * OW + clamp(ow, 0, OW - 1));
            // The arg-max relative to the block's first pixel.
            const int a = LOAD_ARG(o) - (r0 * W + c0);
            const float dy = LOAD_DY(o);
            const float g = inside ? dy : 0.0;
            [[unroll]] for (int y = 0; y < BR; ++y) {
                if (!covers(y, d * SH - PH, (KH - 1) * DH, DH))
                    continue;
                [[unroll]] for (int x = 0; x < BW; ++x)
                    if (covers(x, e * SW - PW, (KW - 1) * DW, DW))
                        acc[y * BW + x] += a == y * W + x ? g : 0.0;
            }
        }
    }
    [[unroll]] for (int y = 0; y < BR; ++y)
        [[unroll]] for (int q = 0; q < BW / 4; ++q)
            if (r0 + y < H && c0 + 4 * q < W)
                maxpool_store((p * uint(H * W) + uint((r0 + y) * W + c0)) / 4u + uint(q),
                              vec4(acc[y * BW + 4 * q], acc[y * BW + 4 * q + 1],
                                   acc[y * BW + 4 * q + 2], acc[y * BW + 4 * q + 3]));
}
#endif
