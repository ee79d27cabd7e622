/* Slice, and the view plans all movement ops run on (see view_copy.h).
 *
 * A slice is a strided view of its input: the output reads the input with
 * strides multiplied by the steps, from the start offset, so forward is one
 * view copy. Backward scatters the output gradient back through the same
 * view into the input gradient: each output element has its own input
 * element, so the scatter is race-free and needs no table.
 *
 * Starts, ends, axes and steps are attributes before opset 10 and constant
 * inputs from it; out-of-range starts and ends are clamped as the ONNX
 * specification says (negative steps clamp to [-1, dim - 1]). */
#include <string.h>

#include "nn/ops/view_copy.h"
#include "nn/ops_common.h"

/* ---- view plans -------------------------------------------------------------------- */

/* Specialization constants of shaders/view_copy.comp: flags, 6 sizes, 6 dst
 * strides, 6 src strides, dst base, src base, fill, table base, the bounds
 * of the activation whose gradient mask a backward copy applies, and
 * whether vec4 copies read through texel views (lvk_prefer_texel). */
enum { SPEC_FLAGS = 0, SPEC_SIZE = 1, SPEC_DST = 7, SPEC_SRC = 13, SPEC_DST_BASE = 19,
       SPEC_SRC_BASE = 20, SPEC_FILL = 21, SPEC_TABLE = 22, SPEC_ACT_LO = 23, SPEC_ACT_HI = 24,
       SPEC_TEXEL = 25, SPEC_COUNT = 26 };
_Static_assert(SPEC_COUNT <= LVK_MAX_SPEC, "view_copy.comp specialization constants");
_Static_assert(LVK_MAX_DIMS == 6, "view_copy.comp handles 6 dims");

void lvk_view_strides(const struct lvk_shape *s, int64_t *stride)
{
    int64_t acc = 1;
    for (int d = s->ndim - 1; d >= 0; d--) {
        stride[d] = acc;
        acc *= s->d[d];
    }
}

struct lvk_view_plan *lvk_view_plan_new(int cap_steps)
{
    struct lvk_view_plan *p = lvk_calloc(1, sizeof *p + (size_t)cap_steps * sizeof p->step[0]);
    if (!p)
        return NULL;
    p->cap_steps = cap_steps;
    p->extra = -1;
    p->words = (uint32_t *)&p->step[cap_steps];
    return p;
}

int lvk_view_add(struct lvk_view_plan *p, int src, int dst, bool bwd, const struct lvk_shape *shape)
{
    LVK_ASSERT(p->nsteps < p->cap_steps);
    struct lvk_view_step *s = &p->step[p->nsteps];
    memset(s, 0, sizeof *s);
    s->src = src;
    s->dst = dst;
    s->bwd = bwd;
    s->ndim = shape->ndim;
    memcpy(s->size, shape->d, sizeof s->size);
    lvk_view_strides(shape, s->dst_stride);
    lvk_view_strides(shape, s->src_stride);
    return p->nsteps++;
}

/* Next table's word offset after axis d's table starting at t. */
static uint32_t table_next(const struct lvk_view_plan *p, const struct lvk_view_step *s, int d,
                           uint32_t t)
{
    return ((s->direct_mask >> d) & 1) ? t + (uint32_t)s->size[d] : p->words[t + s->size[d]];
}

