#version 450
// Softmax (LOG = false) or LogSoftmax (LOG = true) along one axis of x viewed
// as [OUTER, L, INNER]; one invocation per row (an OUTER, INNER pair), which
// walks its L elements INNER apart. The row maximum is subtracted first, so
// large inputs do not overflow.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
#include "common/index.glsl"

layout(constant_id = 0) const uint ROWS = 1;  // OUTER * INNER
layout(constant_id = 1) const uint L = 1;     // length of the softmax axis
layout(constant_id = 2) const uint INNER = 1; // stride of the softmax axis
layout(constant_id = 3) const bool LOG = false;

layout(std430, set = 0, binding = 0) writeonly buffer Y { float y[]; }; // y: [OUTER, L, INNER]
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; };  // x: [OUTER, L, INNER]

void main()
{
    uint r = lvk_flat_index();
    if (r >= ROWS)
        return;
    uint base = r / INNER * L * INNER + r % INNER;
    float mx = x[base];
    for (uint k = 1; k < L; k++)
        mx = max(mx, x[base + k * INNER]);
    float sum = 0.0;
    for (uint k = 0; k < L; k++)
        sum += exp(x[base + k * INNER] - mx);
    float lse = mx + log(sum);
    float inv = 1.0 / sum;
    for (uint k = 0; k < L; k++) {
        uint e = base + k * INNER;
        y[e] = LOG ? x[e] - lse : exp(x[e] - mx) * inv;
    }
}
