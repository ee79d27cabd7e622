#version 450
// dx += f'(x) * dy for the elementwise activations of src/nn/ops/unary.c
// (same op ids and parameters as unary_fwd.comp). Sigmoid and Tanh take
// their derivative from the saved output y; the rest from the input x.
// Tensors are vec4s, padded as in unary_fwd.comp.
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
// The activation is fused into the op before it, which never stores x: the
// mask comes from y = clamp(x, 0, P1), inside (0, P1) exactly when x is.
// Only set for CLIP with RELU_MODE (lvk_op_def.clamp_bounds).
layout(constant_id = 4) const bool FROM_Y = false;
// Store dx rather than add to it (lvk_node.grad_store).
layout(constant_id = 5) const bool STORE = false;

layout(std430, set = 0, binding = 0) buffer DX { vec4 dx[]; };          // dx: [ceil(count / 4)]
layout(std430, set = 0, binding = 1) readonly buffer DY { vec4 dy[]; }; // dy: [ceil(count / 4)]
layout(std430, set = 0, binding = 2) readonly buffer X { vec4 x[]; };   // x: [ceil(count / 4)]
layout(std430, set = 0, binding = 3) readonly buffer Y { vec4 y[]; };   // y: [ceil(count / 4)]
layout(std430, set = 0, binding = 4) readonly buffer Ctrl {              // struct lvk_ctrl
    uint relu_mode;
} ctrl;
layout(push_constant) uniform PC {
    uint count; // floats
} pc;

const uint PER = 4; // vec4s per invocation, as in unary_fwd.comp

// One component: v = x, s = y, g = dy.
float df(uint mode, float v, float s, float g)
{
    if (OP == OP_CLIP) {
        if (RELU_MODE)
            return lvk_relu_grad(mode, FROM_Y ? s : v, g, P0, P1);
        return (v >= P0 && v <= P1) ? g : 0.0;
    }
    if (OP == OP_LEAKY_RELU)
        return v > 0.0 ? g : P0 * g;
    if (OP == OP_SIGMOID)
        return s * (1.0 - s) * g;
    if (OP == OP_TANH)
        return (1.0 - s * s) * g;
    if (OP == OP_HARD_SIGMOID) {
        float u = P0 * v + P1;
        return (u > 0.0 && u < 1.0) ? P0 * g : 0.0;
    }
    // OP_HARD_SWISH: x * clamp(x/6 + 1/2, 0, 1)
    if (v <= -3.0)
        return 0.0;
    if (v >= 3.0)
        return g;
    return (v / 3.0 + 0.5) * g;
}

void main()
{
    // Only the ops that need them read x and y: unread bindings cost nothing.
    const bool NEED_X = OP != OP_SIGMOID && OP != OP_TANH && !FROM_Y;
    uint mode = RELU_MODE ? ctrl.relu_mode : LVK_RELU_GRAD_NORMAL;
    uint n4 = (pc.count + 3u) / 4u;
    uint lid = gl_LocalInvocationID.x;
    uint base = (lvk_flat_index() - lid) * PER + lid;
    for (uint k = 0; k < PER; ++k) {
        uint i = base + k * gl_WorkGroupSize.x;
        if (i >= n4)
            return;
        vec4 g = dy[i];
        vec4 v = NEED_X ? x[i] : vec4(0.0);
        vec4 s = NEED_X ? vec4(0.0) : y[i];
        vec4 d;
        for (int c = 0; c < 4; ++c)
            d[c] = df(mode, v[c], s[c], g[c]);
        if (!STORE)
            d += dx[i];
        dx[i] = d;
    }
}
