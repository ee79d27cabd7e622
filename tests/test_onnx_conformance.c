/* ONNX's own operator conformance cases (Debian libonnx-testdata): every
 * case whose ops lucid-vk supports is loaded from its model.onnx, run on the
 * device, and compared with its expected outputs. Integer inputs (shape
 * operands) are bound as constants at load, as a model file would carry
 * them. Cases excluded on purpose are listed in k_excluded with the reason. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "nn/onnx.h"
#include "support/op_harness.h"

#define NODE_DIR "/usr/share/libonnx-testdata/data/node"

/* Cases whose ops are supported but whose variant lucid-vk does not handle,
 * matched as substrings of the case name. */
static const struct {
    const char *pattern, *reason;
} k_excluded[] = {
    {"pool_3d", "3-D (volumetric) pooling: lucid-vk handles 2-D images"},
    {"test_maxpool_with_argmax", "MaxPool's Indices output is not supported"},
    {"test_dropout_default_mask", "Dropout's mask output is not supported"},
    {"test_dropout_default_ratio", "Dropout in training mode (random) is not supported"},
    {"test_training_dropout", "Dropout in training mode (random) is not supported"},
    {"_expanded", "function-expanded variants use ops outside the CNN set"},
    {"FLOAT16", "float16/bfloat16 tensors: lucid-vk computes in float32"},
    {"int8", "8-bit integer activations: lucid-vk computes in float32"},
    {"test_range_float_type_positive_delta", "Range over run-time values has a data-dependent shape"},
    {"_to_DOUBLE", "double tensors: lucid-vk computes in float32"},
    {"_training_mode", "BatchNormalization in training mode: lucid-vk runs inference graphs"},
};

struct conf_case {
    char name[256];
    char dir[512];
};

static const char *excluded_reason(const char *name)
{
    for (size_t i = 0; i < sizeof k_excluded / sizeof k_excluded[0]; i++)
        if (strstr(name, k_excluded[i].pattern))
            return k_excluded[i].reason;
    return NULL;
}

struct tensor {
    char *name;
    enum lvk_dtype dtype;
    struct lvk_shape shape;
    void *data;
};

static void free_set(struct tensor *t, int n)
{
    for (int i = 0; i < n; i++) {
        free(t[i].name);
        free(t[i].data);
    }
}

/* Reads input_N.pb / output_N.pb; returns the count, or -1 when a file is
 * not a tensor lucid-vk reads (sequences, optionals, strings). */
static int read_set(const char *dir, const char *prefix, struct tensor *t, int max)
{
    int n = 0;
    for (; n < max; n++) {
        char path[768];
        snprintf(path, sizeof path, "%s/test_data_set_0/%s_%d.pb", dir, prefix, n);
        struct stat sb;
        if (stat(path, &sb) != 0)
            break;
        if (lvk_onnx_read_tensor(path, &t[n].name, &t[n].dtype, &t[n].shape, &t[n].data) != LVK_OK) {
            free_set(t, n);
            return -1;
        }
    }
    return n;
}

static void run_case(void **state)
{
    const struct conf_case *cc = *state;
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    struct tensor in[16] = {0}, out[16] = {0};
    int nin = read_set(cc->dir, "input", in, 16), nout = read_set(cc->dir, "output", out, 16);
    assert_true(nin >= 0 && nout > 0);
    char path[768];
    snprintf(path, sizeof path, "%s/model.onnx", cc->dir);
    /* First with every float input fed at run time; where an op needs an
     * operand at load time (Clip's bounds, BatchNormalization's statistics:
     * initializers in real models), again with float inputs after the first
     * bound as constants. */
    struct lvk_model *m = NULL;
    bool runtime[16] = {0};
    for (int attempt = 0; attempt < 2; attempt++) {
        struct lvk_feed feeds[16];
        int nfeeds = 0;
        for (int i = 0; i < nin; i++) {
            runtime[i] = in[i].dtype == LVK_DTYPE_F32 && (attempt == 0 || i == 0);
            if (!runtime[i])
                feeds[nfeeds++] = (struct lvk_feed){in[i].name, in[i].dtype, in[i].shape, in[i].data};
        }
        if (lvk_onnx_load_graph(ctx, path, NULL, feeds, nfeeds, &m) != LVK_OK)
            fail_msg("load: %s", lvk_last_error());
        lvk_status st = lvk_graph_finalize(m, NULL);
        if (st == LVK_OK)
            break;
        if (attempt == 1 || !strstr(lvk_last_error(), "known at load time"))
            fail_msg("finalize: %s", lvk_last_error());
        lvk_model_destroy(m);
        m = NULL;
    }
    for (int i = 0; i < nin; i++)
        if (runtime[i] && lvk_model_set_input(m, in[i].name, in[i].data,
                                              (size_t)lvk_shape_count(&in[i].shape)) != LVK_OK)
            fail_msg("input: %s", lvk_last_error());
    if (lvk_model_forward(m) != LVK_OK)
        fail_msg("forward: %s", lvk_last_error());
    for (int j = 0; j < nout && j < lvk_model_output_count(m); j++) {
        const char *oname = lvk_model_output_name(m, j);
        struct lvk_value *v = &m->values[lvk_graph_find(m, oname)];
        int64_t n = lvk_shape_count(&out[j].shape);
        if (lvk_shape_count(&v->shape) != n) {
            char a[96], b[96];
            fail_msg("output '%s': shape %s, expected %s", oname, lvk_shape_str(&v->shape, a, sizeof a),
                     lvk_shape_str(&out[j].shape, b, sizeof b));
        }
        float *got = malloc((size_t)(n ? n : 1) * sizeof *got);
        if (lvk_model_read(m, oname, got, (size_t)n) != LVK_OK)
            fail_msg("read: %s", lvk_last_error());
        for (int64_t k = 0; k < n; k++) {
            double want = out[j].dtype == LVK_DTYPE_F32 ? ((float *)out[j].data)[k]
                                                        : (double)((int64_t *)out[j].data)[k];
            if (!(fabs(got[k] - want) <= 1e-5 + 1e-3 * fabs(want)))
                fail_msg("output '%s' element %lld: got %.8g, expected %.8g", oname, (long long)k,
                         got[k], want);
        }
        free(got);
    }
    lvk_model_destroy(m);
    free_set(in, nin);
    free_set(out, nout);
    lvk_test_assert_no_validation();
}

