#version 450
// raw_grad += M^T . (img_grad * img * (1 - img)) per pixel: the adjoint of
// colour_fwd.comp, reading the sigmoid output it saved (src/optvis/image_ops.c).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 128) in;
#include "common/index.glsl"

layout(constant_id = 0) const uint C = 3;     // channels: 1, or 3 when DECOR
layout(constant_id = 1) const uint HW = 1;    // pixels per channel plane
layout(constant_id = 2) const uint B = 1;     // images
layout(constant_id = 3) const uint DECOR = 1; // 1: M was applied (C == 3)
// M as in colour_fwd.comp (row-major, rows = output channel).
layout(constant_id = 4) const float M00 = 1.0;
layout(constant_id = 5) const float M01 = 0.0;
layout(constant_id = 6) const float M02 = 0.0;
layout(constant_id = 7) const float M10 = 0.0;
layout(constant_id = 8) const float M11 = 1.0;
layout(constant_id = 9) const float M12 = 0.0;
layout(constant_id = 10) const float M20 = 0.0;
layout(constant_id = 11) const float M21 = 0.0;
layout(constant_id = 12) const float M22 = 1.0;

// vec4 and float views, as in colour_fwd.comp.
layout(std430, set = 0, binding = 0) buffer RawG4 { vec4 rg4[]; };          // raw_grad: [B, C, H, W]
layout(std430, set = 0, binding = 0) buffer RawG1 { float rg1[]; };
layout(std430, set = 0, binding = 1) readonly buffer ImgG4 { vec4 ig4[]; }; // img_grad: [B, C, H, W]
layout(std430, set = 0, binding = 1) readonly buffer ImgG1 { float ig1[]; };
layout(std430, set = 0, binding = 2) readonly buffer Img4 { vec4 y4[]; };   // img: [B, C, H, W]
layout(std430, set = 0, binding = 2) readonly buffer Img1 { float y1[]; };
// With TEXEL (lvk_prefer_texel, planes of whole vec4s) the inputs are read
// through rgba32f texel views at the bindings after the storage buffers:
// one vectorised gather on lavapipe, where a vec4 storage-buffer load is a
// pass over the lanes.
layout(constant_id = 13) const bool TEXEL = false;
layout(set = 0, binding = 3) uniform textureBuffer rg_t;
layout(set = 0, binding = 4) uniform textureBuffer ig_t;
layout(set = 0, binding = 5) uniform textureBuffer y_t;

const bool V4 = (HW % 4u) == 0u;
const uint UNITS = V4 ? HW / 4u : HW;
const uint PER = 4;

// Gradient at the sigmoid's input: dL/dz = dL/dy * y * (1 - y).
vec4 dz(uint i)
{
    vec4 y = TEXEL ? texelFetch(y_t, int(i)) : V4 ? y4[i] : vec4(y1[i]);
    vec4 g = TEXEL ? texelFetch(ig_t, int(i)) : V4 ? ig4[i] : vec4(ig1[i]);
    return g * y * (1.0 - y);
}

void accum(uint i, vec4 v)
{
    if (TEXEL)
        rg4[i] = texelFetch(rg_t, int(i)) + v; // each element read, then written, by one invocation
    else if (V4)
        rg4[i] += v;
    else
        rg1[i] += v.x;
}

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint base = (lvk_flat_index() - lid) * PER + lid;
    for (uint k = 0; k < PER; ++k) {
        uint u = base + k * gl_WorkGroupSize.x;
        if (u >= B * UNITS)
            return;
        uint b = u / UNITS, p = u - b * UNITS;
        uint i0 = b * C * UNITS + p;
        if (DECOR != 0u) {
            vec4 z0 = dz(i0), z1 = dz(i0 + UNITS), z2 = dz(i0 + 2u * UNITS);
            // Column j of M maps dz to raw channel j.
            accum(i0, M00 * z0 + M10 * z1 + M20 * z2);
            accum(i0 + UNITS, M01 * z0 + M11 * z1 + M21 * z2);
            accum(i0 + 2u * UNITS, M02 * z0 + M12 * z1 + M22 * z2);
        } else {
            for (uint c = 0; c < C; ++c)
                accum(i0 + c * UNITS, dz(i0 + c * UNITS));
        }
    }
}
