/* Objectives (src/optvis/objective*.c):
 *   - the parser: valid expressions give the terms, weights and batch
 *     bindings written by hand here; invalid ones fail naming the column;
 *   - values and gradients on the device: for every term kind, on small
 *     graphs (Identity and Tanh heads, and Conv -> Relu end to end), the
 *     per-image values equal a double-precision CPU reference written from
 *     Lucid's definitions, and the seeded gradients equal central finite
 *     differences of that reference (sign included). Gradient buffers start
 *     non-zero, so the checks also show that terms ADD into them;
 *   - binding errors: unknown tensor, channel, class, position, image index
 *     and direction length out of range. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/lvk_io.h"
#include "optvis/objective.h"
#include "support/devbuf.h"
#include "support/op_harness.h"

#define MAXB 8
#define VALUE_RTOL 1e-4 /* float32 sums of at most a few thousand O(1) terms */
#define VALUE_ATOL 1e-5
#define GRAD_TOL 1e-3   /* relative to the largest |gradient| */

/* ---- parser ----------------------------------------------------------------------- */

static struct lvk_objective *parse_ok(const char *text)
{
    struct lvk_objective *o = NULL;
    lvk_status st = lvk_objective_parse(text, &o);
    if (st != LVK_OK)
        fail_msg("parse \"%s\": %s", text, lvk_last_error());
    assert_non_null(o);
    return o;
}

/* The text must fail, naming `col` and containing `what`. */
static void parse_bad(const char *text, int col, const char *what)
{
    struct lvk_objective *o = (struct lvk_objective *)1;
    lvk_status st = lvk_objective_parse(text, &o);
    if (st == LVK_OK)
        fail_msg("\"%s\" parsed but should fail", text);
    assert_int_equal(st, LVK_ERR_INVALID_ARG);
    assert_null(o);
    char want[32];
    snprintf(want, sizeof want, "column %d:", col);
    const char *msg = lvk_last_error();
    if (!strstr(msg, want) || !strstr(msg, what))
        fail_msg("\"%s\": message \"%s\" lacks \"%s\" or \"%s\"", text, msg, want, what);
}

static void term_is(const struct lvk_term *t, enum lvk_term_kind kind, const char *tensor,
                    int channel, double weight, int batch)
{
    assert_int_equal(t->kind, kind);
    if (tensor)
        assert_string_equal(t->tensor, tensor);
    else
        assert_null(t->tensor);
    if (channel >= 0)
        assert_int_equal(t->channel, channel);
    if (fabs(t->weight - weight) > 1e-12)
        fail_msg("term %s: weight %.17g, want %.17g", lvk_term_name(kind), t->weight, weight);
    assert_int_equal(t->batch, batch);
}

static void test_parse_terms(void **state)
{
    struct lvk_objective *o = parse_ok("channel(mixed4a, 97)");
    assert_int_equal(o->nterms, 1);
    term_is(&o->terms[0], LVK_TERM_CHANNEL, "mixed4a", 97, 1.0, -1);
    assert_int_equal(o->terms[0].col, 1);
    assert_int_equal(o->terms[0].len, 20);
    lvk_objective_destroy(o);

    /* Quoting, and bare names with '/', ':', '.', '-'. */
    o = parse_ok(" channel( 'mixed4a/conv:0' ,3) + Neuron(\"a b,(c)\", 4) +"
                 "neuron(block1/conv-2.out:0, 5, 3, 7) + layer(x.y)");
    assert_int_equal(o->nterms, 4);
    term_is(&o->terms[0], LVK_TERM_CHANNEL, "mixed4a/conv:0", 3, 1.0, -1);
    term_is(&o->terms[1], LVK_TERM_NEURON, "a b,(c)", 4, 1.0, -1);
    assert_int_equal(o->terms[1].x, -1);
    assert_int_equal(o->terms[1].y, -1);
    term_is(&o->terms[2], LVK_TERM_NEURON, "block1/conv-2.out:0", 5, 1.0, -1);
    assert_int_equal(o->terms[2].x, 3);
    assert_int_equal(o->terms[2].y, 7);
    term_is(&o->terms[3], LVK_TERM_LAYER, "x.y", -1, 1.0, -1);
    assert_int_equal(o->terms[0].col, 2);
    lvk_objective_destroy(o);

    /* The other kinds, aliases and case. */
    o = parse_ok("DeepDream(a) + direction(L/x, '/tmp/v 1.npy') + direction(L, dirs/v.npy)"
                 " + class(7) + class(3, logits:0) + group(g, 0-3) + group(g, [3,5, 9])"
                 " + group(g, 1, 4-5) + 100*diversity(d) + tv + l1() - L2 + total_variation + blur");
    assert_int_equal(o->nterms, 14);
    term_is(&o->terms[0], LVK_TERM_LAYER, "a", -1, 1.0, -1);
    term_is(&o->terms[1], LVK_TERM_DIRECTION, "L/x", -1, 1.0, -1);
    assert_string_equal(o->terms[1].path, "/tmp/v 1.npy");
    assert_string_equal(o->terms[2].path, "dirs/v.npy");
    term_is(&o->terms[3], LVK_TERM_CLASS, NULL, 7, 1.0, -1);
    term_is(&o->terms[4], LVK_TERM_CLASS, "logits:0", 3, 1.0, -1);
    static const int g0[] = {0, 1, 2, 3}, g1[] = {3, 5, 9}, g2[] = {1, 4, 5};
    const int *groups[] = {g0, g1, g2};
    const int ngroups[] = {4, 3, 3};
    for (int k = 0; k < 3; k++) {
        const struct lvk_term *t = &o->terms[5 + k];
        term_is(t, LVK_TERM_GROUP, "g", -1, 1.0, -1);
        assert_int_equal(t->nchannels, ngroups[k]);
        for (int i = 0; i < ngroups[k]; i++)
            assert_int_equal(t->channels[i], groups[k][i]);
    }
    term_is(&o->terms[8], LVK_TERM_DIVERSITY, "d", -1, 100.0, -1);
    term_is(&o->terms[9], LVK_TERM_TV, NULL, -1, 1.0, -1);
    term_is(&o->terms[10], LVK_TERM_L1, NULL, -1, 1.0, -1);
    term_is(&o->terms[11], LVK_TERM_L2, NULL, -1, -1.0, -1);
    term_is(&o->terms[12], LVK_TERM_TV, NULL, -1, 1.0, -1);
    term_is(&o->terms[13], LVK_TERM_BLUR, NULL, -1, 1.0, -1);
    lvk_objective_destroy(o);
}

