/* Shape arithmetic and constants: Shape, Size, Constant, ConstantOfShape,
 * Cast, Range, and Gather and Expand.
 *
 * Exporters compute target shapes at run time (Shape -> Gather -> Unsqueeze
 * -> Concat -> Reshape); every model lucid-vk loads has fixed shapes, so all
 * of that folds at load time: Shape and Size read only shapes, the rest fold
 * when their inputs are constant. Integer tensors never reach the device.
 *
 * Gather and Expand also run on float tensors at run time, as view copies
 * (view_copy.h) with constant indices or target shape. Gather's backward
 * lists, for each position along the axis, every output slot that read it,
 * so repeated indices sum without atomics; Expand's backward sums over the
 * broadcast axes the same way. Cast between floats at run time is an alias. */
#include <math.h>
#include <string.h>

#include "nn/ops/view_copy.h"

/* ONNX TensorProto.DataType values Cast can target. */
enum { ONNX_FLOAT = 1, ONNX_INT64 = 7 };

static size_t dtype_size(enum lvk_dtype dt)
{
    return dt == LVK_DTYPE_F32 ? 4 : 8;
}

/* Allocates the host data of output k from its dtype and shape (zeroed). */
static lvk_status alloc_output(struct lvk_model *m, struct lvk_node *n, int k)
{
    struct lvk_value *y = lvk_out(m, n, k);
    size_t bytes = (size_t)lvk_shape_count(&y->shape) * dtype_size(y->dtype);
    free(y->host);
    y->host = calloc(1, bytes ? bytes : 1);
    if (!y->host)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    return LVK_OK;
}

static lvk_status need_input(struct lvk_model *m, struct lvk_node *n, int i)
{
    if (!lvk_in(m, n, i))
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "input %d is missing", i);
    return LVK_OK;
}

/* ---- Shape, Size --------------------------------------------------------------------- */

/* Shape's [start, end) range of dims (opset 15), clamped like a slice. */
static void shape_range(const struct lvk_node *n, int r, int *start, int *end)
{
    int64_t s = lvk_attr_int(n, "start", 0), e = lvk_attr_int(n, "end", r);
    if (s < 0)
        s += r;
    if (e < 0)
        e += r;
    *start = (int)LVK_MIN(LVK_MAX(s, 0), r);
    *end = (int)LVK_MIN(LVK_MAX(e, *start), r);
}

static lvk_status shape_prepare(struct lvk_model *m, struct lvk_node *n)
{
    LVK_CHECK(need_input(m, n, 0));
    int start, end;
    shape_range(n, lvk_in(m, n, 0)->shape.ndim, &start, &end);
    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = LVK_DTYPE_I64;
    y->shape = (struct lvk_shape){.ndim = 1, .d = {end - start}};
    return LVK_OK;
}

static lvk_status shape_fold(struct lvk_model *m, struct lvk_node *n)
{
    const struct lvk_shape *xs = &lvk_in(m, n, 0)->shape;
    int start, end;
    shape_range(n, xs->ndim, &start, &end);
    LVK_CHECK(alloc_output(m, n, 0));
    memcpy(lvk_out(m, n, 0)->host, xs->d + start, (size_t)(end - start) * sizeof(int64_t));
    return LVK_OK;
}

static lvk_status size_prepare(struct lvk_model *m, struct lvk_node *n)
{
    LVK_CHECK(need_input(m, n, 0));
    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = LVK_DTYPE_I64;
    y->shape.ndim = 0;
    return LVK_OK;
}

static lvk_status size_fold(struct lvk_model *m, struct lvk_node *n)
{
    LVK_CHECK(alloc_output(m, n, 0));
    *(int64_t *)lvk_out(m, n, 0)->host = lvk_shape_count(&lvk_in(m, n, 0)->shape);
    return LVK_OK;
}

/* ---- Constant, ConstantOfShape ------------------------------------------------------- */

/* The one attribute that holds Constant's value. */
static const struct lvk_attr *constant_attr(const struct lvk_node *n)
{
    static const char *const names[] = {"value", "value_float", "value_floats", "value_int",
                                        "value_ints"};
    for (size_t k = 0; k < LVK_ARRAY_LEN(names); k++) {
        const struct lvk_attr *a = lvk_attr_find(n, names[k]);
        if (a)
            return a;
    }
    return NULL;
}

