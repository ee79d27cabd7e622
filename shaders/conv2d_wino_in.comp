#version 450
// Winograd F(4x4, 3x3) convolution, step 1 of 3 (src/nn/ops/conv.c): the
// input transform. Cuts each map of "in" [N, C, H, W] into 6x6 patches 4
// apart, patch (ty, tx) starting at row 4 * ty - PT, column 4 * tx - PL
// (zeros outside the map), and writes V = B^T d B of each patch d:
//   V[p, c, col]: p = 6 * i + j, one of the 36 points of the transform;
//                 col = n * T + ty * TW + tx, then zeros up to NC (a
//                 multiple of 4, so the product, step 2, reads 4 columns
//                 per texel).
// Step 2, conv2d_texel.comp as a 1x1 convolution of 36 groups (one per
// point), multiplies V by the transformed weights; step 3,
// conv2d_wino_out.comp, turns each 6x6 result into a 4x4 tile of outputs.
// An invocation transforms 4 consecutive columns at once, as the lanes of
// vec4s, so that each point's 4 values go out as one vec4 store (lavapipe
// stores lane by lane: fewer, wider stores are cheaper).
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
#include "common/index.glsl"

// Pushed, not specialised: layers that differ only in it share a pipeline.
layout(push_constant) uniform Dims { uint C; };   // channels
layout(constant_id = 0) const uint H = 1;    // map height, width
layout(constant_id = 1) const uint W = 1;
layout(constant_id = 2) const uint TW = 1;   // tiles per row
layout(constant_id = 3) const uint T = 1;    // tiles per image
layout(constant_id = 4) const uint NT = 1;   // tiles of the batch
layout(constant_id = 5) const uint NC = 4;   // columns: NT rounded up to 4
layout(constant_id = 6) const int PT = 0;    // padding before the first row, column
layout(constant_id = 7) const int PL = 0;

layout(std430, set = 0, binding = 0) writeonly buffer V { vec4 v4[]; };  // [36, C, NC]
layout(set = 0, binding = 1) uniform textureBuffer x;   // in: rgba32f view where XV4, else r32f

// B^T a: the input transform's matrix, for points 0, 1, -1, 2, -2, infinity.
void bt(inout vec4 a[6])
{
    const vec4 r0 = 4.0 * a[0] - 5.0 * a[2] + a[4];
    const vec4 r1 = -4.0 * (a[1] + a[2]) + a[3] + a[4];
    const vec4 r2 = 4.0 * (a[1] - a[2]) - a[3] + a[4];
    const vec4 r3 = 2.0 * (a[3] - a[1]) - a[2] + a[4];
    const vec4 r4 = 2.0 * (a[1] - a[3]) - a[2] + a[4];
    const vec4 r5 = 4.0 * a[1] - 5.0 * a[3] + a[5];
    a[0] = r0; a[1] = r1; a[2] = r2; a[3] = r3; a[4] = r4; a[5] = r5;
}

// Where rows are a multiple of 4 long (XV4), x is read 4 columns per texel
// (an rgba32f view; a texel lies wholly inside or outside a row): a patch
// row takes NTX texels from the one holding its first column, LEAD columns
// into it. Where an invocation's 4 tiles also form a block of one image,
// BR rows of 4 / BR tiles, they share their row loads: 1 x 4 where a row of
// tiles is a multiple of 4 long, 2 x 2 where it is 2 long and the tile
// rows are even (8 x 8 maps); else each tile loads its own rows. Without
// XV4 each column is its own fetch (r32f view).
// (Sums, not &&: glslang turns a && of constants into control flow in main,
// which specialisation breaks.)
const bool XV4 = W % 4 == 0;
const uint BR = W % 4 + TW % 4 == 0 ? 1 : W % 4 + (TW == 2 ? 0 : 1) + T / TW % 2 == 0 ? 2 : 0;
const uint BC = BR == 1 ? 4 : BR == 2 ? 2 : 1;  // tiles per block row
const int SPAN = 4 * int(BC) + 2;           // columns an invocation's loads serve
const int LEAD = (4 - PL % 4) % 4;
const int NTX = (LEAD + SPAN + 3) / 4;      // at most 6: row buffers of 24

