#version 450
// Values of a run of terms on a model tensor viewed as [B, C, S] (channels,
// then positions), one workgroup per entry of the run's table (an image of
// one of its terms, lvk_objective_run): for that entry's image b, term row
// and weight,
//   values[b] += weight * sum_c coef[row, c] * mean over p in [P0, P0 + NPOS) of T[b, c, p]^POWER
// which covers channel, class, neuron (one position), group (several
// coefficients), direction (the vector as coefficients) and layer (POWER 2,
// coef = 1/C). Only the entry's channels [c0, c0 + nc) are visited: the
// coefficients outside are zero (a channel objective reads one channel of
// hundreds). The lanes split the positions of each channel, then reduce in
// shared memory; only lane 0 writes, and the entries of a run have distinct
// images, so nothing races. The workgroup is a power of two sized to the
// positions: on lavapipe each barrier below costs a pass over every SIMD
// group of the workgroup.
layout(local_size_x_id = 5) in;

layout(constant_id = 0) const uint C = 1;     // channels
layout(constant_id = 1) const uint S = 1;     // positions per channel
layout(constant_id = 2) const uint P0 = 0;    // first position read
layout(constant_id = 3) const uint NPOS = 1;  // positions read
layout(constant_id = 4) const uint POWER = 1; // 1 or 2

layout(std430, set = 0, binding = 0) buffer Values { float values[]; };         // values: [B]
layout(std430, set = 0, binding = 1) readonly buffer T { float t[]; };          // t: [B, C, S]
layout(std430, set = 0, binding = 2) readonly buffer Coef { float coef[]; };    // coef: [terms, C]
// The run's table, 5 words per entry: image, c0, nc, term row, weight's bits.
layout(std430, set = 0, binding = 3) readonly buffer Table { uint table[]; };

shared float part[gl_WorkGroupSize.x];

void main()
{
    const uint e = gl_WorkGroupID.x * 5;
    const uint b = table[e], c0 = table[e + 1], nc = table[e + 2], row = table[e + 3] * C;
    uint lane = gl_LocalInvocationID.x;
    float acc = 0.0;
    for (uint c = c0; c < c0 + nc; c++) {
        float k = coef[row + c];  // the same for every lane: skipping is uniform
        if (k == 0.0)
            continue;
        uint base = (b * C + c) * S + P0;
        float s = 0.0;
        for (uint p = lane; p < NPOS; p += gl_WorkGroupSize.x) {
            float v = t[base + p];
            s += POWER == 2 ? v * v : v;
        }
        acc += k * s;
    }
    part[lane] = acc;
    barrier();
    for (uint h = gl_WorkGroupSize.x / 2; h > 0; h /= 2) {
        if (lane < h)
            part[lane] += part[lane + h];
        barrier();
    }
    if (lane == 0)
        values[b] += uintBitsToFloat(table[e + 4]) * part[0] / float(NPOS);
}
