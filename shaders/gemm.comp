#version 450
// Batched strided matrix product, the one kernel behind Gemm and MatMul and
// their gradients:
//   o[z][r, c] (= or +=) ALPHA * sum over pairs q of z, sum over t of
//                        l[lo_q + r*L_R + t*L_T] * rr[ro_q + t*R_T + c*R_C]
//                        (+ BETA * bias[r*C_R + c*C_C] when HAS_C)
// Strides express transposes (a gradient is the product of the upstream
// gradient with the other operand transposed). Each output matrix z
// (gl_WorkGroupID.z) is contiguous, ROWS*COLS floats at z*ROWS*COLS, and sums
// NPAIR products whose operand offsets (in floats) come from the pair table:
// one pair forward; several for the gradient of an operand broadcast over
// batch dimensions. Each invocation computes RB rows x CB columns; rows come
// from the workgroup id, so reads of l are lane-uniform (one load plus a
// broadcast on lavapipe), and the CB columns are gl_WorkGroupSize.x apart.
layout(local_size_x_id = 0) in;

layout(constant_id = 1) const uint ROWS = 1;
layout(constant_id = 2) const uint COLS = 1;
layout(constant_id = 3) const uint INNER = 1;
layout(constant_id = 4) const uint L_R = 0;      // l strides (floats)
layout(constant_id = 5) const uint L_T = 0;
layout(constant_id = 6) const uint R_T = 0;      // rr strides
layout(constant_id = 7) const uint R_C = 0;
layout(constant_id = 8) const uint O_R = 0;      // o strides within one matrix
layout(constant_id = 9) const uint O_C = 0;
layout(constant_id = 10) const uint C_R = 0;     // bias strides (0 where broadcast)
layout(constant_id = 11) const uint C_C = 0;
layout(constant_id = 12) const bool HAS_C = false;
layout(constant_id = 13) const bool ACCUM = false; // add into o (gradients) instead of storing
layout(constant_id = 14) const float ALPHA = 1.0;
layout(constant_id = 15) const float BETA = 1.0;
layout(constant_id = 16) const uint NPAIR = 1;   // products summed per output matrix
layout(constant_id = 17) const uint RB = 1;      // rows per invocation
layout(constant_id = 18) const uint CB = 1;      // columns per invocation

layout(std430, set = 0, binding = 0) buffer O { float o[]; };                 // o: [Z, ROWS, COLS] (strided)
layout(std430, set = 0, binding = 1) readonly buffer L { float l[]; };        // l: left operands
layout(std430, set = 0, binding = 2) readonly buffer RR { float rr[]; };      // rr: right operands
layout(std430, set = 0, binding = 3) readonly buffer Bias { float bias[]; };  // bias: broadcast to [ROWS, COLS]
layout(std430, set = 0, binding = 4) readonly buffer Pairs { uvec2 pairs[]; }; // pairs: [Z, NPAIR] (l, rr offsets)

void main()
{
    const uint lanes = gl_WorkGroupSize.x;
    const uint c0 = gl_WorkGroupID.x * (CB * lanes) + gl_LocalInvocationID.x;
    if (c0 >= COLS)
        return;
    const uint r0 = gl_WorkGroupID.y * RB;
    const uint z = gl_WorkGroupID.z;

    // Rows and columns past the end are clamped: computed, not stored.
    uint lrow[RB], rcol[CB];
    for (uint i = 0; i < RB; ++i)
        lrow[i] = min(r0 + i, ROWS - 1) * L_R;
    for (uint j = 0; j < CB; ++j)
        rcol[j] = min(c0 + j * lanes, COLS - 1) * R_C;

    float acc[RB * CB];
    for (uint k = 0; k < RB * CB; ++k)
        acc[k] = 0.0;

    for (uint q = 0; q < NPAIR; ++q) {
        const uvec2 off = pairs[z * NPAIR + q];
        for (uint t = 0; t < INNER; ++t) {
            float rv[CB];
            for (uint j = 0; j < CB; ++j)
                rv[j] = rr[off.y + t * R_T + rcol[j]];
            for (uint i = 0; i < RB; ++i) {
                float lv = l[off.x + lrow[i] + t * L_T];
                for (uint j = 0; j < CB; ++j)
                    acc[i * CB + j] = fma(lv, rv[j], acc[i * CB + j]);
            }
        }
    }

    const uint zo = z * ROWS * COLS;
    for (uint i = 0; i < RB; ++i) {
        const uint r = r0 + i;
        if (r >= ROWS)
            break;
        for (uint j = 0; j < CB; ++j) {
            const uint c = c0 + j * lanes;
            if (c >= COLS)
                break;
            const uint idx = zo + r * O_R + c * O_C;
            float v = ALPHA * acc[i * CB + j];
            if (HAS_C)
                v += BETA * bias[r * C_R + c * C_C];
            o[idx] = ACCUM ? o[idx] + v : v;
        }
    }
}
