#version 450
// Copy between two strided N-D views, the one kernel behind the movement ops
// (Concat, Split, Slice, Transpose, Pad, Gather, Expand) and their backward
// passes. Each invocation owns one destination element (four with FLAGS
// bit 1, along the innermost axis): its multi-index i over the iteration
// shape S gives
//     dst[DST_BASE + sum_d i_d * DST_STRIDE_d]  (=, or += when accumulating)
// and a source term. Along a plain axis the source coordinate is i_d itself
// (steps, flips, broadcasts and permutations live in the signed strides);
// along a table axis it comes from `table`: a direct table holds one
// coordinate per i_d (or none), a list table a list of them, and the value
// is the sum over the product of the lists, or FILL if one is empty.
// Direct tables express padding and gathers; lists express the gradient of
// an element that forward copied to several places (reflect and edge
// padding, repeated gather indices, broadcasts), so backward is a gather and
// needs no atomics. The source and destination never overlap.
// A backward copy into the gradient of a Relu/ReLU6's output may apply the
// activation's gradient mask and store into the gradient of its input
// instead (FLAGS bit 2; lvk_node.bwd_fused): dst is then that gradient, and
// mask the activation's output, indexed like dst.
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
#include "common/index.glsl"
#include "common/relu_mode.glsl"

// Bit 0: accumulate into dst; bit 1: four innermost elements per
// invocation, as vec4s (a copy without tables whose innermost axis has unit
// strides, and whose bases, other strides and innermost size are multiples
// of 4: lavapipe loads and stores each vec4 in one pass over the lanes);
// bit 2: apply an activation's gradient mask; bits 8..13: axes read through
// the table; bits 16..21: which of those tables are direct.
layout(constant_id = 0) const uint FLAGS = 0;
// Iteration shape, outermost first; unused leading axes are 1.
layout(constant_id = 1) const int S0 = 1;
layout(constant_id = 2) const int S1 = 1;
layout(constant_id = 3) const int S2 = 1;
layout(constant_id = 4) const int S3 = 1;
layout(constant_id = 5) const int S4 = 1;
layout(constant_id = 6) const int S5 = 1;
// Destination strides in elements.
layout(constant_id = 7) const int D0 = 0;
layout(constant_id = 8) const int D1 = 0;
layout(constant_id = 9) const int D2 = 0;
layout(constant_id = 10) const int D3 = 0;
layout(constant_id = 11) const int D4 = 0;
layout(constant_id = 12) const int D5 = 0;
// Source strides in elements (signed: negative steps read backwards).
layout(constant_id = 13) const int R0 = 0;
layout(constant_id = 14) const int R1 = 0;
layout(constant_id = 15) const int R2 = 0;
layout(constant_id = 16) const int R3 = 0;
layout(constant_id = 17) const int R4 = 0;
layout(constant_id = 18) const int R5 = 0;
// Element offsets of the two views in their buffers.
layout(constant_id = 19) const int DST_BASE = 0;
layout(constant_id = 20) const int SRC_BASE = 0;
// Value of an element with no source (constant padding).
layout(constant_id = 21) const float FILL = 0.0;
// Word offset of this copy's tables, one per table axis in axis order. A
// direct table is S_d coordinates (NONE: no source). A list table is S_d + 1
// bounds (absolute word offsets) followed by the lists; its last bound is
// where the next axis' table starts.
layout(constant_id = 22) const uint TABLE_BASE = 0;
// With the mask: the activation's bounds.
layout(constant_id = 23) const float ACT_LO = 0.0;
layout(constant_id = 24) const float ACT_HI = 0.0;
// Vec4 copies (FLAGS bit 1) with TEXEL (lvk_prefer_texel) read src, mask
// and dst through rgba32f texel views, which lavapipe fetches for all lanes
// at once where it reads a storage buffer lane by lane.
layout(constant_id = 25) const bool TEXEL = false;

// dst is read too when accumulating.
layout(std430, set = 0, binding = 0) buffer Dst { float dst[]; };             // dst: view (S, D*)
layout(std430, set = 0, binding = 1) readonly buffer Src { float src[]; };    // src: view (S, R*)
layout(std430, set = 0, binding = 2) readonly buffer Table { uint table[]; }; // table: TABLE_BASE
layout(std430, set = 0, binding = 3) readonly buffer Mask { float mask[]; };   // mask: like dst
layout(std430, set = 0, binding = 4) readonly buffer Ctrl { uint relu_mode; } ctrl; // struct lvk_ctrl
// The same, four elements at a time (FLAGS bit 1).
layout(std430, set = 0, binding = 0) buffer Dst4 { vec4 dst4[]; };
layout(std430, set = 0, binding = 1) readonly buffer Src4 { vec4 src4[]; };
layout(std430, set = 0, binding = 3) readonly buffer Mask4 { vec4 mask4[]; };
layout(set = 0, binding = 5) uniform textureBuffer src_t;
layout(set = 0, binding = 6) uniform textureBuffer mask_t;
layout(set = 0, binding = 7) uniform textureBuffer dst_t;

