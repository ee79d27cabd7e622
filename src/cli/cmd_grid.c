/* lucidvk grid: neuron interaction grids. N neurons give an N x N grid of
 * images rendered in one batch, each neuron alone on the diagonal and each
 * pair combined off it (src/optvis/grid.h has the parameterization). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "io/lvk_io.h"
#include "lucidvk/render.h"
#include "lvk_util.h"
#include "optvis/grid.h"

#define MAX_NEURONS 16

static void help(void)
{
    printf(
        "usage: lucidvk grid MODEL.onnx -n LAYER:CH -n LAYER:CH ... [options]\n\n"
        "Renders how neurons interact: for N neurons an N x N grid, neuron n alone at\n"
        "(n, n) and neurons n and m together at (n, m), all in one batch with aligned\n"
        "images (shared, per-neuron and per-pair parts), as Lucid's interaction grids.\n\n"
        "  -n, --neuron LAYER:CH  a neuron (channel CH of tensor LAYER, centre position);\n"
        "                         give 2 to %d; the last ':' separates the channel\n"
        "      --steps N          optimisation steps (default 512)\n"
        "      --size PX          image size before the crop (default 128, or the model's\n"
        "                         input if smaller); cells are cropped by 15 px top/left and\n"
        "                         25 px bottom/right at 128 px, in proportion otherwise\n"
        "      --blur W           weight of the blur penalty that smooths every image each\n"
        "                         step (default 10, the recipe's; 0: none)\n"
        "      --lr X             Adam learning rate (default 0.05)\n"
        "      --seed N           random seed (default 0)\n"
        "      --zoom Z           show cells Z times larger (default: enough for labels)\n"
        "  -o, --out FILE.png     the labelled grid (default grid.png)\n"
        "      --save-every N     also FILE_stepN.png every N steps\n"
        "      --json FILE        settings, neurons, activations, timings\n"
        "      --device N|NAME    Vulkan device\n"
        CLI_PREPROC_HELP,
        MAX_NEURONS);
}

struct grid_out {
    int n;
    const char *const *labels; /* [n] "LAYER:CH" */
    int zoom;
    const char *out;
    struct cli_progress progress;
};

static lvk_status write_grid(const struct grid_out *g, const char *path, const float *images, int c,
                             int h, int w)
{
    struct lvk_image img;
    LVK_CHECK(lvk_grid_compose(images, g->n, c, h, w, g->labels, g->zoom, &img));
    lvk_status st = lvk_png_write(path, &img);
    lvk_image_free(&img);
    return st;
}

static void on_progress(void *user, int step, int steps, double value)
{
    cli_progress_step(&((struct grid_out *)user)->progress, step, steps, value);
}

static void on_snapshot(void *user, int step, const float *images, int b, int c, int h, int w)
{
    const struct grid_out *g = user;
    char path[1100];
    size_t n = strlen(g->out);
    if (n > 4 && !strcmp(g->out + n - 4, ".png"))
        n -= 4;
    snprintf(path, sizeof path, "%.*s_step%d.png", (int)n, g->out, step);
    if (write_grid(g, path, images, c, h, w) != LVK_OK)
        fprintf(stderr, "lucidvk: %s\n", lvk_last_error());
}

