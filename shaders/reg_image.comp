#version 450
// Regularisers on the image x [B, C, H, W] (values in [0, 1]), value and
// gradient in one pass per image (one workgroup each, image B0 + group id):
//   KIND 0, tv:   sum |x[h+1,w] - x[h,w]| + |x[h,w+1] - x[h,w]|   (tf.image.total_variation)
//                 gradient: the signs of the differences (0 at 0, as TF's abs)
//   KIND 1, l1:   sum |x - 0.5|                      gradient sign(x - 0.5)
//   KIND 2, l2:   sqrt(sum (x - 0.5)^2 + 1e-6)       gradient (x - 0.5) / value
//   KIND 3, blur: 0.5 * sum (x - blur(x))^2          gradient x - blur(x)
//                 (blur is held constant: Lucid's stop_gradient)
//   values[b] += weight * value,  grad[b] += k * gradient,  k = sign * weight.
// The lanes split the pixels, reduce the sum in shared memory, then (l2 needs
// the total) each lane writes the gradient of its own pixels.
layout(local_size_x = 128) in;

layout(constant_id = 0) const uint KIND = 0; // 0 tv, 1 l1, 2 l2, 3 blur
layout(constant_id = 1) const uint C = 3;    // channels
layout(constant_id = 2) const uint H = 1;    // height
layout(constant_id = 3) const uint W = 1;    // width
layout(constant_id = 4) const uint B0 = 0;   // first image

layout(std430, set = 0, binding = 0) buffer Values { float values[]; };   // values: [B]
layout(std430, set = 0, binding = 1) buffer Grad { float grad[]; };       // grad: [B, C, H, W]
layout(std430, set = 0, binding = 2) readonly buffer Img { float x[]; };  // x: [B, C, H, W]
layout(push_constant) uniform PC {
    float weight;
    float k;
} pc;

const float L2_EPS = 1e-6;

shared float part[gl_WorkGroupSize.x];

// Lucid's _tf_blur: 3x3 kernel, 1 at the centre and 0.5 around it, divided
// by the kernel's sum over the taps inside the image ("SAME" zero padding
// divided by the same convolution of ones).
float blur_at(uint plane, int h, int w)
{
    float s = 0.0, norm = 0.0;
    for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
            int yy = h + dy, xx = w + dx;
            if (yy < 0 || yy >= int(H) || xx < 0 || xx >= int(W))
                continue;
            float kw = (dy == 0 && dx == 0) ? 1.0 : 0.5;
            s += kw * x[plane + uint(yy) * W + uint(xx)];
            norm += kw;
        }
    return s / norm;
}

void main()
{
    uint b = B0 + gl_WorkGroupID.x;
    uint lane = gl_LocalInvocationID.x;
    uint base = b * C * H * W;
    float acc = 0.0;
    for (uint i = lane; i < C * H * W; i += gl_WorkGroupSize.x) {
        uint w = i % W, h = i / W % H, plane = base + i / (H * W) * H * W;
        float v = x[base + i];
        if (KIND == 0) {
            if (h + 1 < H)
                acc += abs(x[base + i + W] - v);
            if (w + 1 < W)
                acc += abs(x[base + i + 1] - v);
        } else if (KIND == 1) {
            acc += abs(v - 0.5);
        } else if (KIND == 2) {
            acc += (v - 0.5) * (v - 0.5);
        } else {
            float d = v - blur_at(plane, int(h), int(w));
            acc += d * d;
        }
    }
    part[lane] = acc;
    barrier();
    for (uint s = gl_WorkGroupSize.x / 2; s > 0; s /= 2) {
        if (lane < s)
            part[lane] += part[lane + s];
        barrier();
    }
    float total = part[0];
    float value = KIND == 2 ? sqrt(total + L2_EPS) : KIND == 3 ? 0.5 * total : total;
    if (lane == 0)
        values[b] += pc.weight * value;

    for (uint i = lane; i < C * H * W; i += gl_WorkGroupSize.x) {
        uint w = i % W, h = i / W % H, plane = base + i / (H * W) * H * W;
        float v = x[base + i], g;
        if (KIND == 0) {
            g = 0.0;
            if (h > 0)
                g += sign(v - x[base + i - W]);
            if (h + 1 < H)
                g -= sign(x[base + i + W] - v);
            if (w > 0)
                g += sign(v - x[base + i - 1]);
            if (w + 1 < W)
                g -= sign(x[base + i + 1] - v);
        } else if (KIND == 1) {
            g = sign(v - 0.5);
        } else if (KIND == 2) {
            g = (v - 0.5) / value;
        } else {
            g = v - blur_at(plane, int(h), int(w));
        }
        grad[base + i] += pc.k * g;
    }
}
