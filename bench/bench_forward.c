/* bench_forward: the lucid-vk side of `make bench` (see bench/run.sh for how
 * it is built, bench/README.md for what is measured).
 *
 *   bench_forward MODEL.onnx [--batch B] [--size S] [--target TENSOR] < commands
 *   bench_forward --device-name     prints the Vulkan device it would use, and
 *                                   on a second line its driver (name and info)
 *
 * Loads MODEL for batch B at S x S pixels (default 1 and 224) with input
 * gradients, prints one JSON line describing it (device, FLOPs from
 * src/nn/flops.c, arena bytes), then answers each command read from standard
 * input with one JSON line:
 *   batch B            reload the model for batch B (keeping the compiled
 *                      pipelines); answered like the start-up line
 *   input FILE.npy     upload the input (float32, the model input's shape)
 *   fwd K              K forward passes; "ms": the wall time of each
 *   fwdbwd K           K forward passes each followed by the input gradient
 *                      of the target tensor (default: graph output 0)
 *                      seeded with ones, read back to the host; "ms" as above
 *   save FILE.npy      write the target tensor of the last pass
 *   savegrad FILE.npy  write the input gradient of the last fwdbwd
 *   breakdown          one forward + backward recorded with a timestamp per
 *                      dispatch: milliseconds by op type (with FLOPs) and
 *                      by kernel
 *   rss                peak resident set size of this process (so far)
 *   quit
 * The driver (bench/torch_forward.py) speaks the same protocol to a PyTorch
 * worker and alternates between the two, so both see the same machine load. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "io/lvk_io.h"
#include "nn/flops.h"
#include "nn/graph.h"

struct bench {
    lvk_ctx_t *ctx;
    const char *path, *target_name; /* target_name NULL: graph output 0 */
    int size;
    lvk_model_t *m;
    struct lvk_value *input, *target;
    size_t nin, ntarget;
    float *seed, *grad;
};

static void reply_error(const char *what)
{
    printf("{\"error\": ");
    bench_json_str(what);
    printf("}\n");
}

/* ---- timed passes -------------------------------------------------------------- */

static lvk_status run_fwd(struct bench *b, bool with_grad)
{
    LVK_CHECK(lvk_model_forward(b->m));
    if (!with_grad)
        return LVK_OK;
    return lvk_model_backward(b->m, b->target->name, b->seed, b->ntarget, b->grad, b->nin);
}

static lvk_status cmd_timed(struct bench *b, int reps, bool with_grad)
{
    double *ms = calloc((size_t)LVK_MAX(reps, 1), sizeof *ms);
    if (!ms)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    for (int r = 0; r < reps; r++) {
        double t0 = bench_clock_ms(CLOCK_MONOTONIC);
        lvk_status st = run_fwd(b, with_grad);
        if (st != LVK_OK) {
            free(ms);
            return st;
        }
        ms[r] = bench_clock_ms(CLOCK_MONOTONIC) - t0;
    }
    printf("{\"ms\": [");
    for (int r = 0; r < reps; r++)
        printf(r ? ", %.3f" : "%.3f", ms[r]);
    printf("]}\n");
    free(ms);
    return LVK_OK;
}

/* ---- per-op breakdown ------------------------------------------------------------ */

/* Time and work accumulated under one name (an op type or a kernel label). */
struct tally {
    const char *name;
    double fwd_ms, bwd_ms, fwd_flops, bwd_flops;
    int dispatches;
};

static struct tally *tally_get(struct tally *t, int *n, const char *name)
{
    for (int i = 0; i < *n; i++)
        if (strcmp(t[i].name, name) == 0)
            return &t[i];
    t[*n] = (struct tally){.name = name};
    return &t[(*n)++];
}

/* FLOPs are known per node, so only per op type (with_flops). */
static void tally_print(const char *key, const struct tally *t, int n, bool with_flops)
{
    printf("\"%s\": [", key);
    for (int i = 0; i < n; i++) {
        printf(i ? ", {\"name\": " : "{\"name\": ");
        bench_json_str(t[i].name);
        printf(", \"fwd_ms\": %.4f, \"bwd_ms\": %.4f, \"dispatches\": %d", t[i].fwd_ms,
               t[i].bwd_ms, t[i].dispatches);
        if (with_flops)
            printf(", \"fwd_flops\": %.0f, \"bwd_flops\": %.0f", t[i].fwd_flops, t[i].bwd_flops);
        printf("}");
    }
    printf("]");
}

