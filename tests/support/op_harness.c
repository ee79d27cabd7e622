/* One-op test harness: see op_harness.h for what it checks and how. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "support/devbuf.h"
#include "support/op_harness.h"

static struct lvk_ctx *g_ctx;
static int g_tried;

static void destroy_ctx(void)
{
    lvk_ctx_destroy(g_ctx);
    g_ctx = NULL;
}

struct lvk_ctx *lvk_test_ctx(void)
{
    if (!g_tried) {
        g_tried = 1;
        struct lvk_ctx_opts o = {.validation = -1};
        if (lvk_ctx_create(&o, &g_ctx) != LVK_OK) {
            fprintf(stderr, "no Vulkan device (%s): skipping device tests\n", lvk_last_error());
            g_ctx = NULL;
        } else {
            fprintf(stderr, "device: %s, validation layer %s\n", g_ctx->info.name,
                    g_ctx->validation_enabled ? "on" : "off");
            atexit(destroy_ctx);
        }
    }
    return g_ctx;
}

void lvk_test_assert_no_validation(void)
{
    if (g_ctx && g_ctx->validation_messages) {
        fail_msg("%d Vulkan validation message(s); see stderr", g_ctx->validation_messages);
    }
}

struct run {
    const struct lvk_op_case *c;
    int nout;
    struct lvk_shape out_shape[LVK_TEST_MAX_IO];
    double *in[LVK_TEST_MAX_IO];
    double *out[LVK_TEST_MAX_IO];
    double *g[LVK_TEST_MAX_IO]; /* upstream gradient per output */
};

static double objective(struct run *r)
{
    r->c->ref(r->c, (const double *const *)r->in, r->out, r->out_shape);
    double s = 0;
    for (int j = 0; j < r->nout; j++) {
        int64_t n = lvk_shape_count(&r->out_shape[j]);
        for (int64_t k = 0; k < n; k++)
            s += r->g[j][k] * r->out[j][k];
    }
    return s;
}

