/* FLOP counts from a planned model's shapes and attributes.
 *
 * Convention (one multiply-add is 2 FLOPs; bias additions are not counted):
 *   Conv          2 * N * M * Ho * Wo * (C / group) * kh * kw
 *   Gemm, MatMul  2 * M * N * K (times the broadcast batch for MatMul)
 *   pooling       output elements * window size (kernel_shape for
 *                 MaxPool/AveragePool, H * W for the global pools, so
 *                 input elements for ReduceMean/ReduceSum; LRN: * size)
 *   data movement 0 (Concat, Pad, Slice, Split, Transpose, Gather, Expand,
 *                 Cast and the reshaping aliases)
 *   anything else one FLOP per output element (activations, Add, Softmax,
 *                 BatchNormalization, ...)
 * Backward (input gradient only; weights are frozen) is estimated per op:
 * Conv costs the same as its forward, Gemm and MatMul their forward once per
 * operand that receives a gradient, data movement nothing, and every other
 * op one FLOP per element of each input gradient it accumulates into.
 * These are estimates of useful arithmetic, for GFLOP/s figures; kernels may
 * do more (padding, recomputation) or less. */
#include <string.h>

#include "nn/flops.h"

static bool is_movement(const char *op)
{
    static const char *const ops[] = {
        "Concat", "Pad", "Slice", "Split", "Transpose", "Gather", "Expand", "Cast",
        "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout",
        "Constant", "ConstantOfShape", "Shape", "Size", "Range",
    };
    for (size_t i = 0; i < LVK_ARRAY_LEN(ops); i++)
        if (strcmp(op, ops[i]) == 0)
            return true;
    return false;
}

/* lvk_in / lvk_out for a read-only model. */
static const struct lvk_value *in(const struct lvk_model *m, const struct lvk_node *n, int i)
{
    return (i < n->ninputs && n->inputs[i] >= 0) ? &m->values[n->inputs[i]] : NULL;
}
static const struct lvk_value *out(const struct lvk_model *m, const struct lvk_node *n, int i)
{
    return n->outputs[i] >= 0 ? &m->values[n->outputs[i]] : NULL;
}

static double count(const struct lvk_value *v) { return v ? (double)lvk_shape_count(&v->shape) : 0; }

/* Product of a node's kernel_shape attribute (1 when absent). */
static double window(const struct lvk_node *n)
{
    int64_t k[LVK_MAX_DIMS];
    int nk = lvk_attr_ints(n, "kernel_shape", k, LVK_MAX_DIMS);
    double w = 1;
    for (int i = 0; i < nk; i++)
        w *= (double)k[i];
    return w;
}

/* Multiply-add work of the forward of a Conv, Gemm or MatMul; -1 for others. */
static double mac_flops(const struct lvk_model *m, const struct lvk_node *n)
{
    const char *op = n->op_type;
    const struct lvk_value *a = in(m, n, 0), *b = in(m, n, 1);
    const struct lvk_value *y = out(m, n, 0);
    if (strcmp(op, "Conv") == 0) {
        double per_out = 1; /* (C / group) * kh * kw: the weight's dims after M */
        for (int i = 1; i < b->shape.ndim; i++)
            per_out *= (double)b->shape.d[i];
        return 2 * count(y) * per_out;
    }
    if (strcmp(op, "Gemm") == 0) {
        int64_t k = lvk_attr_int(n, "transA", 0) ? a->shape.d[0] : a->shape.d[1];
        return 2 * count(y) * (double)k;
    }
    if (strcmp(op, "MatMul") == 0)
        return 2 * count(y) * (double)a->shape.d[a->shape.ndim - 1];
    return -1;
}

static double other_fwd(const struct lvk_model *m, const struct lvk_node *n)
{
    const char *op = n->op_type;
    if (strcmp(op, "MaxPool") == 0 || strcmp(op, "AveragePool") == 0)
        return count(out(m, n, 0)) * window(n);
    if (strcmp(op, "GlobalAveragePool") == 0 || strcmp(op, "GlobalMaxPool") == 0 ||
        strcmp(op, "ReduceMean") == 0 || strcmp(op, "ReduceSum") == 0)
        return count(in(m, n, 0));
    if (strcmp(op, "LRN") == 0)
        return count(out(m, n, 0)) * (double)lvk_attr_int(n, "size", 1);
    double c = 0;
    for (int k = 0; k < n->noutputs; k++)
        c += count(out(m, n, k));
    return c;
}

struct lvk_flops lvk_node_flops(const struct lvk_model *m, const struct lvk_node *n)
{
    struct lvk_flops f = {0, 0};
    if (!n->needed || !n->def || n->def->alias || is_movement(n->op_type))
        return f;
    double mac = mac_flops(m, n);
    f.fwd = mac >= 0 ? mac : other_fwd(m, n);

    /* Backward: what lvk_graph_record_backward runs, per input it writes a
     * gradient for. */
    if (!m->gradients || !lvk_graph_node_runs(m, n, true))
        return f;
    for (int k = 0; k < n->ninputs; k++) {
        const struct lvk_value *x = in(m, n, k);
        if (!x || !lvk_graph_input_grad(m, n, k))
            continue;
        /* Either multiplied operand (X and W, A and B) costs one forward;
         * a bias one FLOP per element, like everything else; a fused
         * activation's mask one more per element (its own backward no
         * longer runs). */
        if (mac >= 0 && k < 2)
            f.bwd += mac;
        else
            f.bwd += count(x);
        if (lvk_graph_grad_mask(m, n->inputs[k], NULL, NULL))
            f.bwd += count(x);
    }
    return f;
}

struct lvk_flops lvk_model_flops(const struct lvk_model *m)
{
    struct lvk_flops t = {0, 0};
    for (int i = 0; i < m->nnodes; i++) {
        struct lvk_flops f = lvk_node_flops(m, &m->nodes[i]);
        t.fwd += f.fwd;
        t.bwd += f.bwd;
    }
    return t;
}