static void test_parse_arithmetic(void **state)
{
    /* Scalars on either side, division, nested parentheses, unary minus. */
    struct lvk_objective *o =
        parse_ok("2*channel(a,1) - channel(a,2)*0.5 + -(3*(layer(b)/4)) - -tv + ((l1))*1e-2");
    assert_int_equal(o->nterms, 5);
    term_is(&o->terms[0], LVK_TERM_CHANNEL, "a", 1, 2.0, -1);
    term_is(&o->terms[1], LVK_TERM_CHANNEL, "a", 2, -0.5, -1);
    term_is(&o->terms[2], LVK_TERM_LAYER, "b", -1, -0.75, -1);
    term_is(&o->terms[3], LVK_TERM_TV, NULL, -1, 1.0, -1);
    term_is(&o->terms[4], LVK_TERM_L1, NULL, -1, 0.01, -1);
    lvk_objective_destroy(o);

    /* Constant arithmetic folds; a product distributes over a sum. */
    o = parse_ok("(1 + 2) * 2 * (channel(a, 0) - .5 * (neuron(b, 1) + 4 * tv)) / 4");
    assert_int_equal(o->nterms, 3);
    term_is(&o->terms[0], LVK_TERM_CHANNEL, "a", 0, 1.5, -1);
    term_is(&o->terms[1], LVK_TERM_NEURON, "b", 1, -0.75, -1);
    term_is(&o->terms[2], LVK_TERM_TV, NULL, -1, -3.0, -1);
    lvk_objective_destroy(o);

    o = parse_ok("2.5E+1*tv/1e1 + 3.*l1");
    term_is(&o->terms[0], LVK_TERM_TV, NULL, -1, 2.5, -1);
    term_is(&o->terms[1], LVK_TERM_L1, NULL, -1, 3.0, -1);
    lvk_objective_destroy(o);
}

static void test_parse_batch(void **state)
{
    struct lvk_objective *o = parse_ok(
        "channel(a,1)@0 + 2*channel(a,2) @ 3 + batch(1, neuron(b,1) - 0.1*tv)"
        " + (layer(c) + l2)@2 + batch(2, batch(2, blur)) + diversity(c)");
    assert_int_equal(o->nterms, 8);
    term_is(&o->terms[0], LVK_TERM_CHANNEL, "a", 1, 1.0, 0);
    term_is(&o->terms[1], LVK_TERM_CHANNEL, "a", 2, 2.0, 3);
    term_is(&o->terms[2], LVK_TERM_NEURON, "b", 1, 1.0, 1);
    term_is(&o->terms[3], LVK_TERM_TV, NULL, -1, -0.1, 1);
    term_is(&o->terms[4], LVK_TERM_LAYER, "c", -1, 1.0, 2);
    term_is(&o->terms[5], LVK_TERM_L2, NULL, -1, 1.0, 2);
    term_is(&o->terms[6], LVK_TERM_BLUR, NULL, -1, 1.0, 2);
    term_is(&o->terms[7], LVK_TERM_DIVERSITY, "c", -1, 1.0, -1);
    lvk_objective_destroy(o);
}

static void test_parse_errors(void **state)
{
    parse_bad("", 1, "expected a term");
    parse_bad("   ", 4, "expected a term");
    parse_bad("channel(mixed4a 3)", 17, "expected ',' after the tensor name 'mixed4a', found '3'");
    parse_bad("channel(a, x)", 12, "expected a channel index");
    parse_bad("channel(a, -1)", 12, "expected a channel index");
    parse_bad("channel(a,1", 12, "expected ')' closing channel(...), found end of text");
    parse_bad("channel(a,1))", 13, "expected an operator");
    parse_bad("channel('a,1)", 9, "unterminated quote");
    parse_bad("channel(,1)", 9, "expected a tensor name");
    parse_bad("channel a", 9, "expected '(' after channel");
    parse_bad("foo(a)", 1, "unknown term 'foo'");
    parse_bad("channel(a,1) * channel(b,2)", 14, "cannot multiply two objectives");
    parse_bad("2 / channel(a,1)", 5, "can only be divided by a number");
    parse_bad("channel(a,1) / (1 - 1)", 16, "division by zero");
    parse_bad("channel(a,1) + 1", 14, "cannot add a number");
    parse_bad("3 * (2 - 1)", 1, "the objective is a constant");
    parse_bad("neuron(a, 1, 2)", 15, "expected ',' and the neuron's row y");
    parse_bad("group(a, 5-2)", 11, "empty channel range 5-2");
    parse_bad("group(a, [1, 2)", 15, "expected ',' or ']'");
    parse_bad("channel(a, 1) @ x", 17, "expected an image index");
    parse_bad("batch(0, diversity(a))", 10, "diversity compares the images");
    parse_bad("diversity(a)@1", 1, "cannot be bound to image 1");
    parse_bad("(channel(a,1)@0)@1", 17, "already bound to image 0");
    parse_bad("batch(x, tv)", 7, "expected an image index");
    parse_bad("batch(1, 2)", 1, "holds no term");
    parse_bad("tv(a)", 4, "image terms take no arguments");
    parse_bad("channel(a,1) + * tv", 16, "expected a term");
    parse_bad("0x10*tv", 2, "expected an operator"); /* decimal numbers only */
    parse_bad("1e5000*tv", 1, "number out of range");
    /* Nesting is bounded (the parser recurses). */
    char deep[1200];
    memset(deep, '(', 1000);
    strcpy(deep + 1000, "tv");
    parse_bad(deep, 201, "nested more than 200 levels");
    memset(deep, '-', 1000);
    parse_bad(deep, 201, "nested more than 200 levels");
}

/* ---- CPU reference --------------------------------------------------------------------- */

/* What the reference reads: model tensors by name, each [B, C, S] (S =
 * H*W; H = W = 1 for a [B, C] tensor), the image, and the direction vector. */
struct named {
    const char *name;
    double *data;
};

struct ref {
    const struct lvk_objective *o;
    int B;
    struct named t[2];
    const char *first_output; /* what class(k) reads */
    int C, H, W;
    double *x;        /* image [B, IC, IH, IW] */
    const double *xs; /* the image blur() sees (stop_gradient: fixed under differences) */
    int IC, IH, IW;
    const double *dir;
};

static const double *tensor_of(const struct ref *r, const struct lvk_term *t)
{
    const char *name = t->tensor ? t->tensor : r->first_output;
    for (int i = 0; i < 2; i++)
        if (r->t[i].name && strcmp(r->t[i].name, name) == 0)
            return r->t[i].data;
    fail_msg("reference: no tensor '%s'", name);
    return NULL;
}

static double t_at(const struct ref *r, const double *d, int b, int c, int p)
{
    return d[((int64_t)b * r->C + c) * r->H * r->W + p];
}

