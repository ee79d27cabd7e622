#version 450
// Direct 2-D convolution and its input gradient, shaped for lavapipe (Mesa's
// CPU driver). With the geometry of the forward convolution (strides SH, SW,
// dilations DH, DW, leading pads PT, PL):
//   forward (FLAGS & 2 clear), "in" = x, "out" = y:
//     y[n, g*CO + m, oy, ox] = sum over (c, kh, kw) of
//         x[n, g*CI + c, oy*SH - PT + kh*DH, ox*SW - PL + kw*DW] * w[g, m, c, kh, kw] (+ b)
//   backward (FLAGS & 2), "in" = dy, "out" = dx, CI/CO and the maps swapped:
//     dx[n, g*CO + c, iy, ix] += sum over (m, kh, kw) of dy[n, g*CI + m, oy, ox] * w[g, m, c, kh, kw]
//         over oy*SH = iy + PT - kh*DH and ox*SW = ix + PL - kw*DW (exact divisions).
// Both read in row (out_row * A + B + kh * C) / E: forward A = SH, B = -PT,
// C = DH, E = 1; backward A = 1, B = PT, C = -DH, E = SH (columns alike).
// Tiles start on multiples of E, so which (tile row, tap) pairs divide
// exactly, and the in row they read relative to the tile, are known when
// the pipeline is built: the loops below unroll into straight-line code.
//
// What lavapipe (Mesa 22) makes cheap and dear, and how this kernel follows:
// - every SSBO load is a loop over the 8 SIMD lanes, uniform address or not
//   (and weights in a UBO measured slower still); a texel fetch is one
//   vectorised gather, but costs about 25 multiply-adds however many lanes
//   need it. Weights and input both come through texel buffers: the input
//   as a row segment per lane, 4 columns per texel where rows are a multiple
//   of 4 long (XV = 4), else one; the weights of one in channel (all taps,
//   BC out channels) as rgba32f texels the lanes share. With FLAGS & 32 each lane of a subgroup fetches
//   a different one of those and subgroupShuffle hands them round (a vector
//   extract on lavapipe): SG times fewer weight fetches.
// - a variable carried around a loop is stored under the loop's lane mask at
//   every iteration: CU in channels x all taps are unrolled per iteration, so
//   the BC x PH x PW accumulators take many multiply-adds between two such
//   stores.
// - stores are loops over the lanes too: 4 adjacent columns go as one vec4.
// - a texel fetch is a call to a small function, and every vector live in
//   a register across a call is spilled; fma() becomes a multiply and an
//   add. So each channel step fetches all it reads first, then multiplies
//   with IB x JB accumulators held in registers over every in channel and
//   tap of the step, its weights and inputs operands read from the stack
//   (GoogLeNet's and MobileNet V2's 1x1 layers 10-20% faster, Winograd's
//   products 14-16%, than multiplying each fetched row at once, whose
//   accumulators went back to memory after every multiply-add).
// Each invocation computes BC out channels x PH rows x PW columns. The
// channel block comes from gl_WorkGroupID.y (weight fetches lane-uniform);
// with FLAGS & 8 the lanes take different channel blocks (or groups:
// depthwise layers) of one tile instead, for maps with too few tiles to
// fill the lanes, or groups with too few channels to fill a block.
// Backward with FLAGS & 64: the forward's x is the output of a Relu/ReLU6
// whose backward this kernel applies (lvk_node.bwd_fused): it masks each
// element of dx as it stores it, and "out" is the gradient of the
// activation's input instead. Forward with FLAGS & 256: "out" is the sum of
// an Add fused into this convolution (lvk_node.sum), its other operand
// added to each element before the clamp and the store; backward with it,
// the gradient of a residual Add's output is added to dx as it is stored
// (lvk_node.bwd_sum).
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;

