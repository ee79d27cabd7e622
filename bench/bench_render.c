/* bench_render: the lucid-vk side of the render benchmark of `make bench`
 * (see bench/run.sh for how it is built, bench/README.md for what is
 * measured).
 *
 *   bench_render MODEL.onnx --layer L --channels C0,C1,... [--size S]
 *                [--range LO,HI] [--mean M] [--std S] < commands
 *
 * Renders Lucid's recipe with lvk_render (spectral image, decorrelated
 * colour, standard transforms, Adam 0.05): image i of the batch maximises
 * the mean of channel C_i of tensor L, so the batch is the number of
 * channels. Preprocessing is the model's sidecar (MODEL.lucidvk.json) with
 * the options' overrides, as `lucidvk render` resolves it. Prints one JSON
 * line describing the setup (device, the resolved preprocessing, the
 * network's FLOPs per step from src/nn/flops.c, its arena bytes), then
 * answers each command read from standard input with one JSON line:
 *   render STEPS SEED    one render; "step_ms": mean wall time of steps 2..STEPS
 *                        (step 1 and the setup left out), "step_cpu_ms": the
 *                        CPU time of all the process's threads over the same
 *                        steps, per step, "setup_s", "device_bytes" (the
 *                        render's peak device memory), the
 *                        objective per image before the first step
 *                        ("value_start") and at the last ("value_end"), the
 *                        mean objective after every step ("curve")
 *   profile STEPS SEED   the same with a timestamp after every dispatch:
 *                        "phases", device milliseconds of the last step by
 *                        dispatch label, "device_ms", their sum, and
 *                        "last_step_ms", that step's wall time (STEPS >= 2)
 *   profile-nodes STEPS SEED
 *                        the same by model node and label: each phase also
 *                        has "node" ("" outside the network)
 *   rss                  peak resident set size of this process (so far)
 *   quit
 * The context, and so every compiled pipeline, lives as long as the
 * process: only the first render pays for compiling them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "lucidvk/render.h"
#include "nn/flops.h"
#include "nn/graph.h"

#define MAX_CHANNELS 64

struct bench {
    lvk_ctx_t *ctx;
    const char *path, *layer;
    int size, batch;
    struct lvk_preproc pre;
    char objective[MAX_CHANNELS * 320];
};

/* Wall clock and process CPU time at every step's end, from the progress
 * callback. */
struct clock {
    double *t, *cpu;
    int steps;
};

/* JSON has no NaN: an unread value is null. */
static void json_num_array(const char *key, const double *v, int n)
{
    printf("\"%s\": [", key);
    for (int i = 0; i < n; i++) {
        if (i)
            printf(", ");
        if (isnan(v[i]))
            printf("null");
        else
            printf("%.7g", v[i]);
    }
    printf("]");
}

static void on_progress(void *user, int step, int steps, double value)
{
    struct clock *c = user;
    if (step >= 1 && step <= c->steps) {
        c->t[step - 1] = bench_clock_ms(CLOCK_MONOTONIC);
        c->cpu[step - 1] = bench_clock_ms(CLOCK_PROCESS_CPUTIME_ID);
    }
}

/* ---- commands ------------------------------------------------------------------- */

