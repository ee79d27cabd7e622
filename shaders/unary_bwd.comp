#version 450
// dx += f'(x) * dy for the elementwise activations of src/nn/ops/unary.c
// (same op ids and parameters as unary_fwd.comp). Sigmoid and Tanh take
// their derivative from the saved output y; the rest from the input x.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
#include "common/index.glsl"
#include "common/relu_mode.glsl"

// Op ids: enum unary_op in src/nn/ops/unary.c.
#define OP_CLIP         0
#define OP_LEAKY_RELU   1
#define OP_SIGMOID      2
#define OP_TANH         3
#define OP_HARD_SIGMOID 4
#define OP_HARD_SWISH   5

layout(constant_id = 0) const int OP = OP_CLIP;
layout(constant_id = 1) const float P0 = 0.0;
layout(constant_id = 2) const float P1 = 0.0;
// CLIP only: the unit is a ReLU (lower bound 0), so its gradient follows the
// run-time mode in ctrl.relu_mode.
layout(constant_id = 3) const bool RELU_MODE = false;

layout(std430, set = 0, binding = 0) buffer DX { float dx[]; };          // dx: [count]
layout(std430, set = 0, binding = 1) readonly buffer DY { float dy[]; }; // dy: [count]
layout(std430, set = 0, binding = 2) readonly buffer X { float x[]; };   // x: [count]
layout(std430, set = 0, binding = 3) readonly buffer Y { float y[]; };   // y: [count]
layout(std430, set = 0, binding = 4) readonly buffer Ctrl {              // struct lvk_ctrl
    uint relu_mode;
} ctrl;
layout(push_constant) uniform PC {
    uint count;
} pc;

const uint PER = 4; // elements per invocation, as in unary_fwd.comp

float df(uint i, float g)
{
    if (OP == OP_CLIP) {
        if (RELU_MODE)
            return lvk_relu_grad(ctrl.relu_mode, x[i], g, P0, P1);
        float v = x[i];
        return (v >= P0 && v <= P1) ? g : 0.0;
    }
    if (OP == OP_LEAKY_RELU)
        return x[i] > 0.0 ? g : P0 * g;
    if (OP == OP_SIGMOID) {
        float s = y[i];
        return s * (1.0 - s) * g;
    }
    if (OP == OP_TANH) {
        float t = y[i];
        return (1.0 - t * t) * g;
    }
    if (OP == OP_HARD_SIGMOID) {
        float u = P0 * x[i] + P1;
        return (u > 0.0 && u < 1.0) ? P0 * g : 0.0;
    }
    // OP_HARD_SWISH: x * clamp(x/6 + 1/2, 0, 1)
    float v = x[i];
    if (v <= -3.0)
        return 0.0;
    if (v >= 3.0)
        return g;
    return (v / 3.0 + 0.5) * g;
}

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint base = (lvk_flat_index() - lid) * PER + lid;
    for (uint k = 0; k < PER; ++k) {
        uint i = base + k * gl_WorkGroupSize.x;
        if (i >= pc.count)
            return;
        dx[i] += df(i, dy[i]);
    }
}
