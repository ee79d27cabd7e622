/* Times the Conv op's forward and input-gradient kernels on the layers that
 * dominate GoogLeNet and MobileNet V2, at 224 and 128 px, batch 1 and 8, and
 * prints GFLOP/s (and GB/s of compulsory traffic: x, w and y once each), the
 * median of several repetitions. A benchmark, not a test: it checks nothing.
 *
 * Build (from the repository root, after `cmake --build build`; the glslang
 * libraries are for VkFFT, which the library links):
 *   gcc -O2 -std=c11 -D_GNU_SOURCE -DVK_NO_PROTOTYPES -Iinclude -Isrc -Ibuild/generated \
 *       bench/conv_layers.c build/liblucidvk.a -lprotobuf-c -lpng -lz -lglslang -lSPIRV \
 *       -lSPIRV-Tools-opt -lSPIRV-Tools -lMachineIndependent -lOGLCompiler -lOSDependent \
 *       -lGenericCodeGen -lglslang-default-resource-limits -ldl -lm -lpthread -lstdc++ \
 *       -o build/bench_conv_layers
 * Run:
 *   build/bench_conv_layers [-k KERNEL[,KERNEL...]] [-s 224,128] [-b 1,8] [-r REPS] [-l NAME]
 *                           [-m MODEL.onnx[,MODEL.onnx...]]
 *   -k  kernels to compare, in the same run (LVK_CONV_KERNEL values; see
 *       src/nn/ops/conv.c); default: what conv_pick() chooses ("auto") in
 *       models loaded as renders load them (lvk_model_opts.fast_conv)
 *   -l  only layers whose name contains NAME
 *   -m  instead of layers, whole models: a forward pass, and a backward pass
 *       from the first output to the input (every op, not only Conv)
 * The machine may be shared: compare kernels within one run, not across runs. */
#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "nn/graph.h"

/* A layer at 224 px; maps scale with the input size. */
struct layer {
    const char *name;
    int c, m, hw;       /* input channels, output channels, input map at 224 px */
    int k, s, group;    /* square kernel, stride, groups (pads k / 2) */
};

static const struct layer layers[] = {
    {"gnet.conv1 7x7/2",      3,   64, 224, 7, 2, 1},
    {"gnet.conv2 1x1",        64,  64,  56, 1, 1, 1},
    {"gnet.conv3 3x3",        64, 192,  56, 3, 1, 1},
    {"gnet.3a.b1 1x1",       192,  64,  28, 1, 1, 1},
    {"gnet.3a.b2 3x3",        96, 128,  28, 3, 1, 1},
    {"gnet.3b.b3 5x5",        32,  96,  28, 5, 1, 1},
    {"gnet.4a.b1 1x1",       480, 192,  14, 1, 1, 1},
    {"gnet.4d.b2 3x3",       144, 288,  14, 3, 1, 1},
    {"gnet.5b.b1 1x1",       832, 384,   7, 1, 1, 1},
    {"mnv2.stem 3x3/2",        3,  32, 224, 3, 2, 1},
    {"mnv2.dw32 3x3",         32,  32, 112, 3, 1, 32},
    {"mnv2.pw 32>16",         32,  16, 112, 1, 1, 1},
    {"mnv2.pw 16>96",         16,  96, 112, 1, 1, 1},
    {"mnv2.dw96 3x3/2",       96,  96, 112, 3, 2, 96},
    {"mnv2.pw 144>24",       144,  24,  56, 1, 1, 1},
    {"mnv2.dw144 3x3",       144, 144,  56, 3, 1, 144},
    {"mnv2.pw 192>32",       192,  32,  28, 1, 1, 1},
    {"mnv2.dw384 3x3",       384, 384,  14, 3, 1, 384},
    {"mnv2.pw 384>64",       384,  64,  14, 1, 1, 1},
    {"mnv2.pw 160>960",      160, 960,   7, 1, 1, 1},
    {"mnv2.dw960 3x3",       960, 960,   7, 3, 1, 960},
    {"mnv2.pw 320>1280",     320, 1280,  7, 1, 1, 1},
};

/* lavapipe runs shaders on a pool of threads inside this process, so on a
 * shared machine the CPU time those threads consume, divided by the core
 * count, estimates the wall time on an idle machine far more steadily than
 * wall time does. Mesa's shader-cache thread (":disk$" in its name), which
 * compresses new pipelines in the background, is left out. Other devices:
 * wall time. */