/* Lucid's _tf_blur at one pixel of plane `pl` of xs. */
static double blur_ref(const struct ref *r, const double *pl, int h, int w)
{
    double s = 0, norm = 0;
    for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
            int yy = h + dy, xx = w + dx;
            if (yy < 0 || yy >= r->IH || xx < 0 || xx >= r->IW)
                continue;
            double k = (dy || dx) ? 0.5 : 1.0;
            s += k * pl[yy * r->IW + xx];
            norm += k;
        }
    return s / norm;
}

static double image_term(const struct ref *r, enum lvk_term_kind kind, int b)
{
    int64_t plane = (int64_t)r->IH * r->IW;
    double s = 0;
    for (int c = 0; c < r->IC; c++) {
        const double *x = r->x + ((int64_t)b * r->IC + c) * plane;
        const double *xs = r->xs + ((int64_t)b * r->IC + c) * plane;
        for (int h = 0; h < r->IH; h++)
            for (int w = 0; w < r->IW; w++) {
                double v = x[h * r->IW + w];
                switch (kind) {
                case LVK_TERM_TV:
                    if (h + 1 < r->IH)
                        s += fabs(x[(h + 1) * r->IW + w] - v);
                    if (w + 1 < r->IW)
                        s += fabs(x[h * r->IW + w + 1] - v);
                    break;
                case LVK_TERM_L1: s += fabs(v - 0.5); break;
                case LVK_TERM_L2: s += (v - 0.5) * (v - 0.5); break;
                default: {
                    double d = v - blur_ref(r, xs, h, w);
                    s += d * d;
                }
                }
            }
    }
    return kind == LVK_TERM_L2 ? sqrt(s + 1e-6) : kind == LVK_TERM_BLUR ? 0.5 * s : s;
}

/* Lucid's diversity, image b's share: -(1/B) sum_{j != b} <g_b, g_j>. */
static void diversity_ref(const struct ref *r, const double *d, double *v)
{
    int C = r->C, S = r->H * r->W, B = r->B;
    double *g = calloc((size_t)B * C * C, sizeof *g), n[MAXB];
    for (int b = 0; b < B; b++) {
        double q = 0;
        for (int i = 0; i < C; i++)
            for (int j = 0; j < C; j++) {
                double s = 0;
                for (int p = 0; p < S; p++)
                    s += t_at(r, d, b, i, p) * t_at(r, d, b, j, p);
                g[((int64_t)b * C + i) * C + j] = s;
                q += s * s;
            }
        n[b] = sqrt(fmax(q, 1e-10));
    }
    for (int i = 0; i < B; i++) {
        v[i] = 0;
        for (int j = 0; j < B; j++) {
            if (j == i)
                continue;
            double dot = 0;
            for (int e = 0; e < C * C; e++)
                dot += g[(int64_t)i * C * C + e] * g[(int64_t)j * C * C + e];
            v[i] -= dot / (n[i] * n[j]) / B;
        }
    }
    free(g);
}

static void ref_values(const struct ref *r, double *v)
{
    int S = r->H * r->W;
    for (int b = 0; b < r->B; b++)
        v[b] = 0;
    for (int k = 0; k < r->o->nterms; k++) {
        const struct lvk_term *t = &r->o->terms[k];
        const double *d = lvk_term_on_image(t->kind) ? NULL : tensor_of(r, t);
        double tv[MAXB] = {0};
        if (t->kind == LVK_TERM_DIVERSITY)
            diversity_ref(r, d, tv);
        for (int b = 0; b < r->B; b++) {
            if (t->batch >= 0 && t->batch != b)
                continue;
            double s = 0;
            switch (t->kind) {
            case LVK_TERM_CHANNEL:
            case LVK_TERM_CLASS:
                for (int p = 0; p < S; p++)
                    s += t_at(r, d, b, t->channel, p) / S;
                break;
            case LVK_TERM_NEURON: {
                int x = t->x >= 0 ? t->x : r->W / 2, y = t->y >= 0 ? t->y : r->H / 2;
                s = t_at(r, d, b, t->channel, y * r->W + x);
            } break;
            case LVK_TERM_LAYER:
                for (int c = 0; c < r->C; c++)
                    for (int p = 0; p < S; p++)
                        s += t_at(r, d, b, c, p) * t_at(r, d, b, c, p) / ((double)r->C * S);
                break;
            case LVK_TERM_DIRECTION:
                for (int c = 0; c < r->C; c++)
                    for (int p = 0; p < S; p++)
                        s += r->dir[c] * t_at(r, d, b, c, p) / S;
                break;
            case LVK_TERM_GROUP:
                for (int i = 0; i < t->nchannels; i++)
                    for (int p = 0; p < S; p++)
                        s += t_at(r, d, b, t->channels[i], p) / S;
                break;
            case LVK_TERM_DIVERSITY:
                s = tv[b];
                break;
            default:
                s = image_term(r, t->kind, b);
            }
            v[b] += t->weight * s;
        }
    }
}

static double ref_total(const struct ref *r)
{
    double v[MAXB], s = 0;
    ref_values(r, v);
    for (int b = 0; b < r->B; b++)
        s += v[b];
    return s;
}

/* Checks gpu[i] == sign * d(total)/d(x[i]) (x is the reference's own
 * tensor or image, perturbed in place) by central differences at two step
 * sizes; points where those disagree (kinks of |.| or ReLU) are skipped, at
 * most 5% of them. */
static void check_grad(struct ref *r, double *x, const double *gpu, int64_t n, double sign,
                       const char *what)
{
    double scale = 1e-6;
    for (int64_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(gpu[i]));
    int checked = 0, skipped = 0;
    for (int64_t i = 0; i < n; i++) {
        double x0 = x[i], h = 1e-3 * fmax(1.0, fabs(x0)), fd[2];
        for (int k = 0; k < 2; k++) {
            double hh = k ? h / 2 : h;
            x[i] = x0 + hh;
            double fp = ref_total(r);
            x[i] = x0 - hh;
            double fm = ref_total(r);
            fd[k] = sign * (fp - fm) / (2 * hh);
        }
        x[i] = x0;
        checked++;
        if (fabs(fd[0] - fd[1]) > 1e-4 * fmax(scale, fabs(fd[1]))) {
            skipped++;
            continue;
        }
        if (!(fabs(gpu[i] - fd[1]) <= GRAD_TOL * scale + 1e-6))
            fail_msg("%s: gradient element %lld: device %.8g, finite difference %.8g (max %.3g)",
                     what, (long long)i, gpu[i], fd[1], scale);
    }
    if (skipped * 20 > checked)
        fail_msg("%s: %d of %d points on kinks", what, skipped, checked);
}

