#version 450
// Bilinear resize of N planes from h x w to H x W with half-pixel centres
// (align_corners = False, PyTorch's F.interpolate(mode="bilinear")): source
// coordinate s = (o + 0.5) * in / out - 0.5, clamped below at 0, taps
// floor(s) and floor(s) + 1 (clamped to the last row/column). Lucid's
// lowres parameterization (src/optvis/image_ops.c).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 128) in;
#include "common/index.glsl"

layout(constant_id = 0) const uint N = 1;  // planes (B * C)
layout(constant_id = 1) const uint IH = 1; // input height h
layout(constant_id = 2) const uint IW = 1; // input width w
layout(constant_id = 3) const uint OH = 1; // output height H
layout(constant_id = 4) const uint OW = 1; // output width W

layout(std430, set = 0, binding = 0) writeonly buffer Y { float y[]; }; // y: [N, H, W]
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; };  // x: [N, h, w]

const uint PER = 4;

// Taps i0, i1 and the weight l1 of i1 (i0 gets 1 - l1) for output index o
// along an axis resized from n_in to n_out samples. upsample_bwd.comp
// evaluates the same expression, so its weights are these to the bit.
void taps(uint o, uint n_in, uint n_out, out uint i0, out uint i1, out float l1)
{
    float s = max((float(o) + 0.5) * (float(n_in) / float(n_out)) - 0.5, 0.0);
    i0 = min(uint(s), n_in - 1u);
    i1 = min(i0 + 1u, n_in - 1u);
    l1 = s - float(i0);
}

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint base = (lvk_flat_index() - lid) * PER + lid;
    for (uint k = 0; k < PER; ++k) {
        uint i = base + k * gl_WorkGroupSize.x; // over [N, H, W]
        if (i >= N * OH * OW)
            return;
        uint n = i / (OH * OW), r = i - n * (OH * OW);
        uint oy = r / OW, ox = r - oy * OW;
        uint y0, y1, x0, x1;
        float ly, lx;
        taps(oy, IH, OH, y0, y1, ly);
        taps(ox, IW, OW, x0, x1, lx);
        uint p = n * IH * IW;
        float top = (1.0 - lx) * x[p + y0 * IW + x0] + lx * x[p + y0 * IW + x1];
        float bot = (1.0 - lx) * x[p + y1 * IW + x0] + lx * x[p + y1 * IW + x1];
        y[i] = (1.0 - ly) * top + ly * bot;
    }
}
