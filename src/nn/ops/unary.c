/* Elementwise activations: Relu, LeakyRelu, Clip, Sigmoid, Tanh, HardSigmoid,
 * HardSwish; and Identity and Dropout, which are no-ops at inference and
 * alias their input.
 *
 * One shader pair (shaders/unary_{fwd,bwd}.comp) serves every activation:
 * the op and up to two parameters are specialization constants. Relu is
 * Clip(0, +inf), so Relu and ReLU6 = Clip(0, 6) share one code path and the
 * run-time gradient modes of enum lvk_relu_mode.
 *
 * Non-goals: integer tensors; Clip bounds computed at run time; Dropout in
 * training mode (random masks) and its mask output. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/graph.h"
#include "nn/ops_common.h"

/* Op ids of shaders/unary_{fwd,bwd}.comp. */
enum unary_op {
    UNARY_CLIP,
    UNARY_LEAKY_RELU,
    UNARY_SIGMOID,
    UNARY_TANH,
    UNARY_HARD_SIGMOID,
    UNARY_HARD_SWISH,
};

struct unary_priv {
    enum unary_op op;
    /* CLIP: lower and upper bound; LEAKY_RELU: slope below 0 in p0;
     * HARD_SIGMOID: alpha, beta. */
    float p0, p1;
};

/* Push constants of unary_fwd.comp and unary_bwd.comp. */
struct unary_pc {
    uint32_t count;
};
_Static_assert(sizeof(struct unary_pc) == 4, "");

/* Floats per invocation: PER vec4s in unary_{fwd,bwd}.comp. */
#define UNARY_PER 16

/* ---- prepare ------------------------------------------------------------------ */

static lvk_status unary_setup(struct lvk_model *m, struct lvk_node *n,
                              enum unary_op op, float p0, float p1)
{
    const struct lvk_value *x = lvk_in(m, n, 0);
    if (!x)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "missing input");
    if (x->dtype != LVK_DTYPE_F32)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "only float32 tensors are supported");

    struct unary_priv *p = lvk_calloc(1, sizeof *p);
    if (!p)
        return LVK_ERR_HOST_OOM;
    p->op = op;
    p->p0 = p0;
    p->p1 = p1;
    free(n->priv);
    n->priv = p;

    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = LVK_DTYPE_F32;
    y->shape = x->shape;
    return LVK_OK;
}

static lvk_status relu_prepare(struct lvk_model *m, struct lvk_node *n)
{
    return unary_setup(m, n, UNARY_CLIP, 0.0f, INFINITY);
}

static lvk_status leaky_relu_prepare(struct lvk_model *m, struct lvk_node *n)
{
    return unary_setup(m, n, UNARY_LEAKY_RELU, lvk_attr_float(n, "alpha", 0.01f), 0.0f);
}

/* Clip's bound from optional input i (opset 11+): a load-time scalar. */
static lvk_status clip_bound_input(struct lvk_model *m, const struct lvk_node *n,
                                   int i, float *bound)
{
    const struct lvk_value *v = lvk_in(m, n, i);
    if (!v)
        return LVK_OK;
    LVK_CHECK(lvk_node_need_const(m, n, i));
    if (lvk_shape_count(&v->shape) != 1)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "%s must be a scalar",
                             i == 1 ? "min" : "max");
    *bound = v->dtype == LVK_DTYPE_F32 ? ((const float *)v->host)[0]
                                       : (float)((const int64_t *)v->host)[0];
    return LVK_OK;
}

static lvk_status clip_prepare(struct lvk_model *m, struct lvk_node *n)
{
    /* Opsets 6-10 give the bounds as attributes defaulting to +-FLT_MAX;
     * from 11 they are optional inputs, absent meaning unbounded. A node
     * carrying the attributes is in the old form whatever opset the model
     * declares, so both are read. */
    float lo = m->opset < 11 ? -FLT_MAX : -INFINITY;
    float hi = m->opset < 11 ? FLT_MAX : INFINITY;
    lo = lvk_attr_float(n, "min", lo);
    hi = lvk_attr_float(n, "max", hi);
    LVK_CHECK(clip_bound_input(m, n, 1, &lo));
    LVK_CHECK(clip_bound_input(m, n, 2, &hi));
    return unary_setup(m, n, UNARY_CLIP, lo, hi);
}

static lvk_status sigmoid_prepare(struct lvk_model *m, struct lvk_node *n)
{
    return unary_setup(m, n, UNARY_SIGMOID, 0.0f, 0.0f);
}

static lvk_status tanh_prepare(struct lvk_model *m, struct lvk_node *n)
{
    return unary_setup(m, n, UNARY_TANH, 0.0f, 0.0f);
}

