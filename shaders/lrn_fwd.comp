#version 450
// Local response normalisation across channels (ONNX LRN):
//   s = BIAS + ALPHA_N * sum of x^2 over channels [c - LO, c + HI]
//   y = x * s^-BETA
// x is viewed as [N, C, S] (S: the spatial dims flattened). s is saved for
// lrn_bwd. One invocation per element.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
#include "common/index.glsl"

layout(constant_id = 0) const uint TOTAL = 1;      // N * C * S
layout(constant_id = 1) const uint C = 1;          // channels
layout(constant_id = 2) const uint S = 1;          // spatial size (channel stride)
layout(constant_id = 3) const uint LO = 0;         // floor((size - 1) / 2)
layout(constant_id = 4) const uint HI = 0;         // ceil((size - 1) / 2)
layout(constant_id = 5) const float ALPHA_N = 1.0; // alpha / size
layout(constant_id = 6) const float BETA = 0.75;
layout(constant_id = 7) const float BIAS = 1.0;

layout(std430, set = 0, binding = 0) writeonly buffer Y { float y[]; };  // y: [N, C, S]
layout(std430, set = 0, binding = 1) writeonly buffer SC { float s[]; }; // s: [N, C, S]
layout(std430, set = 0, binding = 2) readonly buffer X { float x[]; };   // x: [N, C, S]

void main()
{
    uint i = lvk_flat_index();
    if (i >= TOTAL)
        return;
    uint c = i / S % C;
    uint base = i - c * S; // channel 0 of this pixel
    uint c1 = min(c + HI, C - 1);
    float sum = 0.0;
    for (uint k = c >= LO ? c - LO : 0; k <= c1; k++) {
        float v = x[base + k * S];
        sum += v * v;
    }
    float sc = BIAS + ALPHA_N * sum;
    s[i] = sc;
    y[i] = x[i] * pow(sc, -BETA);
}
