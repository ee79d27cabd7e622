/* Movement ops (Concat, Split, Slice, Transpose, Pad, Gather, Expand; all
 * view copies, src/nn/ops/view_copy.h) against plain index-by-index
 * references in double, forward and backward, on awkward shapes: batch 2,
 * 13 channels, odd sizes, negative axes, steps and indices, pads larger
 * than the axis they copy. */
#include <math.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/devbuf.h"
#include "support/op_harness.h"

#define SHAPE(...) {sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), {__VA_ARGS__}}
#define INTS(nm, ...)                                                                     \
    {.name = nm, .type = LVK_ATTR_INTS, .ints = (int64_t[]){__VA_ARGS__},                \
     .n = sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)}
#define INT(nm, v) {.name = nm, .type = LVK_ATTR_INT, .i = (v)}
#define STR(nm, v) {.name = nm, .type = LVK_ATTR_STRING, .s = (char *)(v)}
#define I64S(...) ((const int64_t[]){__VA_ARGS__})

/* ---- reference helpers --------------------------------------------------------------------- */

static const struct lvk_attr *find(const struct lvk_op_case *c, const char *name)
{
    for (int i = 0; i < c->nattrs; ++i)
        if (!strcmp(c->attrs[i].name, name))
            return &c->attrs[i];
    return NULL;
}

static int64_t attr_i(const struct lvk_op_case *c, const char *name, int64_t def)
{
    const struct lvk_attr *a = find(c, name);
    return a ? a->i : def;
}

static int norm_axis(int64_t a, int rank)
{
    return (int)(a < 0 ? a + rank : a);
}

static void unravel(int64_t k, const struct lvk_shape *s, int64_t *i)
{
    for (int d = s->ndim - 1; d >= 0; --d) {
        i[d] = k % s->d[d];
        k /= s->d[d];
    }
}

static int64_t ravel(const int64_t *i, const struct lvk_shape *s)
{
    int64_t k = 0;
    for (int d = 0; d < s->ndim; ++d)
        k = k * s->d[d] + i[d];
    return k;
}

/* Every case states the output shapes it expects, in c->user. */
static void expect_shapes(const struct lvk_op_case *c, const struct lvk_shape *out_shape)
{
    const struct lvk_shape *want = c->user;
    int nout = c->noutputs ? c->noutputs : 1;
    for (int j = 0; j < nout; ++j) {
        assert_int_equal(out_shape[j].ndim, want[j].ndim);
        for (int d = 0; d < want[j].ndim; ++d)
            assert_int_equal(out_shape[j].d[d], want[j].d[d]);
    }
}

/* ---- references ----------------------------------------------------------------------------- */

static void ref_concat(const struct lvk_op_case *c, const double *const *in, double *const *out,
                       const struct lvk_shape *out_shape)
{
    expect_shapes(c, out_shape);
    int axis = norm_axis(attr_i(c, "axis", 0), out_shape->ndim);
    int64_t i[LVK_MAX_DIMS];
    for (int64_t k = 0; k < lvk_shape_count(out_shape); ++k) {
        unravel(k, out_shape, i);
        int j = 0;
        while (i[axis] >= c->in_shape[j].d[axis])
            i[axis] -= c->in_shape[j++].d[axis];
        out[0][k] = in[j][ravel(i, &c->in_shape[j])];
    }
}

static void ref_split(const struct lvk_op_case *c, const double *const *in, double *const *out,
                      const struct lvk_shape *out_shape)
{
    expect_shapes(c, out_shape);
    int axis = norm_axis(attr_i(c, "axis", 0), c->in_shape[0].ndim);
    int64_t i[LVK_MAX_DIMS], at = 0;
    for (int j = 0; j < c->noutputs; ++j) {
        for (int64_t k = 0; k < lvk_shape_count(&out_shape[j]); ++k) {
            unravel(k, &out_shape[j], i);
            i[axis] += at;
            out[j][k] = in[0][ravel(i, &c->in_shape[0])];
        }
        at += out_shape[j].d[axis];
    }
}

/* Python's slice.indices(): first index and step of the elements taken. */
static int64_t slice_first(int64_t start, int64_t step, int64_t len)
{
    int64_t lower = step > 0 ? 0 : -1, upper = step > 0 ? len : len - 1;
    if (start < 0)
        start = start + len < lower ? lower : start + len;
    else if (start > upper)
        start = upper;
    return start;
}