static bool g_cpu_clock;
static double g_threads = 1;

static double now_ms(void)
{
    if (!g_cpu_clock)
        return bench_clock_ms(CLOCK_MONOTONIC);
    double ns = 0;
    DIR *d = opendir("/proc/self/task");
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(comm, sizeof comm, f))
                comm[0] = 0;
            fclose(f);
        }
        if (strstr(comm, ":disk$"))
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", e->d_name);
        unsigned long long run = 0;
        if ((f = fopen(path, "r"))) {
            if (fscanf(f, "%llu", &run) != 1)
                run = 0;
            fclose(f);
        }
        ns += (double)run;
    }
    if (d)
        closedir(d);
    return ns * 1e-6 / g_threads;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median milliseconds of one recorded pass: `k` copies are recorded in one
 * command buffer (k chosen so that a submit takes about 20 ms) and the
 * submit is repeated `reps` times. */
static double time_pass(struct lvk_model *m, bool bwd, int reps)
{
    struct lvk_cmd *cmd = NULL;
    double t[64], res = NAN;
    int k = 1;
    if (lvk_cmd_create(m->ctx, false, &cmd) != LVK_OK)
        return NAN;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (lvk_cmd_begin(cmd) != LVK_OK)
            goto out;
        for (int i = 0; i < k; i++)
            if ((bwd ? lvk_graph_record_backward(m, cmd) : lvk_graph_record_forward(m, cmd)) != LVK_OK)
                goto out;
        if (lvk_cmd_end(cmd) != LVK_OK || lvk_cmd_submit(cmd) != LVK_OK) /* warm-up, JIT */
            goto out;
        double t0 = now_ms();
        if (lvk_cmd_submit(cmd) != LVK_OK)
            goto out;
        double one = (now_ms() - t0) / k;
        if (attempt == 0) {
            k = (int)LVK_MIN(LVK_MAX(20.0 / LVK_MAX(one, 1e-3), 1.0), 64.0);
            if (k == 1)
                break;
        }
    }
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        if (lvk_cmd_submit(cmd) != LVK_OK)
            goto out;
        t[r] = (now_ms() - t0) / k;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    res = t[reps / 2];
out:
    if (res != res)
        fprintf(stderr, "timing failed: %s\n", lvk_last_error());
    lvk_cmd_destroy(cmd);
    return res;
}

/* Builds x -> Conv(w, b) -> y for one layer; NULL (message printed) on failure. */
static struct lvk_model *build(struct lvk_ctx *ctx, const struct layer *l, int n, int hw)
{
    struct lvk_shape xs = {4, {n, l->c, hw, hw}}, ws = {4, {l->m, l->c / l->group, l->k, l->k}};
    struct lvk_shape bs = {1, {l->m}};
    size_t nw = (size_t)lvk_shape_count(&ws);
    float *w = malloc(nw * sizeof *w), *b = calloc((size_t)l->m, sizeof *b);
    for (size_t i = 0; i < nw; i++)
        w[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    struct lvk_model *m = NULL;
    int64_t p = l->k / 2;
    const struct lvk_attr attrs[] = {
        {.name = "pads", .type = LVK_ATTR_INTS, .ints = (int64_t[]){p, p, p, p}, .n = 4},
        {.name = "strides", .type = LVK_ATTR_INTS, .ints = (int64_t[]){l->s, l->s}, .n = 2},
        {.name = "group", .type = LVK_ATTR_INT, .i = l->group},
    };
    lvk_status st = lvk_graph_create(ctx, "bench", &m);
    if (st == LVK_OK && (lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &xs) < 0 ||
                         lvk_graph_add_const(m, "w", LVK_DTYPE_F32, &ws, w) < 0 ||
                         lvk_graph_add_const(m, "b", LVK_DTYPE_F32, &bs, b) < 0))
        st = LVK_ERR_INVALID_ARG;
    if (st == LVK_OK)
        st = lvk_graph_add_node(m, "Conv", "conv", (const char *const[]){"x", "w", "b"}, 3,
                                (const char *const[]){"y"}, 1, attrs, 3);
    if (st == LVK_OK)
        st = lvk_graph_mark_output(m, "y");
    if (st == LVK_OK)
        st = lvk_graph_finalize(m, &(struct lvk_model_opts){.gradients = 1, .fast_conv = 1});
    free(w);
    free(b);
    /* Inputs and upstream gradient: fixed values in [-1, 1] (reused memory
     * could hold denormals or NaNs, which are slow on CPUs). */
    const struct lvk_buf *fill[2] = {NULL, NULL};
    if (st == LVK_OK) {
        fill[0] = m->values[lvk_graph_find(m, "x")].buf;
        fill[1] = m->values[lvk_graph_find(m, "y")].grad;
    }
    for (int i = 0; i < 2 && st == LVK_OK; i++) {
        size_t cnt = fill[i] ? (size_t)(fill[i]->size / sizeof(float)) : 0;
        float *v = malloc(LVK_MAX(cnt, 1) * sizeof *v);
        for (size_t k = 0; k < cnt; k++)
            v[k] = (float)((k * 2246822519u) % 2001) * 1e-3f - 1.0f;
        if (cnt)
            st = lvk_buf_upload(ctx, fill[i], 0, v, cnt * sizeof *v);
        free(v);
    }
    if (st != LVK_OK) {
        fprintf(stderr, "%s: %s\n", l->name, lvk_last_error());
        lvk_model_destroy(m);
        return NULL;
    }
    return m;
}