/* What one node (or step) recorded: the dispatches [first, end) of the
 * timestamped command buffer, i.e. timings[first - 1 .. end - 2]. */
struct span {
    const char *op;
    struct lvk_flops flops;
    uint32_t first, end;
    bool bwd;
};

/* Records forward, zeroing, seeding and backward node by node, as
 * lvk_graph_record_forward / lvk_graph_record_backward do (the same
 * lvk_graph_node_runs rule), so that each timestamp can be attributed to
 * the node that recorded it. */
static lvk_status record_profiled(struct bench *b, struct lvk_cmd *cmd, struct span *spans,
                                  int *nspans)
{
    struct lvk_model *m = b->m;
    for (int i = 0; i < m->nnodes; i++) {
        struct lvk_node *n = &m->nodes[i];
        if (!lvk_graph_node_runs(m, n, false))
            continue;
        struct span *s = &spans[(*nspans)++];
        *s = (struct span){.op = n->op_type, .first = cmd->nqueries};
        s->flops.fwd = lvk_node_flops(m, n).fwd;
        LVK_CHECK(lvk_graph_record_node(m, n, false, cmd));
        s->end = cmd->nqueries;
    }
    struct span *s = &spans[(*nspans)++];
    *s = (struct span){.op = "(zero gradients, seed)", .first = cmd->nqueries, .bwd = true};
    lvk_graph_record_zero_grads(m, cmd);
    lvk_cmd_fill(cmd, b->target->grad, 0, VK_WHOLE_SIZE, 0x3f800000u); /* 1.0f */
    lvk_cmd_flush(cmd);   /* the fills' barrier and timestamp close this span */
    s->end = cmd->nqueries;
    for (int i = m->nnodes - 1; i >= 0; i--) {
        struct lvk_node *n = &m->nodes[i];
        if (!lvk_graph_node_runs(m, n, true))
            continue;
        s = &spans[(*nspans)++];
        *s = (struct span){.op = n->op_type, .first = cmd->nqueries, .bwd = true};
        s->flops.bwd = lvk_node_flops(m, n).bwd;
        LVK_CHECK(lvk_graph_record_node(m, n, true, cmd));
        s->end = cmd->nqueries;
    }
    return LVK_OK;
}

static lvk_status cmd_breakdown(struct bench *b)
{
    struct lvk_model *m = b->m;
    struct lvk_cmd *cmd = NULL;
    struct span *spans = calloc((size_t)(2 * m->nnodes + 1), sizeof *spans);
    struct tally *ops = calloc((size_t)(2 * m->nnodes + 1), sizeof *ops);
    struct tally *kernels = calloc((size_t)(2 * m->nnodes + 1), sizeof *kernels);
    double *ms = NULL;
    int nspans = 0, nops = 0, nkernels = 0;
    uint32_t nms = 0;
    lvk_status st = LVK_OK;
    if (!spans || !ops || !kernels) {
        st = lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
        goto done;
    }
    if ((st = lvk_cmd_create(b->ctx, true, &cmd)) != LVK_OK)
        goto done;
    if (!cmd->query_pool) {
        st = lvk_fail(LVK_ERR_UNSUPPORTED, "the device has no compute timestamps");
        goto done;
    }
    if ((st = lvk_cmd_begin(cmd)) != LVK_OK)
        goto done;
    st = record_profiled(b, cmd, spans, &nspans);
    lvk_status st_end = lvk_cmd_end(cmd);
    if (st != LVK_OK || (st = st_end) != LVK_OK)
        goto done;
    if (cmd->nqueries >= cmd->max_queries) {
        st = lvk_fail(LVK_ERR_UNSUPPORTED, "more than %u dispatches to time", cmd->max_queries);
        goto done;
    }
    double t0 = bench_clock_ms(CLOCK_MONOTONIC);
    if ((st = lvk_cmd_submit(cmd)) != LVK_OK)
        goto done;
    double wall = bench_clock_ms(CLOCK_MONOTONIC) - t0;
    ms = calloc(cmd->nqueries, sizeof *ms);
    if (!ms) {
        st = lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
        goto done;
    }
    if ((st = lvk_cmd_timings(cmd, ms, &nms)) != LVK_OK)
        goto done;

    double total = 0;
    for (int i = 0; i < nspans; i++) {
        const struct span *s = &spans[i];
        struct tally *t = tally_get(ops, &nops, s->op);
        t->fwd_flops += s->flops.fwd;
        t->bwd_flops += s->flops.bwd;
        for (uint32_t q = s->first; q < s->end && q >= 1 && q - 1 < nms; q++) {
            double d = ms[q - 1];
            struct tally *k = tally_get(kernels, &nkernels, cmd->labels[q]);
            *(s->bwd ? &t->bwd_ms : &t->fwd_ms) += d;
            *(s->bwd ? &k->bwd_ms : &k->fwd_ms) += d;
            t->dispatches++;
            k->dispatches++;
            total += d;
        }
    }
    printf("{\"wall_ms\": %.3f, \"timed_ms\": %.3f, ", wall, total);
    tally_print("ops", ops, nops, true);
    printf(", ");
    tally_print("kernels", kernels, nkernels, false);
    printf("}\n");
done:
    lvk_cmd_destroy(cmd);
    free(ms);
    free(spans);
    free(ops);
    free(kernels);
    return st;
}

