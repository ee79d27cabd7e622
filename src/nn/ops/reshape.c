/* Reshape, Flatten, Squeeze, Unsqueeze: new shapes over the same row-major
 * data. At run time the output aliases the input (same buffer, same
 * gradient), so these ops record nothing; on constants they fold by copying.
 *
 * Reshape keeps working when lucid-vk loads a model at another batch size
 * than it was exported with, where the exporter baked the batch into a
 * constant target shape (see reshape_batch). */
#include <string.h>

#include "nn/ops/view_copy.h"

/* Output 0 takes input 0's data: the fold of every op here. */
static lvk_status copy_fold(struct lvk_model *m, struct lvk_node *n)
{
    const struct lvk_value *x = lvk_in(m, n, 0);
    struct lvk_value *y = lvk_out(m, n, 0);
    size_t bytes = (size_t)lvk_shape_count(&x->shape) * (x->dtype == LVK_DTYPE_F32 ? 4 : 8);
    free(y->host);
    y->host = malloc(bytes ? bytes : 1);
    if (!y->host)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    memcpy(y->host, x->host, bytes);
    return LVK_OK;
}

static lvk_status set_output(struct lvk_model *m, struct lvk_node *n, const struct lvk_shape *s)
{
    const struct lvk_value *x = lvk_in(m, n, 0);
    if (lvk_shape_count(s) != lvk_shape_count(&x->shape)) {
        char a[96], b[96];
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "cannot reshape %s into %s",
                             lvk_shape_str(&x->shape, a, sizeof a), lvk_shape_str(s, b, sizeof b));
    }
    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = x->dtype;
    y->shape = *s;
    return LVK_OK;
}

static lvk_status need_input(struct lvk_model *m, struct lvk_node *n)
{
    if (!lvk_in(m, n, 0))
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "input 0 is missing");
    return LVK_OK;
}

/* ---- Reshape ------------------------------------------------------------------------- */

/* Resolves 0 (copy the input's dim, unless allowzero) and -1 (inferred). */
static lvk_status reshape_resolve(struct lvk_model *m, struct lvk_node *n, const int64_t *t, int nt,
                                  bool allowzero, struct lvk_shape *out)
{
    const struct lvk_shape *xs = &lvk_in(m, n, 0)->shape;
    int infer = -1;
    int64_t known = 1;
    out->ndim = nt;
    for (int k = 0; k < nt; k++) {
        int64_t v = t[k];
        if (v == 0 && !allowzero) {
            if (k >= xs->ndim)
                return lvk_node_fail(m, n, LVK_ERR_FORMAT,
                                     "target dim %d is 0 but the input has rank %d", k, xs->ndim);
            v = xs->d[k];
        } else if (v == -1) {
            if (infer >= 0)
                return lvk_node_fail(m, n, LVK_ERR_FORMAT, "more than one target dim is -1");
            infer = k;
            continue;
        } else if (v < 0) {
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "target dim %d is %lld", k, (long long)v);
        }
        out->d[k] = v;
        known *= v;
    }
    if (infer >= 0) {
        int64_t total = lvk_shape_count(xs);
        out->d[infer] = known ? total / known : 0;
        if (known == 0 || total % known)
            out->d[infer] = -1; /* no exact fit: set_output's count check reports it */
    }
    return LVK_OK;
}

/* A batch size baked into the target shape. Models are exported at one
 * batch (usually 1) and loaded at another, and some exporters fold
 * x.view(x.size(0), -1) into the constants [1, -1] or [1, 1024]. So when
 * the input is a run-time tensor, the target's dim 0 is a positive literal
 * that differs from the input's dim 0, and either the literal shape does not
 * fit the data or it is [1, ..., -1, ...] (which would fold the batch into
 * the rows), dim 0 follows the input's batch instead. */
static bool reshape_batch(const struct lvk_value *x, const int64_t *t, int nt, bool literal_fits)
{
    if (x->is_const || nt < 1 || x->shape.ndim < 1 || t[0] <= 0 || t[0] == x->shape.d[0])
        return false;
    bool has_infer = false;
    for (int k = 1; k < nt; k++)
        has_infer |= t[k] == -1;
    return !literal_fits || (t[0] == 1 && has_infer);
}

static lvk_status reshape_prepare(struct lvk_model *m, struct lvk_node *n)
{
    LVK_CHECK(need_input(m, n));
    const struct lvk_value *x = lvk_in(m, n, 0);
    int64_t t[LVK_MAX_DIMS];
    int nt;
    if (m->opset < 5) {
        nt = lvk_attr_ints(n, "shape", t, LVK_MAX_DIMS);
        if (nt < 0)
            return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "%s", lvk_last_error());
    } else {
        LVK_CHECK(lvk_view_const_ints(m, n, 1, t, LVK_MAX_DIMS, &nt));
    }
    bool allowzero = m->opset >= 14 && lvk_attr_int(n, "allowzero", 0) != 0;
    struct lvk_shape ys;
    LVK_CHECK(reshape_resolve(m, n, t, nt, allowzero, &ys));
    bool fits = lvk_shape_count(&ys) == lvk_shape_count(&x->shape);
    for (int k = 0; k < nt; k++)
        fits = fits && ys.d[k] >= 0;
    if (reshape_batch(x, t, nt, fits)) {
        t[0] = x->shape.d[0];
        LVK_CHECK(reshape_resolve(m, n, t, nt, allowzero, &ys));
    }
    return set_output(m, n, &ys);
}