const bool ACCUMULATE = (FLAGS & 1u) != 0u;
const bool MASK = (FLAGS & 4u) != 0u;
const bool V4 = (FLAGS & 2u) != 0u;
const int V = V4 ? 4 : 1;     // elements per invocation along the innermost axis
const uint TABLE_MASK = (FLAGS >> 8) & 63u;
const uint DIRECT_MASK = (FLAGS >> 16) & 63u;
const uint NONE = 0xffffffffu;

// Axes are unrolled by macro rather than looped over arrays: lavapipe keeps
// dynamically indexed local arrays in memory, which made this kernel several
// times slower than a plain copy.
#define TAB(d) ((TABLE_MASK & (1u << d)) != 0u)
#define DIRECT(d) ((DIRECT_MASK & (1u << d)) != 0u)

// Splits the flat index into coordinate i##d (innermost axis first).
#define COORD(d) int i##d = int(rest % uint(S##d)); rest /= uint(S##d);

// Looks up axis d: x##d (direct), or the bounds [lo##d, hi##d) of its list.
// Plain and direct axes get a single pass, so their loops below vanish.
#define BOUNDS(d)                                        \
    uint lo##d = 0u, hi##d = 1u, x##d = 0u;              \
    if (TAB(d) && DIRECT(d)) {                           \
        x##d = table[t + uint(i##d)];                    \
        empty = empty || x##d == NONE;                   \
        t += uint(S##d);                                 \
    } else if (TAB(d)) {                                 \
        lo##d = table[t + uint(i##d)];                   \
        hi##d = table[t + uint(i##d) + 1u];              \
        empty = empty || lo##d == hi##d;                 \
        t = table[t + uint(S##d)];                       \
    }

// Loop over axis d's list, adding its source offset to k##d.
#define LIST(d, prev)                                    \
    for (uint c##d = lo##d; c##d < hi##d; ++c##d) {      \
        int k##d = prev + (TAB(d) ? int(DIRECT(d) ? x##d : table[c##d]) * R##d : 0);

void main()
{
    uint rest = lvk_flat_index();
    if (rest >= uint(S0 * S1 * S2 * S3 * S4 * (S5 / V)))
        return;
    int i5 = int(rest % uint(S5 / V)) * V;
    rest /= uint(S5 / V);
    COORD(4) COORD(3) COORD(2) COORD(1) COORD(0)

    int o = DST_BASE + i0 * D0 + i1 * D1 + i2 * D2 + i3 * D3 + i4 * D4 + i5 * D5;
    int s = SRC_BASE + (TAB(0) ? 0 : i0 * R0) + (TAB(1) ? 0 : i1 * R1) + (TAB(2) ? 0 : i2 * R2) +
            (TAB(3) ? 0 : i3 * R3) + (TAB(4) ? 0 : i4 * R4) + (TAB(5) ? 0 : i5 * R5);

    if (V4) {
        vec4 v = TEXEL ? texelFetch(src_t, s / 4) : src4[s / 4];
        if (MASK) {
            const vec4 k = TEXEL ? texelFetch(mask_t, o / 4) : mask4[o / 4];
            [[unroll]] for (int c = 0; c < 4; ++c)
                v[c] = lvk_relu_grad(ctrl.relu_mode, k[c], v[c], ACT_LO, ACT_HI);
        }
        if (ACCUMULATE)
            v += TEXEL ? texelFetch(dst_t, o / 4) : dst4[o / 4];
        dst4[o / 4] = v;
        return;
    }
    float v;
    if (TABLE_MASK == 0u) {
        v = src[s];
    } else {
        bool empty = false;
        uint t = TABLE_BASE;
        BOUNDS(0) BOUNDS(1) BOUNDS(2) BOUNDS(3) BOUNDS(4) BOUNDS(5)
        if (empty) {
            if (ACCUMULATE)
                return;
            v = FILL;
        } else {
            // The sum over the product of the lists.
            v = 0.0;
            LIST(0, s) LIST(1, k0) LIST(2, k1) LIST(3, k2) LIST(4, k3) LIST(5, k4)
                v += src[k5];
            }}}}}}
        }
    }

    if (MASK)
        v = lvk_relu_grad(ctrl.relu_mode, mask[o], v, ACT_LO, ACT_HI);
    if (ACCUMULATE)
        dst[o] += v;
    else
        dst[o] = v;
}