static lvk_status constant_prepare(struct lvk_model *m, struct lvk_node *n)
{
    const struct lvk_attr *a = constant_attr(n);
    struct lvk_value *y = lvk_out(m, n, 0);
    if (!a) {
        const char *other = n->nattrs ? n->attrs[0].name : "none";
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                             "value attribute '%s' is not supported (value, value_float(s), "
                             "value_int(s) are)", other);
    }
    switch (a->type) {
    case LVK_ATTR_TENSOR:
        y->dtype = m->values[a->tensor].dtype;
        y->shape = m->values[a->tensor].shape;
        break;
    case LVK_ATTR_FLOAT:
    case LVK_ATTR_INT:
        y->dtype = a->type == LVK_ATTR_FLOAT ? LVK_DTYPE_F32 : LVK_DTYPE_I64;
        y->shape.ndim = 0;
        break;
    case LVK_ATTR_FLOATS:
    case LVK_ATTR_INTS:
        y->dtype = a->type == LVK_ATTR_FLOATS ? LVK_DTYPE_F32 : LVK_DTYPE_I64;
        y->shape = (struct lvk_shape){.ndim = 1, .d = {a->n}};
        break;
    default:
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "attribute '%s' has the wrong type", a->name);
    }
    return LVK_OK;
}

static lvk_status constant_fold(struct lvk_model *m, struct lvk_node *n)
{
    const struct lvk_attr *a = constant_attr(n);
    LVK_CHECK(alloc_output(m, n, 0));
    struct lvk_value *y = lvk_out(m, n, 0);
    size_t bytes = (size_t)lvk_shape_count(&y->shape) * dtype_size(y->dtype);
    switch (a->type) {
    case LVK_ATTR_TENSOR:
        memcpy(y->host, m->values[a->tensor].host, bytes);
        break;
    case LVK_ATTR_FLOAT:
        *(float *)y->host = a->f;
        break;
    case LVK_ATTR_INT:
        *(int64_t *)y->host = a->i;
        break;
    case LVK_ATTR_FLOATS:
        memcpy(y->host, a->floats, bytes);
        break;
    default:
        memcpy(y->host, a->ints, bytes);
        break;
    }
    return LVK_OK;
}

static lvk_status constant_of_shape_prepare(struct lvk_model *m, struct lvk_node *n)
{
    int64_t dims[LVK_MAX_DIMS];
    int nd;
    LVK_CHECK(lvk_view_const_ints(m, n, 0, dims, LVK_MAX_DIMS, &nd));
    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = LVK_DTYPE_F32;
    const struct lvk_attr *a = lvk_attr_find(n, "value");
    if (a) {
        if (a->type != LVK_ATTR_TENSOR || lvk_shape_count(&m->values[a->tensor].shape) != 1)
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "'value' must be a one-element tensor");
        y->dtype = m->values[a->tensor].dtype;
    }
    y->shape.ndim = nd;
    for (int k = 0; k < nd; k++) {
        if (dims[k] < 0)
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "dim %d is negative", k);
        y->shape.d[k] = dims[k];
    }
    return LVK_OK;
}

static lvk_status constant_of_shape_fold(struct lvk_model *m, struct lvk_node *n)
{
    LVK_CHECK(alloc_output(m, n, 0));
    struct lvk_value *y = lvk_out(m, n, 0);
    const struct lvk_attr *a = lvk_attr_find(n, "value");
    if (!a)
        return LVK_OK; /* float zeros */
    size_t es = dtype_size(y->dtype);
    const char *v = m->values[a->tensor].host;
    for (int64_t k = 0, c = lvk_shape_count(&y->shape); k < c; k++)
        memcpy((char *)y->host + k * es, v, es);
    return LVK_OK;
}

/* ---- Cast ---------------------------------------------------------------------------- */

static lvk_status cast_prepare(struct lvk_model *m, struct lvk_node *n)
{
    LVK_CHECK(need_input(m, n, 0));
    const struct lvk_value *x = lvk_in(m, n, 0);
    int64_t to = lvk_attr_int(n, "to", -1);
    if (to != ONNX_FLOAT && to != ONNX_INT64)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                             "cast to ONNX type %lld is not supported (only FLOAT (1) and "
                             "INT64 (7))",
                             (long long)to);
    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = to == ONNX_FLOAT ? LVK_DTYPE_F32 : LVK_DTYPE_I64;
    y->shape = x->shape;
    /* At run time only float -> float exists (an alias); integers fold. */
    if (!x->is_const && (x->dtype != LVK_DTYPE_F32 || y->dtype != LVK_DTYPE_F32))
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                             "casting run-time tensor '%s' to an integer type is not supported",
                             x->name);
    return LVK_OK;
}

static lvk_status cast_fold(struct lvk_model *m, struct lvk_node *n)
{
    const struct lvk_value *x = lvk_in(m, n, 0);
    LVK_CHECK(alloc_output(m, n, 0));
    struct lvk_value *y = lvk_out(m, n, 0);
    for (int64_t k = 0, c = lvk_shape_count(&x->shape); k < c; k++) {
        /* Float -> integer truncates toward zero, as ONNX (and C) do. */
        double v = x->dtype == LVK_DTYPE_F32 ? ((const float *)x->host)[k]
                                             : (double)((const int64_t *)x->host)[k];
        if (y->dtype == LVK_DTYPE_F32)
            ((float *)y->host)[k] = (float)v;
        else if (x->dtype == LVK_DTYPE_I64)
            ((int64_t *)y->host)[k] = ((const int64_t *)x->host)[k];
        else
            ((int64_t *)y->host)[k] = (int64_t)v;
    }
    return LVK_OK;
}

