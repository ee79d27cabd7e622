/* Option handling shared by the lucidvk subcommands. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "io/lvk_io.h"
#include "lucidvk/render.h"
#include "lvk_util.h"
#include "nn/graph.h"

int cli_error(lvk_status st, const char *what)
{
    const char *msg = lvk_last_error();
    if (what && *what)
        fprintf(stderr, "lucidvk: %s: %s\n", what, *msg ? msg : lvk_status_str(st));
    else
        fprintf(stderr, "lucidvk: %s\n", *msg ? msg : lvk_status_str(st));
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "lucidvk %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'lucidvk %s --help')\n", cmd);
    return 2;
}

/* ---- numeric options ---------------------------------------------------------------- */

/* The usage error of a numeric option: "OPT takes KIND RANGE, not 'ARG'".
 * hi of INFINITY (or INT_MAX for integers) leaves the top open; lo of
 * -INFINITY as well leaves no range to name. */
static int bad_number(const char *cmd, const char *opt, const char *arg, const char *kind, double lo,
                      double hi, bool lo_open)
{
    char range[96];
    if (isinf(lo) && isinf(hi))
        return cli_usage_error(cmd, "%s takes %s, not '%s'", opt, kind, arg);
    if (isinf(hi))
        snprintf(range, sizeof range, "%s %.15g", lo_open ? "above" : "of at least", lo);
    else if (lo_open)
        snprintf(range, sizeof range, "above %.15g and at most %.15g", lo, hi);
    else
        snprintf(range, sizeof range, "from %.15g to %.15g", lo, hi);
    return cli_usage_error(cmd, "%s takes %s %s, not '%s'", opt, kind, range, arg);
}

/* strtol and friends skip leading blanks and take a sign; an option value
 * that starts with a blank is a mistake all the same. */
static bool starts_like_number(const char *arg)
{
    return *arg && !isspace((unsigned char)*arg);
}

int cli_int(const char *cmd, const char *opt, const char *arg, long lo, long hi, int *out)
{
    LVK_ASSERT(lo <= hi && hi <= INT_MAX && lo >= INT_MIN);
    char *end;
    errno = 0;
    long v = starts_like_number(arg) ? strtol(arg, &end, 10) : 0;
    if (!starts_like_number(arg) || *end || errno == ERANGE || v < lo || v > hi)
        return bad_number(cmd, opt, arg, "an integer", (double)lo, hi == INT_MAX ? INFINITY : (double)hi,
                          false);
    *out = (int)v;
    return 0;
}

int cli_float(const char *cmd, const char *opt, const char *arg, double lo, double hi, bool lo_open,
              double *out)
{
    char *end;
    double v = starts_like_number(arg) ? strtod(arg, &end) : NAN;
    if (!starts_like_number(arg) || *end || !isfinite(v) || !(lo_open ? v > lo : v >= lo) || !(v <= hi))
        return bad_number(cmd, opt, arg, "a number", lo, hi, lo_open);
    *out = v;
    return 0;
}

int cli_seed(const char *cmd, const char *opt, const char *arg, uint64_t *out)
{
    char *end;
    errno = 0;
    /* strtoull takes "-1" as 2^64 - 1: only digits are a seed. */
    unsigned long long v = isdigit((unsigned char)*arg) ? strtoull(arg, &end, 10) : 0;
    if (!isdigit((unsigned char)*arg) || *end || errno == ERANGE)
        return cli_usage_error(cmd, "%s takes an integer from 0 to %llu, not '%s'", opt,
                               (unsigned long long)UINT64_MAX, arg);
    *out = (uint64_t)v;
    return 0;
}

/* ---- the device and the model ------------------------------------------------------------ */

lvk_status cli_open(const char *device, lvk_ctx_t **ctx)
{
    struct lvk_ctx_opts o = {.device = device, .validation = -1};
    return lvk_ctx_create(&o, ctx);
}

int cli_preproc_parse(struct cli_preproc *c, int opt, const char *arg)
{
    lvk_status st = LVK_OK;
    switch (opt) {
    case 0x100: st = lvk_preproc_parse_range(&c->p, arg); c->set_range = true; break;
    case 0x101: st = lvk_preproc_parse_triple(c->p.mean, arg, "--mean"); c->set_mean = true; break;
    case 0x102:
        st = lvk_preproc_parse_triple(c->p.std, arg, "--std");
        if (st == LVK_OK && (c->p.std[0] == 0 || c->p.std[1] == 0 || c->p.std[2] == 0))
            st = lvk_fail(LVK_ERR_INVALID_ARG, "--std must not be 0");
        c->set_std = true;
        break;
    case 0x103: c->p.bgr = true; c->set_bgr = true; break;
    case 0x104: snprintf(c->p.labels, sizeof c->p.labels, "%s", arg); c->set_labels = true; break;
    default: return 0;
    }
    if (st != LVK_OK) {
        cli_error(st, NULL);
        return -1;
    }
    return 1;
}

lvk_status cli_preproc_resolve(const struct cli_preproc *c, const char *model, struct lvk_preproc *out)
{
    int found;
    lvk_preproc_default(out);
    LVK_CHECK(lvk_preproc_load_sidecar(model, out, &found));
    if (c->set_range) { out->lo = c->p.lo; out->hi = c->p.hi; }
    if (c->set_mean) memcpy(out->mean, c->p.mean, sizeof out->mean);
    if (c->set_std) memcpy(out->std, c->p.std, sizeof out->std);
    if (c->set_bgr) out->bgr = c->p.bgr;
    if (c->set_labels) memcpy(out->labels, c->p.labels, sizeof out->labels);
    return LVK_OK;
}