static void ref_slice(const struct lvk_op_case *c, const double *const *in, double *const *out,
                      const struct lvk_shape *out_shape)
{
    expect_shapes(c, out_shape);
    const struct lvk_shape *xs = &c->in_shape[0];
    int r = xs->ndim;
    int64_t first[LVK_MAX_DIMS] = {0}, step[LVK_MAX_DIMS] = {1, 1, 1, 1, 1, 1};
    const int64_t *starts = c->in_data[1], *axes = c->in_data[3], *steps = c->in_data[4];
    for (int k = 0; k < c->in_shape[1].d[0]; ++k) {
        int a = axes ? norm_axis(axes[k], r) : k;
        step[a] = steps ? steps[k] : 1;
        first[a] = slice_first(starts[k], step[a], xs->d[a]);
    }
    int64_t i[LVK_MAX_DIMS];
    for (int64_t k = 0; k < lvk_shape_count(out_shape); ++k) {
        unravel(k, out_shape, i);
        for (int d = 0; d < r; ++d)
            i[d] = first[d] + i[d] * step[d];
        out[0][k] = in[0][ravel(i, xs)];
    }
}

static void ref_transpose(const struct lvk_op_case *c, const double *const *in, double *const *out,
                          const struct lvk_shape *out_shape)
{
    expect_shapes(c, out_shape);
    const struct lvk_shape *xs = &c->in_shape[0];
    const struct lvk_attr *perm = find(c, "perm");
    int64_t i[LVK_MAX_DIMS], j[LVK_MAX_DIMS];
    for (int64_t k = 0; k < lvk_shape_count(out_shape); ++k) {
        unravel(k, out_shape, i);
        for (int d = 0; d < xs->ndim; ++d)
            j[perm ? perm->ints[d] : xs->ndim - 1 - d] = i[d];
        out[0][k] = in[0][ravel(j, xs)];
    }
}

/* Pads: input 1 (begin..., end...), value: input 2 (float) or 0. */
static void ref_pad(const struct lvk_op_case *c, const double *const *in, double *const *out,
                    const struct lvk_shape *out_shape)
{
    expect_shapes(c, out_shape);
    const struct lvk_shape *xs = &c->in_shape[0];
    const int64_t *pads = c->in_data[1];
    const struct lvk_attr *ma = find(c, "mode");
    const char *mode = ma ? ma->s : "constant";
    double value = c->ninputs > 2 && in[2] ? in[2][0] : 0;
    int r = xs->ndim;
    int64_t i[LVK_MAX_DIMS];
    for (int64_t k = 0; k < lvk_shape_count(out_shape); ++k) {
        unravel(k, out_shape, i);
        bool inside = true;
        for (int d = 0; d < r; ++d) {
            int64_t n = xs->d[d], x = i[d] - pads[d];
            if (!strcmp(mode, "edge"))
                x = x < 0 ? 0 : x >= n ? n - 1 : x;
            else if (!strcmp(mode, "reflect"))
                while (x < 0 || x >= n)
                    x = x < 0 ? -x : 2 * (n - 1) - x;
            inside = inside && x >= 0 && x < n;
            i[d] = x;
        }
        out[0][k] = inside ? in[0][ravel(i, xs)] : value;
    }
}

static void ref_gather(const struct lvk_op_case *c, const double *const *in, double *const *out,
                       const struct lvk_shape *out_shape)
{
    expect_shapes(c, out_shape);
    const struct lvk_shape *xs = &c->in_shape[0];
    int axis = norm_axis(attr_i(c, "axis", 0), xs->ndim);
    int q = c->in_shape[1].ndim;
    const int64_t *idx = c->in_data[1];
    int64_t i[LVK_MAX_DIMS], j[LVK_MAX_DIMS];
    for (int64_t k = 0; k < lvk_shape_count(out_shape); ++k) {
        unravel(k, out_shape, i);
        int64_t slot = 0;
        for (int d = 0; d < q; ++d)
            slot = slot * c->in_shape[1].d[d] + i[axis + d];
        for (int d = 0; d < xs->ndim; ++d)
            j[d] = d < axis ? i[d] : d > axis ? i[d + q - 1] : 0;
        j[axis] = idx[slot] < 0 ? idx[slot] + xs->d[axis] : idx[slot];
        out[0][k] = in[0][ravel(j, xs)];
    }
}