static lvk_status hard_sigmoid_prepare(struct lvk_model *m, struct lvk_node *n)
{
    return unary_setup(m, n, UNARY_HARD_SIGMOID, lvk_attr_float(n, "alpha", 0.2f),
                       lvk_attr_float(n, "beta", 0.5f));
}

static lvk_status hard_swish_prepare(struct lvk_model *m, struct lvk_node *n)
{
    return unary_setup(m, n, UNARY_HARD_SWISH, 0.0f, 0.0f);
}

/* ---- forward and backward ------------------------------------------------------ */

static lvk_status unary_fwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct unary_priv *p = n->priv;
    const struct lvk_value *x = lvk_in(m, n, 0);
    const struct lvk_value *y = lvk_out(m, n, 0);
    struct unary_pc pc;
    LVK_CHECK(lvk_value_count32(m, n, y, &pc.count));
    if (pc.count == 0)
        return LVK_OK;

    const uint32_t spec[] = {p->op, lvk_spec_f32(p->p0), lvk_spec_f32(p->p1)};
    const struct lvk_pipeline *pipe =
        lvk_pipeline_get(m->ctx, LVK_SHADER_UNARY_FWD, spec, LVK_ARRAY_LEN(spec));
    if (!pipe)
        return lvk_node_fail(m, n, LVK_ERR_VULKAN, "%s", lvk_last_error());
    return lvk_dispatch_1d(cmd, pipe, LVK_BINDS(LVK_B(y->buf), LVK_B(x->buf)), 2,
                           &pc, sizeof pc, LVK_CEIL_DIV((uint64_t)pc.count, UNARY_PER),
                           n->def->op_type);
}

static lvk_status unary_bwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct unary_priv *p = n->priv;
    const struct lvk_value *x = lvk_in(m, n, 0);
    const struct lvk_value *y = lvk_out(m, n, 0);
    if (!x->grad)
        return LVK_OK;
    struct unary_pc pc;
    LVK_CHECK(lvk_value_count32(m, n, y, &pc.count));
    if (pc.count == 0)
        return LVK_OK;

    /* A clip at 0 is a ReLU (capped or not) for the gradient modes. */
    const uint32_t relu_mode = p->op == UNARY_CLIP && p->p0 == 0.0f;
    /* Fused into its producer (graph.h), x is never stored: the mask comes
     * from y, bound in x's place. */
    const uint32_t spec[] = {p->op, lvk_spec_f32(p->p0), lvk_spec_f32(p->p1), relu_mode, n->fused,
                             lvk_graph_grad_stores(n, 0)};
    const struct lvk_pipeline *pipe =
        lvk_pipeline_get(m->ctx, LVK_SHADER_UNARY_BWD, spec, LVK_ARRAY_LEN(spec));
    if (!pipe)
        return lvk_node_fail(m, n, LVK_ERR_VULKAN, "%s", lvk_last_error());
    return lvk_dispatch_1d(cmd, pipe,
                           LVK_BINDS(LVK_B(x->grad), LVK_B(y->grad),
                                     LVK_B(n->fused ? y->buf : x->buf), LVK_B(y->buf),
                                     LVK_B(m->ctrl)), 5,
                           &pc, sizeof pc, LVK_CEIL_DIV((uint64_t)pc.count, UNARY_PER),
                           n->def->op_type);
}

/* Relu and ReLU6 (Clip with lower bound 0) can be applied by the op that
 * produces their input. */
static bool unary_clamp_bounds(const struct lvk_node *n, float *lo, float *hi)
{
    const struct unary_priv *p = n->priv;
    if (!p || p->op != UNARY_CLIP || p->p0 != 0.0f || !(p->p1 > 0.0f))
        return false;
    *lo = p->p0;
    *hi = p->p1;
    return true;
}

/* ---- Identity and Dropout -------------------------------------------------------- */

static lvk_status identity_prepare(struct lvk_model *m, struct lvk_node *n)
{
    const struct lvk_value *x = lvk_in(m, n, 0);
    if (!x)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "missing input");
    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = x->dtype;
    y->shape = x->shape;
    return LVK_OK;
}

/* A constant passed through stays a constant, so shape arithmetic that
 * goes through Identity still folds. Dropout's mask, when declared, is all
 * true (1.0) at inference. */