// Columns c0 .. c0 + SPAN - 1 of row iy of the map at base, into xs from
// xs[LEAD] (zeros outside the map); c0 - LEAD is a multiple of 4.
void load_row(int base, int iy, int c0, out float xs[24])
{
    [[unroll]] for (int t = 0; t < NTX; ++t) {
        const int tc = (c0 - LEAD) / 4 + t;
        // Fetched unconditionally at a valid index, zeroed after (a
        // branch a compiler flattens must not fetch out of bounds).
        const bool inside = uint(iy) < H && uint(tc) < W / 4;
        vec4 v = texelFetch(x, inside ? (base + iy * int(W)) / 4 + tc : 0);
        v = inside ? v : vec4(0.0);
        xs[4 * t] = v.x; xs[4 * t + 1] = v.y; xs[4 * t + 2] = v.z; xs[4 * t + 3] = v.w;
    }
}

void main()
{
    // Channel c, columns 4q .. 4q + 3: flat, so that small maps (8 x 8 at
    // batch 8: 8 column groups) still fill the workgroups.
    const uint i0 = lvk_flat_index(), q = i0 % (NC / 4), c = i0 / (NC / 4);
    if (c >= C)
        return;
    vec4 d[6][6];
    if (BR != 0) {
        // T % 4 == 0 too: the 4 columns are tiles of one image, the first
        // at the block's top left.
        const uint n = 4 * q / T, t = 4 * q % T;
        const int iy0 = int(t / TW) * 4 - PT, ix0 = int(t % TW) * 4 - PL;
        const int base = int((n * C + c) * H * W);
        [[unroll]] for (int r = 0; r < 4 * int(BR) + 2; ++r) {
            float xs[24];
            load_row(base, iy0 + r, ix0, xs);
            // Row r is row r - 4 * kr of the patches in block row kr.
            [[unroll]] for (uint k = 0; k < 4; ++k) {
                const int i = r - 4 * int(k / BC);
                if (i >= 0 && i < 6)
                    [[unroll]] for (int j = 0; j < 6; ++j)
                        d[i][j][k] = xs[LEAD + 4 * int(k % BC) + j];
            }
        }
    } else {
        [[unroll]] for (uint k = 0; k < 4; ++k) {
            const uint col = 4 * q + k;
            const uint n = col / T, t = col % T;
            const int iy0 = int(t / TW) * 4 - PT, ix0 = int(t % TW) * 4 - PL;
            // Columns past the batch's tiles read rows past the map: zeros.
            const int base = int((n * C + c) * H * W), row0 = col < NT ? iy0 : int(H);
            [[unroll]] for (int i = 0; i < 6; ++i) {
                if (XV4) {
                    float xs[24];
                    load_row(base, row0 + i, ix0, xs);
                    [[unroll]] for (int j = 0; j < 6; ++j)
                        d[i][j][k] = xs[LEAD + j];
                } else {
                    [[unroll]] for (int j = 0; j < 6; ++j) {
                        const int iy = row0 + i, ix = ix0 + j;
                        const bool inside = uint(iy) < H && uint(ix) < W;
                        const float v = texelFetch(x, inside ? base + iy * int(W) + ix : 0).x;
                        d[i][j][k] = inside ? v : 0.0;
                    }
                }
            }
        }
    }
    // Columns of d, then its rows.
    [[unroll]] for (uint j = 0; j < 6; ++j) {
        vec4 a[6] = vec4[6](d[0][j], d[1][j], d[2][j], d[3][j], d[4][j], d[5][j]);
        bt(a);
        [[unroll]] for (uint i = 0; i < 6; ++i)
            d[i][j] = a[i];
    }
    [[unroll]] for (uint i = 0; i < 6; ++i) {
        bt(d[i]);
        [[unroll]] for (uint j = 0; j < 6; ++j)
            v4[((6 * i + j) * C + c) * (NC / 4) + q] = d[i][j];
    }
}
