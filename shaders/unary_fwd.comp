#version 450
// y = f(x) for the elementwise activations of src/nn/ops/unary.c. The op and
// its parameters are specialization constants, so each pipeline compiles to
// one straight-line function.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
#include "common/index.glsl"

// Op ids: enum unary_op in src/nn/ops/unary.c.
#define OP_CLIP         0
#define OP_LEAKY_RELU   1
#define OP_SIGMOID      2
#define OP_TANH         3
#define OP_HARD_SIGMOID 4
#define OP_HARD_SWISH   5

layout(constant_id = 0) const int OP = OP_CLIP;
// CLIP: lower and upper bound (Relu is [0, +inf]); LEAKY_RELU: P0 = slope
// below 0; HARD_SIGMOID: P0 = alpha, P1 = beta.
layout(constant_id = 1) const float P0 = 0.0;
layout(constant_id = 2) const float P1 = 0.0;

layout(std430, set = 0, binding = 0) writeonly buffer Y { float y[]; }; // y: [count]
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; };  // x: [count]
layout(push_constant) uniform PC {
    uint count;
} pc;

// Each invocation handles PER elements, strided by the workgroup size so
// neighbouring invocations touch neighbouring addresses.
const uint PER = 4;

float f(float v)
{
    if (OP == OP_CLIP)
        return min(max(v, P0), P1); // min last: bounds with P0 > P1 give P1, as ONNX asks
    if (OP == OP_LEAKY_RELU)
        return v > 0.0 ? v : P0 * v;
    if (OP == OP_SIGMOID)
        return 1.0 / (1.0 + exp(-v));
    if (OP == OP_TANH) {
        // exp of a non-positive argument cannot overflow, unlike the
        // (e^2v - 1) / (e^2v + 1) some drivers lower tanh() to.
        float t = exp(-2.0 * abs(v));
        return sign(v) * (1.0 - t) / (1.0 + t);
    }
    if (OP == OP_HARD_SIGMOID)
        return clamp(P0 * v + P1, 0.0, 1.0);
    // OP_HARD_SWISH
    return v * clamp(v / 6.0 + 0.5, 0.0, 1.0);
}

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint base = (lvk_flat_index() - lid) * PER + lid;
    for (uint k = 0; k < PER; ++k) {
        uint i = base + k * gl_WorkGroupSize.x;
        if (i >= pc.count)
            return;
        y[i] = f(x[i]);
    }
}
