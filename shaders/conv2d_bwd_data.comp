#version 450
// Direct 2-D convolution, gradient w.r.t. the input, as a gather:
//   dx[n, c, ih, iw] += sum over (m, kh, kw) of dy[n, m, oh, ow] * w[m, c, kh, kw]
// for the output pixels (oh, ow) whose tap (kh, kw) reads (ih, iw), i.e.
// oh * SH = ih + PT - kh * DH (exactly divisible, inside [0, OH)), and m in
// c's group. Each dx element belongs to one invocation, so += needs no
// atomics. Each invocation computes BC input channels (from the workgroup id:
// lane-uniform weight reads) x BP input pixels (gl_WorkGroupSize.x apart).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common/conv2d.glsl"

// Store dx rather than add to it (lvk_node.grad_store).
layout(constant_id = 18) const bool STORE = false;
// A strided convolution without dilation, one pixel per invocation (BP = 1):
// only the taps kh = th0 mod SH, + SH, ... (alike kw) can reach the pixel, so
// the loops visit those alone (a quarter of a stride-2 kernel's taps).
layout(constant_id = 19) const bool PHASED = false;

layout(std430, set = 0, binding = 0) buffer DX { float dx[]; };          // dx: [N, C, H, W]
layout(std430, set = 0, binding = 1) readonly buffer DY { float dy[]; }; // dy: [N, M, OH, OW]
layout(std430, set = 0, binding = 2) readonly buffer Wt { float w[]; };  // w: [M, CG, KH, KW]

void main()
{
    const uint npix = H * W;
    const uint lanes = gl_WorkGroupSize.x;
    const uint p0 = gl_WorkGroupID.x * (BP * lanes) + gl_LocalInvocationID.x;
    if (p0 >= npix)
        return;

    const uint nblk = (CG + BC - 1) / BC;
    const uint g = gl_WorkGroupID.y / nblk;
    const uint c0 = (gl_WorkGroupID.y % nblk) * BC;   // first channel within the group
    const uint n = gl_WorkGroupID.z;

    // Padded coordinates of each pixel; pixels past the end repeat the last
    // one (computed, not stored).
    int th0[BP], tw0[BP];
    for (uint j = 0; j < BP; ++j) {
        uint p = min(p0 + j * lanes, npix - 1);
        th0[j] = int(p / W) + PT;
        tw0[j] = int(p % W) + PL;
    }

    float acc[BC * BP];
    for (uint k = 0; k < BC * BP; ++k)
        acc[k] = 0.0;

    const uint kh0 = PHASED ? uint(th0[0] % SH) : 0u, kh_step = PHASED ? uint(SH) : 1u;
    const uint kw0 = PHASED ? uint(tw0[0] % SW) : 0u, kw_step = PHASED ? uint(SW) : 1u;
    for (uint mm = 0; mm < MG; ++mm) {
        const uint m = g * MG + mm;
        const uint yo = (n * M + m) * OH * OW;
        for (uint kh = kh0; kh < KH; kh += kh_step) {
            for (uint kw = kw0; kw < KW; kw += kw_step) {
                float gv[BP];
                for (uint j = 0; j < BP; ++j) {
                    int th = th0[j] - int(kh) * DH;
                    int tw = tw0[j] - int(kw) * DW;
                    // th >= 0 first: % and / of negatives would pass wrongly.
                    bool hit = th >= 0 && tw >= 0 && th % SH == 0 && tw % SW == 0;
                    uint oh = uint(th / SH), ow = uint(tw / SW);
                    hit = hit && oh < OH && ow < OW;
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

    for (uint i = 0; i < BC; ++i) {
        if (c0 + i >= CG)
            break;
        const uint xo = (n * C + g * CG + c0 + i) * npix;
        for (uint j = 0; j < BP; ++j) {
            uint p = p0 + j * lanes;
            if (p < npix) {
                float v = acc[i * BP + j];
                if (!STORE)
                    v += dx[xo + p];
                dx[xo + p] = v;
            }
        }
    }
}
