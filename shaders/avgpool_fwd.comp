#version 450
// Average pooling over the two spatial dims of [P, H, W] (P = N * C planes):
// one invocation per output. The divisor of each window is div[oh] *
// div[OH + ow], precomputed on the host (src/nn/ops/pool.c), which is where
// count_include_pad and ceil_mode clipping are decided.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
#include "common/index.glsl"

layout(constant_id = 0) const uint P = 1;      // planes: N * C
layout(constant_id = 1) const int H = 1;       // input height
layout(constant_id = 2) const int W = 1;       // input width
layout(constant_id = 3) const int OH = 1;      // output height
layout(constant_id = 4) const int OW = 1;      // output width
layout(constant_id = 5) const int KH = 1;      // kernel height
layout(constant_id = 6) const int KW = 1;      // kernel width
layout(constant_id = 7) const int SH = 1;      // stride
layout(constant_id = 8) const int SW = 1;
layout(constant_id = 9) const int PH = 0;      // top / left padding
layout(constant_id = 10) const int PW = 0;

layout(std430, set = 0, binding = 0) writeonly buffer Y { float y[]; };  // y: [P, OH, OW]
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; };   // x: [P, H, W]
layout(std430, set = 0, binding = 2) readonly buffer D { float div[]; }; // div: [OH + OW]

void main()
{
    uint i = lvk_flat_index();
    if (i >= P * uint(OH * OW))
        return;
    int ow = int(i % uint(OW));
    int oh = int(i / uint(OW) % uint(OH));
    uint base = i / uint(OH * OW) * uint(H * W);
    int h0 = max(oh * SH - PH, 0);
    int h1 = min(oh * SH - PH + KH, H);
    int w0 = max(ow * SW - PW, 0);
    int w1 = min(ow * SW - PW + KW, W);
    float acc = 0.0;
    for (int ih = h0; ih < h1; ih++)
        for (int iw = w0; iw < w1; iw++)
            acc += x[base + uint(ih * W + iw)];
    y[i] = acc / (div[oh] * div[OH + ow]);
}