lvk_status lvk_view_map(struct lvk_view_plan **pp, int step, int axis, const int64_t *map,
                        int64_t nmap, bool invert)
{
    struct lvk_view_plan *p = *pp;
    struct lvk_view_step *s = &p->step[step];
    LVK_ASSERT(axis >= 0 && axis < s->ndim && (s->table_mask >> axis) == 0);
    int64_t n = s->size[axis];
    LVK_ASSERT(invert || nmap == n);

    /* Length of the longest list decides the format. */
    int64_t nlist = 0, longest = 0;
    int64_t *len = NULL;
    if (invert) {
        len = lvk_calloc((size_t)LVK_MAX(n, 1), sizeof *len);
        if (!len)
            return LVK_ERR_HOST_OOM;
    }
    for (int64_t o = 0; o < nmap; o++) {
        LVK_ASSERT(map[o] < (invert ? n : INT32_MAX));
        if (map[o] < 0)
            continue;
        nlist++;
        longest = LVK_MAX(longest, invert ? ++len[map[o]] : 1);
    }
    free(len);
    bool direct = longest <= 1;
    int64_t need = (int64_t)p->nwords + n + (direct ? 0 : 1 + nlist);
    if (need > INT32_MAX)
        return lvk_fail(LVK_ERR_UNSUPPORTED, "index table of %lld entries is too large",
                        (long long)need);
    if ((uint32_t)need > p->cap_words) {
        uint32_t cap = LVK_MAX((uint32_t)need, 2 * p->cap_words);
        struct lvk_view_plan *q = realloc(p, sizeof *p + (size_t)p->cap_steps * sizeof p->step[0] +
                                                 (size_t)cap * sizeof *p->words);
        if (!q)
            return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
        p = *pp = q;
        p->words = (uint32_t *)&p->step[p->cap_steps];
        p->cap_words = cap;
        s = &p->step[step];
    }
    if (!s->table_mask)
        s->table = p->nwords;
    /* The shader chains a step's tables, so they must be contiguous. */
    uint32_t t = s->table;
    for (int d = 0; d < axis; d++)
        if ((s->table_mask >> d) & 1)
            t = table_next(p, s, d, t);
    LVK_ASSERT(t == p->nwords);

    uint32_t *tab = p->words + p->nwords;
    if (direct) {
        /* One coordinate per entry, UINT32_MAX for none. */
        for (int64_t x = 0; x < n; x++)
            tab[x] = UINT32_MAX;
        for (int64_t o = 0; o < nmap; o++)
            if (map[o] >= 0)
                tab[invert ? map[o] : o] = (uint32_t)(invert ? o : map[o]);
        p->nwords += (uint32_t)n;
        s->direct_mask |= 1u << axis;
    } else {
        /* bounds[x] .. bounds[x + 1] delimit x's list, as absolute word
         * offsets so the shader can chain to the next axis. Counting sort
         * of o by map[o]: lists come out in increasing o. */
        uint32_t *bounds = tab, at = p->nwords + (uint32_t)n + 1;
        memset(bounds, 0, (size_t)(n + 1) * sizeof *bounds);
        for (int64_t o = 0; o < nmap; o++)
            if (map[o] >= 0)
                bounds[map[o] + 1]++;
        bounds[0] = at;
        for (int64_t x = 0; x < n; x++)
            bounds[x + 1] += bounds[x];
        for (int64_t o = 0; o < nmap; o++)
            if (map[o] >= 0)
                p->words[bounds[map[o]]++] = (uint32_t)o;
        for (int64_t x = n; x > 0; x--)
            bounds[x] = bounds[x - 1];
        bounds[0] = at;
        p->nwords = at + (uint32_t)nlist;
    }
    s->table_mask |= 1u << axis;
    return LVK_OK;
}

/* Drops plain axes of size 1 and merges neighbouring plain axes that are
 * contiguous on both sides, so that most copies index in one or two dims.
 * Table axes stay, in order, so the table layout is unchanged. */
static void simplify(struct lvk_view_step *s)
{
    struct lvk_view_step r = *s;
    int nd = 0;
    r.table_mask = r.direct_mask = 0;
    for (int d = 0; d < s->ndim; d++) {
        bool tab = (s->table_mask >> d) & 1;
        if (!tab && s->size[d] == 1)
            continue;
        if (!tab && nd > 0 && !((r.table_mask >> (nd - 1)) & 1) &&
            r.dst_stride[nd - 1] == s->dst_stride[d] * s->size[d] &&
            r.src_stride[nd - 1] == s->src_stride[d] * s->size[d]) {
            r.size[nd - 1] *= s->size[d];
            r.dst_stride[nd - 1] = s->dst_stride[d];
            r.src_stride[nd - 1] = s->src_stride[d];
            continue;
        }
        r.size[nd] = s->size[d];
        r.dst_stride[nd] = s->dst_stride[d];
        r.src_stride[nd] = s->src_stride[d];
        if (tab)
            r.table_mask |= 1u << nd;
        if ((s->direct_mask >> d) & 1)
            r.direct_mask |= 1u << nd;
        nd++;
    }
    r.ndim = nd;
    *s = r;
}

