/* Gemm (Y = alpha * A' B' + beta * C, A' and B' optionally transposed, C
 * broadcast to [M, N]) and MatMul (numpy matmul: batch dimensions broadcast,
 * 1-D operands promoted and their dimension dropped), with gradients w.r.t.
 * every input that has one (A, B, and Gemm's C).
 *
 * Everything runs on one kernel, shaders/gemm.comp: a batched product of
 * strided matrices. A gradient is itself such a product (dA' = dY B'^T,
 * dB' = A'^T dY) with its operands' strides swapped; a broadcast batch
 * operand's gradient sums the products of all output batches it fed, listed
 * in a pair table of operand offsets built here at load; Gemm's dC is a
 * product with a constant 1 (an extra buffer) as one operand.
 *
 * Non-goals: integer types; folding of constant-only products on the CPU
 * (they run on the device). */
#include <stdlib.h>
#include <string.h>

#include "nn/graph.h"

enum mm_pass { MM_FWD, MM_DA, MM_DB, MM_DC, MM_NPASS };

/* One launch of shaders/gemm.comp (names as its constants). */
struct mm_launch {
    uint32_t rows, cols, inner;
    uint32_t l_r, l_t, r_t, r_c, o_r, o_c;
    float alpha;
    uint32_t npair, nz;     /* products per output matrix, output matrices */
    int table;              /* extra slot of the pair table */
    bool dy_left;           /* MM_DC: dY is the left operand, 1 the right */
    uint32_t lanes, rb, cb; /* kernel shape (mm_pick) */
    uint32_t groups[3];
};

struct mm_priv {
    float beta;
    bool has_c;             /* forward adds beta * C */
    uint32_t c_r, c_c;      /* C strides over [M, N], 0 where broadcast */
    int ones;               /* extra slot holding 1.0f (Gemm with C) or -1 */
    struct mm_launch pass[MM_NPASS];
};

#define MM_NSPEC 19

/* Chooses the block shape and grid of one launch: RB rows x CB columns per
 * invocation (rows lane-uniform), the workgroup shrunk for narrow outputs
 * down to a subgroup. Faster variants (e.g. for lavapipe,
 * ctx->is_lavapipe) plug in here. */
static lvk_status mm_pick(const struct lvk_model *m, const struct lvk_node *n,
                          struct mm_launch *l)
{
    const struct lvk_ctx *ctx = m->ctx;
    uint32_t max_lanes = LVK_MIN(ctx->limits.maxComputeWorkGroupSize[0],
                                 ctx->limits.maxComputeWorkGroupInvocations);
    l->rb = LVK_MIN(l->rows, 4u);
    l->cb = 4;
    l->lanes = LVK_MIN(64u, max_lanes);
    uint32_t min_lanes = LVK_MIN(LVK_MAX(ctx->info.subgroup_size, 8u), l->lanes);
    while (l->lanes / 2 >= min_lanes && (l->lanes / 2) * l->cb >= l->cols)
        l->lanes /= 2;
    l->cb = LVK_MIN(l->cb, LVK_CEIL_DIV(l->cols, l->lanes));

    l->groups[0] = LVK_CEIL_DIV(l->cols, l->cb * l->lanes);
    l->groups[1] = LVK_CEIL_DIV(l->rows, l->rb);
    l->groups[2] = l->nz;
    for (int d = 0; d < 3; d++)
        if (l->groups[d] > lvk_max_groups(ctx, d))
            return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                                 "product of %u x %u x %u (%u batches) needs %u workgroups along "
                                 "dimension %d; the device allows %u", l->rows, l->inner,
                                 l->cols, l->nz, l->groups[d], d, lvk_max_groups(ctx, d));
    return LVK_OK;
}

/* ---- planning ------------------------------------------------------------------------- */

/* Batch dimensions: the output's, and each operand's padded with leading 1s
 * to the same rank. */
struct mm_batch {
    int nd;
    int64_t out[LVK_MAX_DIMS], a[LVK_MAX_DIMS], b[LVK_MAX_DIMS];
};