static void ref_expand(const struct lvk_op_case *c, const double *const *in, double *const *out,
                       const struct lvk_shape *out_shape)
{
    expect_shapes(c, out_shape);
    const struct lvk_shape *xs = &c->in_shape[0];
    int off = out_shape->ndim - xs->ndim;
    int64_t i[LVK_MAX_DIMS], j[LVK_MAX_DIMS];
    for (int64_t k = 0; k < lvk_shape_count(out_shape); ++k) {
        unravel(k, out_shape, i);
        for (int d = 0; d < xs->ndim; ++d)
            j[d] = xs->d[d] == 1 ? 0 : i[d + off];
        out[0][k] = in[0][ravel(j, xs)];
    }
}

/* ---- cases ------------------------------------------------------------------------------- */

/* Runs a case as given (on the device, with backward), then with every
 * float input a constant, so the op folds at load time on the host. */
static void check(const struct lvk_op_case *c)
{
    lvk_test_op(c);
    struct lvk_op_case folded = *c;
    for (int i = 0; i < c->ninputs; ++i)
        if (folded.in_kind[i] == LVK_IN_RUNTIME)
            folded.in_kind[i] = LVK_IN_CONST;
    lvk_test_op(&folded);
}

static void test_concat(void **state)
{
    if (!lvk_test_ctx())
        skip();
    /* Three inputs on the channel axis, as Inception modules concatenate. */
    const struct lvk_attr a1[] = {INT("axis", 1)};
    struct lvk_shape y1 = SHAPE(2, 11, 5, 3);
    struct lvk_op_case c1 = {.op_type = "Concat", .ninputs = 3,
                             .in_shape = {SHAPE(2, 3, 5, 3), SHAPE(2, 7, 5, 3), SHAPE(2, 1, 5, 3)},
                             .attrs = a1, .nattrs = 1, .ref = ref_concat, .user = &y1};
    check(&c1);

    const struct lvk_attr a0[] = {INT("axis", 0)};
    struct lvk_shape y0 = SHAPE(3, 13, 3);
    struct lvk_op_case c0 = {.op_type = "Concat", .ninputs = 2,
                             .in_shape = {SHAPE(1, 13, 3), SHAPE(2, 13, 3)},
                             .attrs = a0, .nattrs = 1, .ref = ref_concat, .user = &y0};
    check(&c0);

    /* Rows of multiples of 4 floats: forward as buffer copies, backward
     * four elements per invocation (src/nn/ops/slice.c). */
    struct lvk_shape y4 = SHAPE(2, 8, 3, 4);
    struct lvk_op_case c4 = {.op_type = "Concat", .ninputs = 2,
                             .in_shape = {SHAPE(2, 2, 3, 4), SHAPE(2, 6, 3, 4)},
                             .attrs = a1, .nattrs = 1, .ref = ref_concat, .user = &y4};
    check(&c4);

    /* Negative axis; the middle input is a constant (no gradient). */
    const struct lvk_attr an[] = {INT("axis", -1)};
    struct lvk_shape yn = SHAPE(2, 3, 10);
    struct lvk_op_case cn = {.op_type = "Concat", .ninputs = 3,
                             .in_shape = {SHAPE(2, 3, 5), SHAPE(2, 3, 2), SHAPE(2, 3, 3)},
                             .in_kind = {LVK_IN_RUNTIME, LVK_IN_CONST, LVK_IN_RUNTIME},
                             .attrs = an, .nattrs = 1, .ref = ref_concat, .user = &yn};
    check(&cn);
}

/* On lavapipe, forward steps whose rows are contiguous run as buffer copies
 * behind one barrier (record_copies in src/nn/ops/slice.c): an
 * Inception-like Concat of three inputs, rows of 4 floats and more, records
 * one timestamped step instead of one dispatch per input, and still yields
 * the concatenation; where an input's rows hold 2 floats, and on other
 * devices, the node keeps the shader. */
