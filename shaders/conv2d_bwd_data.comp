#version 450
// Direct 2-D convolution, gradient w.r.t. the input, as a gather:
//   dx[n, c, ih, iw] += sum over (m, kh, kw) of dy[n, m, oh, ow] * w[m, c, kh, kw]
// for the output pixels (oh, ow) whose tap (kh, kw) reads (ih, iw), i.e.
// oh * SH = ih + PT - kh * DH (exactly divisible, inside [0, OH)), and m in
// c's group. Each dx element belongs to one invocation, so += needs no
// atomics. Each invocation computes BC input channels (from the workgroup id:
// lane-uniform weight reads) x BP input pixels (gl_WorkGroupSize.x apart in
// the pixels' numbering: the image's, or with PHASED its phase's).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common/conv2d.glsl"

// Store dx rather than add to it (lvk_node.grad_store).
layout(constant_id = 18) const bool STORE = false;
// A strided convolution without dilation: only the taps kh = (ih + PT) mod SH,
// + SH, ... (alike kw) reach a pixel, so pixels are taken phase by phase, each
// phase ((ih + PT) mod SH, (iw + PL) mod SW) a run of workgroups: every lane of
// a workgroup visits the same taps (uniform weight reads, no divergence), a
// quarter of a stride-2 kernel's taps.
layout(constant_id = 19) const bool PHASED = false;
// The backward of the activation x came from (lvk_node.bwd_fused): dx is
// the activation input's gradient, masked by x's position in (ACT_LO,
// ACT_HI) under the run-time ReLU gradient mode.
layout(constant_id = 20) const bool MASK = false;
layout(constant_id = 21) const float ACT_LO = 0.0;
layout(constant_id = 22) const float ACT_HI = 0.0;

layout(std430, set = 0, binding = 0) buffer DX { float dx[]; };          // dx: [N, C, H, W]
layout(std430, set = 0, binding = 1) readonly buffer DY { float dy[]; }; // dy: [N, M, OH, OW]
layout(std430, set = 0, binding = 2) readonly buffer Wt { float w[]; };  // w: [M, CG, KH, KW]
layout(std430, set = 0, binding = 3) readonly buffer X { float x[]; };   // with MASK: x, as dx
layout(std430, set = 0, binding = 4) readonly buffer Ctrl { uint relu_mode; } ctrl;

#include "common/relu_mode.glsl"

// A phase's pixels: th = ih + PT = qh * SH + a for qh < HQ (alike w); those
// with ih outside [0, H) are computed and not stored. Unphased: the image.
const uint HQ = PHASED ? (H + uint(PT) + uint(SH) - 1u) / uint(SH) : H;
const uint WQ = PHASED ? (W + uint(PL) + uint(SW) - 1u) / uint(SW) : W;

void main()
{
    const uint npix = H * W, nq = HQ * WQ;
    const uint lanes = gl_WorkGroupSize.x;
    const uint nwg = (nq + BP * lanes - 1) / (BP * lanes);   // workgroups per phase
    const uint phase = gl_WorkGroupID.x / nwg;
    const uint a = phase / uint(SW), b = phase % uint(SW);
    const uint q0 = (gl_WorkGroupID.x % nwg) * (BP * lanes) + gl_LocalInvocationID.x;
    if (q0 >= nq)
        return;

    const uint nblk = (CG + BC - 1) / BC;
    const uint g = gl_WorkGroupID.y / nblk;
    const uint c0 = (gl_WorkGroupID.y % nblk) * BC;   // first channel within the group
    const uint n = gl_WorkGroupID.z;

    // Each pixel as (qh, qw) in its phase and its offset in dx, or npix
    // where it is not stored (past the end, or in the padding). Pixels past
    // the end repeat the last one: computed, not stored.
    int qh[BP], qw[BP];
    uint px[BP];
    for (uint j = 0; j < BP; ++j) {
        uint q = q0 + j * lanes;
        uint qc = min(q, nq - 1);
        qh[j] = int(qc / WQ);
        qw[j] = int(qc % WQ);
        int ih = PHASED ? qh[j] * SH + int(a) - PT : qh[j];
        int iw = PHASED ? qw[j] * SW + int(b) - PL : qw[j];
        px[j] = q < nq && uint(ih) < H && uint(iw) < W ? uint(ih) * W + uint(iw) : npix;
        if (!PHASED) {
            qh[j] += PT;   // unphased: the padded coordinates th, tw
            qw[j] += PL;
        }
    }

    float acc[BC * BP];
    for (uint k = 0; k < BC * BP; ++k)
        acc[k] = 0.0;

    // Phased, tap kh = a + jh * SH meets output row oh = qh - jh.
    const uint kh0 = PHASED ? a : 0u, kh_step = PHASED ? uint(SH) : 1u;
    const uint kw0 = PHASED ? b : 0u, kw_step = PHASED ? uint(SW) : 1u;
    for (uint mm = 0; mm < MG; ++mm) {
        const uint m = g * MG + mm;
        const uint yo = (n * M + m) * OH * OW;
        for (uint kh = kh0, jh = 0u; kh < KH; kh += kh_step, ++jh) {
            for (uint kw = kw0, jw = 0u; kw < KW; kw += kw_step, ++jw) {
                float gv[BP];
                for (uint j = 0; j < BP; ++j) {
                    uint oh, ow;
                    bool hit;
                    if (PHASED) {
                        oh = uint(qh[j] - int(jh));
                        ow = uint(qw[j] - int(jw));
                        hit = true;
                    } else {
                        int th = qh[j] - int(kh) * DH;
                        int tw = qw[j] - int(kw) * DW;
                        // th >= 0 first: % and / of negatives would pass wrongly.
                        hit = th >= 0 && tw >= 0 && th % SH == 0 && tw % SW == 0;
                        oh = uint(th / SH);
                        ow = uint(tw / SW);
                    }
                    hit = hit && oh < OH && ow < OW;   // negative rows wrap past OH
                    float v = dy[hit ? yo + oh * OW + ow : 0u];
                    gv[j] = hit ? v : 0.0;
                }
                const uint wk = (m * CG) * KK + kh * KW + kw;
                for (uint i = 0; i < BC; ++i) {
                    float wv = w[wk + min(c0 + i, CG - 1) * KK];
                    for (uint j = 0; j < BP; ++j)
                        acc[i * BP + j] = fma(wv, gv[j], acc[i * BP + j]);
                }
            }
        }
    }

    const uint mode = MASK ? ctrl.relu_mode : LVK_RELU_GRAD_NORMAL;
    for (uint i = 0; i < BC; ++i) {
        if (c0 + i >= CG)
            break;
        const uint xo = (n * C + g * CG + c0 + i) * npix;
        for (uint j = 0; j < BP; ++j) {
            if (px[j] < npix) {
                float v = acc[i * BP + j];
                if (MASK)
                    v = lvk_relu_grad(mode, x[xo + px[j]], v, ACT_LO, ACT_HI);
                if (!STORE)
                    v += dx[xo + px[j]];
                dx[xo + px[j]] = v;
            }
        }
    }
}