static lvk_status write_json(const char *path, const char *model, const struct lvk_grid_plan *plan,
                             const struct lvk_grid_neuron *nr, const struct lvk_render_opts *o,
                             const struct lvk_render_result *r, const double *act0, const double *act1,
                             const lvk_ctx_t *ctx)
{
    int n = plan->n;
    struct lvk_jw w = {0};
    lvk_jw_begin_object(&w);
    lvk_jw_key(&w, "model"); lvk_jw_string(&w, model);
    lvk_jw_key(&w, "neurons"); lvk_jw_begin_array(&w);
    for (int k = 0; k < n; k++) {
        lvk_jw_begin_object(&w);
        lvk_jw_key(&w, "layer"); lvk_jw_string(&w, nr[k].layer);
        lvk_jw_key(&w, "channel"); lvk_jw_int(&w, nr[k].channel);
        lvk_jw_end_object(&w);
    }
    lvk_jw_end_array(&w);
    lvk_jw_key(&w, "objective"); lvk_jw_string(&w, plan->objective);
    lvk_jw_key(&w, "seed"); lvk_jw_int(&w, (int64_t)o->seed);
    lvk_jw_key(&w, "steps"); lvk_jw_int(&w, r->steps);
    lvk_jw_key(&w, "lr"); lvk_jw_number(&w, o->lr > 0 ? o->lr : 0.05);
    lvk_jw_key(&w, "size"); lvk_jw_begin_array(&w); lvk_jw_int(&w, r->height); lvk_jw_int(&w, r->width); lvk_jw_end_array(&w);
    lvk_jw_key(&w, "device"); lvk_jw_string(&w, lvk_ctx_device(ctx)->name);
    /* Per cell (row-major): each of its two neurons' centre activation on
     * the initial noise and on the final image, measured without transforms. */
    lvk_jw_key(&w, "cells"); lvk_jw_begin_array(&w);
    for (int rr = 0; rr < n; rr++)
        for (int cc = 0; cc < n; cc++) {
            int b = rr * n + cc;
            lvk_jw_begin_object(&w);
            lvk_jw_key(&w, "row"); lvk_jw_int(&w, rr);
            lvk_jw_key(&w, "col"); lvk_jw_int(&w, cc);
            lvk_jw_key(&w, "objective_start"); lvk_jw_number(&w, r->value_start[b]);
            lvk_jw_key(&w, "objective_end"); lvk_jw_number(&w, r->value_end[b]);
            lvk_jw_key(&w, "neuron_start"); lvk_jw_begin_array(&w);
            lvk_jw_number(&w, act0[b * n + rr]); lvk_jw_number(&w, act0[b * n + cc]); lvk_jw_end_array(&w);
            lvk_jw_key(&w, "neuron_end"); lvk_jw_begin_array(&w);
            lvk_jw_number(&w, act1[b * n + rr]); lvk_jw_number(&w, act1[b * n + cc]); lvk_jw_end_array(&w);
            lvk_jw_end_object(&w);
        }
    lvk_jw_end_array(&w);
    lvk_jw_key(&w, "setup_seconds"); lvk_jw_number(&w, r->setup_seconds);
    lvk_jw_key(&w, "seconds"); lvk_jw_number(&w, r->seconds);
    lvk_jw_end_object(&w);
    return lvk_jw_write(&w, path);
}

