#version 450
// Model preprocessing (struct lvk_preproc, include/lucidvk/preproc.h):
// x[b, d(c)] = (LO + t[b, c] * (HI - LO) - MEAN[c]) / STD[c], with
// d(c) = C - 1 - c when BGR (channels reversed) else c. Means and stds are
// indexed by the source (RGB) channel, as lvk_preproc_apply() does.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 128) in;
#include "common/index.glsl"

layout(constant_id = 0) const uint C = 3;   // channels (1..3)
layout(constant_id = 1) const uint HW = 1;  // pixels per channel plane
layout(constant_id = 2) const uint B = 1;   // images
layout(constant_id = 3) const uint BGR = 0; // 1: reverse the channel order
layout(constant_id = 4) const float LO = 0.0;
layout(constant_id = 5) const float HI = 1.0;
layout(constant_id = 6) const float MEAN0 = 0.0;
layout(constant_id = 7) const float MEAN1 = 0.0;
layout(constant_id = 8) const float MEAN2 = 0.0;
layout(constant_id = 9) const float STD0 = 1.0;
layout(constant_id = 10) const float STD1 = 1.0;
layout(constant_id = 11) const float STD2 = 1.0;

// vec4 and float views of each buffer (vec4 when planes hold whole vec4s).
layout(std430, set = 0, binding = 0) writeonly buffer X4 { vec4 x4[]; }; // x: [B, C, H, W] (model input)
layout(std430, set = 0, binding = 0) writeonly buffer X1 { float x1[]; };
layout(std430, set = 0, binding = 1) readonly buffer T4 { vec4 t4[]; };  // t: [B, C, H, W] in [0, 1]
layout(std430, set = 0, binding = 1) readonly buffer T1 { float t1[]; };
// With TEXEL (lvk_prefer_texel, planes of whole vec4s) the inputs are read
// through rgba32f texel views at the bindings after the storage buffers:
// one vectorised gather on lavapipe, where a vec4 storage-buffer load is a
// pass over the lanes.
layout(constant_id = 12) const bool TEXEL = false;
layout(set = 0, binding = 2) uniform textureBuffer t_t;

const bool V4 = (HW % 4u) == 0u;
const uint UNITS = V4 ? HW / 4u : HW;
const uint PER = 4;

float mean_of(uint c) { return c == 0u ? MEAN0 : c == 1u ? MEAN1 : MEAN2; }
float std_of(uint c) { return c == 0u ? STD0 : c == 1u ? STD1 : STD2; }

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint base = (lvk_flat_index() - lid) * PER + lid;
    for (uint k = 0; k < PER; ++k) {
        uint u = base + k * gl_WorkGroupSize.x; // unit over [B, C, UNITS]
        if (u >= B * C * UNITS)
            return;
        uint plane = u / UNITS, p = u - plane * UNITS;
        uint b = plane / C, c = plane - b * C;
        uint dst = (b * C + (BGR != 0u ? C - 1u - c : c)) * UNITS + p;
        float m = mean_of(c), s = std_of(c);
        if (V4)
            x4[dst] = (LO + (TEXEL ? texelFetch(t_t, int(u)) : t4[u]) * (HI - LO) - m) / s;
        else
            x1[dst] = (LO + t1[u] * (HI - LO) - m) / s;
    }
}