/* profile: as lvk_render_opts.profile (0: none). */
static lvk_status cmd_render(struct bench *b, int steps, uint64_t seed, int profile)
{
    struct clock clk = {.t = calloc((size_t)steps, sizeof *clk.t),
                        .cpu = calloc((size_t)steps, sizeof *clk.cpu), .steps = steps};
    if (!clk.t || !clk.cpu) {
        free(clk.t);
        free(clk.cpu);
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    }
    /* Progress at every step only timestamps it: lvk_render reads the
     * objective back every step anyway where memory is unified (lavapipe),
     * and elsewhere the copy is a few bytes. */
    struct lvk_render_opts o = {.objective = b->objective, .batch = b->batch, .size = b->size,
                                .steps = steps, .seed = seed, .pre = b->pre,
                                .redirect_steps = -1, .progress_every = 1,
                                .progress = on_progress, .user = &clk, .profile = profile};
    struct lvk_render_result r;
    lvk_status st = lvk_render(b->ctx, b->path, &o, &r);
    if (st != LVK_OK) {
        free(clk.t);
        free(clk.cpu);
        return st;
    }
    double step_ms = steps > 1 ? (clk.t[steps - 1] - clk.t[0]) / (steps - 1) : NAN;
    double cpu_ms = steps > 1 ? (clk.cpu[steps - 1] - clk.cpu[0]) / (steps - 1) : NAN;
    printf("{\"steps\": %d, \"step_ms\": %.4f, \"step_cpu_ms\": %.4f, \"setup_s\": %.3f, "
           "\"loop_s\": %.3f, \"net_size\": [%d, %d], \"device_bytes\": %llu, ",
           r.steps, step_ms, cpu_ms, r.setup_seconds, r.seconds, r.net_height, r.net_width,
           (unsigned long long)r.device_bytes);
    json_num_array("value_start", r.value_start, r.batch);
    printf(", ");
    json_num_array("value_end", r.value_end, r.batch);
    printf(", ");
    json_num_array("curve", r.curve, r.steps);
    if (profile) {
        printf(", \"last_step_ms\": %.4f, \"device_ms\": %.4f, \"phases\": [",
               steps > 1 ? clk.t[steps - 1] - clk.t[steps - 2] : NAN, r.step_ms);
        for (int i = 0; i < r.nphases; i++) {
            printf(i ? ", {\"label\": " : "{\"label\": ");
            bench_json_str(r.phases[i].label);
            if (profile == LVK_RENDER_PROFILE_NODES) {
                printf(", \"node\": ");
                bench_json_str(r.phases[i].node);
            }
            printf(", \"dispatches\": %d, \"ms\": %.4f}", r.phases[i].dispatches, r.phases[i].ms);
        }
        printf("]");
    }
    printf("}\n");
    lvk_render_result_free(&r);
    free(clk.t);
    free(clk.cpu);
    return LVK_OK;
}

/* The network as the render runs it: batch, size, up to the layer, with
 * gradients. Reports its work and device memory. */
static lvk_status reply_ready(struct bench *b)
{
    const char *outputs[] = {b->layer};
    struct lvk_model_opts mo = {.batch = b->batch, .height = b->size, .width = b->size,
                                .outputs = outputs, .noutputs = 1, .gradients = 1,
                                .fast_conv = 1};
    lvk_model_t *m;
    LVK_CHECK(lvk_model_load(b->ctx, b->path, &mo, &m));
    struct lvk_flops f = lvk_model_flops(m);
    unsigned long long arena = (unsigned long long)m->arena.bytes;
    lvk_model_destroy(m);

    const struct lvk_device_info *dev = lvk_ctx_device(b->ctx);
    const struct lvk_preproc *p = &b->pre;
    printf("{\"device\": ");
    bench_json_str(dev->name);
    printf(", \"driver\": ");
    bench_json_str(dev->driver);
    printf(", \"objective\": ");
    bench_json_str(b->objective);
    printf(", \"batch\": %d, \"size\": %d, \"range\": [%.9g, %.9g], \"mean\": [%.9g, %.9g, %.9g], "
           "\"std\": [%.9g, %.9g, %.9g], \"bgr\": %s, \"flops_fwd\": %.0f, \"flops_bwd\": %.0f, "
           "\"arena_bytes\": %llu}\n",
           b->batch, b->size, p->lo, p->hi, p->mean[0], p->mean[1], p->mean[2], p->std[0],
           p->std[1], p->std[2], p->bgr ? "true" : "false", f.fwd, f.bwd, arena);
    return LVK_OK;
}

/* ---- start-up --------------------------------------------------------------------- */

/* "channel('L', C0)@0 + channel('L', C1)@1 + ...": image i maximises
 * channel C_i, as `lucidvk render -l L -c C0,C1,...` does. */
