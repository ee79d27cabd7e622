#version 450
// Adjoint of upsample_fwd.comp as a gather: x_grad[n, iy, ix] += sum over
// the output pixels (oy, ox) whose taps include (iy, ix) of
// wy(oy, iy) * wx(ox, ix) * y_grad[n, oy, ox]. The resize is separable, so
// the window is a product of two 1-D ranges: along one axis, output o reads
// input i only when |s(o) - i| < 1, i.e. for o in
// ((i - 0.5) * out / in - 0.5, (i + 1.5) * out / in - 0.5), widened by one
// sample each side against rounding; clamping s at 0 only moves weight onto
// i = 0, whose range already starts at o = 0.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 128) in;
#include "common/index.glsl"

layout(constant_id = 0) const uint N = 1;  // planes (B * C)
layout(constant_id = 1) const uint IH = 1; // input height h
layout(constant_id = 2) const uint IW = 1; // input width w
layout(constant_id = 3) const uint OH = 1; // output height H
layout(constant_id = 4) const uint OW = 1; // output width W

layout(std430, set = 0, binding = 0) buffer XG { float xg[]; };          // x_grad: [N, h, w]
layout(std430, set = 0, binding = 1) readonly buffer YG { float yg[]; }; // y_grad: [N, H, W]

const uint PER = 4;

// Same as upsample_fwd.comp.
void taps(uint o, uint n_in, uint n_out, out uint i0, out uint i1, out float l1)
{
    float s = max((float(o) + 0.5) * (float(n_in) / float(n_out)) - 0.5, 0.0);
    i0 = min(uint(s), n_in - 1u);
    i1 = min(i0 + 1u, n_in - 1u);
    l1 = s - float(i0);
}

// Weight of input index i in output o along one axis (both taps may be i
// at the last sample, where they add up to 1).
float weight(uint o, uint i, uint n_in, uint n_out)
{
    uint i0, i1;
    float l1;
    taps(o, n_in, n_out, i0, i1, l1);
    return (i0 == i ? 1.0 - l1 : 0.0) + (i1 == i ? l1 : 0.0);
}

// Candidate outputs [lo, hi] for input i along one axis.
void window(uint i, uint n_in, uint n_out, out uint lo, out uint hi)
{
    float r = float(n_out) / float(n_in);
    float a = floor((float(i) - 0.5) * r - 0.5) - 1.0;
    float b = ceil((float(i) + 1.5) * r - 0.5) + 1.0;
    lo = uint(clamp(a, 0.0, float(n_out - 1u)));
    hi = uint(clamp(b, 0.0, float(n_out - 1u)));
}

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint base = (lvk_flat_index() - lid) * PER + lid;
    for (uint k = 0; k < PER; ++k) {
        uint i = base + k * gl_WorkGroupSize.x; // over [N, h, w]
        if (i >= N * IH * IW)
            return;
        uint n = i / (IH * IW), r = i - n * (IH * IW);
        uint iy = r / IW, ix = r - iy * IW;
        uint ylo, yhi, xlo, xhi;
        window(iy, IH, OH, ylo, yhi);
        window(ix, IW, OW, xlo, xhi);
        float acc = 0.0;
        for (uint oy = ylo; oy <= yhi; ++oy) {
            float wy = weight(oy, iy, IH, OH);
            if (wy == 0.0)
                continue;
            uint row = (n * OH + oy) * OW;
            float s = 0.0;
            for (uint ox = xlo; ox <= xhi; ++ox)
                s += weight(ox, ix, IW, OW) * yg[row + ox];
            acc += wy * s;
        }
        xg[i] += acc;
    }
}
