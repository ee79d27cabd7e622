#version 450
// Composite parameterization, backward: for each source s and element i,
// grad_s[i] += scale * sum over the terms (b, w) that use s and pass
// gradient of w * raw_grad[b][i]. A gather over the terms of s (listed by
// source in the table), so no two invocations write one element.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
#include "common/index.glsl"

layout(constant_id = 0) const uint S = 1;      // sources
layout(constant_id = 1) const uint PLANE = 1;  // C*H*W
layout(constant_id = 2) const uint NFFT = 0;
layout(constant_id = 3) const uint NLOW = 0;
layout(constant_id = 4) const float SCALE = 1.0;

layout(std430, set = 0, binding = 0) buffer Fft { float fft[]; };            // [NFFT, PLANE]
layout(std430, set = 0, binding = 1) buffer Low { float low[]; };            // [NLOW, PLANE]
layout(std430, set = 0, binding = 2) buffer Pix { float pix[]; };            // [npixel, PLANE]
layout(std430, set = 0, binding = 3) readonly buffer Raw { float graw[]; };  // [B, PLANE]
layout(std430, set = 0, binding = 4) readonly buffer Tab { uint tab[]; };    // offsets[S+1], (b, w) pairs

void main()
{
    uint g = lvk_flat_index();
    if (g >= S * PLANE)
        return;
    uint s = g / PLANE, i = g - s * PLANE;
    float acc = 0.0;
    for (uint t = tab[s]; t < tab[s + 1]; t++) {
        uint e = S + 1 + 2 * t;
        acc += uintBitsToFloat(tab[e + 1]) * graw[tab[e] * PLANE + i];
    }
    acc *= SCALE;
    if (s < NFFT)
        fft[s * PLANE + i] += acc;
    else if (s < NFFT + NLOW)
        low[(s - NFFT) * PLANE + i] += acc;
    else
        pix[(s - NFFT - NLOW) * PLANE + i] += acc;
}