static uint32_t dims_count(const int64_t *d, int nd)
{
    int64_t c = 1;
    for (int i = 0; i < nd; i++)
        c *= d[i];
    return (uint32_t)c;
}

/* Builds the pair tables of MM_FWD, MM_DA and MM_DB as extras. Each output
 * batch reads one A and one B matrix; a batch of A (or B) broadcast to
 * several output batches gets its gradient from all of them, and numpy
 * broadcasting gives every A batch the same count. */
static lvk_status mm_tables(struct lvk_model *m, struct lvk_node *n, struct mm_priv *p,
                            const struct mm_batch *bt, uint32_t mk, uint32_t kn, uint32_t mn)
{
    uint32_t nout = dims_count(bt->out, bt->nd);
    uint32_t na = dims_count(bt->a, bt->nd), nb = dims_count(bt->b, bt->nd);
    uint32_t *t[3], *fill = calloc((size_t)na + nb, sizeof *fill);
    for (int i = 0; i < 3; i++)
        t[i] = malloc((size_t)nout * 2 * sizeof *t[i]);
    if (!fill || !t[0] || !t[1] || !t[2]) {
        free(fill);
        for (int i = 0; i < 3; i++)
            free(t[i]);
        return lvk_node_fail(m, n, LVK_ERR_HOST_OOM, "out of host memory");
    }
    uint32_t pa = nout / na, pb = nout / nb;
    for (uint32_t ob = 0; ob < nout; ob++) {
        uint32_t rem = ob, ia = 0, ib = 0, sa = 1, sb = 1;
        for (int d = bt->nd - 1; d >= 0; d--) {
            uint32_t i = rem % (uint32_t)bt->out[d];
            rem /= (uint32_t)bt->out[d];
            ia += (bt->a[d] == 1 ? 0 : i) * sa;
            ib += (bt->b[d] == 1 ? 0 : i) * sb;
            sa *= (uint32_t)bt->a[d];
            sb *= (uint32_t)bt->b[d];
        }
        uint32_t *f = &t[0][2 * ob];
        f[0] = ia * mk, f[1] = ib * kn;
        uint32_t *da = &t[1][2 * (ia * pa + fill[ia]++)];
        da[0] = ob * mn, da[1] = ib * kn;
        uint32_t *db = &t[2][2 * (ib * pb + fill[na + ib]++)];
        db[0] = ia * mk, db[1] = ob * mn;
    }
    free(fill);
    const uint32_t nz[3] = {nout, na, nb}, npair[3] = {1, pa, pb};
    for (int i = 0; i < 3; i++) {
        p->pass[i].table = lvk_node_extra(n, (VkDeviceSize)nout * 2 * sizeof(uint32_t), t[i]);
        p->pass[i].nz = nz[i];
        p->pass[i].npair = npair[i];
    }
    return LVK_OK;
}

/* Fills every launch for a product of [M, K] x [K, N] matrices, A stored
 * transposed ([K, M]) when ta, B ([N, K]) when tb. */
