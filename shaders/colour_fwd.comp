#version 450
// img = sigmoid(M . raw) per pixel: Lucid's to_valid_rgb with its
// decorrelated colour space (src/optvis/image_ops.c). M mixes the C = 3
// channels of one pixel; with DECOR = 0 (or C = 1) it is the identity and
// this is a plain sigmoid.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 128) in;
#include "common/index.glsl"

layout(constant_id = 0) const uint C = 3;     // channels: 1, or 3 when DECOR
layout(constant_id = 1) const uint HW = 1;    // pixels per channel plane
layout(constant_id = 2) const uint B = 1;     // images
layout(constant_id = 3) const uint DECOR = 1; // 1: apply M (needs C == 3)
// M, row-major, rows = output channel (rgb[i] = sum_j M[i][j] raw[j]).
layout(constant_id = 4) const float M00 = 1.0;
layout(constant_id = 5) const float M01 = 0.0;
layout(constant_id = 6) const float M02 = 0.0;
layout(constant_id = 7) const float M10 = 0.0;
layout(constant_id = 8) const float M11 = 1.0;
layout(constant_id = 9) const float M12 = 0.0;
layout(constant_id = 10) const float M20 = 0.0;
layout(constant_id = 11) const float M21 = 0.0;
layout(constant_id = 12) const float M22 = 1.0;

// Two views of each buffer: vec4 when a plane holds a whole number of vec4
// (lavapipe loads a vec4 per lane as cheaply as a float), float otherwise.
layout(std430, set = 0, binding = 0) writeonly buffer Img4 { vec4 img4[]; }; // img: [B, C, H, W]
layout(std430, set = 0, binding = 0) writeonly buffer Img1 { float img1[]; };
layout(std430, set = 0, binding = 1) readonly buffer Raw4 { vec4 raw4[]; };  // raw: [B, C, H, W]
layout(std430, set = 0, binding = 1) readonly buffer Raw1 { float raw1[]; };
// With TEXEL (lvk_prefer_texel, planes of whole vec4s) the inputs are read
// through rgba32f texel views at the bindings after the storage buffers:
// one vectorised gather on lavapipe, where a vec4 storage-buffer load is a
// pass over the lanes.
layout(constant_id = 13) const bool TEXEL = false;
layout(set = 0, binding = 2) uniform textureBuffer raw_t;

const bool V4 = (HW % 4u) == 0u;
const uint UNITS = V4 ? HW / 4u : HW; // vec4s (or floats) per plane
const uint PER = 4;                   // units per invocation

vec4 load(uint i) { return TEXEL ? texelFetch(raw_t, int(i)) : V4 ? raw4[i] : vec4(raw1[i]); }

void store(uint i, vec4 v)
{
    if (V4)
        img4[i] = v;
    else
        img1[i] = v.x;
}

vec4 sigmoid(vec4 v) { return 1.0 / (1.0 + exp(-v)); }

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint base = (lvk_flat_index() - lid) * PER + lid;
    for (uint k = 0; k < PER; ++k) {
        uint u = base + k * gl_WorkGroupSize.x; // unit over [B, UNITS]
        if (u >= B * UNITS)
            return;
        uint b = u / UNITS, p = u - b * UNITS;
        uint i0 = b * C * UNITS + p; // channel 0 of this pixel (group)
        if (DECOR != 0u) {
            vec4 r0 = load(i0), r1 = load(i0 + UNITS), r2 = load(i0 + 2u * UNITS);
            store(i0, sigmoid(M00 * r0 + M01 * r1 + M02 * r2));
            store(i0 + UNITS, sigmoid(M10 * r0 + M11 * r1 + M12 * r2));
            store(i0 + 2u * UNITS, sigmoid(M20 * r0 + M21 * r1 + M22 * r2));
        } else {
            for (uint c = 0; c < C; ++c)
                store(i0 + c * UNITS, sigmoid(load(i0 + c * UNITS)));
        }
    }
}