static void check_values(const struct ref *r, const float *got, const char *what)
{
    double want[MAXB];
    ref_values(r, want);
    for (int b = 0; b < r->B; b++)
        if (!(fabs(got[b] - want[b]) <= VALUE_ATOL + VALUE_RTOL * fabs(want[b])))
            fail_msg("%s: value of image %d: device %.8g, reference %.8g", what, b, got[b], want[b]);
}

/* ---- device fixtures ---------------------------------------------------------------------- */

/* in [B, C, H, W] (or [B, C] when H == 0) -> Identity -> "blk/act:0" (graph
 * output 0), and in -> Tanh -> "head/tanh" (output 1). */
static struct lvk_model *small_model(int B, int C, int H, int W)
{
    struct lvk_model *m;
    assert_int_equal(lvk_graph_create(lvk_test_ctx(), "small.onnx", &m), LVK_OK);
    struct lvk_shape s = H ? (struct lvk_shape){4, {B, C, H, W}} : (struct lvk_shape){2, {B, C}};
    assert_true(lvk_graph_add_input(m, "in", LVK_DTYPE_F32, &s) >= 0);
    assert_int_equal(lvk_graph_add_node(m, "Identity", "id", (const char *[]){"in"}, 1,
                                        (const char *[]){"blk/act:0"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Tanh", "th", (const char *[]){"in"}, 1,
                                        (const char *[]){"head/tanh"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "blk/act:0"), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "head/tanh"), LVK_OK);
    struct lvk_model_opts mo = {.gradients = 1};
    if (lvk_graph_finalize(m, &mo) != LVK_OK)
        fail_msg("finalize: %s", lvk_last_error());
    return m;
}

static struct lvk_objective_gpu *bind_ok(struct lvk_objective *o, struct lvk_model *m, int B,
                                         int C, int H, int W)
{
    struct lvk_objective_gpu *g = NULL;
    if (lvk_objective_bind(o, m, B, C, H, W, &g) != LVK_OK)
        fail_msg("bind \"%s\": %s", o->text, lvk_last_error());
    return g;
}

static float *random_floats(int64_t n, unsigned *seed, double lo, double hi)
{
    float *f = malloc((size_t)n * sizeof *f);
    for (int64_t i = 0; i < n; i++)
        f[i] = (float)uniform(seed, lo, hi);
    return f;
}

static double *to_double(const float *f, int64_t n)
{
    double *d = malloc((size_t)n * sizeof *d);
    for (int64_t i = 0; i < n; i++)
        d[i] = f[i];
    return d;
}

/* A case on the tensors of small_model ("blk/act:0" = the input, and
 * "head/tanh"); the input is random in [lo, hi]. Both tensors' gradients
 * are checked. */
struct tensor_case {
    const char *text;
    int B, C, H, W;   /* H = 0: [B, C] tensors */
    float sign;
    double lo, hi;
    const double *dir;
    int runs;         /* lvk_objective_run count expected; 0: not checked */
};

static const char *const k_small_tensors[2] = {"blk/act:0", "head/tanh"};

static void run_tensor_case(const struct tensor_case *c)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    unsigned seed = 4242;
    int H = c->H ? c->H : 1, W = c->H ? c->W : 1;
    int64_t n = (int64_t)c->B * c->C * H * W;
    struct lvk_model *m = small_model(c->B, c->C, c->H, c->W);
    struct lvk_objective *o = parse_ok(c->text);
    struct lvk_objective_gpu *g = bind_ok(o, m, c->B, 3, 4, 4);
    if (c->runs)
        assert_int_equal(g->nruns, c->runs);
    assert_non_null(g->values_buf.map);   /* read after every render step */

    float *in = random_floats(n, &seed, c->lo, c->hi);
    assert_int_equal(lvk_model_set_input(m, "in", in, (size_t)n), LVK_OK);
    assert_int_equal(lvk_model_forward(m), LVK_OK);
    struct ref r = {.o = o, .B = c->B, .first_output = "blk/act:0", .C = c->C, .H = H, .W = W,
                    .dir = c->dir};
    /* Start the gradients from random values: the seed must add to them. */
    float *tf = malloc((size_t)n * sizeof *tf), *g0[2], *g1 = malloc((size_t)n * sizeof *g1);
    struct lvk_value *tv[2];
    for (int k = 0; k < 2; k++) {
        assert_int_equal(lvk_model_read(m, k_small_tensors[k], tf, (size_t)n), LVK_OK);
        r.t[k] = (struct named){k_small_tensors[k], to_double(tf, n)};
        tv[k] = &m->values[lvk_graph_find(m, k_small_tensors[k])];
        g0[k] = random_floats(n, &seed, -1, 1);
        assert_int_equal(lvk_buf_upload(ctx, tv[k]->grad, 0, g0[k], (VkDeviceSize)n * 4), LVK_OK);
    }
    struct lvk_cmd *cmd;
    assert_int_equal(lvk_cmd_create(ctx, false, &cmd), LVK_OK);
    assert_int_equal(lvk_cmd_begin(cmd), LVK_OK);
    if (lvk_objective_record_seed(cmd, g, c->sign) != LVK_OK)
        fail_msg("record: %s", lvk_last_error());
    assert_int_equal(lvk_cmd_end(cmd), LVK_OK);
    assert_int_equal(lvk_cmd_submit(cmd), LVK_OK);
    float values[MAXB];
    assert_int_equal(lvk_objective_read_values(g, values), LVK_OK);
    check_values(&r, values, c->text);

    double *grad = malloc((size_t)n * sizeof *grad);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(lvk_buf_download(ctx, tv[k]->grad, 0, g1, (VkDeviceSize)n * 4), LVK_OK);
        for (int64_t i = 0; i < n; i++)
            grad[i] = (double)g1[i] - g0[k][i];
        char what[600];
        snprintf(what, sizeof what, "%s, d/d %s", c->text, k_small_tensors[k]);
        check_grad(&r, r.t[k].data, grad, n, c->sign, what);
    }

    /* Replaying the recording gives the same values (nothing is baked in
     * that a step changes, and values restart from 0). */
    assert_int_equal(lvk_cmd_submit(cmd), LVK_OK);
    float again[MAXB];
    assert_int_equal(lvk_objective_read_values(g, again), LVK_OK);
    for (int b = 0; b < c->B; b++)
        assert_true(fabsf(again[b] - values[b]) <= 1e-6f * (1 + fabsf(values[b])));
    lvk_test_assert_no_validation();

    lvk_cmd_destroy(cmd);
    lvk_objective_gpu_destroy(g);
    lvk_objective_destroy(o);
    lvk_model_destroy(m);
    free(in); free(tf); free(g1); free(grad);
    for (int k = 0; k < 2; k++) {
        free(g0[k]);
        free(r.t[k].data);
    }
}

