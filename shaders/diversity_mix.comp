#version 450
// The batch-level part of the diversity objective, from the dot products
// dots[i, j] = <G_i, G_j> (diversity_dots.comp). With n_i = sqrt(max(
// dots[i, i], EPS)) (tf.nn.l2_normalize, epsilon 1e-10) and
// c_ij = dots[i, j] / (n_i n_j):
//   image i's value   v_i = -(1/B) sum_{j != i} c_ij   (added, weighted, into values)
//   d(sum_i v_i)/dG_i = sum_j M[i, j] G_j with
//     M[i, j] = -(2/B) / (n_i n_j)                      (j != i)
//     M[i, i] = (2/B) sum_{j != i} c_ij / n_i^2        (0 where dots[i, i] <= EPS:
//                                                        n_i is then constant)
// (the 2 because <g_i, g_j> appears for both (i, j) and (j, i)).
// One invocation per image i; M goes to mix[1, i, :].
layout(local_size_x = 64) in;

layout(constant_id = 0) const uint B = 2; // images

layout(std430, set = 0, binding = 0) buffer Mix { float mix[]; };       // mix: [2, B, B]
layout(std430, set = 0, binding = 1) buffer Values { float values[]; }; // values: [B]
layout(push_constant) uniform PC {
    float weight;
} pc;

const float EPS = 1e-10;

void main()
{
    uint i = gl_GlobalInvocationID.x;
    if (i >= B)
        return;
    float qi = mix[i * B + i];
    float ni = sqrt(max(qi, EPS));
    float csum = 0.0;
    for (uint j = 0; j < B; j++) {
        if (j == i)
            continue;
        float nj = sqrt(max(mix[j * B + j], EPS));
        csum += mix[i * B + j] / (ni * nj);
        mix[B * B + i * B + j] = -2.0 / (float(B) * ni * nj);
    }
    mix[B * B + i * B + i] = qi > EPS ? 2.0 * csum / (float(B) * ni * ni) : 0.0;
    values[i] += pc.weight * (-csum / float(B));
}
