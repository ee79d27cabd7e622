#version 450
// Gradient of the diversity objective w.r.t. the tensor: G = A^T A gives
// dA = A (dG + dG^T) = 2 A dG (dG is symmetric), so with A_b[p, c] = T[b, c, p]
//   grad[b, c, p] += k * 2 * sum_c' T[b, c', p] * dgram[b, c', c],  k = sign * weight.
// Workgroup (x, y, z) = (block of positions, block of R channels c, image b);
// lane l handles position p = x * lanes + l for the R channels, so the
// dgram values are the same for every lane and each c' costs one per-lane
// load for R multiply-adds (as in diversity_gram.comp).
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;

layout(constant_id = 0) const uint LANES = 64;
layout(constant_id = 1) const uint C = 1; // channels
layout(constant_id = 2) const uint S = 1; // positions
const uint R = 16;                        // channels per invocation

layout(std430, set = 0, binding = 0) buffer Grad { float grad[]; };        // grad: [B, C, S]
layout(std430, set = 0, binding = 1) readonly buffer T { float t[]; };     // t: [B, C, S]
layout(std430, set = 0, binding = 2) readonly buffer D { float dgram[]; }; // dgram: [B, C, C]
layout(push_constant) uniform PC {
    float k;
} pc;

void main()
{
    uint b = gl_WorkGroupID.z;
    uint c0 = gl_WorkGroupID.y * R;
    uint p = gl_WorkGroupID.x * LANES + gl_LocalInvocationID.x;
    uint pp = min(p, S - 1); // lanes past the end compute, then write nothing
    float acc[R];
    [[unroll]] for (uint r = 0; r < R; r++)
        acc[r] = 0.0;
    for (uint c2 = 0; c2 < C; c2++) {
        float a = t[(b * C + c2) * S + pp];
        [[unroll]] for (uint r = 0; r < R; r++)
            acc[r] += a * dgram[(b * C + c2) * C + min(c0 + r, C - 1)];
    }
    if (p >= S)
        return;
    for (uint r = 0; r < R && c0 + r < C; r++)
        grad[(b * C + c0 + r) * S + p] += 2.0 * pc.k * acc[r];
}
