#version 450
// Adjoint of prep_fwd.comp: t_grad[b, c] += x_grad[b, d(c)] * (HI - LO) / STD[c].
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 128) in;
#include "common/index.glsl"

layout(constant_id = 0) const uint C = 3;   // channels (1..3)
layout(constant_id = 1) const uint HW = 1;  // pixels per channel plane
layout(constant_id = 2) const uint B = 1;   // images
layout(constant_id = 3) const uint BGR = 0; // 1: channels were reversed
layout(constant_id = 4) const float LO = 0.0;
layout(constant_id = 5) const float HI = 1.0;
layout(constant_id = 6) const float STD0 = 1.0;
layout(constant_id = 7) const float STD1 = 1.0;
layout(constant_id = 8) const float STD2 = 1.0;

layout(std430, set = 0, binding = 0) buffer TG4 { vec4 tg4[]; };          // t_grad: [B, C, H, W]
layout(std430, set = 0, binding = 0) buffer TG1 { float tg1[]; };
layout(std430, set = 0, binding = 1) readonly buffer XG4 { vec4 xg4[]; }; // x_grad: [B, C, H, W]
layout(std430, set = 0, binding = 1) readonly buffer XG1 { float xg1[]; };
// With TEXEL (lvk_prefer_texel, planes of whole vec4s) the inputs are read
// through rgba32f texel views at the bindings after the storage buffers:
// one vectorised gather on lavapipe, where a vec4 storage-buffer load is a
// pass over the lanes.
layout(constant_id = 9) const bool TEXEL = false;
layout(set = 0, binding = 2) uniform textureBuffer tg_t;
layout(set = 0, binding = 3) uniform textureBuffer xg_t;

const bool V4 = (HW % 4u) == 0u;
const uint UNITS = V4 ? HW / 4u : HW;
const uint PER = 4;

float std_of(uint c) { return c == 0u ? STD0 : c == 1u ? STD1 : STD2; }

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint base = (lvk_flat_index() - lid) * PER + lid;
    for (uint k = 0; k < PER; ++k) {
        uint u = base + k * gl_WorkGroupSize.x; // unit over [B, C, UNITS] of t
        if (u >= B * C * UNITS)
            return;
        uint plane = u / UNITS, p = u - plane * UNITS;
        uint b = plane / C, c = plane - b * C;
        uint src = (b * C + (BGR != 0u ? C - 1u - c : c)) * UNITS + p;
        float f = (HI - LO) / std_of(c);
        if (TEXEL) // each element of t_grad read, then written, by one invocation
            tg4[u] = texelFetch(tg_t, int(u)) + f * texelFetch(xg_t, int(src));
        else if (V4)
            tg4[u] += f * xg4[src];
        else
            tg1[u] += f * xg1[src];
    }
}