// Channel counts are pushed where they only bound loops and offset
// addresses: layers that differ only in them share a pipeline, which
// lavapipe JITs once (tens of ms each). Where a count is fixed instead
// (lanes taking channel blocks, as depthwise layers do; a loop over in
// channels of one iteration), the compiler folds what depends on it.
layout(push_constant) uniform Dims {
    uint CI_PUSHED;  // in channels per group, where CI_FIXED is 0
    uint CO_PUSHED;  // out channels per group, where CO_FIXED is 0
};
// Constants in the order of src/nn/ops/conv.c's TX_* enum.
layout(constant_id = 1) const uint CI_FIXED = 0;  // in channels per group, or 0: pushed
layout(constant_id = 2) const uint CO_FIXED = 0;  // out channels per group, or 0: pushed
layout(constant_id = 3) const uint G = 1;         // groups
layout(constant_id = 4) const uint H = 1;    // in height, width
layout(constant_id = 5) const uint W = 1;
layout(constant_id = 6) const uint OH = 1;   // out height, width
layout(constant_id = 7) const uint OW = 1;
layout(constant_id = 8) const uint KH = 1;   // kernel
layout(constant_id = 9) const uint KW = 1;
layout(constant_id = 10) const int SH = 1;   // the forward convolution's strides,
layout(constant_id = 11) const int SW = 1;
layout(constant_id = 12) const int DH = 1;   // dilations
layout(constant_id = 13) const int DW = 1;
layout(constant_id = 14) const int PT = 0;   // and leading pads
layout(constant_id = 15) const int PL = 0;
layout(constant_id = 16) const uint BC = 1;  // out channels per invocation
layout(constant_id = 17) const uint PW = 1;  // columns per invocation (a multiple of E)
layout(constant_id = 18) const uint PH = 1;  // rows per invocation (a multiple of E)
layout(constant_id = 19) const uint FLAGS = 0; // 1 bias, 2 backward, 4 XV = 4, 8 blocks across lanes,
                                               // 16 activation, 32 weights shared by shuffles,
                                               // 64 activation's gradient mask (backward),
                                               // 128 backward stores (else adds to "out"),
                                               // 256 adds the tensor at binding 3,
                                               // 512 CO is a multiple of BC
layout(constant_id = 20) const uint CU = 1;  // in channels per loop iteration (divides CI)
// Forward with a Relu/ReLU6 fused in (lvk_node.act): y = clamp(conv, ACT_LO, ACT_HI);
// backward with its mask (FLAGS & 64): the activation's bounds.
layout(constant_id = 21) const float ACT_LO = 0.0;
layout(constant_id = 22) const float ACT_HI = 0.0;
// With FLAGS & 32: lanes of a subgroup that share weight fetches (the
// subgroup size, or the workgroup's where that is smaller).
layout(constant_id = 23) const uint SG = 1;

const bool BIAS = (FLAGS & 1) != 0, BWD = (FLAGS & 2) != 0, LANE_BLOCKS = (FLAGS & 8) != 0;
const bool SHUF = (FLAGS & 32) != 0, CO_WHOLE = (FLAGS & 512) != 0;
const uint XV = (FLAGS & 4) != 0 ? 4 : 1;    // in floats per texel

const int AH = BWD ? 1 : SH, BH = BWD ? PT : -PT, CH = BWD ? -DH : DH, EH = BWD ? SH : 1;
const int AW = BWD ? 1 : SW, BW = BWD ? PL : -PL, CW = BWD ? -DW : DW, EW = BWD ? SW : 1;
// In rows/columns relative to a tile's origin (oy0 * AH / EH) reach from
// UMIN to UMAX (VMIN to VMAX); OFF* keep divisions and % off negatives.
const int OFFH = (int(KH) * DH + PT) / EH + 1, OFFW = (int(KW) * DW + PL) / EW + 1;
const int TH = (int(KH) - 1) * CH, TW = (int(KW) - 1) * CW;   // last tap's offset
const int UMIN = (BH + (TH < 0 ? TH : 0) + OFFH * EH) / EH - OFFH;
const int UMAX = ((int(PH) - 1) * AH + BH + (TH > 0 ? TH : 0) + OFFH * EH) / EH - OFFH;
const int VMIN = (BW + (TW < 0 ? TW : 0) + OFFW * EW) / EW - OFFW;
const int VMAX = ((int(PW) - 1) * AW + BW + (TW > 0 ? TW : 0) + OFFW * EW) / EW - OFFW;
const uint RH = uint(UMAX - UMIN + 1);
// With XV = 4 a tile's first in column sits LEAD columns into an aligned
// texel (the tile's own origin column is a multiple of 4).
const uint LEAD = XV == 4 ? uint(VMIN + 4 * OFFW) % 4 : 0;   // VMIN >= -OFFW
const uint NXT = (LEAD + uint(VMAX - VMIN + 1) + XV - 1) / XV;  // in texels per row
const uint KK = KH * KW;
const uint NWT = (KK * BC + 3) / 4;          // weight texels per in channel
const uint NBT = (BC + 3) / 4;               // bias texels per channel block
const uint NWS = (NWT + SG - 1) / SG;        // weight texels each lane fetches with SHUF
const bool YV4 = PW % 4 + OW % 4 == 0;       // stores 4 columns at a time
// Accumulators held in registers while a channel step multiplies: IB
// channels x JB columns, 16 (with their operands, within AVX-512's 32
// vector registers; AVX2's 16 spill a few).
const uint IB = BC < 16 ? BC : 16;
const uint JB = 16 / IB < PW ? 16 / IB : PW;

