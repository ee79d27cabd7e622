/* Bad input gets one clear message and a failure status, never a crash:
 * corrupt and truncated ONNX files, unsupported ops, external data,
 * non-float inputs, unresolvable shapes, unknown names, bad PNGs, a
 * missing Vulkan driver, malformed and out-of-range numeric options, a
 * misspelt layer at the end of a sweep. The models are built here with the
 * protobuf-c bindings, so each case differs from a valid model in one way.
 * With them, what the command line reports about runs on the demo model:
 * warnings, pass counts, defaults shared between commands. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/lvk_io.h"
#include "onnx.pb-c.h"
#include "support/cli.h"
#include "support/demo.h"
#include "support/op_harness.h"

#define DEMO_IMAGE LVK_SOURCE_DIR "/assets/demo/test_0_ankle-boot.png"

enum flaw { OK, UNSUPPORTED_OP, EXTERNAL_DATA, INT_INPUT, SYMBOLIC_H, CUSTOM_DOMAIN };

static char g_dir[256];

/* A one-Conv model: x [1,3,8,8] -> Conv(3x3, 4 filters, pad 1) -> y, with
 * one flaw. Returns the serialized bytes (malloc'd). */
static uint8_t *make_model(enum flaw flaw, size_t *len)
{
    static float w[4 * 3 * 3 * 3];
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
        w[i] = (float)((i * 7) % 11) / 11.0f - 0.5f;

    Onnx__TensorProto weight = ONNX__TENSOR_PROTO__INIT;
    int64_t wdims[] = {4, 3, 3, 3};
    weight.name = "w";
    weight.n_dims = 4;
    weight.dims = wdims;
    weight.has_data_type = 1;
    weight.data_type = 1;
    weight.has_raw_data = 1;
    weight.raw_data.data = (uint8_t *)w;
    weight.raw_data.len = sizeof w;
    Onnx__StringStringEntryProto loc = ONNX__STRING_STRING_ENTRY_PROTO__INIT, *locs[1] = {&loc};
    if (flaw == EXTERNAL_DATA) {
        loc.key = "location";
        loc.value = "weights.bin";
        weight.has_raw_data = 0;
        weight.has_data_location = 1;
        weight.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
        weight.n_external_data = 1;
        weight.external_data = locs;
    }

    Onnx__TensorShapeProto__Dimension d[4], *dp[4];
    int64_t xdims[] = {1, 3, 8, 8};
    for (int i = 0; i < 4; i++) {
        onnx__tensor_shape_proto__dimension__init(&d[i]);
        d[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        d[i].dim_value = xdims[i];
        dp[i] = &d[i];
    }
    if (flaw == SYMBOLIC_H) {
        d[2].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
        d[2].dim_param = "height";
    }
    Onnx__TensorShapeProto shape = ONNX__TENSOR_SHAPE_PROTO__INIT;
    shape.n_dim = 4;
    shape.dim = dp;
    Onnx__TypeProto__Tensor tt = ONNX__TYPE_PROTO__TENSOR__INIT;
    tt.has_elem_type = 1;
    tt.elem_type = flaw == INT_INPUT ? 7 : 1;
    tt.shape = &shape;
    Onnx__TypeProto type = ONNX__TYPE_PROTO__INIT;
    type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type.tensor_type = &tt;
    Onnx__ValueInfoProto in = ONNX__VALUE_INFO_PROTO__INIT, out = ONNX__VALUE_INFO_PROTO__INIT;
    in.name = "x";
    in.type = &type;
    out.name = "y";

    Onnx__AttributeProto pads = ONNX__ATTRIBUTE_PROTO__INIT, *attrs[1] = {&pads};
    int64_t padv[] = {1, 1, 1, 1};
    pads.name = "pads";
    pads.has_type = 1;
    pads.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    pads.n_ints = 4;
    pads.ints = padv;
    char *node_in[] = {"x", "w"}, *node_out[] = {"y"};
    Onnx__NodeProto node = ONNX__NODE_PROTO__INIT, *nodes[1] = {&node};
    node.name = "conv1";
    node.op_type = flaw == UNSUPPORTED_OP ? "NonMaxSuppression" : "Conv";
    if (flaw == CUSTOM_DOMAIN)
        node.domain = "com.example";
    node.n_input = 2;
    node.input = node_in;
    node.n_output = 1;
    node.output = node_out;
    node.n_attribute = 1;
    node.attribute = attrs;

    Onnx__TensorProto *inits[1] = {&weight};
    Onnx__ValueInfoProto *ins[1] = {&in}, *outs[1] = {&out};
    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    g.name = "test";
    g.n_node = 1;
    g.node = nodes;
    g.n_initializer = 1;
    g.initializer = inits;
    g.n_input = 1;
    g.input = ins;
    g.n_output = 1;
    g.output = outs;
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT, *opsets[1] = {&opset};
    opset.domain = "";
    opset.has_version = 1;
    opset.version = 13;
    Onnx__ModelProto mp = ONNX__MODEL_PROTO__INIT;
    mp.has_ir_version = 1;
    mp.ir_version = 7;
    mp.n_opset_import = 1;
    mp.opset_import = opsets;
    mp.graph = &g;
    *len = onnx__model_proto__get_packed_size(&mp);
    uint8_t *buf = malloc(*len);
    onnx__model_proto__pack(&mp, buf);
    return buf;
}

static const char *write_model(const char *name, enum flaw flaw, size_t keep)
{
    static char path[512];
    size_t len;
    uint8_t *buf = make_model(flaw, &len);
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    assert_int_equal(lvk_write_file_atomic(path, buf, keep ? keep : len), LVK_OK);
    free(buf);
    return path;
}

/* Loads and expects status `want` with every `needle` in the message. */
static void expect_load(const char *path, const struct lvk_model_opts *opts, lvk_status want, ...)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    lvk_model_t *m = NULL;
    lvk_status st = lvk_model_load(ctx, path, opts, &m);
    if (st != want)
        fail_msg("%s: status %s, expected %s (%s)", path, lvk_status_str(st), lvk_status_str(want),
                 lvk_last_error());
    va_list ap;
    va_start(ap, want);
    for (const char *needle; (needle = va_arg(ap, const char *));)
        if (!strstr(lvk_last_error(), needle))
            fail_msg("message '%s' lacks '%s'", lvk_last_error(), needle);
    va_end(ap);
    if (want != LVK_OK)
        assert_null(m);
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

static void test_valid_model_loads(void **state)
{
    expect_load(write_model("ok.onnx", OK, 0), NULL, LVK_OK, NULL);
}

static void test_corrupt(void **state)
{
    char path[512];
    snprintf(path, sizeof path, "%s/garbage.onnx", g_dir);
    const char junk[] = "\x0a\xff\xff\xff\xff\x0fthis is not a model";
    assert_int_equal(lvk_write_file_atomic(path, junk, sizeof junk), LVK_OK);
    expect_load(path, NULL, LVK_ERR_FORMAT, "garbage.onnx", "not a valid ONNX model", NULL);
    snprintf(path, sizeof path, "%s/empty.onnx", g_dir);
    assert_int_equal(lvk_write_file_atomic(path, "", 0), LVK_OK);
    expect_load(path, NULL, LVK_ERR_FORMAT, "empty.onnx", NULL);
}

static void test_truncated(void **state)
{
    size_t len;
    free(make_model(OK, &len));
    /* Cut inside the weights, and inside the graph's last field. */
    expect_load(write_model("cut1.onnx", OK, len / 2), NULL, LVK_ERR_FORMAT, "cut1.onnx", NULL);
    expect_load(write_model("cut2.onnx", OK, len - 3), NULL, LVK_ERR_FORMAT, "cut2.onnx", NULL);
}

static void test_missing_file(void **state)
{
    expect_load("/nonexistent/model.onnx", NULL, LVK_ERR_IO, "/nonexistent/model.onnx", NULL);
}

static void test_unsupported_op(void **state)
{
    expect_load(write_model("nms.onnx", UNSUPPORTED_OP, 0), NULL, LVK_ERR_UNSUPPORTED, "nms.onnx",
                "conv1", "NonMaxSuppression", "Supported ops:", "Conv", NULL);
    expect_load(write_model("domain.onnx", CUSTOM_DOMAIN, 0), NULL, LVK_ERR_UNSUPPORTED, "com.example",
                NULL);
}

static void test_external_data(void **state)
{
    expect_load(write_model("ext.onnx", EXTERNAL_DATA, 0), NULL, LVK_ERR_UNSUPPORTED, "ext.onnx", "'w'",
                "external data", NULL);
}

static void test_int_input(void **state)
{
    expect_load(write_model("int.onnx", INT_INPUT, 0), NULL, LVK_ERR_UNSUPPORTED, "'x'", "int64", NULL);
}

static void test_symbolic_shape(void **state)
{
    const char *path = write_model("sym.onnx", SYMBOLIC_H, 0);
    expect_load(path, NULL, LVK_ERR_UNSUPPORTED, "'x'", "height", NULL);
    struct lvk_model_opts o = {.height = 8, .width = 8};
    expect_load(path, &o, LVK_OK, NULL);
}

static void test_unknown_tensor(void **state)
{
    const char *outs[] = {"conv9"};
    struct lvk_model_opts o = {.outputs = outs, .noutputs = 1};
    expect_load(write_model("ok.onnx", OK, 0), &o, LVK_ERR_NOT_FOUND, "conv9", NULL);
}

/* What the last run_cli printed. */
static char g_out[16384], g_err[16384];

static void slurp(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, len - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
}

/* Runs the lucidvk command (arguments through the shell) with extra
 * environment; returns its exit status, its output in g_out and g_err.
 * Validation messages fail the test. */
static int run_cli(const char *env, const char *args)
{
    char outpath[512], errpath[512];
    snprintf(outpath, sizeof outpath, "%s/stdout.txt", g_dir);
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", g_dir);
    int rc = lvk_test_cli(env, args, outpath, errpath);
    slurp(outpath, g_out, sizeof g_out);
    slurp(errpath, g_err, sizeof g_err);
    if (strstr(g_err, "lucidvk: validation"))
        fail_msg("lucidvk %s: validation messages:\n%s", args, g_err);
    return rc;
}

static int count(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_cli_no_device(void **state)
{
    /* No driver manifest at all: what a machine without any Vulkan driver sees. */
    int rc = run_cli("VK_ICD_FILENAMES=/nonexistent.json VK_DRIVER_FILES=/nonexistent.json", "devices");
    assert_int_not_equal(rc, 0);
    if (!strstr(g_err, "mesa-vulkan-drivers") || !strstr(g_err, "VK_LOADER_DEBUG"))
        fail_msg("stderr lacks the lavapipe or the loader hint: %s", g_err);
    assert_null(strstr(g_err, "Segmentation"));
}

static void test_cli_bad_inputs(void **state)
{
    if (!lvk_test_ctx())
        skip();
    char args[1024], png[512];
    const char *model = write_model("ok.onnx", OK, 0);
    snprintf(png, sizeof png, "%s/bad.png", g_dir);
    assert_int_equal(lvk_write_file_atomic(png, "\x89PNG\r\n\x1a\nnot really", 18), LVK_OK);
    snprintf(args, sizeof args, "forward %s --input %s -o %s/out", model, png, g_dir);
    assert_int_equal(run_cli("", args), 1);
    if (!strstr(g_err, "bad.png"))
        fail_msg("stderr does not name the PNG: %s", g_err);

    snprintf(png, sizeof png, "%s/ok.png", g_dir);
    struct lvk_image img;
    assert_int_equal(lvk_image_alloc(&img, 8, 8, 3), LVK_OK);
    assert_int_equal(lvk_png_write(png, &img), LVK_OK);
    lvk_image_free(&img);
    snprintf(args, sizeof args, "forward %s --input %s --grad-of y:9 -o %s/out", model, png, g_dir);
    assert_int_equal(run_cli("", args), 1);
    if (!strstr(g_err, "channel 9 out of range") || !strstr(g_err, "4 channels"))
        fail_msg("stderr: %s", g_err);
    snprintf(args, sizeof args, "forward %s --input %s --tensor nope -o %s/out", model, png, g_dir);
    assert_int_equal(run_cli("", args), 1);
    if (!strstr(g_err, "nope"))
        fail_msg("stderr: %s", g_err);
    snprintf(args, sizeof args, "classify %s/missing.onnx %s", g_dir, png);
    assert_int_equal(run_cli("", args), 1);
    if (!strstr(g_err, "missing.onnx"))
        fail_msg("stderr: %s", g_err);
    assert_int_equal(run_cli("", "frobnicate"), 2);
}

/* Every numeric option is read whole and checked against its range before
 * anything runs: each command here would otherwise run on the demo model
 * (and write OUT) with a number made up from the bad text. No device is
 * needed to refuse them. Arguments: %1$s the model, %2$s an image, %3$s
 * the output. */
static void test_cli_bad_numbers(void **state)
{
    static const struct { const char *args, *needle[3]; } cases[] = {
        {"attribute %1$s %2$s --method saliency --target abc -o %3$s", {"--target", "'abc'", "integer of at least 0"}},
        {"attribute %1$s %2$s --method saliency --target -1 -o %3$s", {"--target", "'-1'", "at least 0"}},
        {"render %1$s -l conv1 -c 0 --steps 1x -o %3$s", {"--steps", "'1x'", "integer of at least 1"}},
        {"render %1$s -l conv1 -c 0 --steps '' -o %3$s", {"--steps", "''", "at least 1"}},
        {"attribute %1$s %2$s --method ig --clip 150 -o %3$s", {"--clip", "'150'", "above 0 and at most 100"}},
        {"attribute %1$s %2$s --method ig --clip -5 -o %3$s", {"--clip", "'-5'", "above 0 and at most 100"}},
        {"attribute %1$s %2$s --method ig --clip 0 -o %3$s", {"--clip", "'0'", "above 0"}},
        {"attribute %1$s %2$s --method smoothgrad --noise 0.1.2 -o %3$s", {"--noise", "'0.1.2'", "above 0"}},
        {"render %1$s -l conv1 -c 0 --size ' 16' -o %3$s", {"--size", "' 16'", "from 8 to 4096"}},
        {"render %1$s -l conv1 -c 0 --size 99999999999999999999 -o %3$s", {"--size", "from 8 to 4096", NULL}},
        {"render %1$s -l conv1 -c 0 --lr nan -o %3$s", {"--lr", "'nan'", "above 0"}},
        {"render %1$s -l conv1 -c 0 --lr 1e999 -o %3$s", {"--lr", "'1e999'", "above 0"}},
        {"render %1$s -l conv1 -c 0 --seed -1 -o %3$s", {"--seed", "'-1'", "from 0 to 18446744073709551615"}},
        {"render %1$s -l conv1 -c 0 --seed 18446744073709551616 -o %3$s", {"--seed", "from 0 to", NULL}},
        {"render %1$s --class 3x -o %3$s", {"--class", "'3x'", NULL}},
        {"sweep %1$s --layers conv1 --zoom 65 -o %3$s", {"--zoom", "'65'", "from 1 to 64"}},
        {"grid %1$s -n conv1:1 -n conv1:2x -o %3$s", {"channel of -n", "'2x'", "at least 0"}},
        {"classify %1$s %2$s --top 5junk", {"--top", "'5junk'", NULL}},
        {"kernels %1$s --angles 3 -o %3$s", {"--angles", "'3'", "at least 4"}},
    };
    char args[1024], out[512];
    snprintf(out, sizeof out, "%s/number.png", g_dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unlink(out);
        snprintf(args, sizeof args, cases[i].args, LVK_DEMO_MODEL, DEMO_IMAGE, out);
        int rc = run_cli("", args);
        if (rc != 2)
            fail_msg("%s: exit status %d, expected 2; stderr: %s", args, rc, g_err);
        for (int k = 0; k < 3 && cases[i].needle[k]; k++)
            if (!strstr(g_err, cases[i].needle[k]))
                fail_msg("%s: stderr lacks \"%s\": %s", args, cases[i].needle[k], g_err);
        /* One message: the usage line and the pointer to --help. */
        assert_int_equal(count(g_err, "\n"), 2);
        if (lvk_test_exists(out))
            fail_msg("%s: wrote %s", args, out);
    }
}

/* A misspelt last layer, or a channel list past the last layer's channels,
 * fails before the first layer renders: nothing on standard output (each
 * rendered layer prints a line), no progress, no sheet. */
static void test_cli_sweep_checks_layers_first(void **state)
{
    if (!lvk_test_ctx())
        skip();
    static const struct { const char *layers, *channels, *needle[2]; } cases[] = {
        {"conv1_relu,conv3_relu,conv5_rleu", "0-3", {"--layers", "no tensor named 'conv5_rleu'"}},
        {"conv5_relu,logits", "8-11", {"--channels 8-11", "layer 'logits' has 10 channels (0-9)"}},
    };
    char args[1024], out[512];
    snprintf(out, sizeof out, "%s/sweep.png", g_dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unlink(out);
        snprintf(args, sizeof args, "sweep %s --layers %s --channels %s --steps 2 --size 16 -o %s",
                 LVK_DEMO_MODEL, cases[i].layers, cases[i].channels, out);
        assert_int_equal(run_cli("", args), 1);
        for (int k = 0; k < 2; k++)
            if (!strstr(g_err, cases[i].needle[k]))
                fail_msg("%s: stderr lacks \"%s\": %s", args, cases[i].needle[k], g_err);
        if (g_out[0] || strstr(g_err, "step"))
            fail_msg("%s: rendered before failing:\n%s%s", args, g_out, g_err);
        assert_false(lvk_test_exists(out));
    }
}

/* Minimising a ReLU output goes flat once the unit is off: --negative
 * warns, naming the pre-activation, once per layer; a Conv output, or a
 * ReLU maximised, gets no warning. */
static void test_cli_negative_relu_warns(void **state)
{
    if (!lvk_test_ctx())
        skip();
    static const struct { const char *unit; int warnings; const char *pre; } cases[] = {
        {"-l conv1_relu -c 0 --negative", 1, "'conv1'"},
        {"-l conv2_relu -c 0-2 --both", 1, "'conv2'"},
        {"--objective \"channel(conv1_relu, 0) + channel(conv3_relu, 1)@1\" --negative", 2, "'conv3'"},
        {"-l conv1 -c 0 --negative", 0, NULL},
        {"-l conv1_relu -c 0", 0, NULL},
    };
    char args[1024];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(args, sizeof args, "render %s %s --steps 1 --size 16 -o %s/negative.png", LVK_DEMO_MODEL,
                 cases[i].unit, g_dir);
        assert_int_equal(run_cli("", args), 0);
        if (count(g_err, "warning") != cases[i].warnings || (cases[i].pre && !strstr(g_err, cases[i].pre)))
            fail_msg("%s: expected %d warning(s) naming %s:\n%s", args, cases[i].warnings,
                     cases[i].pre ? cases[i].pre : "nothing", g_err);
    }
}

/* "N forward+backward passes, M images (up to B a pass)": integrated
 * gradients with 16 steps evaluates 16 nodes in three rounds (8
 * Gauss-Legendre, then 4 and 4: analysis/attribution.h), each one pass at
 * a batch of 16; SmoothGrad's 5 samples at a batch of 2 take ceil(5/2) = 3
 * passes; saliency one image in one pass. */
static void test_cli_attribute_passes(void **state)
{
    if (!lvk_test_ctx())
        skip();
    static const struct { const char *method, *line; } cases[] = {
        {"ig --steps 16 --batch 16", "  3 forward+backward passes, 16 images (up to 16 a pass), "},
        {"smoothgrad --samples 5 --batch 2", "  3 forward+backward passes, 5 images (up to 2 a pass), "},
        {"saliency", "  1 forward+backward pass, 1 image, "},
    };
    char args[1024];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(args, sizeof args, "attribute %s %s --method %s -o %s/attr.png", LVK_DEMO_MODEL, DEMO_IMAGE,
                 cases[i].method, g_dir);
        assert_int_equal(run_cli("", args), 0);
        if (!strstr(g_out, cases[i].line))
            fail_msg("%s: output lacks \"%s\":\n%s", args, cases[i].line, g_out);
    }
}

