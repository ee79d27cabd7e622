#version 450
// Gradient of softmax_fwd.comp from its output y, one invocation per row:
//   Softmax:    dx_k += y_k (dy_k - sum_j dy_j y_j)
//   LogSoftmax: dx_k += dy_k - exp(y_k) sum_j dy_j
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
#include "common/index.glsl"

// Same constants as softmax_fwd.comp.
layout(constant_id = 0) const uint ROWS = 1;  // OUTER * INNER
layout(constant_id = 1) const uint L = 1;     // length of the softmax axis
layout(constant_id = 2) const uint INNER = 1; // stride of the softmax axis
layout(constant_id = 3) const bool LOG = false;

layout(std430, set = 0, binding = 0) buffer DX { float dx[]; };          // dx: [OUTER, L, INNER]
layout(std430, set = 0, binding = 1) readonly buffer DY { float dy[]; }; // dy: [OUTER, L, INNER]
layout(std430, set = 0, binding = 2) readonly buffer Yb { float y[]; };  // y: [OUTER, L, INNER]

void main()
{
    uint r = lvk_flat_index();
    if (r >= ROWS)
        return;
    uint base = r / INNER * L * INNER + r % INNER;
    float dot = 0.0;
    for (uint k = 0; k < L; k++) {
        uint e = base + k * INNER;
        dot += LOG ? dy[e] : dy[e] * y[e];
    }
    for (uint k = 0; k < L; k++) {
        uint e = base + k * INNER;
        dx[e] += LOG ? dy[e] - exp(y[e]) * dot : y[e] * (dy[e] - dot);
    }
}