static lvk_status build_objective(struct bench *b, const char *channels)
{
    if (strchr(b->layer, '\''))
        return lvk_fail(LVK_ERR_INVALID_ARG, "layer '%s': a name with ' cannot be quoted",
                        b->layer);
    size_t len = 0;
    const char *s = channels;
    for (b->batch = 0; *s; b->batch++) {
        char *end;
        long c = strtol(s, &end, 10);
        if (end == s || c < 0 || (*end && *end != ',') || b->batch == MAX_CHANNELS)
            return lvk_fail(LVK_ERR_INVALID_ARG, "--channels '%s': expected up to %d "
                                                 "comma-separated channel numbers", channels,
                            MAX_CHANNELS);
        int n = snprintf(b->objective + len, sizeof b->objective - len, "%schannel('%s', %ld)@%d",
                         b->batch ? " + " : "", b->layer, c, b->batch);
        if (n < 0 || (size_t)n >= sizeof b->objective - len)
            return lvk_fail(LVK_ERR_INVALID_ARG, "layer name '%s' too long", b->layer);
        len += (size_t)n;
        s = *end ? end + 1 : end;
    }
    if (b->batch == 0)
        return lvk_fail(LVK_ERR_INVALID_ARG, "--channels: no channel given");
    return LVK_OK;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_render MODEL.onnx --layer L --channels C0,C1,... [--size S]\n"
                    "                    [--range LO,HI] [--mean M] [--std S] < commands\n"
                    "(commands: see the top of bench/bench_render.c)\n");
    return 2;
}

struct args {
    const char *channels, *range, *mean, *std;
};

/* false: a usage error. */
static bool parse_args(struct bench *b, struct args *a, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char **dst = NULL;
        if (strcmp(argv[i], "--layer") == 0)
            dst = &b->layer;
        else if (strcmp(argv[i], "--channels") == 0)
            dst = &a->channels;
        else if (strcmp(argv[i], "--range") == 0)
            dst = &a->range;
        else if (strcmp(argv[i], "--mean") == 0)
            dst = &a->mean;
        else if (strcmp(argv[i], "--std") == 0)
            dst = &a->std;
        else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
            b->size = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !b->path)
            b->path = argv[i];
        else
            return false;
        if (dst && i + 1 >= argc)
            return false;
        if (dst)
            *dst = argv[++i];
    }
    return b->path && b->layer && a->channels && b->size >= 1;
}

/* The options' preprocessing over the sidecar's, over the defaults. */
static lvk_status resolve_preproc(struct bench *b, const struct args *a)
{
    int found;
    lvk_preproc_default(&b->pre);
    LVK_CHECK(lvk_preproc_load_sidecar(b->path, &b->pre, &found));
    if (a->range)
        LVK_CHECK(lvk_preproc_parse_range(&b->pre, a->range));
    if (a->mean)
        LVK_CHECK(lvk_preproc_parse_triple(b->pre.mean, a->mean, "--mean"));
    if (a->std)
        LVK_CHECK(lvk_preproc_parse_triple(b->pre.std, a->std, "--std"));
    return LVK_OK;
}

int main(int argc, char **argv)
{
    struct bench b = {.size = 128};
    struct args a = {0};
    if (!parse_args(&b, &a, argc, argv))
        return usage();
    lvk_status st = resolve_preproc(&b, &a);
    if (st == LVK_OK)
        st = build_objective(&b, a.channels);
    struct lvk_ctx_opts copts = {.validation = 0};
    if (st == LVK_OK)
        st = lvk_ctx_create(&copts, &b.ctx);
    if (st == LVK_OK)
        st = reply_ready(&b);
    if (st != LVK_OK) {
        printf("{\"error\": ");
        bench_json_str(lvk_last_error());
        printf("}\n");
        fprintf(stderr, "bench_render: %s\n", lvk_last_error());
        lvk_ctx_destroy(b.ctx);
        return 1;
    }
    fflush(stdout);

    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        int steps = 0;
        unsigned long long seed = 0;
        st = LVK_OK;
        if (sscanf(line, "render %d %llu", &steps, &seed) == 2 && steps > 0)
            st = cmd_render(&b, steps, seed, 0);
        else if (sscanf(line, "profile %d %llu", &steps, &seed) == 2 && steps > 0)
            st = cmd_render(&b, steps, seed, LVK_RENDER_PROFILE_KERNELS);
        else if (sscanf(line, "profile-nodes %d %llu", &steps, &seed) == 2 && steps > 0)
            st = cmd_render(&b, steps, seed, LVK_RENDER_PROFILE_NODES);
        else if (strncmp(line, "rss", 3) == 0)
            bench_print_rss();
        else if (strncmp(line, "quit", 4) == 0)
            break;
        else
            st = lvk_fail(LVK_ERR_INVALID_ARG, "unknown command: %.*s", (int)strcspn(line, "\n"),
                          line);
        if (st != LVK_OK) {
            printf("{\"error\": ");
            bench_json_str(lvk_last_error());
            printf("}\n");
        }
        fflush(stdout);
    }
    lvk_ctx_destroy(b.ctx);
    return 0;
}