static void test_channel_neuron_group(void **state)
{
    /* 5 x 6 positions: the centre is column 3, row 2. */
    run_tensor_case(&(struct tensor_case){
        .text = "channel(blk/act:0, 2)", .B = 2, .C = 5, .H = 5, .W = 6,
        .sign = 1, .lo = -1, .hi = 1});
    run_tensor_case(&(struct tensor_case){
        .text = "2*channel('blk/act:0', 2)@1 - neuron(blk/act:0, 1) + neuron(blk/act:0, 4, 5, 0)@2"
                " + 0.5*group(blk/act:0, [0, 2-3]) + batch(0, group(blk/act:0, 4, 4))",
        .B = 3, .C = 5, .H = 5, .W = 6, .sign = 1, .lo = -1, .hi = 1});
    /* Runs (lvk_objective_run): the first three terms on images 0-2 share
     * one dispatch pair, each with its own channel and weight; the fourth
     * comes back to image 1 and starts a second run, which the group on
     * image 3 joins (a range of channels). */
    run_tensor_case(&(struct tensor_case){
        .text = "channel(blk/act:0, 0)@0 + 2*channel(blk/act:0, 3)@1 - 0.5*channel(blk/act:0, 1)@2"
                " + channel(blk/act:0, 4)@1 + 0.25*group(blk/act:0, [1-3])@3",
        .B = 4, .C = 5, .H = 5, .W = 6, .sign = 1, .lo = -1, .hi = 1, .runs = 2});
    /* Minimising (sign -1), on a non-alias tensor (Tanh output). */
    run_tensor_case(&(struct tensor_case){
        .text = "neuron(head/tanh, 0, 1, 3) - channel(head/tanh, 3)/3", .B = 2, .C = 4, .H = 4,
        .W = 3, .sign = -1, .lo = -2, .hi = 2});
}

static void test_layer(void **state)
{
    run_tensor_case(&(struct tensor_case){
        .text = "layer(blk/act:0)", .B = 2, .C = 3, .H = 5, .W = 7,
        .sign = 1, .lo = -1, .hi = 1});
    run_tensor_case(&(struct tensor_case){
        .text = "-0.5*deepdream(head/tanh)@0 + layer(head/tanh)@1", .B = 2, .C = 3, .H = 5,
        .W = 7, .sign = -1, .lo = -1, .hi = 1});
}

static void test_class(void **state)
{
    /* [B, K] logits: class(k) reads graph output 0 (blk/act:0). */
    run_tensor_case(&(struct tensor_case){
        .text = "class(7) - 0.25*class(2)@1", .B = 3, .C = 11,
        .sign = 1, .lo = -3, .hi = 3});
    run_tensor_case(&(struct tensor_case){
        .text = "class(10, head/tanh)", .B = 2, .C = 11, .sign = 1,
        .lo = -3, .hi = 3});
}

/* Writes v (n floats) to a temporary .npy; path receives its name. */
static void write_npy(const double *v, int n, char *path, size_t len)
{
    snprintf(path, len, "%s/lvk_test_direction_%d.npy", P_tmpdir, (int)getpid());
    float *f = malloc((size_t)n * sizeof *f);
    for (int i = 0; i < n; i++)
        f[i] = (float)v[i];
    int64_t shape[1] = {n};
    assert_int_equal(lvk_npy_write(path, f, 1, shape), LVK_OK);
    free(f);
}

static void test_direction(void **state)
{
    if (!lvk_test_ctx())
        skip();
    /* float-representable values, so the reference and the file agree. */
    double dir[6] = {0.5, -1.25, 2.0, 0.0, 0.75, -0.5};
    char path[256], text[512];
    write_npy(dir, 6, path, sizeof path);
    snprintf(text, sizeof text, "direction(blk/act:0, '%s') - 0.5*direction(head/tanh, %s)@1",
             path, path);
    run_tensor_case(&(struct tensor_case){
        .text = text, .B = 2, .C = 6, .H = 3, .W = 5, .sign = 1,
        .lo = -1, .hi = 1, .dir = dir});
    unlink(path);
}

static void test_diversity(void **state)
{
    run_tensor_case(&(struct tensor_case){
        .text = "diversity(blk/act:0)", .B = 3, .C = 4, .H = 3, .W = 5,
        .sign = 1, .lo = -1, .hi = 1});
    /* With other terms on the same tensor, weighted, minimised; channels
     * that are not all positive give Gram matrices of mixed sign. */
    run_tensor_case(&(struct tensor_case){
        .text = "channel(blk/act:0, 1) + 3*diversity(blk/act:0) - layer(blk/act:0)@0", .B = 3,
        .C = 5, .H = 2, .W = 3, .sign = -1, .lo = -0.5, .hi = 1});
    /* More channels than a workgroup's lanes (64) and rows (16): the Gram
     * kernel skips the blocks below the diagonal and mirrors the rest... */
    run_tensor_case(&(struct tensor_case){
        .text = "diversity(blk/act:0)", .B = 3, .C = 70, .H = 1, .W = 2, .sign = 1,
        .lo = -1, .hi = 1});
    /* ...and the gradient kernel spreads positions and channels over blocks. */
    run_tensor_case(&(struct tensor_case){
        .text = "diversity(head/tanh)", .B = 2, .C = 18, .H = 6, .W = 11, .sign = 1,
        .lo = -1, .hi = 1});
    /* A [B, C] tensor: one position, Gram matrices are outer products. */
    run_tensor_case(&(struct tensor_case){
        .text = "-2*diversity(head/tanh)", .B = 4, .C = 6, .sign = 1,
        .lo = -2, .hi = 2});
}