void lvk_test_op(const struct lvk_op_case *c)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    const int nout = c->noutputs ? c->noutputs : 1;
    const double rtol = c->rtol ? c->rtol : 1e-4, atol = c->atol ? c->atol : 1e-5;
    const double gtol = c->grad_tol ? c->grad_tol : 1e-3;
    double lo = c->lo, hi = c->hi;
    if (lo == hi) {
        lo = -1;
        hi = 1;
    }
    unsigned seed = c->seed ? c->seed : 12345u;

    struct lvk_model *m;
    assert_int_equal(lvk_graph_create(ctx, c->op_type, &m), LVK_OK);
    if (c->opset)
        m->opset = c->opset;
    struct run r = {.c = c, .nout = nout};
    char names[LVK_TEST_MAX_IO][8], onames[LVK_TEST_MAX_IO][8];
    const char *in_names[LVK_TEST_MAX_IO], *out_names[LVK_TEST_MAX_IO];
    float *fin[LVK_TEST_MAX_IO] = {0};
    bool any_runtime = false;
    for (int i = 0; i < c->ninputs; i++) {
        snprintf(names[i], sizeof names[i], "x%d", i);
        in_names[i] = names[i];
        const struct lvk_shape *s = &c->in_shape[i];
        int64_t n = lvk_shape_count(s);
        switch (c->in_kind[i]) {
        case LVK_IN_NONE:
            in_names[i] = "";
            break;
        case LVK_IN_CONST_I64: {
            assert_non_null(c->in_data[i]);
            assert_true(lvk_graph_add_const(m, names[i], LVK_DTYPE_I64, s, c->in_data[i]) >= 0);
        } break;
        case LVK_IN_RUNTIME:
        case LVK_IN_CONST:
            fin[i] = malloc((size_t)(n ? n : 1) * sizeof(float));
            r.in[i] = malloc((size_t)(n ? n : 1) * sizeof(double));
            for (int64_t k = 0; k < n; k++) {
                fin[i][k] = c->in_data[i] ? ((const float *)c->in_data[i])[k] : (float)uniform(&seed, lo, hi);
                r.in[i][k] = fin[i][k];
            }
            if (c->in_kind[i] == LVK_IN_CONST) {
                assert_true(lvk_graph_add_const(m, names[i], LVK_DTYPE_F32, s, fin[i]) >= 0);
            } else {
                assert_true(lvk_graph_add_input(m, names[i], LVK_DTYPE_F32, s) >= 0);
                any_runtime = true;
            }
            break;
        }
    }
    for (int j = 0; j < nout; j++) {
        snprintf(onames[j], sizeof onames[j], "y%d", j);
        out_names[j] = onames[j];
    }
    lvk_status st = lvk_graph_add_node(m, c->op_type, "op", in_names, c->ninputs, out_names, nout,
                                       c->attrs, c->nattrs);
    if (st != LVK_OK)
        fail_msg("add_node: %s", lvk_last_error());
    for (int j = 0; j < nout; j++)
        assert_int_equal(lvk_graph_mark_output(m, out_names[j]), LVK_OK);
    bool backward = !c->no_backward && any_runtime;
    struct lvk_model_opts mo = {.gradients = backward};
    st = lvk_graph_finalize(m, &mo);
    if (st != LVK_OK)
        fail_msg("finalize %s: %s", c->op_type, lvk_last_error());

    /* Forward against the reference. */
    for (int i = 0; i < c->ninputs; i++)
        if (c->in_kind[i] == LVK_IN_RUNTIME)
            assert_int_equal(lvk_model_set_input(m, names[i], fin[i], (size_t)lvk_shape_count(&c->in_shape[i])), LVK_OK);
    st = lvk_model_forward(m);
    if (st != LVK_OK)
        fail_msg("forward %s: %s", c->op_type, lvk_last_error());
    for (int j = 0; j < nout; j++) {
        struct lvk_value *v = &m->values[lvk_graph_find(m, out_names[j])];
        r.out_shape[j] = v->shape;
        int64_t n = lvk_shape_count(&v->shape);
        r.out[j] = calloc((size_t)(n ? n : 1), sizeof(double));
        r.g[j] = calloc((size_t)(n ? n : 1), sizeof(double));
    }
    c->ref(c, (const double *const *)r.in, r.out, r.out_shape);
    for (int j = 0; j < nout; j++) {
        int64_t n = lvk_shape_count(&r.out_shape[j]);
        float *got = malloc((size_t)(n ? n : 1) * sizeof *got);
        assert_int_equal(lvk_model_read(m, out_names[j], got, (size_t)n), LVK_OK);
        int bad = 0;
        double worst = 0;
        int64_t worst_k = 0;
        for (int64_t k = 0; k < n; k++) {
            double err = fabs(got[k] - r.out[j][k]);
            double lim = atol + rtol * fabs(r.out[j][k]);
            if (!(err <= lim)) {
                bad++;
                if (!(err <= worst)) {
                    worst = err;
                    worst_k = k;
                }
            }
        }
        if (bad) {
            char sh[96];
            fail_msg("%s forward: output %d %s: %d of %lld elements off; worst at %lld: got %.8g, want %.8g",
                     c->op_type, j, lvk_shape_str(&r.out_shape[j], sh, sizeof sh), bad, (long long)n,
                     (long long)worst_k, got[worst_k], r.out[j][worst_k]);
        }
        free(got);
    }

    /* Backward against central differences of the reference. */
    if (backward) {
        struct lvk_cmd *zero, *bwd;
        assert_int_equal(lvk_cmd_create(ctx, false, &zero), LVK_OK);
        assert_int_equal(lvk_cmd_create(ctx, false, &bwd), LVK_OK);
        assert_int_equal(lvk_cmd_begin(zero), LVK_OK);
        /* Every gradient starts as NaN: a backward that adds to a gradient
         * planning lets it store (lvk_node.grad_store), or that leaves part
         * of it unwritten, shows in the comparison below. */
        for (int i = m->grad_first; i < m->grad_end; i++)
            lvk_cmd_fill(zero, &m->bufs[i], 0, VK_WHOLE_SIZE, 0x7fc00000u);
        lvk_cmd_barrier(zero, "fill");   /* before the zeroing fills over them */
        lvk_graph_record_zero_grads(m, zero);
        assert_int_equal(lvk_cmd_end(zero), LVK_OK);
        assert_int_equal(lvk_cmd_begin(bwd), LVK_OK);
        st = lvk_graph_record_backward(m, bwd);
        if (st != LVK_OK)
            fail_msg("record backward %s: %s", c->op_type, lvk_last_error());
        assert_int_equal(lvk_cmd_end(bwd), LVK_OK);
        assert_int_equal(lvk_cmd_submit(zero), LVK_OK);
        for (int j = 0; j < nout; j++) {
            int64_t n = lvk_shape_count(&r.out_shape[j]);
            float *gf = malloc((size_t)(n ? n : 1) * sizeof *gf);
            for (int64_t k = 0; k < n; k++) {
                gf[k] = (float)uniform(&seed, -1, 1);
                r.g[j][k] = gf[k];
            }
            struct lvk_value *v = &m->values[lvk_graph_find(m, out_names[j])];
            assert_non_null(v->grad);
            assert_int_equal(lvk_buf_upload(ctx, v->grad, 0, gf, (VkDeviceSize)n * 4), LVK_OK);
            free(gf);
        }
        assert_int_equal(lvk_cmd_submit(bwd), LVK_OK);
        for (int i = 0; i < c->ninputs; i++) {
            if (c->in_kind[i] != LVK_IN_RUNTIME)
                continue;
            int64_t n = lvk_shape_count(&c->in_shape[i]);
            struct lvk_value *v = &m->values[lvk_graph_find(m, names[i])];
            assert_non_null(v->grad);
            float *gpu = malloc((size_t)(n ? n : 1) * sizeof *gpu);
            assert_int_equal(lvk_buf_download(ctx, v->grad, 0, gpu, (VkDeviceSize)n * 4), LVK_OK);
            /* Check every element of small inputs, a fixed sample of large ones. */
            int64_t step = n > 400 ? n / 400 : 1;
            double scale = 1e-6;
            for (int64_t k = 0; k < n; k++)
                scale = fmax(scale, fabs(gpu[k]));
            int checked = 0, skipped = 0;
            for (int64_t k = (int64_t)(uniform(&seed, 0, 1) * (double)step); k < n; k += step) {
                double x0 = r.in[i][k], h = 1e-3 * fmax(1.0, fabs(x0)), fd[2];
                for (int t = 0; t < 2; t++) {
                    double hh = t ? h / 2 : h;
                    r.in[i][k] = x0 + hh;
                    double fp = objective(&r);
                    r.in[i][k] = x0 - hh;
                    double fm = objective(&r);
                    fd[t] = (fp - fm) / (2 * hh);
                }
                r.in[i][k] = x0;
                checked++;
                if (fabs(fd[0] - fd[1]) > 1e-4 * fmax(scale, fabs(fd[1]))) {
                    skipped++; /* a kink (ReLU, max) within h: differences mean nothing here */
                    continue;
                }
                double err = fabs(gpu[k] - fd[1]);
                if (!(err <= gtol * scale + 1e-6))
                    fail_msg("%s backward: input %d element %lld: device %.8g, finite difference %.8g "
                             "(max |grad| %.3g)", c->op_type, i, (long long)k, gpu[k], fd[1], scale);
            }
            if (skipped * 20 > checked + 20)
                fail_msg("%s backward: %d of %d points sit on kinks; move the inputs away from them",
                         c->op_type, skipped, checked);
            free(gpu);
        }
        lvk_cmd_destroy(zero);
        lvk_cmd_destroy(bwd);
    }
    lvk_test_assert_no_validation();
    for (int i = 0; i < LVK_TEST_MAX_IO; i++) {
        free(fin[i]);
        free(r.in[i]);
        free(r.out[i]);
        free(r.g[i]);
    }
    lvk_model_destroy(m);
}