/* ---- Range --------------------------------------------------------------------------- */

static double scalar_of(const struct lvk_value *v)
{
    return v->dtype == LVK_DTYPE_F32 ? ((const float *)v->host)[0]
                                     : (double)((const int64_t *)v->host)[0];
}

static lvk_status range_prepare(struct lvk_model *m, struct lvk_node *n)
{
    for (int i = 0; i < 3; i++) {
        LVK_CHECK(lvk_node_need_const(m, n, i));
        const struct lvk_value *v = lvk_in(m, n, i);
        if (lvk_shape_count(&v->shape) != 1 || v->dtype != lvk_in(m, n, 0)->dtype)
            return lvk_node_fail(m, n, LVK_ERR_FORMAT,
                                 "input %d must be a scalar of the same type as start", i);
    }
    const struct lvk_value *s = lvk_in(m, n, 0);
    double start = scalar_of(s), limit = scalar_of(lvk_in(m, n, 1));
    double delta = scalar_of(lvk_in(m, n, 2));
    if (delta == 0)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "delta is 0");
    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = s->dtype;
    y->shape.ndim = 1;
    y->shape.d[0] = (int64_t)LVK_MAX(ceil((limit - start) / delta), 0);
    return LVK_OK;
}

static lvk_status range_fold(struct lvk_model *m, struct lvk_node *n)
{
    LVK_CHECK(alloc_output(m, n, 0));
    struct lvk_value *y = lvk_out(m, n, 0);
    const void *s = lvk_in(m, n, 0)->host, *dl = lvk_in(m, n, 2)->host;
    for (int64_t k = 0; k < y->shape.d[0]; k++) {
        if (y->dtype == LVK_DTYPE_F32)
            ((float *)y->host)[k] = *(const float *)s + (float)k * *(const float *)dl;
        else
            ((int64_t *)y->host)[k] = *(const int64_t *)s + k * *(const int64_t *)dl;
    }
    return LVK_OK;
}

/* ---- Gather -------------------------------------------------------------------------- */

static lvk_status gather_prepare(struct lvk_model *m, struct lvk_node *n)
{
    LVK_CHECK(need_input(m, n, 0));
    LVK_CHECK(lvk_node_need_const(m, n, 1));
    const struct lvk_value *x = lvk_in(m, n, 0), *iv = lvk_in(m, n, 1);
    int r = x->shape.ndim, q = iv->shape.ndim, axis;
    if (r < 1)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "cannot gather from a scalar");
    LVK_CHECK(lvk_view_axis(m, n, lvk_attr_int(n, "axis", 0), r, "axis", &axis));
    if (r - 1 + q > LVK_MAX_DIMS)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "output rank %d exceeds %d", r - 1 + q,
                             LVK_MAX_DIMS);
    int64_t dim = x->shape.d[axis], nidx = lvk_shape_count(&iv->shape);

    /* y = x.shape[:axis] + indices.shape + x.shape[axis+1:] */
    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = x->dtype;
    y->shape.ndim = r - 1 + q;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= y->shape.d[d] = x->shape.d[d];
    for (int d = 0; d < q; d++)
        y->shape.d[axis + d] = iv->shape.d[d];
    for (int d = axis + 1; d < r; d++)
        inner *= y->shape.d[q + d - 1] = x->shape.d[d];

    int64_t *map = lvk_calloc((size_t)LVK_MAX(nidx, 1), sizeof *map);
    if (!map)
        return LVK_ERR_HOST_OOM;
    for (int64_t k = 0; k < nidx; k++) {
        int64_t i = iv->dtype == LVK_DTYPE_I64 ? ((const int64_t *)iv->host)[k]
                                               : (int64_t)((const float *)iv->host)[k];
        if (i < -dim || i >= dim) {
            free(map);
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "index %lld is out of range for dim %lld",
                                 (long long)i, (long long)dim);
        }
        map[k] = i < 0 ? i + dim : i;
    }
    /* Both directions as [outer, positions, inner]: forward reads x's
     * positions listed by the indices, backward lists for each position of
     * x the index slots that read it. */
    struct lvk_view_plan *p = lvk_view_plan_new(2);
    lvk_status st = p ? LVK_OK : LVK_ERR_HOST_OOM;
    if (st == LVK_OK) {
        struct lvk_shape fs = {.ndim = 3, .d = {outer, nidx, inner}};
        struct lvk_shape bs = {.ndim = 3, .d = {outer, dim, inner}};
        int f = lvk_view_add(p, n->inputs[0], n->outputs[0], false, &fs);
        int b = lvk_view_add(p, n->outputs[0], n->inputs[0], true, &bs);
        lvk_view_strides(&bs, p->step[f].src_stride);
        lvk_view_strides(&fs, p->step[b].src_stride);
        st = lvk_view_map(&p, f, 1, map, nidx, false);
        if (st == LVK_OK)
            st = lvk_view_map(&p, b, 1, map, nidx, true);
    }
    free(map);
    if (st != LVK_OK) {
        free(p);
        return st;
    }
    return lvk_view_finish(m, n, p);
}

