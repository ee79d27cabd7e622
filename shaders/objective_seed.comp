#version 450
// Gradient of a term of objective_reduce.comp, added into the tensor's
// gradient: for the term's images, the channels from C0 that hold its
// non-zero coefficients, and positions p in [P0, P0 + NPOS),
//   grad[b, c, p] += k * coef[c] * d(T^POWER)/dT / NPOS,   k = sign * weight.
// Workgroup (x, y, z) = (block of positions, channel C0 + y, image B0 + z),
// so the coefficient is the same for every lane.
layout(local_size_x = 64) in;

layout(constant_id = 0) const uint C = 1;     // channels of the tensor
layout(constant_id = 1) const uint S = 1;     // positions per channel
layout(constant_id = 2) const uint P0 = 0;    // first position
layout(constant_id = 3) const uint NPOS = 1;  // positions
layout(constant_id = 4) const uint POWER = 1; // 1 or 2
layout(constant_id = 5) const uint B0 = 0;    // first image
layout(constant_id = 6) const uint C0 = 0;    // first channel

layout(std430, set = 0, binding = 0) buffer Grad { float grad[]; };          // grad: [B, C, S]
layout(std430, set = 0, binding = 1) readonly buffer T { float t[]; };       // t: [B, C, S]
layout(std430, set = 0, binding = 2) readonly buffer Coef { float coef[]; }; // coef: [C]
layout(push_constant) uniform PC {
    float k;
} pc;

void main()
{
    uint p = gl_GlobalInvocationID.x;
    uint c = C0 + gl_WorkGroupID.y, b = B0 + gl_WorkGroupID.z;
    float w = coef[c];
    if (p >= NPOS || w == 0.0)
        return;
    uint at = (b * C + c) * S + P0 + p;
    float d = POWER == 2 ? 2.0 * t[at] : 1.0;
    grad[at] += pc.k * w * d / float(NPOS);
}