/* The first number under `key` anywhere in the tree, depth first; NAN if none. */
static double json_number(const struct lvk_json *j, const char *key)
{
    for (const struct lvk_json *c = j ? j->child : NULL; c; c = c->next) {
        if (c->key && !strcmp(c->key, key) && c->type == LVK_JSON_NUMBER)
            return c->number;
        double v = json_number(c, key);
        if (!isnan(v))
            return v;
    }
    return NAN;
}

/* render and atlas add the same diversity term by default: weight 0.3,
 * which render's help explains; atlas used 100 before. */
static void test_cli_diversity_default(void **state)
{
    if (!lvk_test_ctx())
        skip();
    char args[1024], path[2][512];
    snprintf(path[0], sizeof path[0], "%s/diversity.json", g_dir);
    snprintf(args, sizeof args, "render %s -l conv2_relu -c 1 --diversity 2 --steps 1 --size 16 -o %s/div.png "
             "--json %s", LVK_DEMO_MODEL, g_dir, path[0]);
    assert_int_equal(run_cli("", args), 0);
    snprintf(path[1], sizeof path[1], "%s/atlas/manifest.json", g_dir);
    snprintf(args, sizeof args, "atlas %s -l conv2_relu -c 1 --diversity 2 --steps 1 --size 16 -o %s/atlas",
             LVK_DEMO_MODEL, g_dir);
    assert_int_equal(run_cli("", args), 0);
    for (int k = 0; k < 2; k++) {
        struct lvk_json *j = NULL;
        assert_int_equal(lvk_json_read(path[k], &j), LVK_OK);
        double w = json_number(j, "diversity_weight");
        lvk_json_free(j);
        if (!(fabs(w - 0.3) < 1e-6))
            fail_msg("%s: diversity_weight %g, expected 0.3", path[k], w);
    }
}

