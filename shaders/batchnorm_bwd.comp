#version 450
// Gradient of batchnorm_fwd.comp with respect to x: dx += dy * ab[c].
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
#include "common/index.glsl"

// Same constants as batchnorm_fwd.comp.
layout(constant_id = 0) const uint TOTAL = 1; // N * C * S
layout(constant_id = 1) const uint C = 1;     // channels
layout(constant_id = 2) const uint S = 1;     // spatial size (channel stride)

layout(std430, set = 0, binding = 0) buffer DX { float dx[]; };           // dx: [N, C, S]
layout(std430, set = 0, binding = 1) readonly buffer DY { float dy[]; };  // dy: [N, C, S]
layout(std430, set = 0, binding = 2) readonly buffer AB { float ab[]; };  // ab: [2, C] scale, shift

void main()
{
    uint i = lvk_flat_index();
    if (i >= TOTAL)
        return;
    dx[i] += dy[i] * ab[i / S % C];
}