int cmd_grid(int argc, char **argv)
{
    static const struct option opts[] = {
        {"neuron", required_argument, 0, 'n'}, {"steps", required_argument, 0, 's'},
        {"size", required_argument, 0, 'z'}, {"lr", required_argument, 0, 'r'},
        {"blur", required_argument, 0, 'B'}, {"seed", required_argument, 0, 'S'}, {"zoom", required_argument, 0, 'Z'},
        {"out", required_argument, 0, 'o'}, {"save-every", required_argument, 0, 'e'},
        {"json", required_argument, 0, 'j'}, {"device", required_argument, 0, 'd'},
        {"help", no_argument, 0, 'h'}, CLI_PREPROC_OPTIONS, {0, 0, 0, 0}};
    struct cli_preproc pre = {0};
    lvk_preproc_default(&pre.p);
    struct lvk_render_opts o = {.redirect_steps = -1};
    struct lvk_grid_neuron nr[MAX_NEURONS];
    char *names[MAX_NEURONS] = {0}, *labels[MAX_NEURONS] = {0};
    const char *device = NULL, *out = "grid.png", *json = NULL;
    int n = 0, zoom = 0, c, r, status = 2;
    double blur = 10, lr;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:o:d:h", opts, NULL)) != -1) {
        if ((r = cli_preproc_parse(&pre, c, optarg)) != 0) {
            if (r < 0)
                goto done;
            continue;
        }
        switch (c) {
        case 'n': {
            const char *colon = strrchr(optarg, ':');
            int ch;
            if (!colon || colon == optarg) {
                cli_usage_error("grid", "-n takes LAYER:CHANNEL, not '%s'", optarg);
                goto done;
            }
            if (cli_int("grid", "the channel of -n LAYER:CHANNEL", colon + 1, 0, INT_MAX, &ch))
                goto done;
            if (n == MAX_NEURONS) {
                cli_usage_error("grid", "at most %d neurons", MAX_NEURONS);
                goto done;
            }
            names[n] = strndup(optarg, (size_t)(colon - optarg));
            labels[n] = strdup(optarg);
            if (!names[n] || !labels[n]) {
                status = 1;
                goto done;
            }
            nr[n] = (struct lvk_grid_neuron){.layer = names[n], .channel = ch};
            n++;
            break;
        }
        case 's': if (cli_int("grid", "--steps", optarg, 1, INT_MAX, &o.steps)) goto done; break;
        case 'z': if (cli_int("grid", "--size", optarg, 8, CLI_MAX_SIZE, &o.size)) goto done; break;
        case 'r':
            if (cli_float("grid", "--lr", optarg, 0, INFINITY, true, &lr))
                goto done;
            o.lr = (float)lr;
            break;
        case 'B': if (cli_float("grid", "--blur", optarg, 0, INFINITY, false, &blur)) goto done; break;
        case 'S': if (cli_seed("grid", "--seed", optarg, &o.seed)) goto done; break;
        case 'Z': if (cli_int("grid", "--zoom", optarg, 1, CLI_MAX_ZOOM, &zoom)) goto done; break;
        case 'o': out = optarg; break;
        case 'e': if (cli_int("grid", "--save-every", optarg, 1, INT_MAX, &o.snapshot_every)) goto done; break;
        case 'j': json = optarg; break;
        case 'd': device = optarg; break;
        case 'h': help(); status = 0; goto done;
        default: goto done;
        }
    }
    if (optind != argc - 1) {
        cli_usage_error("grid", "expected one MODEL.onnx");
        goto done;
    }
    if (n < 2) {
        cli_usage_error("grid", "give at least two neurons with -n LAYER:CH");
        goto done;
    }
    status = 1;
    const char *path = argv[optind];
    struct lvk_grid_plan plan = {0};
    struct lvk_render_result res = {0};
    lvk_ctx_t *ctx = NULL;
    double *act = NULL;
    struct grid_out g = {.n = n, .labels = (const char *const *)labels, .zoom = zoom, .out = out};
    lvk_status st = lvk_grid_plan_create(nr, n, blur, &plan);
    if (st == LVK_OK)
        st = cli_preproc_resolve(&pre, path, &o.pre);
    if (st == LVK_OK)
        st = cli_open(device, &ctx);
    if (st == LVK_OK) {
        o.objective = plan.objective;
        o.batch = plan.batch;
        o.layout = &plan.layout;
        o.progress = on_progress;
        o.progress_every = cli_progress_every(o.steps);
        o.snapshot = on_snapshot;
        o.user = &g;
        cli_progress_begin(&g.progress, NULL);
        if (g.progress.tty)
            fprintf(stderr, "rendering a %dx%d interaction grid on %s\n", n, n, lvk_ctx_device(ctx)->name);
        st = lvk_render(ctx, path, &o, &res);
        cli_progress_end(&g.progress);
    }
    if (st == LVK_OK)
        st = write_grid(&g, out, res.images, res.channels, res.height, res.width);
    /* Each neuron's activation in every cell, before and after. */
    if (st == LVK_OK) {
        act = malloc(2 * (size_t)plan.batch * n * sizeof *act);
        st = act ? LVK_OK : lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    }
    if (st == LVK_OK)
        st = lvk_units_measure(ctx, path, &o.pre, res.initial, res.batch, res.channels, res.height,
                               res.width, res.net_height, res.net_width, nr, n, act, NULL);
    if (st == LVK_OK)
        st = lvk_units_measure(ctx, path, &o.pre, res.images, res.batch, res.channels, res.height,
                               res.width, res.net_height, res.net_width, nr, n, act + (size_t)plan.batch * n,
                               NULL);
    if (st == LVK_OK && json)
        st = write_json(json, path, &plan, nr, &o, &res, act, act + (size_t)plan.batch * n, ctx);
    if (st == LVK_OK) {
        const double *a0 = act, *a1 = act + (size_t)plan.batch * n;
        printf("%s: %dx%d grid of %dx%d images, %d steps in %.1f s (%.2f steps/s)\n", out, n, n, res.width,
               res.height, res.steps, res.seconds, res.steps / (res.seconds > 0 ? res.seconds : 1e-9));
        printf("neuron activation (centre), noise -> render, per cell:\n");
        for (int rr = 0; rr < n; rr++)
            for (int cc = 0; cc < n; cc++) {
                int b = rr * n + cc;
                printf("  (%d,%d)  %s %.3g -> %.3g", rr, cc, labels[rr], a0[b * n + rr], a1[b * n + rr]);
                if (cc != rr)
                    printf("   %s %.3g -> %.3g", labels[cc], a0[b * n + cc], a1[b * n + cc]);
                printf("\n");
            }
        status = 0;
    } else {
        cli_error(st, NULL);
    }
    free(act);
    lvk_render_result_free(&res);
    lvk_ctx_destroy(ctx);
    lvk_grid_plan_free(&plan);
done:
    for (int k = 0; k < n; k++) {
        free(names[k]);
        free(labels[k]);
    }
    return status;
}