static lvk_status identity_fold(struct lvk_model *m, struct lvk_node *n)
{
    const struct lvk_value *x = lvk_in(m, n, 0);
    const size_t count = (size_t)lvk_shape_count(&x->shape);
    const size_t esize = x->dtype == LVK_DTYPE_I64 ? sizeof(int64_t) : sizeof(float);
    for (int k = 0; k < n->noutputs; ++k) {
        struct lvk_value *y = n->outputs[k] >= 0 ? lvk_out(m, n, k) : NULL;
        if (!y)
            continue;
        void *host = lvk_calloc(count ? count : 1, k == 0 ? esize : sizeof(float));
        if (!host)
            return LVK_ERR_HOST_OOM;
        if (k == 0)
            memcpy(host, x->host, count * esize);
        else
            for (size_t i = 0; i < count; ++i)
                ((float *)host)[i] = 1.0f;
        free(y->host);
        y->host = host;
    }
    return LVK_OK;
}

static lvk_status dropout_prepare(struct lvk_model *m, struct lvk_node *n)
{
    /* training_mode (opset 12+) switches on random masking; only a constant
     * false is inference. ratio does not matter at inference. */
    const struct lvk_value *tm = lvk_in(m, n, 2);
    if (tm) {
        LVK_CHECK(lvk_node_need_const(m, n, 2));
        bool training = tm->dtype == LVK_DTYPE_I64 ? ((const int64_t *)tm->host)[0] != 0
                                                   : ((const float *)tm->host)[0] != 0.0f;
        if (training)
            return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "training mode is not supported");
    }
    LVK_CHECK(identity_prepare(m, n));

    /* The mask (all true at inference) is a bool tensor, which lucid-vk has
     * no dtype for. Exporters declare it and leave it unread: give it a shape
     * so the graph stays well-formed, and refuse only a model that reads it. */
    if (n->noutputs > 1 && n->outputs[1] >= 0) {
        if (lvk_graph_value_read(m, n->outputs[1]))
            return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                                 "the mask output of Dropout is not supported");
        struct lvk_value *mask = lvk_out(m, n, 1);
        mask->dtype = LVK_DTYPE_F32;
        mask->shape = lvk_in(m, n, 0)->shape;
    }
    return LVK_OK;
}

/* The backward writes each element of x's gradient once. */
static bool unary_stores_grad(const struct lvk_node *n, int k)
{
    (void)n;
    return k == 0;
}

/* ---- registry ---------------------------------------------------------------------- */

static const struct lvk_op_def relu_def = {
    .op_type = "Relu", .prepare = relu_prepare, .fwd = unary_fwd, .bwd = unary_bwd,
    .stores_grad = unary_stores_grad, .channelwise = true,
    .clamp_bounds = unary_clamp_bounds,
};
static const struct lvk_op_def leaky_relu_def = {
    .op_type = "LeakyRelu", .prepare = leaky_relu_prepare, .fwd = unary_fwd, .bwd = unary_bwd,
    .stores_grad = unary_stores_grad, .channelwise = true,
};
static const struct lvk_op_def clip_def = {
    .op_type = "Clip", .prepare = clip_prepare, .fwd = unary_fwd, .bwd = unary_bwd,
    .stores_grad = unary_stores_grad, .channelwise = true,
    .clamp_bounds = unary_clamp_bounds,
};
static const struct lvk_op_def sigmoid_def = {
    .op_type = "Sigmoid", .prepare = sigmoid_prepare, .fwd = unary_fwd, .bwd = unary_bwd,
    .stores_grad = unary_stores_grad, .channelwise = true,
};
static const struct lvk_op_def tanh_def = {
    .op_type = "Tanh", .prepare = tanh_prepare, .fwd = unary_fwd, .bwd = unary_bwd,
    .stores_grad = unary_stores_grad, .channelwise = true,
};
static const struct lvk_op_def hard_sigmoid_def = {
    .op_type = "HardSigmoid", .prepare = hard_sigmoid_prepare, .fwd = unary_fwd,
    .bwd = unary_bwd, .stores_grad = unary_stores_grad, .channelwise = true,
};
static const struct lvk_op_def hard_swish_def = {
    .op_type = "HardSwish", .prepare = hard_swish_prepare, .fwd = unary_fwd,
    .bwd = unary_bwd, .stores_grad = unary_stores_grad, .channelwise = true,
};
static const struct lvk_op_def identity_def = {
    .op_type = "Identity", .prepare = identity_prepare, .fold = identity_fold, .alias = true,
};
static const struct lvk_op_def dropout_def = {
    .op_type = "Dropout", .prepare = dropout_prepare, .fold = identity_fold, .alias = true,
};

const struct lvk_op_def *const lvk_ops_unary[] = {
    &relu_def, &leaky_relu_def, &clip_def, &sigmoid_def, &tanh_def,
    &hard_sigmoid_def, &hard_swish_def, &identity_def, &dropout_def, NULL,
};
