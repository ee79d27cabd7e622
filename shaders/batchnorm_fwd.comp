#version 450
// Inference-mode batch normalisation, folded on the host into one scale and
// one shift per channel: y = x * ab[c] + ab[C + c], x viewed as [N, C, S].
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
#include "common/index.glsl"

layout(constant_id = 0) const uint TOTAL = 1; // N * C * S
layout(constant_id = 1) const uint C = 1;     // channels
layout(constant_id = 2) const uint S = 1;     // spatial size (channel stride)

layout(std430, set = 0, binding = 0) writeonly buffer Y { float y[]; }; // y: [N, C, S]
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; };  // x: [N, C, S]
layout(std430, set = 0, binding = 2) readonly buffer AB { float ab[]; }; // ab: [2, C] scale, shift

void main()
{
    uint i = lvk_flat_index();
    if (i >= TOTAL)
        return;
    uint c = i / S % C;
    y[i] = x[i] * ab[c] + ab[C + c];
}