static int64_t step_count(const struct lvk_view_step *s)
{
    int64_t c = 1;
    for (int d = 0; d < s->ndim; d++)
        c *= s->size[d];
    return c;
}

lvk_status lvk_view_finish(struct lvk_model *m, struct lvk_node *n, struct lvk_view_plan *p)
{
    for (int i = 0; i < p->nsteps; i++) {
        struct lvk_view_step *s = &p->step[i];
        simplify(s);
        /* The shader's offsets are 32-bit: every view lies inside a value,
         * so values below 2^31 elements keep them in range. */
        const int vals[2] = {s->src, s->dst};
        for (int k = 0; k < 2; k++) {
            const struct lvk_value *v = &m->values[vals[k]];
            if (lvk_shape_count(&v->shape) > INT32_MAX) {
                free(p);
                return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                                     "tensor '%s' has more than 2^31 elements", v->name);
            }
        }
        /* Integer tensors live on the host only: the op must fold. */
        const struct lvk_value *in = &m->values[s->bwd ? s->dst : s->src];
        if (in->dtype != LVK_DTYPE_F32 && !in->is_const) {
            free(p);
            return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                                 "integer tensor '%s' is only known at run time; lucid-vk "
                                 "evaluates integer tensors at load time only", in->name);
        }
    }
    if (p->nwords) {
        uint32_t *init = malloc((size_t)p->nwords * sizeof *init);
        if (!init) {
            free(p);
            return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
        }
        memcpy(init, p->words, (size_t)p->nwords * sizeof *init);
        p->extra = lvk_node_extra(n, (VkDeviceSize)p->nwords * sizeof *init, init);
    }
    free(n->priv);
    n->priv = p;
    return LVK_OK;
}

/* One step on the host, on float or int64 elements: the shader's loop. */
static void run_host(const struct lvk_view_plan *p, const struct lvk_view_step *s, bool f32,
                     void *dst, const void *src)
{
    int64_t count = step_count(s);
    for (int64_t e = 0; e < count; e++) {
        int64_t i[LVK_MAX_DIMS], rest = e;
        for (int d = s->ndim - 1; d >= 0; d--) {
            i[d] = rest % s->size[d];
            rest /= s->size[d];
        }
        /* Per axis: the entries [lo, hi) holding its source coordinates. */
        int64_t o = s->dst_base, base = s->src_base;
        uint32_t lo[LVK_MAX_DIMS] = {0}, hi[LVK_MAX_DIMS] = {0}, cur[LVK_MAX_DIMS] = {0};
        bool empty = false;
        uint32_t t = s->table;
        for (int d = 0; d < s->ndim; d++) {
            o += i[d] * s->dst_stride[d];
            if (!((s->table_mask >> d) & 1)) {
                base += i[d] * s->src_stride[d];
                continue;
            }
            bool direct = (s->direct_mask >> d) & 1;
            lo[d] = direct ? t + (uint32_t)i[d] : p->words[t + i[d]];
            hi[d] = direct ? lo[d] + (p->words[lo[d]] != UINT32_MAX) : p->words[t + i[d] + 1];
            cur[d] = lo[d];
            empty |= lo[d] == hi[d];
            t = table_next(p, s, d, t);
        }
        double vf = empty ? s->fill : 0;
        int64_t vi = empty ? (int64_t)s->fill : 0;
        for (bool more = !empty; more;) {
            int64_t k = base;
            for (int d = 0; d < s->ndim; d++)
                if ((s->table_mask >> d) & 1)
                    k += (int64_t)p->words[cur[d]] * s->src_stride[d];
            if (f32)
                vf += ((const float *)src)[k];
            else
                vi += ((const int64_t *)src)[k];
            more = false;
            for (int d = s->ndim - 1; d >= 0 && !more; d--) {
                if (!((s->table_mask >> d) & 1))
                    continue;
                more = ++cur[d] < hi[d];
                if (!more)
                    cur[d] = lo[d];
            }
        }
        if (f32)
            ((float *)dst)[o] = (float)vf;
        else
            ((int64_t *)dst)[o] = vi;
    }
}