/* Image terms: the image and its gradient are buffers of the test's own. */
static void run_image_case(const char *text, int B, int C, int H, int W, float sign)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    unsigned seed = 777;
    int64_t n = (int64_t)B * C * H * W;
    struct lvk_model *m = small_model(B, 2, 3, 3);
    struct lvk_objective *o = parse_ok(text);
    struct lvk_objective_gpu *g = bind_ok(o, m, B, C, H, W);

    struct lvk_buf bufs[2];
    struct lvk_arena arena;
    VkDeviceSize sizes[2] = {(VkDeviceSize)n * 4, (VkDeviceSize)n * 4};
    assert_int_equal(lvk_arena_create(ctx, sizes, 2, bufs, &arena), LVK_OK);
    float *img = random_floats(n, &seed, 0.02, 0.98), *g0 = random_floats(n, &seed, -1, 1);
    float *g1 = malloc((size_t)n * sizeof *g1);
    assert_int_equal(lvk_buf_upload(ctx, &bufs[0], 0, img, sizes[0]), LVK_OK);
    assert_int_equal(lvk_buf_upload(ctx, &bufs[1], 0, g0, sizes[1]), LVK_OK);

    struct lvk_cmd *cmd;
    assert_int_equal(lvk_cmd_create(ctx, false, &cmd), LVK_OK);
    assert_int_equal(lvk_cmd_begin(cmd), LVK_OK);
    assert_int_equal(lvk_objective_record_seed(cmd, g, sign), LVK_OK);
    if (lvk_objective_record_image(cmd, g, &bufs[0], &bufs[1], sign) != LVK_OK)
        fail_msg("record image: %s", lvk_last_error());
    assert_int_equal(lvk_cmd_end(cmd), LVK_OK);
    assert_int_equal(lvk_cmd_submit(cmd), LVK_OK);
    float values[MAXB];
    assert_int_equal(lvk_objective_read_values(g, values), LVK_OK);
    assert_int_equal(lvk_buf_download(ctx, &bufs[1], 0, g1, sizes[1]), LVK_OK);

    double *grad = malloc((size_t)n * sizeof *grad);
    for (int64_t i = 0; i < n; i++)
        grad[i] = (double)g1[i] - g0[i];
    double *x = to_double(img, n), *xs = to_double(img, n);
    struct ref r = {.o = o, .B = B, .x = x, .xs = xs, .IC = C, .IH = H, .IW = W};
    check_values(&r, values, text);
    check_grad(&r, x, grad, n, sign, text);
    lvk_test_assert_no_validation();

    lvk_cmd_destroy(cmd);
    lvk_arena_destroy(ctx, bufs, 2, &arena);
    lvk_objective_gpu_destroy(g);
    lvk_objective_destroy(o);
    lvk_model_destroy(m);
    free(img); free(g0); free(g1); free(grad); free(x); free(xs);
}

static void test_regularisers(void **state)
{
    run_image_case("tv", 2, 3, 7, 6, 1);
    run_image_case("l1", 2, 3, 7, 6, 1);
    run_image_case("l2", 2, 3, 7, 6, 1);
    run_image_case("blur", 2, 3, 7, 6, 1);
    /* Weighted, bound to images, minimised, grayscale, 1-pixel-wide edges. */
    run_image_case("-0.05*tv + 0.3*l1@1 - 2*l2 + blur()@2 - total_variation@0", 3, 1, 5, 9, -1);
    run_image_case("tv + blur - l2", 1, 3, 1, 6, 1);
}

/* Values of model and image terms add up per image. */
static void test_values_combined(void **state)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    const int B = 2, C = 3, H = 4, W = 5, IC = 3, IH = 6, IW = 6;
    unsigned seed = 99;
    int64_t n = (int64_t)B * C * H * W, ni = (int64_t)B * IC * IH * IW;
    struct lvk_model *m = small_model(B, C, H, W);
    struct lvk_objective *o = parse_ok("channel(blk/act:0, 1) - 0.1*tv + 2*l2@1");
    struct lvk_objective_gpu *g = bind_ok(o, m, B, IC, IH, IW);
    float *in = random_floats(n, &seed, -1, 1), *img = random_floats(ni, &seed, 0, 1);
    assert_int_equal(lvk_model_set_input(m, "in", in, (size_t)n), LVK_OK);
    struct lvk_buf bufs[2];
    struct lvk_arena arena;
    VkDeviceSize sizes[2] = {(VkDeviceSize)ni * 4, (VkDeviceSize)ni * 4};
    assert_int_equal(lvk_arena_create(ctx, sizes, 2, bufs, &arena), LVK_OK);
    assert_int_equal(lvk_buf_upload(ctx, &bufs[0], 0, img, sizes[0]), LVK_OK);

    struct lvk_cmd *cmd;
    assert_int_equal(lvk_cmd_create(ctx, false, &cmd), LVK_OK);
    assert_int_equal(lvk_cmd_begin(cmd), LVK_OK);
    assert_int_equal(lvk_graph_record_forward(m, cmd), LVK_OK);
    lvk_graph_record_zero_grads(m, cmd);
    lvk_cmd_fill(cmd, &bufs[1], 0, VK_WHOLE_SIZE, 0);
    assert_int_equal(lvk_objective_record_seed(cmd, g, 1), LVK_OK);
    assert_int_equal(lvk_objective_record_image(cmd, g, &bufs[0], &bufs[1], 1), LVK_OK);
    assert_int_equal(lvk_cmd_end(cmd), LVK_OK);
    /* Twice: the second step must not add to the first's values. */
    assert_int_equal(lvk_cmd_submit(cmd), LVK_OK);
    assert_int_equal(lvk_cmd_submit(cmd), LVK_OK);
    float values[MAXB];
    assert_int_equal(lvk_objective_read_values(g, values), LVK_OK);

    double *t = to_double(in, n), *x = to_double(img, ni);
    struct ref r = {.o = o, .B = B, .t = {{"blk/act:0", t}}, .C = C, .H = H, .W = W, .x = x,
                    .xs = x, .IC = IC, .IH = IH, .IW = IW};
    check_values(&r, values, o->text);
    lvk_test_assert_no_validation();
    lvk_cmd_destroy(cmd);
    lvk_arena_destroy(ctx, bufs, 2, &arena);
    lvk_objective_gpu_destroy(g);
    lvk_objective_destroy(o);
    lvk_model_destroy(m);
    free(in); free(img); free(t); free(x);
}

/* End to end through a network: in [2, 3, 7, 6] -> Conv 3x3 pad 1 (4
 * filters) -> "conv/out:0" -> Relu -> "blk/relu:0"; the objective on the
 * Relu output, seeded and propagated by the graph's backward to the input,
 * against differences of the CPU network followed by the reference. */
#define E_B 2
#define E_C 3
#define E_H 7
#define E_W 6
#define E_M 4

static void conv_relu_ref(const double *x, const float *wt, const float *bias, double *y)
{
    for (int b = 0; b < E_B; b++)
        for (int m = 0; m < E_M; m++)
            for (int h = 0; h < E_H; h++)
                for (int w = 0; w < E_W; w++) {
                    double acc = bias[m];
                    for (int c = 0; c < E_C; c++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                int yy = h + ky - 1, xx = w + kx - 1;
                                if (yy < 0 || yy >= E_H || xx < 0 || xx >= E_W)
                                    continue;
                                acc += x[((b * E_C + c) * E_H + yy) * E_W + xx] *
                                       wt[((m * E_C + c) * 3 + ky) * 3 + kx];
                            }
                    y[((b * E_M + m) * E_H + h) * E_W + w] = acc > 0 ? acc : 0;
                }
}