/* ---- the rest of the protocol ------------------------------------------------------ */

static lvk_status cmd_input(struct bench *b, const char *path)
{
    struct lvk_npy a = {0};
    LVK_CHECK(lvk_npy_read(path, &a));
    lvk_status st = lvk_model_set_input(b->m, b->input->name, a.data, a.count);
    lvk_npy_free(&a);
    if (st == LVK_OK)
        printf("{\"ok\": true}\n");
    return st;
}

static lvk_status cmd_save(struct bench *b, const char *path)
{
    float *y = malloc(b->ntarget * sizeof *y);
    if (!y)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    lvk_status st = lvk_model_read(b->m, b->target->name, y, b->ntarget);
    if (st == LVK_OK)
        st = lvk_npy_write(path, y, b->target->shape.ndim, b->target->shape.d);
    free(y);
    if (st == LVK_OK)
        printf("{\"ok\": true}\n");
    return st;
}

static lvk_status cmd_savegrad(struct bench *b, const char *path)
{
    LVK_CHECK(lvk_npy_write(path, b->grad, b->input->shape.ndim, b->input->shape.d));
    printf("{\"ok\": true}\n");
    return LVK_OK;
}

static void reply_ready(const struct bench *b, double load_ms)
{
    const struct lvk_device_info *dev = lvk_ctx_device(b->ctx);
    struct lvk_flops f = lvk_model_flops(b->m);
    printf("{\"device\": ");
    bench_json_str(dev->name);
    printf(", \"driver\": ");
    bench_json_str(dev->driver);
    printf(", \"input\": ");
    bench_json_str(b->input->name);
    printf(", \"input_shape\": [");
    for (int d = 0; d < b->input->shape.ndim; d++)
        printf(d ? ", %lld" : "%lld", (long long)b->input->shape.d[d]);
    printf("], \"target\": ");
    bench_json_str(b->target->name);
    printf(", \"flops_fwd\": %.0f, \"flops_bwd\": %.0f, \"arena_bytes\": %llu, "
           "\"load_ms\": %.1f}\n",
           f.fwd, f.bwd, (unsigned long long)b->m->arena.bytes, load_ms);
}

static void bench_unload(struct bench *b)
{
    lvk_model_destroy(b->m);
    free(b->seed);
    free(b->grad);
    b->m = NULL;
    b->seed = b->grad = NULL;
}

/* (Re)loads the model for a batch size. The context, and so every compiled
 * pipeline, is kept: on lavapipe compiling the pipelines of a network can
 * take minutes, and the kernels' constants do not depend on the batch. */