lvk_status lvk_view_fold(struct lvk_model *m, struct lvk_node *n)
{
    const struct lvk_view_plan *p = n->priv;
    for (int k = 0; k < n->noutputs; k++) {
        if (n->outputs[k] < 0)
            continue;
        struct lvk_value *v = lvk_out(m, n, k);
        size_t bytes = (size_t)lvk_shape_count(&v->shape) * (v->dtype == LVK_DTYPE_F32 ? 4 : 8);
        free(v->host);
        v->host = calloc(1, bytes ? bytes : 1);
        if (!v->host)
            return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    }
    for (int i = 0; i < p->nsteps; i++) {
        const struct lvk_view_step *s = &p->step[i];
        if (s->bwd || step_count(s) == 0)
            continue;
        const struct lvk_value *src = &m->values[s->src];
        LVK_ASSERT(src->host);
        run_host(p, s, src->dtype == LVK_DTYPE_F32, m->values[s->dst].host, src->host);
    }
    return LVK_OK;
}

/* Whether step s moves whole rows: no tables, and the innermost axis
 * contiguous on both sides. */
static bool plain_rows(const struct lvk_view_step *s)
{
    const int last = s->ndim - 1;
    return !s->table_mask && last >= 0 && s->src_stride[last] == 1 && s->dst_stride[last] == 1;
}

/* On lavapipe, forward steps of plain rows run as buffer copies, one region
 * per row: a copy is a memcpy there, several times faster than the
 * shader's per-lane stores (GoogLeNet's Concat), and all copies of a node
 * share one barrier. (A GPU runs many small regions no faster than one
 * dispatch.) Rows of at least COPY_MIN_ROW elements, at most COPY_MAX_ROWS
 * of them per step. */
#define COPY_MIN_ROW 4
#define COPY_MAX_ROWS 4096

/* Rows of step s as a copy, or 0 when it is not one: not plain rows,
 * broadcast (a source read twice), short or too many rows. */
static int64_t copy_rows(const struct lvk_view_step *s)
{
    const int last = s->ndim - 1;
    if (!plain_rows(s) || s->size[last] < COPY_MIN_ROW)
        return 0;
    int64_t rows = 1;
    for (int d = 0; d < last; d++) {
        if (s->src_stride[d] == 0)
            return 0;
        rows *= s->size[d];
    }
    return rows <= COPY_MAX_ROWS ? rows : 0;
}

/* Whether view_copy.comp can move step s four elements at a time: no
 * tables, unit strides along the innermost axis, and every offset a
 * multiple of 4 elements (vec4 alignment on both sides). */
static bool vec4_rows(const struct lvk_view_step *s)
{
    const int last = s->ndim - 1;
    if (!plain_rows(s) || s->size[last] % 4 || s->src_base % 4 || s->dst_base % 4)
        return false;
    for (int d = 0; d < last; d++)
        if (s->src_stride[d] % 4 || s->dst_stride[d] % 4)
            return false;
    return true;
}

/* The forward as copies, when every step is one: steps write disjoint
 * windows (Concat, Split, Slice), so no barrier is needed between them. */