static void concat_steps(int64_t hw, int want_steps)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    const int64_t ch[3] = {2, 5, 3}, n = 2;
    struct lvk_model *m = NULL;
    assert_int_equal(lvk_graph_create(ctx, "concat", &m), LVK_OK);
    const char *const names[3] = {"a", "b", "c"};
    for (int k = 0; k < 3; k++) {
        const struct lvk_shape s = SHAPE(n, ch[k], hw);
        assert_true(lvk_graph_add_input(m, names[k], LVK_DTYPE_F32, &s) >= 0);
    }
    const struct lvk_attr a1[] = {INT("axis", 1)};
    assert_int_equal(lvk_graph_add_node(m, "Concat", "cat", names, 3, (const char *const[]){"y"}, 1,
                                        a1, 1), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "y"), LVK_OK);
    assert_int_equal(lvk_graph_finalize(m, &(struct lvk_model_opts){0}), LVK_OK);

    float x[3][2 * 5 * 8], y[2 * 10 * 8];
    for (int k = 0; k < 3; k++) {
        for (int64_t i = 0; i < n * ch[k] * hw; i++)
            x[k][i] = (float)(100 * k + i);
        assert_int_equal(lvk_model_set_input(m, names[k], x[k], (size_t)(n * ch[k] * hw)), LVK_OK);
    }
    assert_int_equal(lvk_model_forward(m), LVK_OK);
    assert_int_equal(lvk_model_read(m, "y", y, (size_t)(n * 10 * hw)), LVK_OK);
    for (int64_t b = 0, i = 0; b < n; b++)
        for (int k = 0; k < 3; k++)
            for (int64_t j = 0; j < ch[k] * hw; j++, i++)
                assert_float_equal(y[i], x[k][b * ch[k] * hw + j], 0.0f);

    if (ctx->timestamps) {
        struct lvk_cmd *cmd = NULL;
        assert_int_equal(lvk_cmd_create(ctx, true, &cmd), LVK_OK);
        assert_int_equal(lvk_cmd_begin(cmd), LVK_OK);
        assert_int_equal(lvk_graph_record_forward(m, cmd), LVK_OK);
        assert_int_equal(lvk_cmd_end(cmd), LVK_OK);
        assert_int_equal((int)cmd->nqueries - 1, want_steps);
        lvk_cmd_destroy(cmd);
    }
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

static void test_concat_copies(void **state)
{
    if (!lvk_test_ctx())
        skip();
    concat_steps(8, lvk_test_ctx()->is_lavapipe ? 1 : 3);
    concat_steps(1, 3);
}

/* A Concat of Relu, Sigmoid and Tanh of one input x [2, 4, 3, W] (W 5, or
 * `w`: 4 makes rows whole vec4s, which lavapipe's backward reads through
 * texel views) along `axis`, of which callers read only channels (axis 1) [lo, hi)
 * (lvk_graph_need_channels); `also`, when not NULL, is requested too and
 * read whole: "z", a Sigmoid of the concatenation, or "a", the Relu branch.
 * Checks which branches run (want: Relu, Sigmoid, Tanh), the channels read
 * against the functions themselves, and the input gradient of the sum of
 * those channels against the derivatives of the branches that hold them. */
struct part_case {
    int64_t lo, hi;
    int axis;           /* 1, -3 (the same), or 2 (along H: nothing to skip) */
    const char *also;
    bool want[3];
    int w;
};

static void concat_part(const struct part_case *t)
{
    enum { N = 2, C = 4, R = 3, MAX_W = 5, MAX_K = N * C * R * MAX_W };
    const int W = t->w ? t->w : MAX_W, K = N * C * R * W;
    struct lvk_ctx *ctx = lvk_test_ctx();
    struct lvk_model *m = NULL;
    assert_int_equal(lvk_graph_create(ctx, "concat_part", &m), LVK_OK);
    const struct lvk_shape s = SHAPE(N, C, R, W);
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &s) >= 0);
    const char *const ops[3] = {"Relu", "Sigmoid", "Tanh"}, *const br[3] = {"a", "b", "c"};
    for (int k = 0; k < 3; k++)
        assert_int_equal(lvk_graph_add_node(m, ops[k], ops[k], (const char *const[]){"x"}, 1,
                                            &br[k], 1, NULL, 0), LVK_OK);
    const struct lvk_attr a1[] = {INT("axis", t->axis)};
    assert_int_equal(lvk_graph_add_node(m, "Concat", "cat", br, 3, (const char *const[]){"y"}, 1,
                                        a1, 1), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Sigmoid", "reread", (const char *const[]){"y"}, 1,
                                        (const char *const[]){"z"}, 1, NULL, 0), LVK_OK);
    lvk_graph_need_channels(m, lvk_graph_find(m, "y"), t->lo, t->hi);
    const char *const outs[2] = {"y", t->also};
    const struct lvk_model_opts mo = {.outputs = outs, .noutputs = t->also ? 2 : 1, .gradients = 1};
    assert_int_equal(lvk_graph_finalize(m, &mo), LVK_OK);
    for (int k = 0; k < 3; k++)
        assert_int_equal(lvk_graph_node_runs(m, &m->nodes[k], false), t->want[k]);
    /* The Relu's backward is the Concat's where fused (fuse_activations). */
    for (int k = 1; k < 3; k++)
        assert_int_equal(lvk_graph_node_runs(m, &m->nodes[k], true), t->want[k]);

    /* y's channel count and where branch k's element (b, c, r, w) lies in y. */
    const bool along_c = t->axis != 2;
    const int yc = along_c ? 3 * C : C;