/* Whole model: median milliseconds of a forward pass and of a backward pass
 * (from the first graph output, seeded with ones, down to the input). */
static int time_model(struct lvk_ctx *ctx, const char *path, int px, int n, int reps,
                      double *fwd, double *bwd)
{
    struct lvk_model_opts o = {.batch = n, .height = px, .width = px, .gradients = 1,
                               .fast_conv = 1};
    struct lvk_model *m = NULL;
    if (lvk_model_load(ctx, path, &o, &m) != LVK_OK) {
        fprintf(stderr, "%s: %s\n", path, lvk_last_error());
        return -1;
    }
    struct lvk_tensor_info in, out;
    const char *oname = lvk_model_output_name(m, 0);
    int rc = -1;
    float *x = NULL, *seed = NULL, *grad = NULL;
    if (lvk_model_tensor_find(m, lvk_model_input_name(m), &in) != LVK_OK ||
        lvk_model_tensor_find(m, oname, &out) != LVK_OK)
        goto out;
    size_t nin = 1, nout = 1;
    for (int d = 0; d < in.ndim; d++)
        nin *= (size_t)in.shape[d];
    for (int d = 0; d < out.ndim; d++)
        nout *= (size_t)out.shape[d];
    x = malloc(nin * sizeof *x);
    grad = malloc(nin * sizeof *grad);
    seed = malloc(nout * sizeof *seed);
    if (!x || !grad || !seed)
        goto out;
    for (size_t k = 0; k < nin; k++)
        x[k] = (float)((k * 2246822519u) % 2001) * 1e-3f - 1.0f;
    for (size_t k = 0; k < nout; k++)
        seed[k] = 1.0f;
    if (lvk_model_set_input(m, lvk_model_input_name(m), x, nin) != LVK_OK)
        goto out;
    double t[64];
    for (int pass = 0; pass < 2; pass++) {
        for (int r = -1; r < reps; r++) {   /* r = -1: warm-up (JIT, recording) */
            double t0 = now_ms();
            lvk_status st = pass ? lvk_model_backward(m, oname, seed, nout, grad, nin)
                                 : lvk_model_forward(m);
            if (st != LVK_OK)
                goto out;
            if (r >= 0)
                t[r] = now_ms() - t0;
        }
        qsort(t, (size_t)reps, sizeof t[0], cmp_double);
        *(pass ? bwd : fwd) = t[reps / 2];
    }
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "%s: %s\n", path, lvk_last_error());
    free(x);
    free(seed);
    free(grad);
    lvk_model_destroy(m);
    return rc;
}

/* Splits "a,b,c" into at most max tokens (modifies s). */
static int split(char *s, char **tok, int max)
{
    int n = 0;
    for (char *t = strtok(s, ","); t && n < max; t = strtok(NULL, ","))
        tok[n++] = t;
    return n;
}