static lvk_status record_copies(struct lvk_model *m, const struct lvk_view_plan *p,
                                struct lvk_cmd *cmd, bool *done)
{
    *done = false;
    int64_t most = 0;
    for (int i = 0; i < p->nsteps; i++) {
        const struct lvk_view_step *s = &p->step[i];
        const int64_t rows = s->bwd || step_count(s) == 0 ? -1 : copy_rows(s);
        if (rows == 0)
            return LVK_OK;
        most = LVK_MAX(most, rows);
    }
    VkBufferCopy *r = lvk_calloc((size_t)LVK_MAX(most, 1), sizeof *r);
    if (!r)
        return LVK_ERR_HOST_OOM;
    for (int i = 0; i < p->nsteps; i++) {
        const struct lvk_view_step *s = &p->step[i];
        const struct lvk_buf *src = m->values[s->src].buf, *dst = m->values[s->dst].buf;
        if (s->bwd || step_count(s) == 0 || !src || !dst)
            continue;
        const int last = s->ndim - 1;
        const int64_t rows = copy_rows(s);
        for (int64_t k = 0; k < rows; k++) {
            /* Row k's coordinates on the outer axes, last fastest. */
            int64_t rest = k, so = s->src_base, dof = s->dst_base;
            for (int d = last - 1; d >= 0; d--) {
                const int64_t i_d = rest % s->size[d];
                rest /= s->size[d];
                so += i_d * s->src_stride[d];
                dof += i_d * s->dst_stride[d];
            }
            r[k] = (VkBufferCopy){.srcOffset = (VkDeviceSize)so * 4,
                                  .dstOffset = (VkDeviceSize)dof * 4,
                                  .size = (VkDeviceSize)s->size[last] * 4};
        }
        lvk_cmd_copy_regions(cmd, dst, src, r, (uint32_t)rows);
    }
    free(r);
    lvk_cmd_barrier(cmd, "view_copy");
    *done = true;
    return LVK_OK;
}

static lvk_status record(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd, bool bwd)
{
    const struct lvk_view_plan *p = n->priv;
    bool copied = false;
    if (!bwd && m->ctx->is_lavapipe)
        LVK_CHECK(record_copies(m, p, cmd, &copied));
    if (copied)
        return LVK_OK;
    for (int i = 0; i < p->nsteps; i++) {
        const struct lvk_view_step *s = &p->step[i];
        int64_t count = step_count(s);
        if (s->bwd != bwd || count == 0)
            continue;
        const struct lvk_value *sv = &m->values[s->src], *dv = &m->values[s->dst];
        /* Backward writes the gradient of input k: with an activation's
         * mask applied on the way (graph.h: bwd_fused), its input's
         * (lvk_graph_input_grad); it adds to it unless this copy is the
         * first to write it and writes all of it (lvk_node.grad_store). */
        int k = 0;
        while (bwd && k < n->ninputs && n->inputs[k] != s->dst)
            k++;
        LVK_ASSERT(!bwd || k < n->ninputs); /* backward steps write input gradients */
        const struct lvk_buf *src = bwd ? sv->grad : sv->buf;
        const struct lvk_buf *dst = bwd ? lvk_graph_input_grad(m, n, k) : dv->buf;
        float lo = 0, hi = 0;
        const struct lvk_node *act = bwd ? lvk_graph_grad_mask(m, s->dst, &lo, &hi) : NULL;
        const bool add = bwd && !lvk_graph_grad_stores(n, k);
        /* No buffer: an output nobody reads, or an input off the gradient path. */
        if (!src || !dst)
            continue;

        /* Axes are right-aligned in the shader's six. */
        int off = LVK_MAX_DIMS - s->ndim;
        const bool v4 = vec4_rows(s);
        uint32_t spec[SPEC_COUNT] = {0};
        spec[SPEC_FLAGS] = (add ? 1u : 0u) | (v4 ? 2u : 0u) | (act ? 4u : 0u) |
                           (s->table_mask << (8 + off)) | (s->direct_mask << (16 + off));
        spec[SPEC_ACT_LO] = lvk_spec_f32(lo);
        spec[SPEC_ACT_HI] = lvk_spec_f32(hi);
        /* A copy without tables or mask still binds something in their place. */
        const struct lvk_buf *table = p->extra >= 0 ? n->extra[p->extra] : src;
        const struct lvk_buf *mask = act ? dv->buf : src;
        /* Texel views of whole buffers: the three must fit. */
        const bool texel = v4 && lvk_prefer_texel(cmd->ctx, LVK_MAX(LVK_MAX(src->size, dst->size),
                                                                    mask->size) / 16);
        spec[SPEC_TEXEL] = texel;
        for (int d = 0; d < LVK_MAX_DIMS; d++)
            spec[SPEC_SIZE + d] = 1;
        for (int d = 0; d < s->ndim; d++) {
            spec[SPEC_SIZE + off + d] = (uint32_t)s->size[d];
            spec[SPEC_DST + off + d] = (uint32_t)(int32_t)s->dst_stride[d];
            spec[SPEC_SRC + off + d] = (uint32_t)(int32_t)s->src_stride[d];
        }
        spec[SPEC_DST_BASE] = (uint32_t)(int32_t)s->dst_base;
        spec[SPEC_SRC_BASE] = (uint32_t)(int32_t)s->src_base;
        spec[SPEC_FILL] = lvk_spec_f32((float)s->fill);
        spec[SPEC_TABLE] = s->table;
        const struct lvk_pipeline *pipe =
            lvk_pipeline_get(cmd->ctx, LVK_SHADER_VIEW_COPY, spec, SPEC_COUNT);
        if (!pipe)
            return LVK_ERR_VULKAN;
        const VkFormat rgba = VK_FORMAT_R32G32B32A32_SFLOAT;
        LVK_CHECK(lvk_dispatch_1d(cmd, pipe,
                                  LVK_BINDS(LVK_B(dst), LVK_B(src), LVK_B(table), LVK_B(mask),
                                            LVK_B(m->ctrl), lvk_texel_bind(src, rgba, texel),
                                            lvk_texel_bind(mask, rgba, texel),
                                            lvk_texel_bind(dst, rgba, texel)),
                                  8, NULL, 0, (uint64_t)count / (v4 ? 4 : 1),
                                  bwd ? "view_copy_bwd" : "view_copy"));
    }
    return LVK_OK;
}

