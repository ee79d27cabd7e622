#version 450
// y[o] = SCALE * sum of x over the reduced axes (ReduceSum: SCALE = 1,
// ReduceMean: 1 / count). The host merges adjacent axes of one kind, so any
// set of axes of a tensor of up to 6 dims is at most 3 kept groups K and 3
// reduced groups R, each with its size and its stride in x. One invocation
// per output element.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
#include "common/index.glsl"

layout(constant_id = 0) const uint K0 = 1;   // kept group sizes, outermost first:
layout(constant_id = 1) const uint K1 = 1;   // y is [K0, K1, K2] in row-major order
layout(constant_id = 2) const uint K2 = 1;
layout(constant_id = 3) const uint KS0 = 1;  // their strides in x
layout(constant_id = 4) const uint KS1 = 1;
layout(constant_id = 5) const uint KS2 = 1;
layout(constant_id = 6) const uint R0 = 1;   // reduced group sizes
layout(constant_id = 7) const uint R1 = 1;
layout(constant_id = 8) const uint R2 = 1;
layout(constant_id = 9) const uint RS0 = 0;  // their strides in x
layout(constant_id = 10) const uint RS1 = 0;
layout(constant_id = 11) const uint RS2 = 0;
layout(constant_id = 12) const float SCALE = 1.0; // 1, or 1 / (R0 * R1 * R2) for a mean

layout(std430, set = 0, binding = 0) writeonly buffer Y { float y[]; }; // y: [K0 * K1 * K2]
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; };  // x: the input, any shape

void main()
{
    uint o = lvk_flat_index();
    if (o >= K0 * K1 * K2)
        return;
    uint base = o / (K1 * K2) * KS0 + o / K2 % K1 * KS1 + o % K2 * KS2;
    float acc = 0.0;
    for (uint r0 = 0; r0 < R0; r0++)
        for (uint r1 = 0; r1 < R1; r1++)
            for (uint r2 = 0; r2 < R2; r2++)
                acc += x[base + r0 * RS0 + r1 * RS1 + r2 * RS2];
    y[o] = acc * SCALE;
}
