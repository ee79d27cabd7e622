#version 450
// Max pooling over the two spatial dims of [P, H, W] (P = N * C planes):
// one invocation per output. Also saves each window's arg-max, as an index
// into its H * W plane, so that maxpool_bwd can route gradients by gathering.
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
layout(constant_id = 9) const int PH = 0;      // top / left padding (the far side
layout(constant_id = 10) const int PW = 0;     // only shows in OH, OW)
layout(constant_id = 11) const int DH = 1;     // dilation
layout(constant_id = 12) const int DW = 1;

layout(std430, set = 0, binding = 0) writeonly buffer Y { float y[]; };    // y: [P, OH, OW]
layout(std430, set = 0, binding = 1) writeonly buffer A { int argmax[]; }; // argmax: [P, OH, OW]
layout(std430, set = 0, binding = 2) readonly buffer X { float x[]; };     // x: [P, H, W]

void main()
{
    uint i = lvk_flat_index();
    if (i >= P * uint(OH * OW))
        return;
    int ow = int(i % uint(OW));
    int oh = int(i / uint(OW) % uint(OH));
    uint base = i / uint(OH * OW) * uint(H * W);
    int h0 = oh * SH - PH;
    int w0 = ow * SW - PW;

    // Padding never wins: only pixels inside the input compete. A strict '>'
    // keeps the first maximum in window order on ties (as PyTorch and
    // onnxruntime do). A window with no pixel inside (possible only with
    // dilation) gives the lowest float and no arg-max, as onnxruntime does.
    float best = -3.402823466e38;
    int arg = -1;
    for (int kh = 0; kh < KH; kh++) {
        int ih = h0 + kh * DH;
        if (ih < 0 || ih >= H)
            continue;
        for (int kw = 0; kw < KW; kw++) {
            int iw = w0 + kw * DW;
            if (iw < 0 || iw >= W)
                continue;
            float v = x[base + uint(ih * W + iw)];
            if (arg < 0 || v > best) {
                best = v;
                arg = ih * W + iw;
            }
        }
    }
    y[i] = best;
    argmax[i] = arg;
}