int main(int argc, char **argv)
{
    char kdef[] = "auto", sdef[] = "224,128", bdef[] = "1,8";
    char *kern_arg = kdef, *size_arg = sdef, *batch_arg = bdef, *filter = NULL, *models = NULL;
    int reps = 7;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-k"))
            kern_arg = argv[i + 1];
        else if (!strcmp(argv[i], "-s"))
            size_arg = argv[i + 1];
        else if (!strcmp(argv[i], "-b"))
            batch_arg = argv[i + 1];
        else if (!strcmp(argv[i], "-r"))
            reps = LVK_MIN(LVK_MAX(atoi(argv[i + 1]), 1), 64);
        else if (!strcmp(argv[i], "-l"))
            filter = argv[i + 1];
        else if (!strcmp(argv[i], "-m"))
            models = argv[i + 1];
        else {
            fprintf(stderr, "unknown option %s (see the comment at the top of %s)\n", argv[i],
                    __FILE__);
            return 2;
        }
    }
    char *kern[8], *size_s[4], *batch_s[4];
    int nk = split(kern_arg, kern, 8), ns = split(size_arg, size_s, 4);
    int nb = split(batch_arg, batch_s, 4);

    struct lvk_ctx *ctx = NULL;
    if (lvk_ctx_create(&(struct lvk_ctx_opts){.validation = 0}, &ctx) != LVK_OK) {
        fprintf(stderr, "no device: %s\n", lvk_last_error());
        return 1;
    }
    if (ctx->is_lavapipe) {
        g_cpu_clock = true;
        const char *nt = getenv("LP_NUM_THREADS");
        g_threads = nt ? atoi(nt) : sysconf(_SC_NPROCESSORS_ONLN);
        if (g_threads < 1)
            g_threads = 1;
    }
    printf("device: %s; times: %s\n", ctx->info.name,
           g_cpu_clock ? "CPU time of the driver threads / cores (idle-machine estimate)" : "wall clock");
    if (models) {
        char *mod[8];
        int nm = split(models, mod, 8);
        printf("%-44s %4s %2s %-8s %9s %9s\n", "model", "px", "n", "kernel", "fwd ms", "bwd ms");
        for (int mi = 0; mi < nm; mi++)
            for (int si = 0; si < ns; si++)
                for (int bi = 0; bi < nb; bi++)
                    for (int ki = 0; ki < nk; ki++) {
                        if (strcmp(kern[ki], "auto"))
                            setenv("LVK_CONV_KERNEL", kern[ki], 1);
                        else
                            unsetenv("LVK_CONV_KERNEL");
                        double tf, tb;
                        if (time_model(ctx, mod[mi], atoi(size_s[si]), atoi(batch_s[bi]), reps,
                                       &tf, &tb) == 0)
                            printf("%-44s %4s %2s %-8s %9.2f %9.2f\n", mod[mi], size_s[si],
                                   batch_s[bi], kern[ki], tf, tb);
                        fflush(stdout);
                    }
        lvk_ctx_destroy(ctx);
        return 0;
    }
    printf("%-20s %4s %2s %-8s %9s %8s %8s %9s %8s %8s\n", "layer", "px", "n", "kernel",
           "fwd ms", "GFLOP/s", "GB/s", "bwd ms", "GFLOP/s", "GB/s");
    for (int si = 0; si < ns; si++) {
        int px = atoi(size_s[si]);
        for (size_t li = 0; li < LVK_ARRAY_LEN(layers); li++) {
            const struct layer *l = &layers[li];
            if (filter && !strstr(l->name, filter))
                continue;
            int hw = l->hw * px / 224;
            int ohw = (hw + 2 * (l->k / 2) - l->k) / l->s + 1;
            for (int bi = 0; bi < nb; bi++) {
                int n = atoi(batch_s[bi]);
                double flop = 2.0 * n * l->m * ohw * ohw * (l->c / l->group) * l->k * l->k;
                double bytes = 4.0 * ((double)n * l->c * hw * hw + (double)n * l->m * ohw * ohw +
                                      (double)l->m * (l->c / l->group) * l->k * l->k);
                for (int ki = 0; ki < nk; ki++) {
                    if (strcmp(kern[ki], "auto"))
                        setenv("LVK_CONV_KERNEL", kern[ki], 1);
                    else
                        unsetenv("LVK_CONV_KERNEL");
                    struct lvk_model *m = build(ctx, l, n, hw);
                    if (!m)
                        continue;
                    double tf = time_pass(m, false, reps), tb = time_pass(m, true, reps);
                    printf("%-20s %4d %2d %-8s %9.3f %8.1f %8.1f %9.3f %8.1f %8.1f\n", l->name, px,
                           n, kern[ki], tf, flop / tf * 1e-6, bytes / tf * 1e-6, tb,
                           flop / tb * 1e-6, bytes / tb * 1e-6);
                    fflush(stdout);
                    lvk_model_destroy(m);
                }
            }
        }
    }
    lvk_ctx_destroy(ctx);
    return 0;
}