static lvk_status mm_plan(struct lvk_model *m, struct lvk_node *n, uint32_t mm, uint32_t k,
                          uint32_t nn, bool ta, bool tb, float alpha, const struct mm_batch *bt)
{
    struct mm_priv *p = n->priv;
    uint32_t sai = ta ? 1 : k, sak = ta ? mm : 1;   /* A'(i, kk) at i*sai + kk*sak */
    uint32_t sbk = tb ? 1 : nn, sbj = tb ? k : 1;   /* B'(kk, j) at kk*sbk + j*sbj */
    struct mm_launch *l = p->pass;
    l[MM_FWD] = (struct mm_launch){mm, nn, k, sai, sak, sbk, sbj, nn, 1, alpha};
    l[MM_DA] = (struct mm_launch){mm, k, nn, nn, 1, sbj, sbk, sai, sak, alpha};
    l[MM_DB] = (struct mm_launch){k, nn, mm, sak, sai, nn, 1, sbk, sbj, alpha};
    LVK_CHECK(mm_tables(m, n, p, bt, mm * k, k * nn, mm * nn));

    if (p->ones >= 0) {
        /* dC = beta * dY summed over the dimensions C is broadcast along;
         * the 1-operand has zero strides. Only Gemm (no batches) gets here,
         * so the forward table's single (0, 0) pair serves. */
        bool rows = p->c_r != 0, cols = p->c_c != 0;
        struct mm_launch *dc = &l[MM_DC];
        if (rows && cols)       /* full [M, N]: a scaled copy, flattened */
            *dc = (struct mm_launch){.rows = 1, .cols = mm * nn, .inner = 1, .r_c = 1, .o_c = 1};
        else if (cols)          /* [N] or [1, N]: sum over rows */
            *dc = (struct mm_launch){.rows = 1, .cols = nn, .inner = mm, .r_t = nn, .r_c = 1,
                                     .o_c = 1};
        else if (rows)          /* [M, 1]: sum over columns */
            *dc = (struct mm_launch){.rows = mm, .cols = 1, .inner = nn, .l_r = nn, .l_t = 1,
                                     .o_r = 1, .dy_left = true};
        else                    /* scalar: sum of everything */
            *dc = (struct mm_launch){.rows = 1, .cols = 1, .inner = mm * nn, .r_t = 1};
        dc->alpha = p->beta;
        dc->nz = dc->npair = 1;
        dc->table = l[MM_FWD].table;
    }
    for (int i = 0; i < MM_NPASS; i++)
        if (i != MM_DC || p->ones >= 0)
            LVK_CHECK(mm_pick(m, n, &l[i]));
    return LVK_OK;
}

static lvk_status mm_priv_new(struct lvk_model *m, struct lvk_node *n, struct mm_priv **out)
{
    struct mm_priv *p = calloc(1, sizeof *p);
    if (!p)
        return lvk_node_fail(m, n, LVK_ERR_HOST_OOM, "out of host memory");
    p->ones = -1;
    n->priv = p;
    *out = p;
    return LVK_OK;
}

static lvk_status mm_check_inputs(struct lvk_model *m, const struct lvk_node *n, int need)
{
    for (int i = 0; i < n->ninputs; i++) {
        const struct lvk_value *v = lvk_in(m, n, i);
        if (!v && i < need)
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "input %d is missing", i);
        if (v && v->dtype != LVK_DTYPE_F32)
            return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "only float32 tensors are supported");
        if (v && (lvk_shape_count(&v->shape) < 1 || lvk_shape_count(&v->shape) > UINT32_MAX))
            return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                                 "input '%s' is empty or beyond 2^32 elements", v->name);
    }
    return LVK_OK;
}

/* ---- Gemm ------------------------------------------------------------------------------- */

static lvk_status gemm_prepare(struct lvk_model *m, struct lvk_node *n)
{
    LVK_CHECK(mm_check_inputs(m, n, 2));
    const struct lvk_value *a = lvk_in(m, n, 0), *b = lvk_in(m, n, 1), *c = lvk_in(m, n, 2);
    char sa[96], sb[96];
    bool ta = lvk_attr_int(n, "transA", 0) != 0, tb = lvk_attr_int(n, "transB", 0) != 0;
    if (a->shape.ndim != 2 || b->shape.ndim != 2)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "A %s and B %s must be 2-D",
                             lvk_shape_str(&a->shape, sa, sizeof sa),
                             lvk_shape_str(&b->shape, sb, sizeof sb));
    int64_t mm = a->shape.d[ta], k = a->shape.d[!ta];
    int64_t kb = b->shape.d[tb], nn = b->shape.d[!tb];
    if (k != kb)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "A' %s and B' %s do not multiply",
                             lvk_shape_str(&a->shape, sa, sizeof sa),
                             lvk_shape_str(&b->shape, sb, sizeof sb));
    if (mm * nn > UINT32_MAX)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "output beyond 2^32 elements");

    struct mm_priv *p = NULL;
    LVK_CHECK(mm_priv_new(m, n, &p));
    p->beta = lvk_attr_float(n, "beta", 1.0f);
    if (c) {
        /* C broadcasts one way to [M, N] (shapes [], [1], [N], [M|1, N|1]). */
        const struct lvk_shape *s = &c->shape;
        int64_t cm = s->ndim == 2 ? s->d[0] : 1, cn = s->ndim >= 1 ? s->d[s->ndim - 1] : 1;
        if (s->ndim > 2 || (cm != 1 && cm != mm) || (cn != 1 && cn != nn))
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "C %s does not broadcast to [%lld, %lld]",
                                 lvk_shape_str(s, sa, sizeof sa), (long long)mm, (long long)nn);
        p->has_c = p->beta != 0.0f;
        p->c_r = cm == 1 ? 0 : (uint32_t)cn;
        p->c_c = cn == 1 ? 0 : 1;
        float *one = malloc(sizeof *one);
        if (!one)
            return lvk_node_fail(m, n, LVK_ERR_HOST_OOM, "out of host memory");
        *one = 1.0f;
        p->ones = lvk_node_extra(n, sizeof *one, one);
    }
    struct mm_batch bt = {0};
    LVK_CHECK(mm_plan(m, n, (uint32_t)mm, (uint32_t)k, (uint32_t)nn, ta, tb,
                      lvk_attr_float(n, "alpha", 1.0f), &bt));

    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = LVK_DTYPE_F32;
    y->shape = (struct lvk_shape){.ndim = 2, .d = {mm, nn}};
    return LVK_OK;
}

