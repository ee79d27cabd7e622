#version 450
// Composite parameterization, forward: raw[b] = scale * sum_k w_k * source[src_k].
// Sources are numbered spectral images first, then low-res, then pixel
// images, each kind in its own buffer.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
#include "common/index.glsl"

layout(constant_id = 0) const uint B = 1;      // images
layout(constant_id = 1) const uint PLANE = 1;  // C*H*W
layout(constant_id = 2) const uint NFFT = 0;
layout(constant_id = 3) const uint NLOW = 0;
layout(constant_id = 4) const float SCALE = 1.0;
layout(constant_id = 5) const uint MAXT = 8;   // LVK_LAYOUT_MAX_TERMS

layout(std430, set = 0, binding = 0) writeonly buffer Raw { float raw[]; };  // [B, PLANE]
layout(std430, set = 0, binding = 1) readonly buffer Fft { float fft[]; };   // [NFFT, PLANE]
layout(std430, set = 0, binding = 2) readonly buffer Low { float low[]; };   // [NLOW, PLANE]
layout(std430, set = 0, binding = 3) readonly buffer Pix { float pix[]; };   // [npixel, PLANE]
layout(std430, set = 0, binding = 4) readonly buffer Tab { uint tab[]; };    // [B, 1 + 2*MAXT]

float source(uint s, uint i)
{
    if (s < NFFT)
        return fft[s * PLANE + i];
    if (s < NFFT + NLOW)
        return low[(s - NFFT) * PLANE + i];
    return pix[(s - NFFT - NLOW) * PLANE + i];
}

void main()
{
    uint g = lvk_flat_index();
    if (g >= B * PLANE)
        return;
    uint b = g / PLANE, i = g - b * PLANE;
    // The table row is the same for every lane of most workgroups, so its
    // reads are lane-uniform.
    uint row = b * (1 + 2 * MAXT);
    float acc = 0.0;
    for (uint k = 0; k < tab[row]; k++)
        acc += uintBitsToFloat(tab[row + 2 + 2 * k]) * source(tab[row + 1 + 2 * k], i);
    raw[g] = SCALE * acc;
}