static lvk_status bench_load(struct bench *b, int batch)
{
    bench_unload(b);
    struct lvk_model_opts opts = {.batch = batch, .height = b->size, .width = b->size,
                                  .gradients = 1};
    LVK_CHECK(lvk_model_load(b->ctx, b->path, &opts, &b->m));
    const char *tname = b->target_name ? b->target_name : lvk_model_output_name(b->m, 0);
    int in = lvk_graph_find(b->m, lvk_model_input_name(b->m));
    int tv = tname ? lvk_graph_find(b->m, tname) : -1;
    if (in < 0 || tv < 0 || !b->m->values[tv].grad)
        return lvk_fail(LVK_ERR_NOT_FOUND, "%s: no input, or no target tensor '%s' with a "
                                           "gradient", b->path, tname ? tname : "?");
    b->input = &b->m->values[in];
    b->target = &b->m->values[tv];
    b->nin = (size_t)lvk_shape_count(&b->input->shape);
    b->ntarget = (size_t)lvk_shape_count(&b->target->shape);
    b->seed = malloc(b->ntarget * sizeof *b->seed);
    b->grad = calloc(b->nin, sizeof *b->grad);
    if (!b->seed || !b->grad)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    for (size_t i = 0; i < b->ntarget; i++)
        b->seed[i] = 1.0f;
    return LVK_OK;
}

static lvk_status cmd_batch(struct bench *b, int batch)
{
    double t0 = bench_clock_ms(CLOCK_MONOTONIC);
    LVK_CHECK(bench_load(b, batch));
    reply_ready(b, bench_clock_ms(CLOCK_MONOTONIC) - t0);
    return LVK_OK;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_forward MODEL.onnx [--batch B] [--size S] [--target TENSOR]"
                    " < commands\n       bench_forward --device-name\n"
                    "(commands: see the top of bench/bench_forward.c)\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct bench b = {.size = 224};
    int batch = 1;
    bool device_name = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device-name") == 0)
            device_name = true;
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
            b.size = atoi(argv[++i]);
        else if (strcmp(argv[i], "--target") == 0 && i + 1 < argc)
            b.target_name = argv[++i];
        else if (argv[i][0] != '-' && !b.path)
            b.path = argv[i];
        else
            return usage();
    }
    if (!device_name && (!b.path || batch < 1 || b.size < 1))
        return usage();

    struct lvk_ctx_opts copts = {.validation = 0};
    lvk_status st = lvk_ctx_create(&copts, &b.ctx);
    if (st == LVK_OK && device_name) {
        printf("%s\n%s\n", lvk_ctx_device(b.ctx)->name, lvk_ctx_device(b.ctx)->driver);
        lvk_ctx_destroy(b.ctx);
        return 0;
    }
    if (st == LVK_OK)
        st = cmd_batch(&b, batch);
    if (st != LVK_OK) {
        reply_error(lvk_last_error());
        fprintf(stderr, "bench_forward: %s\n", lvk_last_error());
        bench_unload(&b);
        lvk_ctx_destroy(b.ctx);
        return 1;
    }
    fflush(stdout);

    char line[4096], arg[4096];
    while (fgets(line, sizeof line, stdin)) {
        int k = 0;
        st = LVK_OK;
        if (sscanf(line, "fwd %d", &k) == 1 && k > 0)
            st = cmd_timed(&b, k, false);
        else if (sscanf(line, "fwdbwd %d", &k) == 1 && k > 0)
            st = cmd_timed(&b, k, true);
        else if (sscanf(line, "batch %d", &k) == 1 && k > 0)
            st = cmd_batch(&b, k);
        else if (sscanf(line, "input %4095s", arg) == 1)
            st = cmd_input(&b, arg);
        else if (sscanf(line, "savegrad %4095s", arg) == 1) /* before "save": a prefix */
            st = cmd_savegrad(&b, arg);
        else if (sscanf(line, "save %4095s", arg) == 1)
            st = cmd_save(&b, arg);
        else if (strncmp(line, "breakdown", 9) == 0)
            st = cmd_breakdown(&b);
        else if (strncmp(line, "rss", 3) == 0)
            bench_print_rss();
        else if (strncmp(line, "quit", 4) == 0)
            break;
        else
            st = lvk_fail(LVK_ERR_INVALID_ARG, "unknown command: %.*s", (int)strcspn(line, "\n"),
                          line);
        if (st != LVK_OK)
            reply_error(lvk_last_error());
        fflush(stdout);
    }
    bench_unload(&b);
    lvk_ctx_destroy(b.ctx);
    return 0;
}