lvk_status cli_load_image(const char *path, int c, int h, int w, const struct lvk_preproc *p,
                          float **data)
{
    struct lvk_image img = {0}, sized = {0};
    *data = NULL;
    LVK_CHECK(lvk_png_read(path, c, &img));
    lvk_status st = LVK_OK;
    if (img.w != w || img.h != h) {
        st = lvk_image_resize(&img, w, h, &sized);
        lvk_image_free(&img);
        if (st != LVK_OK)
            return st;
        img = sized;
    }
    lvk_preproc_apply(p, img.data, c, h, w);
    *data = img.data;
    return LVK_OK;
}

lvk_status cli_image_input(const lvk_model_t *m, const char *model, struct lvk_tensor_info *in)
{
    LVK_CHECK(lvk_model_tensor_find(m, lvk_model_input_name(m), in));
    if (in->ndim != 4 || (in->shape[1] != 1 && in->shape[1] != 3))
        return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: input '%s' is not an image (N, 1|3, H, W)", model,
                        in->name);
    return LVK_OK;
}

lvk_status cli_load_input(const lvk_model_t *m, const char *model, const char *image,
                          const struct lvk_preproc *p, struct lvk_tensor_info *in, float **data)
{
    *data = NULL;
    LVK_CHECK(cli_image_input(m, model, in));
    return cli_load_image(image, (int)in->shape[1], (int)in->shape[2], (int)in->shape[3], p, data);
}

lvk_status cli_model_probe(lvk_ctx_t *ctx, const char *path, int size, lvk_model_t **m)
{
    struct lvk_model_opts mo = {.batch = 1};
    lvk_status st = lvk_model_load(ctx, path, &mo, m);
    /* Only an input size left open is worth a second try at the size the
     * render will use; a model with a fixed-size part refuses other sizes. */
    if (st == LVK_ERR_UNSUPPORTED && size > 0) {
        mo.height = mo.width = size;
        st = lvk_model_load(ctx, path, &mo, m);
    }
    return st;
}

void cli_warn_negative_relu(const char *cmd, const lvk_model_t *m, const char *layer)
{
    const int v = lvk_graph_find(m, layer);
    const int p = v >= 0 ? m->values[v].producer : -1;
    if (p < 0)
        return;
    const struct lvk_node *n = &m->nodes[p];
    float lo, hi;
    /* The op's own test for a clamp to [0, hi], which the gradient modes
     * (redirect, guided) also go by. */
    if (!n->def || !n->def->clamp_bounds || !n->def->clamp_bounds(n, &lo, &hi) || lo != 0.0f ||
        n->ninputs < 1 || n->inputs[0] < 0)
        return;
    fprintf(stderr,
            "lucidvk %s: warning: '%s' is the output of %s, never below 0, so its negative render "
            "goes flat once the unit is off everywhere; render the pre-activation '%s' to see what "
            "the unit responds against\n",
            cmd, layer, n->op_type, m->values[n->inputs[0]].name);
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_tensor_path(const char *dir, const char *tensor, const char *ext, char *out, size_t len)
{
    /* snprintf returns the length it wanted: a dir that fills out leaves
     * k at len - 1, and the name below is cut to what fits. */
    size_t k = LVK_MIN((size_t)snprintf(out, len, "%s/", dir), len - 1);
    const size_t tail = strlen(ext) + 1;
    for (const char *s = tensor; *s && k + tail < len; s++)
        out[k++] = (isalnum((unsigned char)*s) || *s == '.' || *s == '-' || *s == '_') ? *s : '_';
    snprintf(out + k, len - k, "%s", ext);
}

void cli_progress_begin(struct cli_progress *p, const char *prefix)
{
    *p = (struct cli_progress){.prefix = prefix, .t0 = cli_now(), .tty = isatty(STDERR_FILENO)};
}

int cli_progress_every(int steps)
{
    if (steps <= 0)
        steps = LVK_RENDER_DEFAULT_STEPS;
    return isatty(STDERR_FILENO) ? 4 : (steps + 9) / 10;
}

void cli_progress_step(void *progress, int step, int steps, double value)
{
    struct cli_progress *p = progress;
    const int tenth = (steps + 9) / 10;
    /* '\r' redraws a terminal's line but piles up in a log file, where a
     * report every few steps would also bury everything else. */
    if (!p->tty && step < LVK_MAX(p->next, tenth) && step != steps)
        return;
    p->next = step + tenth;
    const double t = cli_now();
    if (!p->first) {
        p->first = step;
        p->t_first = t;
    }
    /* Steps per second since the first report: the setup before it
     * (pipeline compilation, uploads) says nothing about the steps to come.
     * Until a second report, all there is: the time since the start. */
    double rate = step > p->first ? (step - p->first) / LVK_MAX(t - p->t_first, 1e-9)
                                  : step / LVK_MAX(t - p->t0, 1e-9);
    double eta = (steps - step) / rate;
    fprintf(stderr, "%s%s%sstep %4d/%d  objective %10.4f  %6.2f steps/s  ETA %3dm%02ds", p->tty ? "\r" : "",
            p->prefix ? p->prefix : "", p->prefix ? ": " : "", step, steps, value, rate, (int)eta / 60,
            (int)eta % 60);
    /* Spaces clear what a longer line before left on the terminal. */
    if (p->tty)
        fprintf(stderr, "   ");
    p->open = p->tty && step != steps;
    if (!p->open)
        fprintf(stderr, "\n");
}

void cli_progress_end(struct cli_progress *p)
{
    if (p->open)
        fprintf(stderr, "\n");
    p->open = false;
}
