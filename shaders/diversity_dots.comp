#version 450
// Dot products of the Gram matrices of two images, for the diversity
// objective: dots[i, j] = <G_i, G_j> (N = C*C entries each). Workgroup
// (i, j) computes it for i <= j and writes both halves; its lanes split the
// entries and reduce in shared memory.
layout(local_size_x = 128) in;

layout(constant_id = 0) const uint B = 2; // images
layout(constant_id = 1) const uint N = 1; // entries of one Gram matrix

layout(std430, set = 0, binding = 0) writeonly buffer Mix { float mix[]; }; // mix: [2, B, B], dots in [0]
layout(std430, set = 0, binding = 1) readonly buffer G { float gram[]; };   // gram: [B, N]

shared float part[gl_WorkGroupSize.x];

void main()
{
    uint i = gl_WorkGroupID.x, j = gl_WorkGroupID.y, lane = gl_LocalInvocationID.x;
    if (i > j)
        return; // uniform over the workgroup: (j, i) computes it
    float acc = 0.0;
    for (uint e = lane; e < N; e += gl_WorkGroupSize.x)
        acc += gram[i * N + e] * gram[j * N + e];
    part[lane] = acc;
    barrier();
    for (uint h = gl_WorkGroupSize.x / 2; h > 0; h /= 2) {
        if (lane < h)
            part[lane] += part[lane + h];
        barrier();
    }
    if (lane == 0) {
        mix[i * B + j] = part[0];
        mix[j * B + i] = part[0];
    }
}