lvk_status lvk_view_fwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    return record(m, n, cmd, false);
}

lvk_status lvk_view_bwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    return record(m, n, cmd, true);
}

lvk_status lvk_view_axis(const struct lvk_model *m, const struct lvk_node *n, int64_t axis,
                         int rank, const char *what, int *out)
{
    if (axis < -rank || axis >= rank)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "%s %lld is out of range for rank %d", what,
                             (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return LVK_OK;
}

lvk_status lvk_view_const_ints(const struct lvk_model *m, const struct lvk_node *n, int i,
                               int64_t *out, int max, int *count)
{
    LVK_CHECK(lvk_node_need_const(m, n, i));
    const struct lvk_value *v = &m->values[n->inputs[i]];
    int64_t c = lvk_shape_count(&v->shape);
    if (v->shape.ndim > 1 || c > max)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                             "input %d ('%s') must be a scalar or 1-D tensor of at most %d values",
                             i, v->name, max);
    for (int64_t k = 0; k < c; k++)
        out[k] = v->dtype == LVK_DTYPE_I64 ? ((const int64_t *)v->host)[k]
                                           : (int64_t)((const float *)v->host)[k];
    *count = (int)c;
    return LVK_OK;
}

/* ---- Slice --------------------------------------------------------------------------- */