#define Y_AT(k, b, c, r, w)                                                                \
    (along_c ? (((b) * 3 * C + (k) * C + (c)) * R + (r)) * W + (w)                         \
             : (((b) * C + (c)) * 3 * R + (k) * R + (r)) * W + (w))
    float x[MAX_K], y[3 * MAX_K], seed[3 * MAX_K] = {0}, g[MAX_K];
    unsigned rs = 7;
    fill(x, K, &rs, -2, 2);
    assert_int_equal(lvk_model_set_input(m, "x", x, K), LVK_OK);
    assert_int_equal(lvk_model_forward(m), LVK_OK);
    assert_int_equal(lvk_model_read(m, "y", y, 3 * K), LVK_OK);
    for (int i = 0; i < 3 * K; i++) /* y's channel of element i */
        if (i / (3 * K / N / yc) % yc >= t->lo && i / (3 * K / N / yc) % yc < t->hi)
            seed[i] = 1;
    assert_int_equal(lvk_model_backward(m, "y", seed, 3 * K, g, K), LVK_OK);
    for (int b = 0; b < N; b++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < R * W; p++) {
                const int i = (b * C + c) * R * W + p;
                const double v = x[i], sg = 1 / (1 + exp(-v)), th = tanh(v);
                const double f[3] = {v > 0 ? v : 0, sg, th};
                const double df[3] = {v > 0 ? 1 : 0, sg * (1 - sg), 1 - th * th};
                double want_g = 0;
                for (int k = 0; k < 3; k++) {
                    const int at = Y_AT(k, b, c, p / W, p % W);
                    if (seed[at] == 0)
                        continue;
                    assert_float_equal(y[at], f[k], 1e-6);
                    want_g += df[k];
                }
                assert_float_equal(g[i], want_g, 1e-6);
            }
#undef Y_AT
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

/* Only the inputs that hold the channels read run, forward and backward,
 * with the activations fused or not; a range across two inputs needs both.
 * A reader of the whole concatenation, a range past its channels or a
 * Concat along another axis restricts nothing; a skipped input that is
 * requested itself runs. */
