#version 450
// c = a (op) b with numpy broadcasting. src/nn/ops/binary.c collapses the
// shapes first: size-1 dimensions are dropped and neighbours that every
// operand walks contiguously are merged, so ND is usually 1 to 3, and a
// broadcast operand has stride 0 along the dimensions it repeats over.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
#include "common/index.glsl"

// Op ids: enum binary_op in src/nn/ops/binary.c.
#define OP_ADD 0
#define OP_SUB 1
#define OP_MUL 2
#define OP_DIV 3

layout(constant_id = 0) const int OP = OP_ADD;
layout(constant_id = 1) const int ND = 1;       // collapsed dimensions, 0..6
// Output sizes of the collapsed dimensions (1 past ND).
layout(constant_id = 2) const uint S0 = 1;
layout(constant_id = 3) const uint S1 = 1;
layout(constant_id = 4) const uint S2 = 1;
layout(constant_id = 5) const uint S3 = 1;
layout(constant_id = 6) const uint S4 = 1;
layout(constant_id = 7) const uint S5 = 1;
// Element strides of a and of b along each dimension (0: broadcast).
layout(constant_id = 8) const uint A0 = 0;
layout(constant_id = 9) const uint A1 = 0;
layout(constant_id = 10) const uint A2 = 0;
layout(constant_id = 11) const uint A3 = 0;
layout(constant_id = 12) const uint A4 = 0;
layout(constant_id = 13) const uint A5 = 0;
layout(constant_id = 14) const uint B0 = 0;
layout(constant_id = 15) const uint B1 = 0;
layout(constant_id = 16) const uint B2 = 0;
layout(constant_id = 17) const uint B3 = 0;
layout(constant_id = 18) const uint B4 = 0;
layout(constant_id = 19) const uint B5 = 0;

layout(std430, set = 0, binding = 0) writeonly buffer C { float c[]; }; // c: [S0..S(ND-1)]
layout(std430, set = 0, binding = 1) readonly buffer A { float a[]; };  // a: broadcast to c
layout(std430, set = 0, binding = 2) readonly buffer B { float b[]; };  // b: broadcast to c

const uint COUNT = S0 * S1 * S2 * S3 * S4 * S5;
const uint PER = 4; // elements per invocation, strided by the workgroup size

float op(float u, float v)
{
    if (OP == OP_ADD)
        return u + v;
    if (OP == OP_SUB)
        return u - v;
    if (OP == OP_MUL)
        return u * v;
    return u / v;
}

void main()
{
    // Local copies: GLSL has no constant arrays of specialization constants.
    uint S[6] = uint[6](S0, S1, S2, S3, S4, S5);
    uint AS[6] = uint[6](A0, A1, A2, A3, A4, A5);
    uint BS[6] = uint[6](B0, B1, B2, B3, B4, B5);
    uint lid = gl_LocalInvocationID.x;
    uint base = (lvk_flat_index() - lid) * PER + lid;
    for (uint k = 0; k < PER; ++k) {
        uint i = base + k * gl_WorkGroupSize.x;
        if (i >= COUNT)
            return;
        // Divisors are specialization constants: the driver turns these
        // divisions into multiplies, and the loop unrolls.
        uint rem = i, ia = 0, ib = 0;
        for (int d = ND - 1; d >= 0; --d) {
            uint q = rem / S[d];
            uint cd = rem - q * S[d];
            ia += cd * AS[d];
            ib += cd * BS[d];
            rem = q;
        }
        c[i] = op(a[ia], b[ib]);
    }
}
