#version 450
// Winograd F(4x4, 3x3) convolution, step 3 of 3 (see conv2d_wino_in.comp):
// the output transform. Turns the product of step 2, M[p, k, col] (36
// points, K out channels, the columns of conv2d_wino_in.comp), into 4x4
// tiles of "out" [N, K, OH, OW], A^T m A for each 6x6 m, and adds the bias
// and applies what conv2d_texel.comp applies as it stores, with the same
// FLAGS bits (common/conv_store.glsl). An invocation handles 4 consecutive
// columns (tiles) as the lanes of vec4s.
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
#include "common/index.glsl"

// Pushed, not specialised: layers that differ only in it share a pipeline.
layout(push_constant) uniform Dims { uint K; };   // out channels
layout(constant_id = 0) const uint OH = 1;   // out map height, width
layout(constant_id = 1) const uint OW = 1;
layout(constant_id = 2) const uint TW = 1;   // tiles per row
layout(constant_id = 3) const uint T = 1;    // tiles per image
layout(constant_id = 4) const uint NT = 1;   // tiles of the batch
layout(constant_id = 5) const uint NC = 4;   // columns of M: NT rounded up to 4
layout(constant_id = 6) const uint FLAGS = 0; // conv2d_texel.comp's: 1 bias, 2 backward,
                                              // 16 activation, 64 gradient mask,
                                              // 128 backward stores, 256 fused Add
layout(constant_id = 7) const float ACT_LO = 0.0;
layout(constant_id = 8) const float ACT_HI = 0.0;

const bool BIAS = (FLAGS & 1) != 0;
const bool YV4 = OW % 4 == 0;                // a tile's rows are aligned vec4s

layout(std430, set = 0, binding = 0) buffer Y { float y[]; };   // out: [N, K, OH, OW]
layout(std430, set = 0, binding = 0) buffer Y4 { vec4 y4[]; };  // the same, 4 columns at a time
layout(set = 0, binding = 1) uniform textureBuffer m;           // M: [36, K, NC], rgba32f
layout(set = 0, binding = 2) uniform textureBuffer bias;        // [K], r32f
// Laid out like out (rgba32f where YV4, else r32f): the activation's output
// (MASK), or with RESID the Add's other operand (forward) or its output's
// gradient (backward).
layout(set = 0, binding = 3) uniform textureBuffer aux;
layout(std430, set = 0, binding = 4) readonly buffer Ctrl { uint relu_mode; } ctrl;

#include "common/relu_mode.glsl"
#include "common/conv_store.glsl"

// A^T a, into a[0 .. 3].
void at(inout vec4 a[6])
{
    const vec4 s1 = a[1] + a[2], d1 = a[1] - a[2], s2 = a[3] + a[4], d2 = a[3] - a[4];
    a[0] = a[0] + s1 + s2;
    a[1] = d1 + 2.0 * d2;
    a[2] = s1 + 4.0 * s2;
    a[3] = d1 + 8.0 * d2 + a[5];
}

void main()
{
    // Channel k, columns 4q .. 4q + 3 (flat, as in conv2d_wino_in.comp).
    const uint i0 = lvk_flat_index(), q = i0 % (NC / 4), k = i0 / (NC / 4);
    if (k >= K)
        return;
    vec4 r[6][6];
    [[unroll]] for (uint i = 0; i < 6; ++i)
        [[unroll]] for (uint j = 0; j < 6; ++j)
            r[i][j] = texelFetch(m, int(((6 * i + j) * K + k) * (NC / 4) + q));
    // Columns, then rows: r[0..3][0..3] holds the 4x4 tiles.
    [[unroll]] for (uint j = 0; j < 6; ++j) {
        vec4 a[6] = vec4[6](r[0][j], r[1][j], r[2][j], r[3][j], r[4][j], r[5][j]);
        at(a);
        [[unroll]] for (uint i = 0; i < 4; ++i)
            r[i][j] = a[i];
    }
    [[unroll]] for (uint i = 0; i < 4; ++i)
        at(r[i]);

    const float b = BIAS ? texelFetch(bias, int(k)).x : 0.0;
    const uint mode = MASK ? ctrl.relu_mode : LVK_RELU_GRAD_NORMAL;
    [[unroll]] for (uint t4 = 0; t4 < 4; ++t4) {
        const uint col = 4 * q + t4;
        if (col >= NT)
            break;
        const uint n = col / T, t = col % T;
        const uint oy0 = t / TW * 4, ox0 = t % TW * 4;
        const uint base = (n * K + k) * OH * OW;
        [[unroll]] for (uint i = 0; i < 4; ++i) {
            const uint oy = oy0 + i;
            if (oy >= OH)
                break;
            if (YV4) {
                const uint idx = (base + oy * OW + ox0) / 4;
                const vec4 a = RESID || MASK ? texelFetch(aux, int(idx)) : vec4(0.0);
                const vec4 old = ADD ? y4[idx] : vec4(0.0);
                vec4 v;
                [[unroll]] for (uint j = 0; j < 4; ++j)
                    v[j] = lvk_conv_store_value(r[i][j][t4] + b, a[j], old[j], mode);
                y4[idx] = v;
            } else {
                [[unroll]] for (uint j = 0; j < 4; ++j) {
                    const uint idx = base + oy * OW + ox0 + j;
                    if (ox0 + j < OW) {
                        const float a = RESID || MASK ? texelFetch(aux, int(idx)).x : 0.0;
                        y[idx] = lvk_conv_store_value(r[i][j][t4] + b, a, ADD ? y[idx] : 0.0, mode);
                    }
                }
            }
        }
    }
}