/* ---- Flatten ------------------------------------------------------------------------- */

static lvk_status flatten_prepare(struct lvk_model *m, struct lvk_node *n)
{
    LVK_CHECK(need_input(m, n));
    const struct lvk_shape *xs = &lvk_in(m, n, 0)->shape;
    int64_t axis = lvk_attr_int(n, "axis", 1);
    if (axis < 0)
        axis += xs->ndim;
    if (axis < 0 || axis > xs->ndim)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "axis %lld is out of range for rank %d",
                             (long long)lvk_attr_int(n, "axis", 1), xs->ndim);
    struct lvk_shape ys = {.ndim = 2, .d = {1, 1}};
    for (int d = 0; d < xs->ndim; d++)
        ys.d[d >= axis] *= xs->d[d];
    return set_output(m, n, &ys);
}

/* ---- Squeeze / Unsqueeze ------------------------------------------------------------- */

/* Axes from the attribute (opset < 13) or the constant input 1; -1 if absent. */
static lvk_status squeeze_axes(struct lvk_model *m, struct lvk_node *n, int64_t *axes, int *na)
{
    *na = -1;
    if (m->opset < 13) {
        if (lvk_attr_find(n, "axes")) {
            *na = lvk_attr_ints(n, "axes", axes, LVK_MAX_DIMS);
            if (*na < 0)
                return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "%s", lvk_last_error());
        }
    } else if (lvk_in(m, n, 1)) {
        LVK_CHECK(lvk_view_const_ints(m, n, 1, axes, LVK_MAX_DIMS, na));
    }
    return LVK_OK;
}

static lvk_status squeeze_prepare(struct lvk_model *m, struct lvk_node *n)
{
    LVK_CHECK(need_input(m, n));
    const struct lvk_shape *xs = &lvk_in(m, n, 0)->shape;
    int64_t axes[LVK_MAX_DIMS];
    int na;
    LVK_CHECK(squeeze_axes(m, n, axes, &na));
    bool drop[LVK_MAX_DIMS] = {false};
    if (na < 0) {
        for (int d = 0; d < xs->ndim; d++)
            drop[d] = xs->d[d] == 1;
    }
    for (int k = 0; k < na; k++) {
        int a;
        LVK_CHECK(lvk_view_axis(m, n, axes[k], xs->ndim, "axis", &a));
        if (xs->d[a] != 1)
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "cannot squeeze axis %d of size %lld", a,
                                 (long long)xs->d[a]);
        drop[a] = true;
    }
    struct lvk_shape ys = {0};
    for (int d = 0; d < xs->ndim; d++)
        if (!drop[d])
            ys.d[ys.ndim++] = xs->d[d];
    return set_output(m, n, &ys);
}

static lvk_status unsqueeze_prepare(struct lvk_model *m, struct lvk_node *n)
{
    LVK_CHECK(need_input(m, n));
    const struct lvk_shape *xs = &lvk_in(m, n, 0)->shape;
    int64_t axes[LVK_MAX_DIMS];
    int na;
    LVK_CHECK(squeeze_axes(m, n, axes, &na));
    if (na < 0)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "axes are required");
    int r = xs->ndim + na;
    if (r > LVK_MAX_DIMS)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "output rank %d exceeds %d", r,
                             LVK_MAX_DIMS);
    /* Axes index the output; the input's dims fill the rest in order. */
    bool added[LVK_MAX_DIMS] = {false};
    for (int k = 0; k < na; k++) {
        int a;
        LVK_CHECK(lvk_view_axis(m, n, axes[k], r, "axis", &a));
        if (added[a])
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "axis %d appears twice", a);
        added[a] = true;
    }
    struct lvk_shape ys = {.ndim = r};
    for (int d = 0, k = 0; d < r; d++)
        ys.d[d] = added[d] ? 1 : xs->d[k++];
    return set_output(m, n, &ys);
}

static const struct lvk_op_def reshape_def = {
    .op_type = "Reshape", .prepare = reshape_prepare, .fold = copy_fold, .alias = true,
};
static const struct lvk_op_def flatten_def = {
    .op_type = "Flatten", .prepare = flatten_prepare, .fold = copy_fold, .alias = true,
};
static const struct lvk_op_def squeeze_def = {
    .op_type = "Squeeze", .prepare = squeeze_prepare, .fold = copy_fold, .alias = true,
};
static const struct lvk_op_def unsqueeze_def = {
    .op_type = "Unsqueeze", .prepare = unsqueeze_prepare, .fold = copy_fold, .alias = true,
};

const struct lvk_op_def *const lvk_ops_reshape[] = {&reshape_def, &flatten_def, &squeeze_def,
                                                    &unsqueeze_def, NULL};