/* ---- Expand -------------------------------------------------------------------------- */

static lvk_status expand_prepare(struct lvk_model *m, struct lvk_node *n)
{
    LVK_CHECK(need_input(m, n, 0));
    const struct lvk_value *x = lvk_in(m, n, 0);
    int64_t t[LVK_MAX_DIMS];
    int nt;
    LVK_CHECK(lvk_view_const_ints(m, n, 1, t, LVK_MAX_DIMS, &nt));
    struct lvk_shape ts = {.ndim = nt};
    memcpy(ts.d, t, (size_t)nt * sizeof *t);
    struct lvk_value *y = lvk_out(m, n, 0);
    if (lvk_shape_broadcast(&x->shape, &ts, &y->shape) != LVK_OK)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "%s", lvk_last_error());
    y->dtype = x->dtype;

    /* x aligned to y's rank; broadcast axes read it with stride 0. */
    int r = y->shape.ndim;
    struct lvk_shape xs = {.ndim = r};
    for (int d = 0; d < r; d++) {
        int k = d - (r - x->shape.ndim);
        xs.d[d] = k >= 0 ? x->shape.d[k] : 1;
    }
    int64_t xstride[LVK_MAX_DIMS], maxd = 1;
    lvk_view_strides(&xs, xstride);
    for (int d = 0; d < r; d++)
        maxd = LVK_MAX(maxd, y->shape.d[d]);
    int64_t *zeros = lvk_calloc((size_t)maxd, sizeof *zeros);
    struct lvk_view_plan *p = zeros ? lvk_view_plan_new(2) : NULL;
    if (!p) {
        free(zeros);
        return LVK_ERR_HOST_OOM;
    }
    int f = lvk_view_add(p, n->inputs[0], n->outputs[0], false, &y->shape);
    int b = lvk_view_add(p, n->outputs[0], n->inputs[0], true, &xs);
    lvk_view_strides(&y->shape, p->step[b].src_stride);
    lvk_status st = LVK_OK;
    for (int d = 0; d < r && st == LVK_OK; d++) {
        bool bcast = xs.d[d] != y->shape.d[d];
        p->step[f].src_stride[d] = bcast ? 0 : xstride[d];
        /* Backward sums every output coordinate along a broadcast axis. */
        if (bcast)
            st = lvk_view_map(&p, b, d, zeros, y->shape.d[d], true);
    }
    free(zeros);
    if (st != LVK_OK) {
        free(p);
        return st;
    }
    return lvk_view_finish(m, n, p);
}

/* ---- registry ------------------------------------------------------------------------- */

static const struct lvk_op_def shape_def = {
    .op_type = "Shape", .prepare = shape_prepare, .fold = shape_fold, .shape_only = true,
};
static const struct lvk_op_def size_def = {
    .op_type = "Size", .prepare = size_prepare, .fold = size_fold, .shape_only = true,
};
/* No inputs: shape_only makes the fold unconditional. */
static const struct lvk_op_def constant_def = {
    .op_type = "Constant", .prepare = constant_prepare, .fold = constant_fold, .shape_only = true,
};
static const struct lvk_op_def constant_of_shape_def = {
    .op_type = "ConstantOfShape", .prepare = constant_of_shape_prepare,
    .fold = constant_of_shape_fold,
};
static const struct lvk_op_def cast_def = {
    .op_type = "Cast", .prepare = cast_prepare, .fold = cast_fold, .alias = true,
};
static const struct lvk_op_def range_def = {
    .op_type = "Range", .prepare = range_prepare, .fold = range_fold,
};
static const struct lvk_op_def gather_def = {
    .op_type = "Gather", .prepare = gather_prepare, .fold = lvk_view_fold,
    .fwd = lvk_view_fwd, .bwd = lvk_view_bwd,
};
static const struct lvk_op_def expand_def = {
    .op_type = "Expand", .prepare = expand_prepare, .fold = lvk_view_fold,
    .fwd = lvk_view_fwd, .bwd = lvk_view_bwd,
};

const struct lvk_op_def *const lvk_ops_shape[] = {
    &shape_def, &cast_def, &constant_def, &constant_of_shape_def, &size_def,
    &range_def, &gather_def, &expand_def, NULL,
};
