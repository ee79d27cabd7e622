#version 450
// d(diversity)/dG_b = sum_j M[b, j] G_j, with M from diversity_mix.comp.
// One invocation per entry.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
#include "common/index.glsl"

layout(constant_id = 0) const uint B = 2; // images
layout(constant_id = 1) const uint N = 1; // entries of one Gram matrix (C*C)

layout(std430, set = 0, binding = 0) writeonly buffer D { float dgram[]; }; // dgram: [B, N]
layout(std430, set = 0, binding = 1) readonly buffer G { float gram[]; };   // gram: [B, N]
layout(std430, set = 0, binding = 2) readonly buffer Mix { float mix[]; };  // mix: [2, B, B]

void main()
{
    uint i = lvk_flat_index();
    if (i >= B * N)
        return;
    uint e = i % N, b = i / N;
    float acc = 0.0;
    for (uint j = 0; j < B; j++)
        acc += mix[B * B + b * B + j] * gram[j * N + e];
    dgram[i] = acc;
}