/* A case is in scope when every node's op is registered and the test data
 * is float or integer tensors. */
static bool in_scope(const char *dir)
{
    char path[768];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    struct tensor in[16] = {0}, out[16] = {0};
    int nin = read_set(dir, "input", in, 16), nout = read_set(dir, "output", out, 16);
    bool ok = nin >= 0 && nout > 0;
    nin = LVK_MAX(nin, 0);
    nout = LVK_MAX(nout, 0);
    struct lvk_feed feeds[16];
    int nfeeds = 0;
    for (int i = 0; i < nin; i++)
        if (in[i].dtype != LVK_DTYPE_F32)
            feeds[nfeeds++] = (struct lvk_feed){in[i].name, in[i].dtype, in[i].shape, in[i].data};
    struct lvk_model *m = NULL;
    if (ok && lvk_onnx_load_graph(lvk_test_ctx(), path, NULL, feeds, nfeeds, &m) != LVK_OK)
        ok = false;
    for (int i = 0; ok && i < m->nnodes; i++)
        if (!lvk_op_find(m->nodes[i].op_type))
            ok = false;
    lvk_model_destroy(m);
    free_set(in, nin);
    free_set(out, nout);
    return ok;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct conf_case *)a)->name, ((const struct conf_case *)b)->name);
}

int main(void)
{
    DIR *d = opendir(NODE_DIR);
    if (!d || !lvk_test_ctx()) {
        printf("ONNX conformance: skipped (%s)\n", d ? "no Vulkan device"
                                                     : NODE_DIR " missing: apt-get install libonnx-testdata");
        if (d)
            closedir(d);
        return 0;
    }
    struct conf_case *cases = NULL;
    int ncases = 0, total = 0, excluded = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "test_", 5) != 0)
            continue;
        total++;
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s", NODE_DIR, e->d_name);
        if (!in_scope(dir))
            continue;
        const char *why = excluded_reason(e->d_name);
        if (why) {
            printf("excluded %s: %s\n", e->d_name, why);
            excluded++;
            continue;
        }
        cases = realloc(cases, (size_t)(ncases + 1) * sizeof *cases);
        snprintf(cases[ncases].name, sizeof cases[ncases].name, "%s", e->d_name);
        snprintf(cases[ncases].dir, sizeof cases[ncases].dir, "%s", dir);
        ncases++;
    }
    closedir(d);
    qsort(cases, (size_t)ncases, sizeof *cases, by_name);
    struct CMUnitTest *tests = calloc((size_t)ncases + 1, sizeof *tests);
    for (int i = 0; i < ncases; i++) {
        tests[i].name = cases[i].name;
        tests[i].test_func = run_case;
        tests[i].initial_state = &cases[i];
    }
    printf("ONNX conformance: %d of %d cases use only supported ops; %d excluded (listed above), "
           "%d run\n", ncases + excluded, total, excluded, ncases);
    int failed = _cmocka_run_group_tests("onnx_conformance", tests, (size_t)ncases, NULL, NULL);
    printf("ONNX conformance: %d run, %d passed, %d failed\n", ncases, ncases - failed, failed);
    free(tests);
    free(cases);
    return failed ? 1 : 0;
}