/* ---- MatMul ---------------------------------------------------------------------------- */

static lvk_status matmul_prepare(struct lvk_model *m, struct lvk_node *n)
{
    LVK_CHECK(mm_check_inputs(m, n, 2));
    const struct lvk_value *a = lvk_in(m, n, 0), *b = lvk_in(m, n, 1);
    const struct lvk_shape *as = &a->shape, *bs = &b->shape;
    char sa[96], sb[96];
    if (as->ndim < 1 || bs->ndim < 1)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "operands must be at least 1-D");
    /* A 1-D A is a row [1, K], a 1-D B a column [K, 1]; the output drops
     * the added dimension. */
    bool a1 = as->ndim == 1, b1 = bs->ndim == 1;
    int64_t mm = a1 ? 1 : as->d[as->ndim - 2], k = as->d[as->ndim - 1];
    int64_t kb = b1 ? bs->d[0] : bs->d[bs->ndim - 2], nn = b1 ? 1 : bs->d[bs->ndim - 1];
    if (k != kb)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "%s and %s do not multiply",
                             lvk_shape_str(as, sa, sizeof sa), lvk_shape_str(bs, sb, sizeof sb));

    struct lvk_shape abat = {.ndim = LVK_MAX(as->ndim - 2, 0)};
    struct lvk_shape bbat = {.ndim = LVK_MAX(bs->ndim - 2, 0)};
    memcpy(abat.d, as->d, (size_t)abat.ndim * sizeof abat.d[0]);
    memcpy(bbat.d, bs->d, (size_t)bbat.ndim * sizeof bbat.d[0]);
    struct lvk_shape obat;
    if (lvk_shape_broadcast(&abat, &bbat, &obat) != LVK_OK)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "batch dimensions of %s and %s do not broadcast",
                             lvk_shape_str(as, sa, sizeof sa), lvk_shape_str(bs, sb, sizeof sb));
    struct mm_batch bt = {.nd = obat.ndim};
    for (int d = 0; d < bt.nd; d++) {
        int da = d - (bt.nd - abat.ndim), db = d - (bt.nd - bbat.ndim);
        bt.out[d] = obat.d[d];
        bt.a[d] = da >= 0 ? abat.d[da] : 1;
        bt.b[d] = db >= 0 ? bbat.d[db] : 1;
    }

    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = LVK_DTYPE_F32;
    y->shape = obat;
    if (!a1)
        y->shape.d[y->shape.ndim++] = mm;
    if (!b1)
        y->shape.d[y->shape.ndim++] = nn;
    if (lvk_shape_count(&y->shape) > UINT32_MAX)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "output beyond 2^32 elements");

    /* One B for all batches (N-D x 2-D, the usual weight product): the
     * batches of A are just more rows, one product with no table walk. */
    if (dims_count(bt.b, bt.nd) == 1) {
        mm *= dims_count(bt.out, bt.nd);
        bt.nd = 0;
    }
    struct mm_priv *p;
    LVK_CHECK(mm_priv_new(m, n, &p));
    return mm_plan(m, n, (uint32_t)mm, (uint32_t)k, (uint32_t)nn, false, false, 1.0f, &bt);
}

