#version 450
// y = f(x) for the elementwise activations of src/nn/ops/unary.c. The op and
// its parameters are specialization constants, so each pipeline compiles to
// one straight-line function.
//
// Tensors are read and written as vec4s: lavapipe turns a scalar load whose
// address differs across SIMD lanes into a loop over the lanes, so four
// floats per load is four times fewer of those loops. Buffers are padded to
// whole vec4s (lvk_arena_create), so the last vec4 may run into the padding.
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

layout(std430, set = 0, binding = 0) writeonly buffer Y { vec4 y[]; }; // y: [ceil(count / 4)]
layout(std430, set = 0, binding = 1) readonly buffer X { vec4 x[]; };  // x: [ceil(count / 4)]
layout(push_constant) uniform PC {
    uint count; // floats
} pc;

// Each invocation handles PER vec4s, strided by the workgroup size so
// neighbouring invocations touch neighbouring addresses.
const uint PER = 4;

vec4 f(vec4 v)
{
    if (OP == OP_CLIP)
        return min(max(v, P0), P1); // min last: bounds with P0 > P1 give P1, as ONNX asks
    if (OP == OP_LEAKY_RELU)
        return mix(P0 * v, v, greaterThan(v, vec4(0.0)));
    if (OP == OP_SIGMOID)
        return 1.0 / (1.0 + exp(-v));
    if (OP == OP_TANH) {
        // exp of a non-positive argument cannot overflow, unlike the
        // (e^2v - 1) / (e^2v + 1) some drivers lower tanh() to.
        vec4 t = exp(-2.0 * abs(v));
        return sign(v) * (1.0 - t) / (1.0 + t);
    }
    if (OP == OP_HARD_SIGMOID)
        return clamp(P0 * v + P1, 0.0, 1.0);
    // OP_HARD_SWISH
    return v * clamp(v / 6.0 + 0.5, 0.0, 1.0);
}

void main()
{
    uint n4 = (pc.count + 3u) / 4u;
    uint lid = gl_LocalInvocationID.x;
    uint base = (lvk_flat_index() - lid) * PER + lid;
    for (uint k = 0; k < PER; ++k) {
        uint i = base + k * gl_WorkGroupSize.x;
        if (i >= n4)
            return;
        y[i] = f(x[i]);
    }
}
