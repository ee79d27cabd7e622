#version 450
// One Adam step in place (Kingma & Ba, Algorithm 1; PyTorch's form):
//   m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2,
//   param += SIGN * lr * (m / bc1) / (sqrt(v / bc2) + EPS),
// bc1 = 1 - b1^t, bc2 = 1 - b2^t. SIGN = +1 ascends the gradient (feature
// visualisation maximises its objective), -1 descends. lr, bc1 and bc2 change
// every step, so they come from a buffer the host rewrites (src/optvis/adam.c)
// rather than from the recording.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 128) in;
#include "common/index.glsl"

layout(constant_id = 0) const uint COUNT = 1;    // parameters
layout(constant_id = 1) const float BETA1 = 0.9;
layout(constant_id = 2) const float BETA2 = 0.999;
layout(constant_id = 3) const float EPS = 1e-8;
layout(constant_id = 4) const float SIGN = 1.0;  // +1 maximise, -1 minimise

// vec4 views for the bulk, float views for the last COUNT % 4 elements.
layout(std430, set = 0, binding = 0) buffer P4 { vec4 p4[]; };         // param: [COUNT]
layout(std430, set = 0, binding = 0) buffer P1 { float p1[]; };
layout(std430, set = 0, binding = 1) buffer M4 { vec4 m4[]; };         // m: [COUNT]
layout(std430, set = 0, binding = 1) buffer M1 { float m1[]; };
layout(std430, set = 0, binding = 2) buffer V4 { vec4 v4[]; };         // v: [COUNT]
layout(std430, set = 0, binding = 2) buffer V1 { float v1[]; };
layout(std430, set = 0, binding = 3) readonly buffer G4 { vec4 g4[]; }; // grad: [COUNT]
layout(std430, set = 0, binding = 3) readonly buffer G1 { float g1[]; };
layout(std430, set = 0, binding = 4) readonly buffer S { vec4 step; };  // (lr, bc1, bc2, 0)
// With TEXEL (lvk_prefer_texel) the whole vec4s are read through rgba32f
// texel views of the same buffers: one vectorised gather on lavapipe, where
// a vec4 storage-buffer load is a pass over the lanes. Each element is read,
// then written, by one invocation.
layout(constant_id = 5) const bool TEXEL = false;
layout(set = 0, binding = 5) uniform textureBuffer p_t;
layout(set = 0, binding = 6) uniform textureBuffer m_t;
layout(set = 0, binding = 7) uniform textureBuffer v_t;
layout(set = 0, binding = 8) uniform textureBuffer g_t;

const uint N4 = COUNT / 4u;                         // whole vec4s
const uint UNITS = N4 + (COUNT % 4u != 0u ? 1u : 0u); // plus one for the tail
const uint PER = 4;

void main()
{
    float lr = step.x, bc1 = step.y, bc2 = step.z;
    uint lid = gl_LocalInvocationID.x;
    uint base = (lvk_flat_index() - lid) * PER + lid;
    for (uint k = 0; k < PER; ++k) {
        uint u = base + k * gl_WorkGroupSize.x;
        if (u >= UNITS)
            return;
        if (u < N4) {
            int t = int(u);
            vec4 g = TEXEL ? texelFetch(g_t, t) : g4[u];
            vec4 m = BETA1 * (TEXEL ? texelFetch(m_t, t) : m4[u]) + (1.0 - BETA1) * g;
            vec4 v = BETA2 * (TEXEL ? texelFetch(v_t, t) : v4[u]) + (1.0 - BETA2) * g * g;
            m4[u] = m;
            v4[u] = v;
            vec4 p = TEXEL ? texelFetch(p_t, t) : p4[u];
            p4[u] = p + SIGN * lr * (m / bc1) / (sqrt(v / bc2) + EPS);
        } else {
            for (uint i = 4u * N4; i < COUNT; ++i) {
                float g = g1[i];
                float m = BETA1 * m1[i] + (1.0 - BETA1) * g;
                float v = BETA2 * v1[i] + (1.0 - BETA2) * g * g;
                m1[i] = m;
                v1[i] = v;
                p1[i] += SIGN * lr * (m / bc1) / (sqrt(v / bc2) + EPS);
            }
        }
    }
}