/* ---- record ------------------------------------------------------------------------------ */

static lvk_status mm_dispatch(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd,
                              enum mm_pass pass, const struct lvk_buf *o, const struct lvk_buf *l,
                              const struct lvk_buf *r, const struct lvk_buf *bias,
                              const char *label)
{
    const struct mm_priv *p = n->priv;
    const struct mm_launch *x = &p->pass[pass];
    /* Bias constants only where read, so equal products share a pipeline. */
    bool has_c = pass == MM_FWD && p->has_c;
    const uint32_t spec[MM_NSPEC] = {
        x->lanes, x->rows, x->cols, x->inner, x->l_r, x->l_t, x->r_t, x->r_c, x->o_r, x->o_c,
        has_c ? p->c_r : 0, has_c ? p->c_c : 0, has_c, pass != MM_FWD,
        lvk_spec_f32(x->alpha), lvk_spec_f32(has_c ? p->beta : 1.0f), x->npair, x->rb, x->cb,
    };
    const struct lvk_pipeline *pipe = lvk_pipeline_get(m->ctx, LVK_SHADER_GEMM, spec, MM_NSPEC);
    if (!pipe)
        return LVK_ERR_VULKAN;
    return lvk_cmd_dispatch(cmd, pipe,
                            LVK_BINDS(LVK_B(o), LVK_B(l), LVK_B(r), LVK_B(bias),
                                      LVK_B(n->extra[x->table])),
                            5, NULL, 0, x->groups[0], x->groups[1], x->groups[2], label);
}

static lvk_status mm_fwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct mm_priv *p = n->priv;
    const struct lvk_value *a = lvk_in(m, n, 0), *b = lvk_in(m, n, 1);
    const struct lvk_value *c = n->ninputs > 2 ? lvk_in(m, n, 2) : NULL;
    /* Without C the shader reads no bias; A stands in for the binding. */
    return mm_dispatch(m, n, cmd, MM_FWD, lvk_out(m, n, 0)->buf, a->buf, b->buf,
                       p->has_c ? c->buf : a->buf, "gemm_fwd");
}

static lvk_status mm_bwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct mm_priv *p = n->priv;
    const struct lvk_value *a = lvk_in(m, n, 0), *b = lvk_in(m, n, 1);
    const struct lvk_value *c = n->ninputs > 2 ? lvk_in(m, n, 2) : NULL;
    const struct lvk_buf *dy = lvk_out(m, n, 0)->grad;
    if (!dy)
        return LVK_OK;
    /* Each launch reads dY and the forward operands only, so the order does
     * not matter; dY stands in for the unread bias binding. */
    if (a->grad)
        LVK_CHECK(mm_dispatch(m, n, cmd, MM_DA, a->grad, dy, b->buf, dy, "gemm_bwd_a"));
    if (b->grad)
        LVK_CHECK(mm_dispatch(m, n, cmd, MM_DB, b->grad, a->buf, dy, dy, "gemm_bwd_b"));
    if (c && c->grad) {
        const struct lvk_buf *one = n->extra[p->ones];
        bool left = p->pass[MM_DC].dy_left;
        LVK_CHECK(mm_dispatch(m, n, cmd, MM_DC, c->grad, left ? dy : one, left ? one : dy, dy,
                              "gemm_bwd_c"));
    }
    return LVK_OK;
}

static const struct lvk_op_def gemm_def = {
    .op_type = "Gemm",
    .prepare = gemm_prepare,
    .fwd = mm_fwd,
    .bwd = mm_bwd,
};

static const struct lvk_op_def matmul_def = {
    .op_type = "MatMul",
    .prepare = matmul_prepare,
    .fwd = mm_fwd,
    .bwd = mm_bwd,
};

const struct lvk_op_def *const lvk_ops_gemm[] = {&gemm_def, &matmul_def, NULL};
