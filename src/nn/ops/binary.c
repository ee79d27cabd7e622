/* Add, Sub, Mul, Div with numpy broadcasting over up to 6 dimensions
 * (bias [C,1,1] + [N,C,H,W], squeeze-and-excitation [N,C,1,1] * [N,C,H,W],
 * scalars), either operand a runtime tensor or a constant.
 *
 * The shapes are collapsed before anything runs: size-1 output dimensions
 * are dropped and neighbours that every operand walks contiguously are
 * merged, so most calls reduce to 1-3 dimensions, passed to the shaders as
 * specialization constants. Backward is a gather per operand element
 * (shaders/binary_bwd.comp), which sums over the broadcast dimensions
 * without atomics.
 *
 * Constant operands on both sides fold on the CPU, in float32 or int64: the
 * int64 case is the shape arithmetic exporters emit, e.g.
 * Div(Gather(Shape(x), 0), 2).
 *
 * Non-goals: integer tensors at run time; operands of different types. */
#include <stdlib.h>
#include <string.h>

#include "nn/graph.h"
#include "nn/ops_common.h"

/* Op ids of shaders/binary_{fwd,bwd}.comp; also index binary_defs[]. */
enum binary_op { BINARY_ADD, BINARY_SUB, BINARY_MUL, BINARY_DIV, BINARY_NOPS };

/* a and b broadcast to c, collapsed (see the top of the file). */
struct bcast {
    int nd;
    uint32_t size[LVK_MAX_DIMS];         /* of c */
    uint32_t stride[2][LVK_MAX_DIMS];    /* elements, of a and b; 0: broadcast */
};

/* Elements per invocation: PER in binary_fwd.comp. */
#define BINARY_PER 4

static const struct lvk_op_def binary_defs[BINARY_NOPS];

static enum binary_op binary_op_of(const struct lvk_node *n)
{
    return (enum binary_op)(n->def - binary_defs);
}

/* Sizes must fit in uint32 (callers check c's count first). */
static void bcast_plan(const struct lvk_shape *c, const struct lvk_shape *a,
                       const struct lvk_shape *b, struct bcast *p)
{
    const struct lvk_shape *in[2] = {a, b};
    int64_t st[2][LVK_MAX_DIMS];
    for (int t = 0; t < 2; ++t) {
        int64_t s = 1;
        for (int d = c->ndim - 1; d >= 0; --d) {
            int k = d - (c->ndim - in[t]->ndim); /* operands align on the right */
            int64_t len = k >= 0 ? in[t]->d[k] : 1;
            st[t][d] = len == 1 ? 0 : s;
            s *= len;
        }
    }

    p->nd = 0;
    for (int d = 0; d < c->ndim; ++d) {
        if (c->d[d] == 1)
            continue;
        /* Dimension d continues the previous one when, for both operands,
         * a step there equals a full sweep of d (0 == 0 for broadcasts). */
        int last = p->nd - 1;
        bool merge = last >= 0;
        for (int t = 0; t < 2 && merge; ++t)
            merge = p->stride[t][last] == st[t][d] * c->d[d];
        if (merge) {
            p->size[last] *= (uint32_t)c->d[d];
            for (int t = 0; t < 2; ++t)
                p->stride[t][last] = (uint32_t)st[t][d];
        } else {
            p->size[p->nd] = (uint32_t)c->d[d];
            for (int t = 0; t < 2; ++t)
                p->stride[t][p->nd] = (uint32_t)st[t][d];
            ++p->nd;
        }
    }
    for (int d = p->nd; d < LVK_MAX_DIMS; ++d) {
        p->size[d] = 1;
        p->stride[0][d] = p->stride[1][d] = 0;
    }
}

/* Offsets into a and b of element i of c. */
static void bcast_offsets(const struct bcast *p, uint64_t i, uint64_t *ia, uint64_t *ib)
{
    *ia = *ib = 0;
    for (int d = p->nd - 1; d >= 0; --d) {
        uint64_t cd = i % p->size[d];
        i /= p->size[d];
        *ia += cd * p->stride[0][d];
        *ib += cd * p->stride[1][d];
    }
}

/* ---- prepare and fold ------------------------------------------------------------ */