static void test_conv_relu_end_to_end(void **state)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    unsigned seed = 31337;
    const int64_t nx = E_B * E_C * E_H * E_W, ny = E_B * E_M * E_H * E_W;
    float *wt = random_floats(E_M * E_C * 9, &seed, -0.5, 0.5);
    float *bias = random_floats(E_M, &seed, -0.1, 0.3);

    struct lvk_model *m;
    assert_int_equal(lvk_graph_create(ctx, "net.onnx", &m), LVK_OK);
    struct lvk_shape xs = {4, {E_B, E_C, E_H, E_W}}, ws = {4, {E_M, E_C, 3, 3}}, bs = {1, {E_M}};
    assert_true(lvk_graph_add_input(m, "in", LVK_DTYPE_F32, &xs) >= 0);
    assert_true(lvk_graph_add_const(m, "w", LVK_DTYPE_F32, &ws, wt) >= 0);
    assert_true(lvk_graph_add_const(m, "b", LVK_DTYPE_F32, &bs, bias) >= 0);
    struct lvk_attr attrs[2] = {
        {.name = "kernel_shape", .type = LVK_ATTR_INTS, .ints = (int64_t[]){3, 3}, .n = 2},
        {.name = "pads", .type = LVK_ATTR_INTS, .ints = (int64_t[]){1, 1, 1, 1}, .n = 4}};
    assert_int_equal(lvk_graph_add_node(m, "Conv", "conv", (const char *[]){"in", "w", "b"}, 3,
                                        (const char *[]){"conv/out:0"}, 1, attrs, 2), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Relu", "relu", (const char *[]){"conv/out:0"}, 1,
                                        (const char *[]){"blk/relu:0"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "blk/relu:0"), LVK_OK);

    struct lvk_objective *o = parse_ok("channel(blk/relu:0, 2)@0 + 0.5*neuron(blk/relu:0, 1)"
                                       " - 0.2*layer(blk/relu:0) + 2*diversity(blk/relu:0)");
    const char *names[4];
    int count;
    assert_int_equal(lvk_objective_tensors(o, m, names, 4, &count), LVK_OK);
    assert_int_equal(count, 1);
    struct lvk_model_opts mo = {.gradients = 1, .outputs = names, .noutputs = count};
    if (lvk_graph_finalize(m, &mo) != LVK_OK)
        fail_msg("finalize: %s", lvk_last_error());
    struct lvk_objective_gpu *g = bind_ok(o, m, E_B, 3, 8, 8);

    float *in = random_floats(nx, &seed, -1, 1);
    assert_int_equal(lvk_model_set_input(m, "in", in, (size_t)nx), LVK_OK);
    struct lvk_cmd *cmd;
    assert_int_equal(lvk_cmd_create(ctx, false, &cmd), LVK_OK);
    assert_int_equal(lvk_cmd_begin(cmd), LVK_OK);
    assert_int_equal(lvk_graph_record_forward(m, cmd), LVK_OK);
    lvk_graph_record_zero_grads(m, cmd);
    assert_int_equal(lvk_objective_record_seed(cmd, g, 1), LVK_OK);
    assert_int_equal(lvk_graph_record_backward(m, cmd), LVK_OK);
    assert_int_equal(lvk_cmd_end(cmd), LVK_OK);
    assert_int_equal(lvk_cmd_submit(cmd), LVK_OK);
    float values[MAXB], *gin = malloc(nx * sizeof *gin);
    assert_int_equal(lvk_objective_read_values(g, values), LVK_OK);
    assert_int_equal(lvk_buf_download(ctx, m->values[lvk_graph_find(m, "in")].grad, 0, gin,
                                      (VkDeviceSize)nx * 4), LVK_OK);

    /* The reference objective on the reference network: the tensor the
     * objective reads is recomputed from the input for every difference. */
    double *x = to_double(in, nx), *y = malloc(ny * sizeof *y), *grad = to_double(gin, nx);
    conv_relu_ref(x, wt, bias, y);
    struct ref r = {.o = o, .B = E_B, .t = {{"blk/relu:0", y}}, .C = E_M, .H = E_H, .W = E_W};
    check_values(&r, values, o->text);
    double scale = 1e-6;
    for (int64_t i = 0; i < nx; i++)
        scale = fmax(scale, fabs(grad[i]));
    int checked = 0, skipped = 0;
    for (int64_t i = 0; i < nx; i++) {
        double x0 = x[i], h = 1e-3, fd[2];
        for (int k = 0; k < 2; k++) {
            double hh = k ? h / 2 : h;
            x[i] = x0 + hh;
            conv_relu_ref(x, wt, bias, y);
            double fp = ref_total(&r);
            x[i] = x0 - hh;
            conv_relu_ref(x, wt, bias, y);
            double fm = ref_total(&r);
            fd[k] = (fp - fm) / (2 * hh);
        }
        x[i] = x0;
        checked++;
        if (fabs(fd[0] - fd[1]) > 1e-4 * fmax(scale, fabs(fd[1]))) {
            skipped++; /* a ReLU kink within h */
            continue;
        }
        if (!(fabs(grad[i] - fd[1]) <= GRAD_TOL * scale + 1e-6))
            fail_msg("input gradient %lld: device %.8g, finite difference %.8g (max %.3g)",
                     (long long)i, grad[i], fd[1], scale);
    }
    assert_true(skipped * 20 <= checked);
    lvk_test_assert_no_validation();

    lvk_cmd_destroy(cmd);
    lvk_objective_gpu_destroy(g);
    lvk_objective_destroy(o);
    lvk_model_destroy(m);
    free(wt); free(bias); free(in); free(gin); free(x); free(y); free(grad);
}

/* ---- tensors and binding errors --------------------------------------------------------------- */

static void test_tensors(void **state)
{
    if (!lvk_test_ctx())
        skip();
    struct lvk_model *m = small_model(2, 4, 3, 3);
    struct lvk_objective *o =
        parse_ok("channel(head/tanh, 1) + class(2) - tv + layer(head/tanh) + class(1, in)");
    const char *names[4];
    int count = -1;
    assert_int_equal(lvk_objective_tensors(o, m, names, 4, &count), LVK_OK);
    assert_int_equal(count, 3);
    assert_string_equal(names[0], "head/tanh");
    assert_string_equal(names[1], "blk/act:0"); /* class(k): graph output 0 */
    assert_string_equal(names[2], "in");
    assert_int_equal(lvk_objective_tensors(o, m, names, 2, &count), LVK_ERR_INVALID_ARG);
    assert_int_equal(lvk_objective_tensors(o, NULL, names, 4, &count), LVK_ERR_NOT_FOUND);
    assert_non_null(strstr(lvk_last_error(), "class(2, TENSOR)"));
    lvk_objective_destroy(o);

    /* Unknown names are reported with their term, before planning. */
    o = parse_ok("tv + channel(x/y, 1)");
    assert_int_equal(lvk_objective_tensors(o, m, names, 4, &count), LVK_ERR_NOT_FOUND);
    assert_non_null(strstr(lvk_last_error(), "no tensor named 'x/y'"));
    assert_non_null(strstr(lvk_last_error(), "(column 6)"));
    assert_non_null(strstr(lvk_last_error(), "lucidvk info small.onnx"));
    lvk_objective_destroy(o);
    lvk_model_destroy(m);
}