/* Counts agree with their nouns ("1 layer"), and help names no source file. */
static void test_cli_summaries(void **state)
{
    char args[1024];
    assert_int_equal(run_cli("", "kernels --help"), 0);
    assert_non_null(strstr(g_out, "selectivity"));
    if (strstr(g_out, "src/") || strstr(g_out, ".h"))
        fail_msg("kernels --help points at the source:\n%s", g_out);
    if (!lvk_test_ctx())
        skip();
    snprintf(args, sizeof args, "response-map fit %s --inputs %s/assets/demo --layers conv1_relu "
             "--perplexity 3 --iterations 20 -o %s/map.json", LVK_DEMO_MODEL, LVK_SOURCE_DIR, g_dir);
    assert_int_equal(run_cli("", args), 0);
    if (!strstr(g_out, ": 1 layer, 32 neurons; 10 images from "))
        fail_msg("fit summary: %s", g_out);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "%s/test_errors.d", LVK_BINARY_DIR);
    mkdir(g_dir, 0755);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_model_loads), cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_truncated),         cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_unsupported_op),    cmocka_unit_test(test_external_data),
        cmocka_unit_test(test_int_input),         cmocka_unit_test(test_symbolic_shape),
        cmocka_unit_test(test_unknown_tensor),    cmocka_unit_test(test_cli_no_device),
        cmocka_unit_test(test_cli_bad_inputs),    cmocka_unit_test(test_cli_bad_numbers),
        cmocka_unit_test(test_cli_sweep_checks_layers_first),
        cmocka_unit_test(test_cli_negative_relu_warns),
        cmocka_unit_test(test_cli_attribute_passes),
        cmocka_unit_test(test_cli_diversity_default),
        cmocka_unit_test(test_cli_summaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