static void test_concat_part(void **state)
{
    if (!lvk_test_ctx())
        skip();
    static const struct part_case cases[] = {
        {5, 7, 1, NULL, {false, true, false}},
        {3, 5, 1, NULL, {true, true, false}},
        {8, 12, -3, NULL, {false, false, true}},
        {5, 7, 1, "z", {true, true, true}},
        {5, 7, 1, "a", {true, true, false}},
        {11, 13, 1, NULL, {true, true, true}},
        {1, 2, 2, NULL, {true, true, true}},
        {3, 5, 1, NULL, {true, true, false}, 4},
        {11, 13, 1, NULL, {true, true, true}, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        concat_part(&cases[i]);
    setenv("LVK_NO_FUSE", "1", 1);
    concat_part(&cases[0]);
    concat_part(&cases[1]);
    unsetenv("LVK_NO_FUSE");
}

static void test_split(void **state)
{
    if (!lvk_test_ctx())
        skip();
    /* Unequal sizes from a constant input (opset 13). */
    const struct lvk_attr a1[] = {INT("axis", 1)};
    struct lvk_shape y[3] = {SHAPE(2, 3, 5), SHAPE(2, 7, 5), SHAPE(2, 3, 5)};
    struct lvk_op_case c = {.op_type = "Split", .ninputs = 2,
                            .in_shape = {SHAPE(2, 13, 5), SHAPE(3)},
                            .in_kind = {LVK_IN_RUNTIME, LVK_IN_CONST_I64},
                            .in_data = {NULL, I64S(3, 7, 3)},
                            .attrs = a1, .nattrs = 1, .noutputs = 3, .ref = ref_split, .user = y};
    check(&c);

    /* Sizes as an attribute (opset 11), negative axis. */
    const struct lvk_attr a2[] = {INT("axis", -1), INTS("split", 4, 1, 2)};
    struct lvk_shape y2[3] = {SHAPE(2, 13, 4), SHAPE(2, 13, 1), SHAPE(2, 13, 2)};
    struct lvk_op_case c2 = {.op_type = "Split", .ninputs = 1, .in_shape = {SHAPE(2, 13, 7)},
                             .attrs = a2, .nattrs = 2, .noutputs = 3, .ref = ref_split,
                             .user = y2, .opset = 11};
    check(&c2);

    /* opset 18 num_outputs: 13 into ceil(13/3) = 5, 5, 3. */
    const struct lvk_attr a3[] = {INT("axis", 1), INT("num_outputs", 3)};
    struct lvk_shape y3[3] = {SHAPE(2, 5, 3), SHAPE(2, 5, 3), SHAPE(2, 3, 3)};
    struct lvk_op_case c3 = {.op_type = "Split", .ninputs = 1, .in_shape = {SHAPE(2, 13, 3)},
                             .attrs = a3, .nattrs = 2, .noutputs = 3, .ref = ref_split,
                             .user = y3, .opset = 18};
    check(&c3);
}

/* x [2, 13, 9, 7] sliced by constant starts, ends, axes, steps. */
static void run_slice(const int64_t *starts, const int64_t *ends, const int64_t *axes,
                      const int64_t *steps, int64_t n, struct lvk_shape want)
{
    struct lvk_op_case c = {.op_type = "Slice", .ninputs = 5,
                            .in_shape = {SHAPE(2, 13, 9, 7), {1, {n}}, {1, {n}}, {1, {n}},
                                         {1, {n}}},
                            .in_kind = {LVK_IN_RUNTIME, LVK_IN_CONST_I64, LVK_IN_CONST_I64,
                                        axes ? LVK_IN_CONST_I64 : LVK_IN_NONE,
                                        steps ? LVK_IN_CONST_I64 : LVK_IN_NONE},
                            .in_data = {NULL, starts, ends, axes, steps},
                            .ref = ref_slice, .user = &want};
    check(&c);
}

static void test_slice(void **state)
{
    if (!lvk_test_ctx())
        skip();
    /* Steps of 2 on H and W. */
    run_slice(I64S(1, 0), I64S(9, 7), I64S(2, 3), I64S(2, 2), 2,
              (struct lvk_shape)SHAPE(2, 13, 4, 4));
    /* Negative step from the end past the start (ends clamp to -1). */
    run_slice(I64S(-1), I64S(INT64_MIN), I64S(1), I64S(-3), 1, (struct lvk_shape)SHAPE(2, 5, 9, 7));
    /* Full reversal of W, and a reversed window of H. */
    run_slice(I64S(-1, 7), I64S(-10, 1), I64S(3, 2), I64S(-1, -2), 2,
              (struct lvk_shape)SHAPE(2, 13, 3, 7));
    /* Negative starts and ends, no steps input. */
    run_slice(I64S(-5), I64S(-1), I64S(3), NULL, 1, (struct lvk_shape)SHAPE(2, 13, 9, 4));
    /* An axes subset with negative axes and out-of-range ends. */
    run_slice(I64S(1, 2), I64S(INT64_MAX, 1000), I64S(0, -3), NULL, 2,
              (struct lvk_shape)SHAPE(1, 11, 9, 7));
    /* No axes input: starts and ends cover the leading axes. */
    run_slice(I64S(0, 3, 2), I64S(2, 12, 8), NULL, I64S(1, 4, 3), 3,
              (struct lvk_shape)SHAPE(2, 3, 2, 7));
    /* Starts/ends as attributes (opset 9). */
    const struct lvk_attr a[] = {INTS("starts", 2, -4), INTS("ends", 11, 100), INTS("axes", 1, 3)};
    struct lvk_shape y9 = SHAPE(2, 9, 9, 4);
    struct lvk_op_case c9 = {.op_type = "Slice", .ninputs = 1, .in_shape = {SHAPE(2, 13, 9, 7)},
                             .attrs = a, .nattrs = 3, .ref = ref_slice, .user = &y9, .opset = 9};
    /* The reference reads inputs: give it the same values there. */
    c9.in_shape[1] = (struct lvk_shape)SHAPE(2);
    c9.in_data[1] = I64S(2, -4);
    c9.in_data[3] = I64S(1, 3);
    check(&c9);
}

static void test_transpose(void **state)
{
    if (!lvk_test_ctx())
        skip();
    /* Channel shuffle: [N, g, C/g, H, W] -> [N, C/g, g, H, W]. */
    const struct lvk_attr shuffle[] = {INTS("perm", 0, 2, 1, 3, 4)};
    struct lvk_shape y1 = SHAPE(2, 5, 3, 7, 3);
    struct lvk_op_case c1 = {.op_type = "Transpose", .ninputs = 1,
                             .in_shape = {SHAPE(2, 3, 5, 7, 3)},
                             .attrs = shuffle, .nattrs = 1, .ref = ref_transpose, .user = &y1};
    check(&c1);

    /* NCHW -> NHWC. */
    const struct lvk_attr nhwc[] = {INTS("perm", 0, 2, 3, 1)};
    struct lvk_shape y2 = SHAPE(2, 5, 3, 13);
    struct lvk_op_case c2 = {.op_type = "Transpose", .ninputs = 1, .in_shape = {SHAPE(2, 13, 5, 3)},
                             .attrs = nhwc, .nattrs = 1, .ref = ref_transpose, .user = &y2};
    check(&c2);

    /* Default perm reverses the axes. */
    struct lvk_shape y3 = SHAPE(7, 13, 3);
    struct lvk_op_case c3 = {.op_type = "Transpose", .ninputs = 1, .in_shape = {SHAPE(3, 13, 7)},
                             .ref = ref_transpose, .user = &y3};
    check(&c3);
}

static void run_pad(const char *mode, const int64_t *pads, struct lvk_shape want, bool value)
{
    const struct lvk_attr a[] = {STR("mode", mode)};
    static const float v[1] = {0.75f};
    struct lvk_op_case c = {.op_type = "Pad", .ninputs = value ? 3 : 2,
                            .in_shape = {SHAPE(2, 3, 5, 4), SHAPE(8), {0}},
                            .in_kind = {LVK_IN_RUNTIME, LVK_IN_CONST_I64, LVK_IN_CONST},
                            .in_data = {NULL, pads, v}, .attrs = a, .nattrs = 1,
                            .ref = ref_pad, .user = &want};
    check(&c);
}

static void test_pad(void **state)
{
    if (!lvk_test_ctx())
        skip();
    /* Asymmetric pads on H and W: (top 1, left 2, bottom 3, right 0). */
    run_pad("constant", I64S(0, 0, 1, 2, 0, 0, 3, 0), (struct lvk_shape)SHAPE(2, 3, 9, 6), true);
    run_pad("constant", I64S(0, 1, 1, 0, 1, 0, 0, 2), (struct lvk_shape)SHAPE(3, 4, 6, 6), false);
    /* Negative pads crop. */
    run_pad("constant", I64S(0, 0, -1, 2, 0, 0, 1, -3), (struct lvk_shape)SHAPE(2, 3, 5, 3), true);
    /* Reflect: pads up to dim - 1, and past it (reflected back and forth). */
    run_pad("reflect", I64S(0, 0, 2, 3, 0, 0, 4, 1), (struct lvk_shape)SHAPE(2, 3, 11, 8), false);
    run_pad("reflect", I64S(0, 2, 1, 7, 0, 1, 9, 0), (struct lvk_shape)SHAPE(2, 6, 15, 11), false);
    /* Edge: pads wider than the axis, so one pixel feeds many outputs. */
    run_pad("edge", I64S(0, 0, 3, 1, 0, 0, 0, 6), (struct lvk_shape)SHAPE(2, 3, 8, 11), false);

    /* Opset 2: pads and value as attributes. */
    const struct lvk_attr a[] = {STR("mode", "constant"), INTS("pads", 0, 0, 2, 0, 0, 0, 0, 1),
                                 {.name = "value", .type = LVK_ATTR_FLOAT, .f = 0.0f}};
    struct lvk_shape y = SHAPE(2, 3, 7, 5);
    struct lvk_op_case c = {.op_type = "Pad", .ninputs = 1, .in_shape = {SHAPE(2, 3, 5, 4)},
                            .attrs = a, .nattrs = 3, .ref = ref_pad, .user = &y, .opset = 2};
    c.in_data[1] = I64S(0, 0, 2, 0, 0, 0, 0, 1);
    check(&c);
}

static void test_gather(void **state)
{
    if (!lvk_test_ctx())
        skip();
    /* 2-D indices along the channel axis, negative and repeated: the
     * gradient of channel 3 sums three output slots. */
    const struct lvk_attr a1[] = {INT("axis", 1)};
    struct lvk_shape y1 = SHAPE(2, 3, 2, 5);
    struct lvk_op_case c1 = {.op_type = "Gather", .ninputs = 2,
                             .in_shape = {SHAPE(2, 13, 5), SHAPE(3, 2)},
                             .in_kind = {LVK_IN_RUNTIME, LVK_IN_CONST_I64},
                             .in_data = {NULL, I64S(0, 12, -1, 3, 3, 3)},
                             .attrs = a1, .nattrs = 1, .ref = ref_gather, .user = &y1};
    check(&c1);

    /* A scalar index on the last axis drops it. */
    const struct lvk_attr a2[] = {INT("axis", -1)};
    struct lvk_shape y2 = SHAPE(2, 13);
    struct lvk_op_case c2 = {.op_type = "Gather", .ninputs = 2,
                             .in_shape = {SHAPE(2, 13, 5), {0}},
                             .in_kind = {LVK_IN_RUNTIME, LVK_IN_CONST_I64},
                             .in_data = {NULL, I64S(-2)},
                             .attrs = a2, .nattrs = 1, .ref = ref_gather, .user = &y2};
    check(&c2);

    /* Axis 0 (default): rows of a matrix, as an embedding lookup. */
    struct lvk_shape y3 = SHAPE(4, 7);
    struct lvk_op_case c3 = {.op_type = "Gather", .ninputs = 2,
                             .in_shape = {SHAPE(5, 7), SHAPE(4)},
                             .in_kind = {LVK_IN_RUNTIME, LVK_IN_CONST_I64},
                             .in_data = {NULL, I64S(4, 0, 4, 2)},
                             .ref = ref_gather, .user = &y3};
    check(&c3);
}

static void test_expand(void **state)
{
    if (!lvk_test_ctx())
        skip();
    /* A per-channel vector broadcast over batch and space, with a target
     * that is itself broadcast (1 in the target keeps the input's dim). */
    struct lvk_shape y = SHAPE(2, 13, 4, 5);
    struct lvk_op_case c = {.op_type = "Expand", .ninputs = 2,
                            .in_shape = {SHAPE(13, 1, 5), SHAPE(4)},
                            .in_kind = {LVK_IN_RUNTIME, LVK_IN_CONST_I64},
                            .in_data = {NULL, I64S(2, 1, 4, 1)},
                            .ref = ref_expand, .user = &y};
    check(&c);

    /* Rows of 8 floats broadcast over batch and height: four elements per
     * invocation forward (a step reading its source twice is no copy, so
     * lavapipe runs it on view_copy.comp too). */
    struct lvk_shape y4 = SHAPE(2, 13, 3, 8);
    struct lvk_op_case c4 = {.op_type = "Expand", .ninputs = 2,
                             .in_shape = {SHAPE(1, 13, 1, 8), SHAPE(4)},
                             .in_kind = {LVK_IN_RUNTIME, LVK_IN_CONST_I64},
                             .in_data = {NULL, I64S(2, 13, 3, 8)},
                             .ref = ref_expand, .user = &y4};
    check(&c4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concat),
        cmocka_unit_test(test_concat_copies),
        cmocka_unit_test(test_concat_part),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_slice),
        cmocka_unit_test(test_transpose),
        cmocka_unit_test(test_pad),
        cmocka_unit_test(test_gather),
        cmocka_unit_test(test_expand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
