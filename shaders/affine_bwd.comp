#version 450
// Adjoint of affine_fwd.comp as a gather: input pixel (ix, iy) of image b
// collects w * y_grad from every output pixel one of whose four taps it is.
// A tap at (ix, iy) means the source position s lies in the open square
// (ix - 1, ix + 1) x (iy - 1, iy + 1); for an invertible A the output
// positions mapping there form the parallelogram
//   p = A^-1 (s + 0.5 - t) - 0.5,   s in that square.
// Its bounding box (from the four corners) bounds the rows searched; within
// a row the same condition, linear in x, bounds the columns, leaving about
// 4 / |det A| candidates. Each candidate's weight is recomputed exactly as
// the forward pass does, so a window that is too wide costs time, never
// accuracy; a (nearly) singular A, which src/optvis/transforms.c never
// produces, falls back to scanning every row.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 128) in;
#include "common/index.glsl"

layout(constant_id = 0) const uint B = 1;  // images
layout(constant_id = 1) const uint C = 3;  // channels
layout(constant_id = 2) const uint IH = 1; // input height
layout(constant_id = 3) const uint IW = 1; // input width
layout(constant_id = 4) const uint OH = 1; // output height
layout(constant_id = 5) const uint OW = 1; // output width
// Reads y_grad through the texel view at binding 3 (lvk_prefer_texel: one
// vectorised gather on lavapipe where an SSBO load is a pass over the
// lanes), else through the SSBO. Texel reads are not skipped for weights
// of 0 within a narrowed window (a fetch under a branch is a pass again):
// the product is selected away instead, so non-finite gradients outside
// the taps stay out, as with the skip.
layout(constant_id = 6) const bool TEXEL = false;

layout(std430, set = 0, binding = 0) buffer XG { float xg[]; };            // x_grad: [B, C, IH, IW]
layout(std430, set = 0, binding = 1) readonly buffer YG { float yg[]; };   // y_grad: [B, C, OH, OW]
layout(std430, set = 0, binding = 2) readonly buffer P { vec4 prm[]; };    // params: [B, 2] = (a, b, c, d), (tx, ty, 0, 0)
layout(set = 0, binding = 3) uniform textureBuffer yg_t;                    // y_grad again (r32f)

// Window bounds are computed in float and widened by ROW_EPS output pixels.
// Their error is a few ulp of the coordinates times the size of A^-1 (or
// divided by a row's slope), so only maps with |det A| > MIN_DET, and only
// slopes above MIN_SLOPE (enlargements of the content below 400x in area,
// 20x along an axis), narrow the window; others scan wider.
const float MIN_DET = 0.0025;
const float MIN_SLOPE = 0.05;
const float ROW_EPS = 0.1;

// Same as affine_fwd.comp, to the bit.
vec2 source(uint b, uint ox, uint oy)
{
    vec4 m = prm[2u * b], t = prm[2u * b + 1u];
    precise float px = float(ox) + 0.5, py = float(oy) + 0.5;
    precise float sx = m.x * px + m.y * py + t.x - 0.5;
    precise float sy = m.z * px + m.w * py + t.y - 0.5;
    return clamp(vec2(sx, sy), vec2(-2.0), vec2(float(IW) + 1.0, float(IH) + 1.0));
}

// Weight of input index i among the taps floor(s), floor(s) + 1 of s.
float tap_weight(float s, int i)
{
    float f = floor(s), l = s - f;
    int i0 = int(f);
    return i0 == i ? 1.0 - l : (i0 + 1 == i ? l : 0.0);
}

void main()
{
    uint i = lvk_flat_index(); // over [B, IH, IW]
    if (i >= B * IH * IW)
        return;
    uint b = i / (IH * IW), r = i - b * (IH * IW);
    uint iy = r / IW, ix = r - iy * IW;

    vec4 m = prm[2u * b], t = prm[2u * b + 1u];
    float det = m.x * m.w - m.y * m.z;
    uint xlo = 0u, xhi = OW - 1u, ylo = 0u, yhi = OH - 1u;
    const bool narrowed = abs(det) > MIN_DET;
    if (narrowed) {
        // A^-1 = [d -b; -c a] / det (GLSL constructors take columns).
        mat2 inv = mat2(m.w, -m.z, -m.y, m.x) / det;
        vec2 lo = vec2(1e30), hi = vec2(-1e30);
        for (int cy = -1; cy <= 1; cy += 2)
            for (int cx = -1; cx <= 1; cx += 2) {
                vec2 s = vec2(float(int(ix) + cx), float(int(iy) + cy));
                vec2 p = inv * (s + 0.5 - t.xy) - 0.5;
                lo = min(lo, p);
                hi = max(hi, p);
            }
        // Widened by ROW_EPS against rounding (|A^-1| <= max|A| / MIN_DET
        // keeps the error of p far below it), clamped in float first so
        // huge bounds cannot overflow the conversion.
        vec2 a = clamp(ceil(lo - ROW_EPS), vec2(0.0), vec2(float(OW - 1u), float(OH - 1u)));
        vec2 z = clamp(floor(hi + ROW_EPS), vec2(0.0), vec2(float(OW - 1u), float(OH - 1u)));
        xlo = uint(a.x); ylo = uint(a.y);
        xhi = uint(z.x); yhi = uint(z.y);
    }

    float acc[C];
    for (uint c = 0; c < C; ++c)
        acc[c] = 0.0;
    for (uint oy = ylo; oy <= yhi; ++oy) {
        // Along the row, s is linear in ox: s = (a, c) ox + e. Each axis
        // whose slope exceeds MIN_SLOPE narrows ox to where that coordinate
        // lies within 1 of the pixel.
        float ex = 0.5 * m.x + m.y * (float(oy) + 0.5) + t.x - 0.5;
        float ey = 0.5 * m.z + m.w * (float(oy) + 0.5) + t.y - 0.5;
        float lo = float(xlo), hi = float(xhi);
        if (abs(m.x) > MIN_SLOPE) {
            float u = (float(ix) - 1.0 - ex) / m.x, v = (float(ix) + 1.0 - ex) / m.x;
            lo = max(lo, min(u, v) - ROW_EPS);
            hi = min(hi, max(u, v) + ROW_EPS);
        }
        if (abs(m.z) > MIN_SLOPE) {
            float u = (float(iy) - 1.0 - ey) / m.z, v = (float(iy) + 1.0 - ey) / m.z;
            lo = max(lo, min(u, v) - ROW_EPS);
            hi = min(hi, max(u, v) + ROW_EPS);
        }
        if (!(lo <= hi)) // no candidate in this row
            continue;
        for (uint ox = uint(ceil(lo)); float(ox) <= hi; ++ox) {
            vec2 s = source(b, ox, oy);
            float w = tap_weight(s.x, int(ix)) * tap_weight(s.y, int(iy));
            if (w == 0.0 && !(TEXEL && narrowed))
                continue;
            for (uint c = 0; c < C; ++c) {
                uint k = ((b * C + c) * OH + oy) * OW + ox;
                float g = TEXEL ? texelFetch(yg_t, int(k)).x : yg[k];
                acc[c] += w != 0.0 ? w * g : 0.0;
            }
        }
    }
    for (uint c = 0; c < C; ++c)
        xg[(b * C + c) * IH * IW + r] += acc[c];
}
