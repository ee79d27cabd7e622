#version 450
// Gram matrices for Lucid's diversity objective: with A_b = T[b] viewed as
// [S positions, C channels],
//   gram[b, i, j] = (A_b^T A_b)[i, j] = sum_p T[b, i, p] * T[b, j, p].
// Workgroup (x, y, z) = (block of j, block of R rows i, image b); lane l of
// it computes gram[b, i0..i0+R-1, j] for j = x * lanes + l. The R row values
// T[b, i, p] are the same for every lane (one load and a broadcast on CPU
// drivers, a cached broadcast on GPUs), so each p costs one per-lane load
// for R multiply-adds. G is symmetric: a workgroup whose rows all lie below
// its columns returns at once, and every other one writes each entry and its
// mirror (entries computed twice get the same bits: the same products are
// summed in the same order).
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;

layout(constant_id = 0) const uint LANES = 64;
layout(constant_id = 1) const uint C = 1; // channels
layout(constant_id = 2) const uint S = 1; // positions
const uint R = 16;                        // rows per invocation

layout(std430, set = 0, binding = 0) writeonly buffer G { float gram[]; }; // gram: [B, C, C]
layout(std430, set = 0, binding = 1) readonly buffer T { float t[]; };     // t: [B, C, S]

void main()
{
    uint b = gl_WorkGroupID.z;
    uint i0 = gl_WorkGroupID.y * R;
    if (i0 >= (gl_WorkGroupID.x + 1) * LANES)
        return; // uniform: the mirrored workgroup covers these entries
    uint j = gl_WorkGroupID.x * LANES + gl_LocalInvocationID.x;
    // Lanes past the last channel compute on a valid row and write nothing,
    // so that every lane runs the same loop.
    uint rj = (b * C + min(j, C - 1)) * S;
    float acc[R];
    [[unroll]] for (uint r = 0; r < R; r++)
        acc[r] = 0.0;
    for (uint p = 0; p < S; p++) {
        float a = t[rj + p];
        [[unroll]] for (uint r = 0; r < R; r++)
            acc[r] += t[(b * C + min(i0 + r, C - 1)) * S + p] * a;
    }
    if (j >= C)
        return;
    for (uint r = 0; r < R && i0 + r < C; r++) {
        gram[(b * C + i0 + r) * C + j] = acc[r];
        gram[(b * C + j) * C + i0 + r] = acc[r];
    }
}
