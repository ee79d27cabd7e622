#version 450
// Per-image affine resampling with bilinear taps (src/optvis/transforms.c).
// Output pixel (x, y) of image b samples the input at
//   s = A_b . (x + 0.5, y + 0.5) + t_b - 0.5
// in input pixel-index coordinates (pixel centres at integers): A_b maps
// pixel-centre positions, the -0.5 returns to indices. Taps outside the
// input read the constant PAD, so the output is
//   sum over the 4 taps of w_tap * (inside ? x[tap] : PAD).
// A_b and t_b come from a buffer the host rewrites every step.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 128) in;
#include "common/index.glsl"

layout(constant_id = 0) const uint B = 1;      // images
layout(constant_id = 1) const uint C = 3;      // channels
layout(constant_id = 2) const uint IH = 1;     // input height
layout(constant_id = 3) const uint IW = 1;     // input width
layout(constant_id = 4) const uint OH = 1;     // output height
layout(constant_id = 5) const uint OW = 1;     // output width
layout(constant_id = 6) const float PAD = 0.5; // value outside the input
// Reads x through the texel view at binding 3 (lvk_prefer_texel: one
// vectorised gather on lavapipe where an SSBO load is a pass over the
// lanes), else through the SSBO. Either way every tap is read, at a clamped
// index, and taps outside are replaced by PAD afterwards.
layout(constant_id = 7) const bool TEXEL = false;

layout(std430, set = 0, binding = 0) writeonly buffer Y { float y[]; };   // y: [B, C, OH, OW]
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; };    // x: [B, C, IH, IW]
layout(std430, set = 0, binding = 2) readonly buffer P { vec4 prm[]; };   // params: [B, 2] = (a, b, c, d), (tx, ty, 0, 0)
layout(set = 0, binding = 3) uniform textureBuffer x_t;                   // x again (r32f)

const uint PER = 2;

// Source position of output pixel (ox, oy) of image b. `precise` forbids
// contracting into FMAs, so affine_bwd.comp, which repeats this expression,
// computes the same floats and its weights match these exactly. Clamping to
// [-2, size + 1] keeps the int conversion defined and changes nothing:
// every tap of a position beyond -1 or size is outside the input anyway.
vec2 source(uint b, uint ox, uint oy)
{
    vec4 m = prm[2u * b], t = prm[2u * b + 1u];
    precise float px = float(ox) + 0.5, py = float(oy) + 0.5;
    precise float sx = m.x * px + m.y * py + t.x - 0.5;
    precise float sy = m.z * px + m.w * py + t.y - 0.5;
    return clamp(vec2(sx, sy), vec2(-2.0), vec2(float(IW) + 1.0, float(IH) + 1.0));
}

float tap(uint k)
{
    return TEXEL ? texelFetch(x_t, int(k)).x : x[k];
}

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint base = (lvk_flat_index() - lid) * PER + lid;
    for (uint k = 0; k < PER; ++k) {
        uint i = base + k * gl_WorkGroupSize.x; // over [B, OH, OW]
        if (i >= B * OH * OW)
            return;
        uint b = i / (OH * OW), r = i - b * (OH * OW);
        uint oy = r / OW, ox = r - oy * OW;
        vec2 s = source(b, ox, oy);
        vec2 f = floor(s), l = s - f;
        int x0 = int(f.x), y0 = int(f.y);
        bool inx0 = x0 >= 0 && x0 < int(IW), inx1 = x0 + 1 >= 0 && x0 + 1 < int(IW);
        bool iny0 = y0 >= 0 && y0 < int(IH), iny1 = y0 + 1 >= 0 && y0 + 1 < int(IH);
        // Clamped tap indices: the reads stay in bounds whatever the branch
        // taken; outside taps are replaced by PAD below.
        uint cx0 = uint(clamp(x0, 0, int(IW) - 1)), cx1 = uint(clamp(x0 + 1, 0, int(IW) - 1));
        uint cy0 = uint(clamp(y0, 0, int(IH) - 1)), cy1 = uint(clamp(y0 + 1, 0, int(IH) - 1));
        for (uint c = 0; c < C; ++c) {
            uint p = (b * C + c) * IH * IW;
            float v00 = tap(p + cy0 * IW + cx0), v01 = tap(p + cy0 * IW + cx1);
            float v10 = tap(p + cy1 * IW + cx0), v11 = tap(p + cy1 * IW + cx1);
            v00 = inx0 && iny0 ? v00 : PAD;
            v01 = inx1 && iny0 ? v01 : PAD;
            v10 = inx0 && iny1 ? v10 : PAD;
            v11 = inx1 && iny1 ? v11 : PAD;
            y[((b * C + c) * OH + oy) * OW + ox] =
                (1.0 - l.y) * ((1.0 - l.x) * v00 + l.x * v01) + l.y * ((1.0 - l.x) * v10 + l.x * v11);
        }
    }
}
