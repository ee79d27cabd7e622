#version 450
// Gradient of average pooling: dx[p, ih, iw] += sum over the windows that
// contain (ih, iw) of dy / divisor. One invocation per input pixel, so every
// element has one writer (no atomics).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
#include "common/index.glsl"

// Same constants as avgpool_fwd.comp.
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

layout(std430, set = 0, binding = 0) buffer DX { float dx[]; };          // dx: [P, H, W]
layout(std430, set = 0, binding = 1) readonly buffer DY { float dy[]; }; // dy: [P, OH, OW]
layout(std430, set = 0, binding = 2) readonly buffer D { float div[]; }; // div: [OH + OW]

// The windows that may hold a pixel: the last one starting at or before it,
// and the NH - 1 (NW - 1) before that; never more than there are windows
// (a global pool has one). Fixed trip counts unroll, and loads at clamped
// indices need no branch; candidates that do not hold the pixel add nothing.
const int NH0 = (KH - 1) / SH + 1;
const int NW0 = (KW - 1) / SW + 1;
const int NH = NH0 < OH ? NH0 : OH;
const int NW = NW0 < OW ? NW0 : OW;

void main()
{
    uint i = lvk_flat_index();
    if (i >= P * uint(H * W))
        return;
    int ih = int(i / uint(W) % uint(H));
    int iw = int(i % uint(W));
    uint obase = i / uint(H * W) * uint(OH * OW);

    int ohl = min((ih + PH) / SH, OH - 1);
    int owl = min((iw + PW) / SW, OW - 1);
    float acc = 0.0;
    for (int t = 0; t < NH; t++) {
        int oh = ohl - t;
        bool vh = oh >= 0 && ih < oh * SH - PH + KH;
        int ohc = max(oh, 0);
        float row = 0.0;
        for (int u = 0; u < NW; u++) {
            int ow = owl - u;
            bool v = ow >= 0 && iw < ow * SW - PW + KW;
            int owc = max(ow, 0);
            float g = dy[obase + uint(ohc * OW + owc)] / div[OH + owc];
            row += v ? g : 0.0;
        }
        acc += vh ? row / div[ohc] : 0.0;
    }
    dx[i] += acc;
}
