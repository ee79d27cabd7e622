#version 450
// Value of a term on a model tensor viewed as [B, C, S] (channels, then
// positions): for image b = B0 + workgroup,
//   values[b] += weight * sum_c coef[c] * mean over p in [P0, P0 + NPOS) of T[b, c, p]^POWER
// which covers channel, class, neuron (one position), group (several
// coefficients), direction (the vector as coefficients) and layer (POWER 2,
// coef = 1/C). Only channels [C0, C0 + NC) are visited: the coefficients
// outside are zero (a channel objective reads one channel of hundreds).
// One workgroup per image: its lanes split the positions of each channel,
// then reduce in shared memory; only lane 0 writes, so terms recorded one
// after another accumulate without races. The workgroup is a power of two
// sized to the positions: on lavapipe each barrier below costs a pass over
// every SIMD group of the workgroup.
layout(local_size_x_id = 8) in;

layout(constant_id = 0) const uint C = 1;     // channels
layout(constant_id = 1) const uint S = 1;     // positions per channel
layout(constant_id = 2) const uint P0 = 0;    // first position read
layout(constant_id = 3) const uint NPOS = 1;  // positions read
layout(constant_id = 4) const uint POWER = 1; // 1 or 2
layout(constant_id = 5) const uint B0 = 0;    // first image
layout(constant_id = 6) const uint C0 = 0;    // first channel with a coefficient
layout(constant_id = 7) const uint NC = 1;    // channels from C0 on

layout(std430, set = 0, binding = 0) buffer Values { float values[]; };         // values: [B]
layout(std430, set = 0, binding = 1) readonly buffer T { float t[]; };          // t: [B, C, S]
layout(std430, set = 0, binding = 2) readonly buffer Coef { float coef[]; };    // coef: [C]
layout(push_constant) uniform PC {
    float weight;
} pc;

shared float part[gl_WorkGroupSize.x];

void main()
{
    uint b = B0 + gl_WorkGroupID.x;
    uint lane = gl_LocalInvocationID.x;
    float acc = 0.0;
    for (uint c = C0; c < C0 + NC; c++) {
        float k = coef[c];  // the same for every lane: skipping is uniform
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
        values[b] += pc.weight * part[0] / float(NPOS);
}
