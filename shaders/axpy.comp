#version 450
// y[i] += alpha * x[i]: how backward passes hand a gradient on unchanged
// (identity-like ops, residual fan-out) or scaled.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
#include "common/index.glsl"

layout(std430, set = 0, binding = 0) buffer Y { float y[]; };          // y: [count]
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; }; // x: [count]
layout(push_constant) uniform PC {
    uint count;
    float alpha;
} pc;

void main()
{
    uint i = lvk_flat_index();
    if (i >= pc.count)
        return;
    y[i] += pc.alpha * x[i];
}