static lvk_status binary_prepare(struct lvk_model *m, struct lvk_node *n)
{
    const struct lvk_value *a = lvk_in(m, n, 0), *b = lvk_in(m, n, 1);
    if (!a || !b)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "needs two inputs");
    if (a->dtype != b->dtype)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "operands have different types");
    if (a->dtype != LVK_DTYPE_F32 && !(a->is_const && b->is_const))
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                             "integer operands must be constants (shape arithmetic)");

    struct lvk_value *c = lvk_out(m, n, 0);
    if (lvk_shape_broadcast(&a->shape, &b->shape, &c->shape) != LVK_OK)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "%s", lvk_last_error());
    c->dtype = a->dtype;
    return LVK_OK;
}

static lvk_status binary_fold(struct lvk_model *m, struct lvk_node *n)
{
    const struct lvk_value *a = lvk_in(m, n, 0), *b = lvk_in(m, n, 1);
    struct lvk_value *c = lvk_out(m, n, 0);
    const enum binary_op op = binary_op_of(n);
    const int64_t count = lvk_shape_count(&c->shape);
    if (count > UINT32_MAX)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "constant too large to fold");
    struct bcast p;
    bcast_plan(&c->shape, &a->shape, &b->shape, &p);

    const bool i64 = c->dtype == LVK_DTYPE_I64;
    void *host = lvk_calloc(count ? (size_t)count : 1, i64 ? sizeof(int64_t) : sizeof(float));
    if (!host)
        return LVK_ERR_HOST_OOM;
    for (int64_t i = 0; i < count; ++i) {
        uint64_t ia, ib;
        bcast_offsets(&p, (uint64_t)i, &ia, &ib);
        if (i64) {
            int64_t u = ((const int64_t *)a->host)[ia], v = ((const int64_t *)b->host)[ib];
            int64_t *r = &((int64_t *)host)[i];
            switch (op) {
            case BINARY_ADD: *r = u + v; break;
            case BINARY_SUB: *r = u - v; break;
            case BINARY_MUL: *r = u * v; break;
            case BINARY_DIV:
                if (v == 0) {
                    free(host);
                    return lvk_node_fail(m, n, LVK_ERR_FORMAT, "integer division by zero");
                }
                /* ONNX integer Div truncates toward zero, as C's / does (the
                 * reference casts numpy's true quotient back to the integer
                 * type; onnxruntime uses C division): -7 / 2 = -3, not
                 * numpy's floor -4. */
                *r = u / v;
                break;
            default: LVK_ASSERT(0);
            }
        } else {
            /* float32 arithmetic, as the device would do it */
            float u = ((const float *)a->host)[ia], v = ((const float *)b->host)[ib];
            float *r = &((float *)host)[i];
            switch (op) {
            case BINARY_ADD: *r = u + v; break;
            case BINARY_SUB: *r = u - v; break;
            case BINARY_MUL: *r = u * v; break;
            case BINARY_DIV: *r = u / v; break;
            default: LVK_ASSERT(0);
            }
        }
    }
    free(c->host);
    c->host = host;
    return LVK_OK;
}

/* ---- forward and backward ------------------------------------------------------- */

static lvk_status binary_fwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct lvk_value *a = lvk_in(m, n, 0), *b = lvk_in(m, n, 1);
    const struct lvk_value *c = lvk_out(m, n, 0);
    uint32_t count;
    LVK_CHECK(lvk_value_count32(m, n, c, &count));
    if (count == 0)
        return LVK_OK;
    struct bcast p;
    bcast_plan(&c->shape, &a->shape, &b->shape, &p);

    /* binary_fwd.comp: OP, ND, S0..S5, A0..A5, B0..B5 */
    uint32_t spec[2 + 3 * LVK_MAX_DIMS] = {binary_op_of(n), (uint32_t)p.nd};
    for (int d = 0; d < LVK_MAX_DIMS; ++d) {
        spec[2 + d] = p.size[d];
        spec[2 + LVK_MAX_DIMS + d] = p.stride[0][d];
        spec[2 + 2 * LVK_MAX_DIMS + d] = p.stride[1][d];
    }
    const struct lvk_pipeline *pipe =
        lvk_pipeline_get(m->ctx, LVK_SHADER_BINARY_FWD, spec, LVK_ARRAY_LEN(spec));
    if (!pipe)
        return lvk_node_fail(m, n, LVK_ERR_VULKAN, "%s", lvk_last_error());
    return lvk_dispatch_1d(cmd, pipe,
                           LVK_BINDS(LVK_B(c->buf), LVK_B(a->buf), LVK_B(b->buf)), 3,
                           NULL, 0, LVK_CEIL_DIV((uint64_t)count, BINARY_PER),
                           n->def->op_type);
}