/* Reads starts/ends/axes/steps from attributes (opset < 10) or inputs 1..4. */
static lvk_status slice_args(struct lvk_model *m, struct lvk_node *n, int64_t arg[4][LVK_MAX_DIMS],
                             int cnt[4])
{
    static const char *const names[4] = {"starts", "ends", "axes", "steps"};
    for (int k = 0; k < 4; k++) {
        cnt[k] = -1;
        if (m->opset < 10) {
            if (k == 3 || !lvk_attr_find(n, names[k]))
                continue;
            cnt[k] = lvk_attr_ints(n, names[k], arg[k], LVK_MAX_DIMS);
            if (cnt[k] < 0)
                return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "%s", lvk_last_error());
        } else if (lvk_in(m, n, k + 1)) {
            LVK_CHECK(lvk_view_const_ints(m, n, k + 1, arg[k], LVK_MAX_DIMS, &cnt[k]));
        }
    }
    if (cnt[0] < 0 || cnt[1] < 0)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "starts and ends are required");
    for (int k = 1; k < 4; k++)
        if (cnt[k] >= 0 && cnt[k] != cnt[0])
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "%s has %d values but starts has %d",
                                 names[k], cnt[k], cnt[0]);
    return LVK_OK;
}

static lvk_status slice_prepare(struct lvk_model *m, struct lvk_node *n)
{
    const struct lvk_value *x = lvk_in(m, n, 0);
    if (!x)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "input 0 is missing");
    int r = x->shape.ndim;
    int64_t arg[4][LVK_MAX_DIMS];
    int cnt[4];
    LVK_CHECK(slice_args(m, n, arg, cnt));

    /* Per axis: first element, step and count; untouched axes take all. */
    int64_t start[LVK_MAX_DIMS] = {0}, step[LVK_MAX_DIMS];
    struct lvk_shape ys = x->shape;
    bool seen[LVK_MAX_DIMS] = {false};
    for (int d = 0; d < r; d++)
        step[d] = 1;
    for (int k = 0; k < cnt[0]; k++) {
        int a;
        LVK_CHECK(lvk_view_axis(m, n, cnt[2] >= 0 ? arg[2][k] : k, r, "axis", &a));
        if (seen[a])
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "axis %d is sliced twice", a);
        seen[a] = true;
        int64_t dim = x->shape.d[a], st = cnt[3] >= 0 ? arg[3][k] : 1;
        int64_t b = arg[0][k], e = arg[1][k];
        if (st == 0)
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "step of axis %d is 0", a);
        if (b < 0)
            b += dim;
        if (e < 0)
            e += dim;
        int64_t len;
        if (st > 0) {
            b = LVK_MIN(LVK_MAX(b, 0), dim);
            e = LVK_MIN(LVK_MAX(e, 0), dim);
            len = e > b ? (e - b + st - 1) / st : 0;
        } else {
            b = LVK_MIN(LVK_MAX(b, 0), dim - 1);
            e = LVK_MIN(LVK_MAX(e, -1), dim - 1);
            len = b > e ? (b - e - st - 1) / -st : 0;
        }
        start[a] = len ? b : 0;
        step[a] = st;
        ys.d[a] = len;
    }
    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = x->dtype;
    y->shape = ys;

    int64_t xstride[LVK_MAX_DIMS], base = 0;
    lvk_view_strides(&x->shape, xstride);
    for (int d = 0; d < r; d++)
        base += start[d] * xstride[d];
    struct lvk_view_plan *p = lvk_view_plan_new(2);
    if (!p)
        return LVK_ERR_HOST_OOM;
    /* Forward reads x through the strided view; backward writes dy back
     * through it (injective, so a plain accumulate). */
    int f = lvk_view_add(p, n->inputs[0], n->outputs[0], false, &ys);
    int b = lvk_view_add(p, n->outputs[0], n->inputs[0], true, &ys);
    p->step[f].src_base = p->step[b].dst_base = base;
    for (int d = 0; d < r; d++)
        p->step[f].src_stride[d] = p->step[b].dst_stride[d] = xstride[d] * step[d];
    return lvk_view_finish(m, n, p);
}

static const struct lvk_op_def slice_def = {
    .op_type = "Slice",
    .prepare = slice_prepare,
    .fold = lvk_view_fold,
    .fwd = lvk_view_fwd,
    .bwd = lvk_view_bwd,
};

const struct lvk_op_def *const lvk_ops_slice[] = {&slice_def, NULL};
