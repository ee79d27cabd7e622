#version 450
// Rank transform for Spearman correlation: each row i of x (one neuron's
// responses to M images) becomes its average ranks (ties share the mean of
// their positions, 1-based), centred and scaled to unit length, written as
// column i of z:
//   rank_t = #{s : x_s < x_t} + (#{s : x_s == x_t} + 1) / 2
//   z[t * NP + i] = (rank_t - (M + 1) / 2) / sqrt(sum over t of (rank_t - (M + 1) / 2)^2)
// so that Pearson correlation of ranks (= Spearman) is the dot product of
// two columns (shaders/corr_gram.comp). One workgroup per row; each lane
// counts for 4 values at a time against every x_s, whose address is the
// same in all lanes (one load and a broadcast on CPU drivers). O(M^2) per
// row, exact for ties, no sort.
layout(local_size_x = 64) in;

layout(std430, set = 0, binding = 0) buffer Z { float z[]; };          // z: [M, NP]
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; }; // x: [N, M]
layout(push_constant) uniform PC {
    uint n;   // rows (neurons)
    uint m;   // values per row (images)
    uint np;  // row pitch of z (>= n)
} pc;

const uint LANES = 64, PER = 4;

shared float part[LANES];

void main()
{
    const uint i = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    const uint lane = gl_LocalInvocationID.x;
    if (i >= pc.n)
        return; // the whole workgroup
    const uint row = i * pc.m;
    const float mid = 0.5 * float(pc.m + 1);
    float ss = 0.0;
    for (uint t0 = 0; t0 < pc.m; t0 += LANES * PER) {
        float xt[PER];
        uint less[PER], same[PER];
        for (uint k = 0; k < PER; ++k) {
            const uint t = t0 + k * LANES + lane;
            xt[k] = t < pc.m ? x[row + t] : 0.0;
            less[k] = 0;
            same[k] = 0;
        }
        for (uint s = 0; s < pc.m; ++s) {
            const float v = x[row + s];
            for (uint k = 0; k < PER; ++k) {
                less[k] += v < xt[k] ? 1 : 0;
                same[k] += v == xt[k] ? 1 : 0;
            }
        }
        for (uint k = 0; k < PER; ++k) {
            const uint t = t0 + k * LANES + lane;
            if (t < pc.m) {
                const float r = float(less[k]) + 0.5 * float(same[k] + 1) - mid;
                z[t * pc.np + i] = r;
                ss += r * r;
            }
        }
    }
    part[lane] = ss;
    barrier();
    for (uint w = LANES / 2; w > 0; w >>= 1) {
        if (lane < w)
            part[lane] += part[lane + w];
        barrier();
    }
    // A constant row has no ranks to spread: it stays 0 (correlation 0).
    const float scale = part[0] > 0.0 ? inversesqrt(part[0]) : 0.0;
    for (uint t = lane; t < pc.m; t += LANES)   // the same elements this lane wrote
        z[t * pc.np + i] *= scale;
}
