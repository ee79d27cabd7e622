#version 450
// Gradient of a run of objective_reduce.comp's terms, added into the
// tensor's gradient: for each entry of the run's table (image b, channels
// [c0, c0 + nc), term row, weight) and positions p in [P0, P0 + NPOS),
//   grad[b, c, p] += sign * weight * coef[row, c] * d(T^POWER)/dT / NPOS.
// Workgroup (x, y, z) = (block of positions, channel c0 + y, entry z), so
// the coefficient is the same for every lane; the entries of a run have
// distinct images, so no two write one element.
layout(local_size_x = 64) in;

layout(constant_id = 0) const uint C = 1;     // channels of the tensor
layout(constant_id = 1) const uint S = 1;     // positions per channel
layout(constant_id = 2) const uint P0 = 0;    // first position
layout(constant_id = 3) const uint NPOS = 1;  // positions
layout(constant_id = 4) const uint POWER = 1; // 1 or 2

layout(std430, set = 0, binding = 0) buffer Grad { float grad[]; };          // grad: [B, C, S]
layout(std430, set = 0, binding = 1) readonly buffer T { float t[]; };       // t: [B, C, S]
layout(std430, set = 0, binding = 2) readonly buffer Coef { float coef[]; }; // coef: [terms, C]
// The run's table, 5 words per entry: image, c0, nc, term row, weight's bits.
layout(std430, set = 0, binding = 3) readonly buffer Table { uint table[]; };
layout(push_constant) uniform PC {
    float sign;
} pc;

void main()
{
    const uint e = gl_WorkGroupID.z * 5;
    const uint nc = table[e + 2];
    uint p = gl_GlobalInvocationID.x;
    if (p >= NPOS || gl_WorkGroupID.y >= nc)
        return;
    const uint b = table[e], c = table[e + 1] + gl_WorkGroupID.y;
    float w = coef[table[e + 3] * C + c];
    if (w == 0.0)
        return;
    uint at = (b * C + c) * S + P0 + p;
    float d = POWER == 2 ? 2.0 * t[at] : 1.0;
    grad[at] += pc.sign * uintBitsToFloat(table[e + 4]) * w * d / float(NPOS);
}
