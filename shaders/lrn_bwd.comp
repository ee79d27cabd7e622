#version 450
// Gradient of lrn_fwd.comp. With y_c = x_c s_c^-BETA and s_c summing x_j^2
// over channels j in [c - LO, c + HI]:
//   dx_j = dy_j s_j^-BETA - 2 ALPHA_N BETA x_j * sum over c in [j - HI, j + LO]
//          of dy_c y_c / s_c
// One invocation per element gathers over the channels whose window holds it.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
#include "common/index.glsl"

// Same constants as lrn_fwd.comp.
layout(constant_id = 0) const uint TOTAL = 1;      // N * C * S
layout(constant_id = 1) const uint C = 1;          // channels
layout(constant_id = 2) const uint S = 1;          // spatial size (channel stride)
layout(constant_id = 3) const uint LO = 0;         // floor((size - 1) / 2)
layout(constant_id = 4) const uint HI = 0;         // ceil((size - 1) / 2)
layout(constant_id = 5) const float ALPHA_N = 1.0; // alpha / size
layout(constant_id = 6) const float BETA = 0.75;

layout(std430, set = 0, binding = 0) buffer DX { float dx[]; };          // dx: [N, C, S]
layout(std430, set = 0, binding = 1) readonly buffer DY { float dy[]; }; // dy: [N, C, S]
layout(std430, set = 0, binding = 2) readonly buffer X { float x[]; };   // x: [N, C, S]
layout(std430, set = 0, binding = 3) readonly buffer Yb { float y[]; };  // y: [N, C, S]
layout(std430, set = 0, binding = 4) readonly buffer SC { float s[]; };  // s: [N, C, S]

void main()
{
    uint i = lvk_flat_index();
    if (i >= TOTAL)
        return;
    uint j = i / S % C;
    uint base = i - j * S;
    uint c1 = min(j + LO, C - 1);
    float acc = 0.0;
    for (uint c = j >= HI ? j - HI : 0; c <= c1; c++) {
        uint k = base + c * S;
        acc += dy[k] * y[k] / s[k];
    }
    dx[i] += dy[i] * pow(s[i], -BETA) - 2.0 * ALPHA_N * BETA * x[i] * acc;
}
