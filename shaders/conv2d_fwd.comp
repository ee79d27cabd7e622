#version 450
// Direct 2-D convolution, forward: y = conv(x, w) + b, grouped, strided,
// dilated and padded (zeros). Each invocation computes BC output channels x
// BP output pixels. The channel block comes from the workgroup id, so weight
// and bias reads are the same address in every lane (one load plus a
// broadcast on lavapipe, a cached scalar load on GPUs); the BP pixels of an
// invocation are gl_WorkGroupSize.x apart, so consecutive lanes read
// consecutive input pixels.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
#include "common/conv2d.glsl"

layout(constant_id = 18) const bool HAS_BIAS = false; // b is bound but unread when false
// A Relu/ReLU6 fused into this convolution (lvk_node.act): y = clamp(conv, LO, HI).
layout(constant_id = 19) const bool HAS_ACT = false;
layout(constant_id = 20) const float ACT_LO = 0.0;
layout(constant_id = 21) const float ACT_HI = 0.0;
// An Add fused into this convolution (lvk_node.sum): y = conv + r, before the clamp.
layout(constant_id = 22) const bool HAS_RESID = false; // r is bound but unread when false

layout(std430, set = 0, binding = 0) writeonly buffer Y { float y[]; };  // y: [N, M, OH, OW]
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; };   // x: [N, C, H, W]
layout(std430, set = 0, binding = 2) readonly buffer Wt { float w[]; };  // w: [M, CG, KH, KW]
layout(std430, set = 0, binding = 3) readonly buffer B { float b[]; };   // b: [M]
layout(std430, set = 0, binding = 4) readonly buffer R { float r[]; };   // r: [N, M, OH, OW]

void main()
{
    const uint npix = OH * OW;
    const uint lanes = gl_WorkGroupSize.x;
    const uint p0 = gl_WorkGroupID.x * (BP * lanes) + gl_LocalInvocationID.x;
    if (p0 >= npix)
        return;

    const uint nblk = (MG + BC - 1) / BC;
    const uint g = gl_WorkGroupID.y / nblk;
    const uint m0 = g * MG + (gl_WorkGroupID.y % nblk) * BC;   // first output channel
    const uint mend = g * MG + MG;
    const uint n = gl_WorkGroupID.z;

    // Top-left input tap of each pixel; pixels past the end repeat the last
    // one so the loop needs no guard (their results are not stored).
    int ih0[BP], iw0[BP];
    for (uint j = 0; j < BP; ++j) {
        uint p = min(p0 + j * lanes, npix - 1);
        ih0[j] = int(p / OW) * SH - PT;
        iw0[j] = int(p % OW) * SW - PL;
    }

    float acc[BC * BP];
    for (uint i = 0; i < BC; ++i) {
        // Channels past the group's end are clamped: computed, not stored.
        float bias = HAS_BIAS ? b[min(m0 + i, mend - 1)] : 0.0;
        for (uint j = 0; j < BP; ++j)
            acc[i * BP + j] = bias;
    }

    const uint xn = (n * C + g * CG) * H * W;
    for (uint c = 0; c < CG; ++c) {
        const uint xc = xn + c * H * W;
        for (uint kh = 0; kh < KH; ++kh) {
            for (uint kw = 0; kw < KW; ++kw) {
                float xv[BP];
                for (uint j = 0; j < BP; ++j) {
                    int ih = ih0[j] + int(kh) * DH;
                    int iw = iw0[j] + int(kw) * DW;
                    bool inside = uint(ih) < H && uint(iw) < W;
                    // Clamp the address rather than branch around the load:
                    // padding reads element 0 and is then replaced by zero.
                    float v = x[inside ? xc + uint(ih) * W + uint(iw) : 0u];
                    xv[j] = inside ? v : 0.0;
                }
                const uint wk = c * KK + kh * KW + kw;
                for (uint i = 0; i < BC; ++i) {
                    float wv = w[min(m0 + i, mend - 1) * CG * KK + wk];
                    for (uint j = 0; j < BP; ++j)
                        acc[i * BP + j] = fma(wv, xv[j], acc[i * BP + j]);
                }
            }
        }
    }

    for (uint i = 0; i < BC; ++i) {
        if (m0 + i >= mend)
            break;
        const uint yo = (n * M + m0 + i) * npix;
        for (uint j = 0; j < BP; ++j) {
            uint p = p0 + j * lanes;
            if (p < npix) {
                float v = acc[i * BP + j] + (HAS_RESID ? r[yo + p] : 0.0);
                y[yo + p] = HAS_ACT ? min(max(v, ACT_LO), ACT_HI) : v;
            }
        }
    }
}
