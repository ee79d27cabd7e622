#version 450
// Gradient of reduce_fwd.comp: dx[i] += SCALE * dy[o(i)], where o(i) is the
// output element that input i was summed into. One invocation per input.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
#include "common/index.glsl"

// Same constants as reduce_fwd.comp.
layout(constant_id = 0) const uint K0 = 1;   // kept group sizes, outermost first
layout(constant_id = 1) const uint K1 = 1;
layout(constant_id = 2) const uint K2 = 1;
layout(constant_id = 3) const uint KS0 = 1;  // their strides in x
layout(constant_id = 4) const uint KS1 = 1;
layout(constant_id = 5) const uint KS2 = 1;
layout(constant_id = 6) const uint R0 = 1;   // reduced group sizes
layout(constant_id = 7) const uint R1 = 1;
layout(constant_id = 8) const uint R2 = 1;
layout(constant_id = 12) const float SCALE = 1.0;

layout(std430, set = 0, binding = 0) buffer DX { float dx[]; };          // dx: the input's shape
layout(std430, set = 0, binding = 1) readonly buffer DY { float dy[]; }; // dy: [K0 * K1 * K2]

void main()
{
    uint i = lvk_flat_index();
    if (i >= K0 * K1 * K2 * R0 * R1 * R2)
        return;
    uint o = (i / KS0 % K0 * K1 + i / KS1 % K1) * K2 + i / KS2 % K2;
    dx[i] += SCALE * dy[o];
}
