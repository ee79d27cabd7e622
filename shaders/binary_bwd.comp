#version 450
// Gradient of c = a (op) b with respect to one operand t (a or b; the other
// is o), accumulated: dt += sum over the outputs that read each element of t.
// Written as a gather, one invocation per element of t: it walks the
// dimensions along which t is broadcast (bits of RMASK) and sums there, so
// no two invocations write the same element. Shapes are collapsed as in
// binary_fwd.comp.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
#include "common/index.glsl"

// Op ids: enum binary_op in src/nn/ops/binary.c.
#define OP_ADD 0
#define OP_SUB 1
#define OP_MUL 2
#define OP_DIV 3

layout(constant_id = 0) const int OP = OP_ADD;
layout(constant_id = 1) const bool WRT_B = false; // t is b (else a)
layout(constant_id = 2) const int ND = 1;         // collapsed dimensions, 0..6
layout(constant_id = 3) const uint RMASK = 0;     // bit d: t repeats along dimension d
// Output sizes of the collapsed dimensions (1 past ND).
layout(constant_id = 4) const uint S0 = 1;
layout(constant_id = 5) const uint S1 = 1;
layout(constant_id = 6) const uint S2 = 1;
layout(constant_id = 7) const uint S3 = 1;
layout(constant_id = 8) const uint S4 = 1;
layout(constant_id = 9) const uint S5 = 1;
// Element strides of o along each dimension (0: broadcast).
layout(constant_id = 10) const uint O0 = 0;
layout(constant_id = 11) const uint O1 = 0;
layout(constant_id = 12) const uint O2 = 0;
layout(constant_id = 13) const uint O3 = 0;
layout(constant_id = 14) const uint O4 = 0;
layout(constant_id = 15) const uint O5 = 0;
// Store dt rather than add to it (lvk_node.grad_store).
layout(constant_id = 16) const bool STORE = false;

layout(std430, set = 0, binding = 0) buffer DT { float dt[]; };          // dt: t's shape
layout(std430, set = 0, binding = 1) readonly buffer DC { float dc[]; }; // dc: [S0..S(ND-1)]
layout(std430, set = 0, binding = 2) readonly buffer O { float o[]; };   // o: broadcast to c
layout(std430, set = 0, binding = 3) readonly buffer T { float t[]; };   // t: broadcast to c

void main()
{
    // Local copies: GLSL has no constant arrays of specialization constants.
    // With ND and the sizes constant, the driver unrolls every loop below
    // and turns the divisions into multiplies.
    uint S[6] = uint[6](S0, S1, S2, S3, S4, S5);
    uint OS[6] = uint[6](O0, O1, O2, O3, O4, O5);
    uint CS[6];     // strides of c
    uint tcount = 1, rcount = 1;
    for (int d = ND - 1; d >= 0; --d) {
        CS[d] = tcount * rcount;
        if ((RMASK & (1u << d)) != 0)
            rcount *= S[d];
        else
            tcount *= S[d];
    }

    uint j = lvk_flat_index();
    if (j >= tcount)
        return;

    // t is contiguous over the dimensions it does not repeat along, so j
    // splits into those coordinates directly.
    uint rem = j, ic0 = 0, io0 = 0;
    for (int d = ND - 1; d >= 0; --d) {
        if ((RMASK & (1u << d)) == 0) {
            uint q = rem / S[d];
            uint cd = rem - q * S[d];
            ic0 += cd * CS[d];
            io0 += cd * OS[d];
            rem = q;
        }
    }

    float acc = 0.0;
    for (uint r = 0; r < rcount; ++r) {
        uint rr = r, ic = ic0, io = io0;
        for (int d = ND - 1; d >= 0; --d) {
            if ((RMASK & (1u << d)) != 0) {
                uint q = rr / S[d];
                uint cd = rr - q * S[d];
                ic += cd * CS[d];
                io += cd * OS[d];
                rr = q;
            }
        }
        if (OP == OP_MUL || (OP == OP_DIV && WRT_B))
            acc += dc[ic] * o[io];  // d(a*b)/dt = o; d(a/b)/db = -a/b^2: a here
        else if (OP == OP_DIV)
            acc += dc[ic] / o[io];  // d(a/b)/da = 1/b
        else
            acc += dc[ic];
    }

    if (OP == OP_SUB && WRT_B)
        acc = -acc;
    if (OP == OP_DIV && WRT_B) {
        float bj = t[j];
        acc = -acc / (bj * bj);
    }
    if (!STORE)
        acc += dt[j];
    dt[j] = acc;
}