layout(std430, set = 0, binding = 0) buffer Y { float y[]; };   // out: [N, G*CO, OH, OW]
layout(std430, set = 0, binding = 0) buffer Y4 { vec4 y4[]; };  // the same, 4 columns at a time
layout(set = 0, binding = 1) uniform textureBuffer x;           // in: [N, G*CI, H, W] (r32f or rgba32f view)
layout(set = 0, binding = 2) uniform textureBuffer wt;          // w: [G, CO/BC, CI, NWT] rgba32f, each
                                                                //    NWT texels = [KH, KW, BC] zero-padded;
                                                                // then with bias b: [G, CO/BC, NBT]
// Laid out like "out" (an rgba32f view where stores are 4 columns, else
// r32f): with MASK the activation's output, with RESID the Add's other
// operand (forward) or its output's gradient (backward). With MASK, the
// run-time ReLU gradient mode.
layout(set = 0, binding = 3) uniform textureBuffer aux;
layout(std430, set = 0, binding = 4) readonly buffer Ctrl { uint relu_mode; } ctrl;

#include "common/relu_mode.glsl"
#include "common/conv_store.glsl"

// The tap row kh, if any, through which tile row r reads in row u (counted
// from the tile's first, UMIN): kh * CH = (u + UMIN) * EH - r * AH - BH.
// Solving for kh, rather than trying every tap of every row, keeps the
// unrolled loops from growing KH times, all but one of them dead: lavapipe
// optimises the unrolled code before it drops the dead part (the 7x7 stem's
// pipeline took 0.4 s to build that way).
bool tap_h(uint u, uint r, out uint kh)
{
    const int t = (int(u) + UMIN) * EH - int(r) * AH - BH;
    const int a = CH > 0 ? t : -t, c = CH > 0 ? CH : -CH;   // % needs operands >= 0
    kh = uint(a / c);
    return a >= 0 && a % c == 0 && a / c < int(KH);
}

bool tap_w(uint j, uint kw, out int v)
{
    const int d = int(j) * AW + BW + int(kw) * CW + OFFW * EW;
    v = d / EW - OFFW;
    return d % EW == 0;
}