static lvk_status binary_bwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct lvk_value *in[2] = {lvk_in(m, n, 0), lvk_in(m, n, 1)};
    const struct lvk_value *c = lvk_out(m, n, 0);
    uint32_t count;
    LVK_CHECK(lvk_value_count32(m, n, c, &count));
    if (count == 0)
        return LVK_OK;
    struct bcast p;
    bcast_plan(&c->shape, &in[0]->shape, &in[1]->shape, &p);

    for (int t = 0; t < 2; ++t) {
        const struct lvk_buf *dt = lvk_graph_input_grad(m, n, t);
        if (!dt)
            continue;
        /* binary_bwd.comp: OP, WRT_B, ND, RMASK, S0..S5, O0..O5, STORE */
        uint32_t spec[5 + 2 * LVK_MAX_DIMS] = {binary_op_of(n), (uint32_t)t, (uint32_t)p.nd};
        spec[4 + 2 * LVK_MAX_DIMS] = lvk_graph_grad_stores(n, t);
        for (int d = 0; d < LVK_MAX_DIMS; ++d) {
            if (d < p.nd && p.stride[t][d] == 0)
                spec[3] |= 1u << d;
            spec[4 + d] = p.size[d];
            spec[4 + LVK_MAX_DIMS + d] = p.stride[1 - t][d];
        }
        const struct lvk_pipeline *pipe =
            lvk_pipeline_get(m->ctx, LVK_SHADER_BINARY_BWD, spec, LVK_ARRAY_LEN(spec));
        if (!pipe)
            return lvk_node_fail(m, n, LVK_ERR_VULKAN, "%s", lvk_last_error());
        /* One invocation per element of the operand (its count fits: it is
         * at most c's). Add and Sub read no operand: one of an Add fused
         * into its producer (lvk_node.sum) has no buffer, and c's gradient
         * is bound in its place. */
        const struct lvk_buf *other = in[1 - t]->buf ? in[1 - t]->buf : c->grad;
        const struct lvk_buf *self = in[t]->buf ? in[t]->buf : c->grad;
        LVK_CHECK(lvk_dispatch_1d(cmd, pipe,
                                  LVK_BINDS(LVK_B(dt), LVK_B(c->grad), LVK_B(other), LVK_B(self)), 4,
                                  NULL, 0, (uint64_t)lvk_shape_count(&in[t]->shape),
                                  n->def->op_type));
    }
    return LVK_OK;
}

/* ---- registry ------------------------------------------------------------------------ */

/* The backward writes each element of an operand's gradient once (summing
 * over the outputs that read it). */
static bool binary_stores_grad(const struct lvk_node *n, int k)
{
    (void)n;
    return k < 2;
}

/* d(a + b)/da = d(a + b)/db = d(a - b)/da = 1: an operand of the output's
 * shape (not broadcast) has the output's gradient. */
static bool binary_passes_grad(const struct lvk_model *m, const struct lvk_node *n, int k)
{
    const enum binary_op op = binary_op_of(n);
    if (k > 1 || !(op == BINARY_ADD || (op == BINARY_SUB && k == 0)))
        return false;
    return lvk_shape_eq(&m->values[n->inputs[k]].shape, &m->values[n->outputs[0]].shape);
}

/* A float Add of two operands of the output's shape (both pass the
 * gradient: only Add's do): a producer of either may write the sum
 * (lvk_node.sum). */
static bool binary_sums(const struct lvk_model *m, const struct lvk_node *n)
{
    return m->values[n->outputs[0]].dtype == LVK_DTYPE_F32 && binary_passes_grad(m, n, 0) &&
           binary_passes_grad(m, n, 1);
}

#define BINARY_DEF(name)                                                                 \
    {.op_type = name, .prepare = binary_prepare, .fold = binary_fold, .fwd = binary_fwd, \
     .bwd = binary_bwd, .stores_grad = binary_stores_grad, .passes_grad = binary_passes_grad, \
     .sums = binary_sums}

static const struct lvk_op_def binary_defs[BINARY_NOPS] = {
    [BINARY_ADD] = BINARY_DEF("Add"),
    [BINARY_SUB] = BINARY_DEF("Sub"),
    [BINARY_MUL] = BINARY_DEF("Mul"),
    [BINARY_DIV] = BINARY_DEF("Div"),
};

const struct lvk_op_def *const lvk_ops_binary[] = {
    &binary_defs[BINARY_ADD], &binary_defs[BINARY_SUB], &binary_defs[BINARY_MUL],
    &binary_defs[BINARY_DIV], NULL,
};
