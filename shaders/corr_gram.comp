#version 450
// Correlation block: c[r - ROW0, j] = sum over t < M of z[t, r] * z[t, j]
// for rows r in [ROW0, ROW0 + ROWS) and every column j < NP, where z
// [M, NP] holds unit-length centred ranks per column (shaders/rank_rows.comp),
// so c is the Spearman correlation. Each invocation computes RB rows x
// 4 * CQ columns. Rows come from the workgroup id, so their reads of z are
// the same address in every lane (one load and a broadcast on CPU drivers);
// columns are read as rgba32f texels, which CPU drivers gather vectorised.
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;

layout(constant_id = 1) const uint RB = 4;  // rows per invocation
layout(constant_id = 2) const uint CQ = 1;  // texels (4 columns each) per invocation

layout(std430, set = 0, binding = 0) writeonly buffer C { float c[]; };  // c: [ROWS, NP]
layout(std430, set = 0, binding = 1) readonly buffer ZR { float zr[]; }; // z: [M, NP] (rows)
layout(set = 0, binding = 2) uniform textureBuffer zc;                  // z: [M, NP / 4] rgba32f (columns)
layout(push_constant) uniform PC {
    uint m;     // M
    uint np;    // row pitch of z and c, a multiple of 4 and of RB
    uint row0;  // ROW0, a multiple of RB
    uint rows;  // ROWS
} pc;

void main()
{
    const uint np4 = pc.np / 4;
    const uint q0 = (gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x) * CQ;
    if (q0 >= np4)
        return;
    const uint r0 = pc.row0 + gl_WorkGroupID.y * RB; // r0 + RB <= np: z has rows to spare

    vec4 acc[RB * CQ];
    [[unroll]] for (uint k = 0; k < RB * CQ; ++k)
        acc[k] = vec4(0.0);
    uint qc[CQ];
    [[unroll]] for (uint q = 0; q < CQ; ++q)
        qc[q] = min(q0 + q, np4 - 1); // past the end: computed, not stored

    for (uint t = 0; t < pc.m; ++t) {
        vec4 cv[CQ];
        [[unroll]] for (uint q = 0; q < CQ; ++q)
            cv[q] = texelFetch(zc, int(t * np4 + qc[q]));
        [[unroll]] for (uint i = 0; i < RB; ++i) {
            const float rv = zr[t * pc.np + r0 + i];
            [[unroll]] for (uint q = 0; q < CQ; ++q)
                acc[i * CQ + q] = fma(vec4(rv), cv[q], acc[i * CQ + q]);
        }
    }

    [[unroll]] for (uint i = 0; i < RB; ++i) {
        const uint r = r0 + i - pc.row0;
        if (r >= pc.rows)
            break;
        [[unroll]] for (uint q = 0; q < CQ; ++q) {
            if (q0 + q >= np4)
                break;
            const uint o = r * pc.np + (q0 + q) * 4;
            c[o] = acc[i * CQ + q].x;
            c[o + 1] = acc[i * CQ + q].y;
            c[o + 2] = acc[i * CQ + q].z;
            c[o + 3] = acc[i * CQ + q].w;
        }
    }
}