/* The channels the terms read of each tensor (lvk_objective_channels):
 * the hull of those named, everything where a term reads every channel,
 * class(k) counted on the graph's first output. */
static void channels_are(const struct lvk_model *m, const char *text, const char *name,
                         int64_t lo, int64_t hi)
{
    struct lvk_objective *o = parse_ok(text);
    int64_t got_lo = -1, got_hi = -1;
    lvk_objective_channels(o, m, name, &got_lo, &got_hi);
    assert_int_equal(got_lo, lo);
    assert_int_equal(got_hi, hi);
    lvk_objective_destroy(o);
}

static void test_channels_read(void **state)
{
    (void)state;
    channels_are(NULL, "channel(A, 3)@0 + channel(A, 7)@1 - tv", "A", 3, 8);
    channels_are(NULL, "channel(A, 7) + neuron(A, 2, 1, 2)", "A", 2, 8);
    channels_are(NULL, "2*group(A, [9-11, 4])", "A", 4, 12);
    channels_are(NULL, "channel(A, 3) + channel(B, 40)", "B", 40, 41);
    channels_are(NULL, "channel(A, 3) + 100*diversity(A)", "A", 0, INT64_MAX);
    channels_are(NULL, "channel(A, 3) - layer(A)", "A", 0, INT64_MAX);
    channels_are(NULL, "direction(A, d.npy)", "A", 0, INT64_MAX);
    channels_are(NULL, "channel(A, 3)", "B", 0, INT64_MAX);
    if (!lvk_test_ctx())
        return;
    struct lvk_model *m = small_model(2, 4, 3, 3);
    channels_are(m, "class(2) + class(0, blk/act:0)", "blk/act:0", 0, 3);
    lvk_model_destroy(m);
}

/* Binding `text` must fail with `status` and a message holding each of
 * the strings in `what` (NULL-terminated). */
static void bind_bad(struct lvk_model *m, int B, const char *text, lvk_status status,
                     const char *const *what)
{
    struct lvk_objective *o = parse_ok(text);
    struct lvk_objective_gpu *g = (struct lvk_objective_gpu *)1;
    lvk_status st = lvk_objective_bind(o, m, B, 3, 8, 8, &g);
    if (st != status)
        fail_msg("bind \"%s\": %s (%s), want %s", text, lvk_status_str(st), lvk_last_error(),
                 lvk_status_str(status));
    assert_null(g);
    for (int i = 0; what[i]; i++)
        if (!strstr(lvk_last_error(), what[i]))
            fail_msg("bind \"%s\": message \"%s\" lacks \"%s\"", text, lvk_last_error(), what[i]);
    lvk_objective_destroy(o);
}

#define WHAT(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_bind_errors(void **state)
{
    if (!lvk_test_ctx())
        skip();
    struct lvk_model *m = small_model(2, 4, 3, 5);
    bind_bad(m, 2, "channel(mixed4a, 3)", LVK_ERR_NOT_FOUND,
             WHAT("no tensor named 'mixed4a'", "lucidvk info small.onnx", "column 1"));
    bind_bad(m, 2, "tv + channel(blk/act:0, 4)", LVK_ERR_INVALID_ARG,
             WHAT("channel 4 out of range", "'blk/act:0' [2, 4, 3, 5] has 4 channels",
                  "\"channel(blk/act:0, 4)\" (column 6)"));
    bind_bad(m, 2, "group(head/tanh, 0-5)", LVK_ERR_INVALID_ARG,
             WHAT("channel 4 out of range", "has 4 channels"));
    bind_bad(m, 2, "class(4)", LVK_ERR_INVALID_ARG,
             WHAT("class 4 out of range", "'blk/act:0'", "has 4 classes"));
    bind_bad(m, 2, "neuron(blk/act:0, 1, 5, 0)", LVK_ERR_INVALID_ARG,
             WHAT("x=5, y=0 out of range", "5 columns and 3 rows"));
    bind_bad(m, 2, "neuron(blk/act:0, 1, 0, 3)", LVK_ERR_INVALID_ARG, WHAT("y=3"));
    bind_bad(m, 2, "channel(blk/act:0, 1)@2", LVK_ERR_INVALID_ARG,
             WHAT("image 2 out of range: the batch has 2 images"));
    bind_bad(m, 2, "tv@5", LVK_ERR_INVALID_ARG, WHAT("image 5 out of range"));
    bind_bad(m, 2, "direction(blk/act:0, /nonexistent/v.npy)", LVK_ERR_NOT_FOUND,
             WHAT("/nonexistent/v.npy"));
    bind_bad(m, 3, "channel(blk/act:0, 1)", LVK_ERR_UNSUPPORTED, WHAT("batch of 3 images"));
    lvk_model_destroy(m);

    /* Direction vector of the wrong length. */
    m = small_model(2, 4, 3, 5);
    double v[3] = {1, 2, 3};
    char path[256], text[400];
    write_npy(v, 3, path, sizeof path);
    snprintf(text, sizeof text, "direction(blk/act:0, %s)", path);
    bind_bad(m, 2, text, LVK_ERR_INVALID_ARG, WHAT("has 3 values", "has 4 channels"));
    unlink(path);
    lvk_model_destroy(m);

    /* diversity with one image. */
    m = small_model(1, 4, 3, 5);
    bind_bad(m, 1, "diversity(blk/act:0)", LVK_ERR_INVALID_ARG, WHAT("at least 2"));
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_terms),
        cmocka_unit_test(test_parse_arithmetic),
        cmocka_unit_test(test_parse_batch),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_channel_neuron_group),
        cmocka_unit_test(test_layer),
        cmocka_unit_test(test_class),
        cmocka_unit_test(test_direction),
        cmocka_unit_test(test_diversity),
        cmocka_unit_test(test_regularisers),
        cmocka_unit_test(test_values_combined),
        cmocka_unit_test(test_conv_relu_end_to_end),
        cmocka_unit_test(test_tensors),
        cmocka_unit_test(test_channels_read),
        cmocka_unit_test(test_bind_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