void main()
{
    const uint CI = CI_FIXED != 0 ? CI_FIXED : CI_PUSHED;
    const uint CO = CO_FIXED != 0 ? CO_FIXED : CO_PUSHED;
    const uint ncb = (OW + PW - 1) / PW, nrb = (OH + PH - 1) / PH;
    const uint nblk = (CO + BC - 1) / BC;
    const uint lane = gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    const uint lane_b = gl_WorkGroupID.y * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    // With SHUF, lanes without a tile stay to fetch their share of the
    // weights; they read zeros (past the map) and store nothing.
    const bool live = LANE_BLOCKS ? lane_b < G * nblk : lane < ncb * nrb;
    if (!live && !SHUF)
        return;
    const uint tile = LANE_BLOCKS ? gl_WorkGroupID.x : lane;
    const uint oy0 = (tile / ncb) * PH, ox0 = (tile % ncb) * PW;
    const uint gb = LANE_BLOCKS ? lane_b : gl_WorkGroupID.y;  // group x channel block
    const uint g = gb / nblk, blk = gb % nblk;
    const uint m0 = blk * BC;           // first out channel within the group
    const uint n = gl_WorkGroupID.z;

    float bias[NBT * 4];
    [[unroll]] for (uint q = 0; q < NBT; ++q) {
        vec4 t = BIAS ? texelFetch(wt, int(G * nblk * CI * NWT + (g * nblk + blk) * NBT + q))
                      : vec4(0.0);
        bias[4 * q] = t.x; bias[4 * q + 1] = t.y; bias[4 * q + 2] = t.z; bias[4 * q + 3] = t.w;
    }
    float acc[BC * PH * PW];
    [[unroll]] for (uint i = 0; i < BC; ++i)
        [[unroll]] for (uint k = 0; k < PH * PW; ++k)
            acc[i * PH * PW + k] = bias[i];

    // In row and column of the tile's origin (exact: oy0, ox0 are multiples
    // of EH, EW), and of its first texel.
    const int iy0 = int(oy0) * AH / EH + UMIN;
    const int ix0 = int(ox0) * AW / EW + VMIN - int(LEAD);
    int wi = int((g * nblk + blk) * CI * NWT);
    int xc = int((n * G + g) * CI * H * W);
    for (uint c0 = 0; c0 < CI; c0 += CU) {
        // Fetch the step's weights and in rows. Rows and texels no (tile
        // row, tap) pair reads are never fetched (dead code).
        float wf[CU * NWT * 4];
        float xs[CU * RH * NXT * XV];
        [[unroll]] for (uint cu = 0; cu < CU; ++cu, xc += int(H * W), wi += int(NWT)) {
            vec4 share[NWS];
            if (SHUF)
                [[unroll]] for (uint r = 0; r < NWS; ++r)
                    share[r] = texelFetch(wt, wi + int(min(r * SG + gl_SubgroupInvocationID, NWT - 1)));
            [[unroll]] for (uint q = 0; q < NWT; ++q) {
                vec4 t = SHUF ? subgroupShuffle(share[q / SG], q % SG) : texelFetch(wt, wi + int(q));
                [[unroll]] for (uint e = 0; e < 4; ++e)
                    wf[(cu * NWT + q) * 4 + e] = t[e];
            }
            [[unroll]] for (uint u = 0; u < RH; ++u) {
                const int iy = iy0 + int(u);
                const bool row_in = uint(iy) < H;
                [[unroll]] for (uint q = 0; q < NXT; ++q) {
                    const int ix = ix0 + int(q * XV);
                    // A texel lies wholly inside or outside a row (XV = 4
                    // needs W % 4 == 0). Outside (padding, tiles past the
                    // edge) reads texel 0 and is replaced by zeros.
                    const bool inside = row_in && uint(ix) < W;
                    vec4 t = texelFetch(x, inside ? (xc + iy * int(W) + ix) / int(XV) : 0);
                    t = inside ? t : vec4(0.0);
                    [[unroll]] for (uint e = 0; e < XV; ++e)
                        xs[((cu * RH + u) * NXT + q) * XV + e] = t[e];
                }
            }
        }
        // Multiply: IB channels x JB columns of one row at a time, each
        // input value loaded once per block.
        [[unroll]] for (uint r = 0; r < PH; ++r)
            [[unroll]] for (uint j0 = 0; j0 < PW; j0 += JB)
                [[unroll]] for (uint i0 = 0; i0 < BC; i0 += IB) {
                    float a[IB * JB];
                    [[unroll]] for (uint k = 0; k < IB * JB; ++k)
                        a[k] = i0 + k / JB < BC && j0 + k % JB < PW
                                   ? acc[((i0 + k / JB) * PH + r) * PW + j0 + k % JB] : 0.0;
                    [[unroll]] for (uint cu = 0; cu < CU; ++cu)
                        [[unroll]] for (uint u = 0; u < RH; ++u) {
                            uint kh;
                            if (!tap_h(u, r, kh))
                                continue;
                            [[unroll]] for (uint kw = 0; kw < KW; ++kw)
                                [[unroll]] for (uint jj = 0; jj < JB; ++jj) {
                                    int v;
                                    if (j0 + jj >= PW || !tap_w(j0 + jj, kw, v))
                                        continue;
                                    const float xv =
                                        xs[(cu * RH + u) * NXT * XV + LEAD + uint(v - VMIN)];
                                    [[unroll]] for (uint ii = 0; ii < IB && i0 + ii < BC; ++ii)
                                        a[ii * JB + jj] = fma(
                                            wf[cu * NWT * 4 + (kh * KW + kw) * BC + i0 + ii], xv,
                                            a[ii * JB + jj]);
                                }
                        }
                    [[unroll]] for (uint k = 0; k < IB * JB; ++k)
                        if (i0 + k / JB < BC && j0 + k % JB < PW)
                            acc[((i0 + k / JB) * PH + r) * PW + j0 + k % JB] = a[k];
                }
    }

    const uint mode = MASK ? ctrl.relu_mode : LVK_RELU_GRAD_NORMAL;
    [[unroll]] for (uint i = 0; i < BC; ++i) {
        if (!CO_WHOLE && m0 + i >= CO)
            break;
        const uint yo = ((n * G + g) * CO + m0 + i) * OH * OW;
        [[unroll]] for (uint r = 0; r < PH; ++r) {
            const uint oy = oy0 + r;
            const uint a = (i * PH + r) * PW;
            if (YV4) {
                [[unroll]] for (uint j = 0; j < PW; j += 4) {
                    const uint idx = (yo + oy * OW + ox0 + j) / 4;
                    if (live && oy < OH && ox0 + j < OW) {
                        const vec4 s = RESID || MASK ? texelFetch(aux, int(idx)) : vec4(0.0);
                        const vec4 old = ADD ? y4[idx] : vec4(0.0);
                        vec4 v;
                        [[unroll]] for (uint c = 0; c < 4; ++c)
                            v[c] = lvk_conv_store_value(acc[a + j + c], s[c], old[c], mode);
                        y4[idx] = v;
                    }
                }
            } else {
                [[unroll]] for (uint j = 0; j < PW; ++j) {
                    const uint idx = yo + oy * OW + ox0 + j;
                    if (live && oy < OH && ox0 + j < OW) {
                        const float s = RESID || MASK ? texelFetch(aux, int(idx)).x : 0.0;
                        y[idx] = lvk_conv_store_value(acc[a + j], s, ADD ? y[idx] : 0.0, mode);
                    }
                }
            }
        }
    }
}
