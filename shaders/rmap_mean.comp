#version 450
// Response of every channel of one layer to every image of a batch: its
// spatially averaged activation,
//   resp[(FIRST + c) * B + b] = mean over k < HW of x[(b * C + c) * HW + k],
// one workgroup per (channel, image). The lanes stride through the pixels
// (consecutive addresses: coalesced on GPUs) and reduce in shared memory.
layout(local_size_x = 64) in;

layout(std430, set = 0, binding = 0) writeonly buffer Resp { float resp[]; }; // resp: [neurons, B]
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; };        // x: [B, C, HW]
layout(push_constant) uniform PC {
    uint channels;  // C
    uint hw;        // pixels per channel
    uint batch;     // B
    uint first;     // neuron index of channel 0
} pc;

shared float part[64];

void main()
{
    const uint c = gl_WorkGroupID.x, b = gl_WorkGroupID.y, lane = gl_LocalInvocationID.x;
    if (c >= pc.channels || b >= pc.batch)
        return; // the whole workgroup: no barrier is skipped by some lanes only
    const uint base = (b * pc.channels + c) * pc.hw;
    float s = 0.0;
    for (uint k = lane; k < pc.hw; k += 64)
        s += x[base + k];
    part[lane] = s;
    barrier();
    for (uint w = 32; w > 0; w >>= 1) {
        if (lane < w)
            part[lane] += part[lane + w];
        barrier();
    }
    if (lane == 0)
        resp[(pc.first + c) * pc.batch + b] = part[0] / float(pc.hw);
}
