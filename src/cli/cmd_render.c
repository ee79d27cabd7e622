/* lucidvk render: feature visualization of neurons, channels, layers,
 * directions and classes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "io/lvk_io.h"
#include "lucidvk/render.h"
#include "lvk_util.h"

static void help(void)
{
    printf(
        "usage: lucidvk render MODEL.onnx (-l LAYER -c CHANNELS | --objective EXPR) [options]\n\n"
        "Optimises images from noise so that the objective fires, as Lucid's render_vis does.\n\n"
        "What to visualize:\n"
        "  -l, --layer NAME       tensor to visualize ('lucidvk info MODEL' lists them)\n"
        "  -c, --channels LIST    channels, e.g. 7, 0-15 or 3,5,9: one image each, one batch\n"
        "      --neuron           the centre neuron of each channel instead of its mean\n"
        "      --objective EXPR   any objective, e.g. \"channel(L,52) - 0.05*tv\"; terms:\n"
        "                         channel neuron layer direction class group diversity\n"
        "                         tv l1 l2 blur; + - * / ( ); @i or batch(i, ...) binds a\n"
        "                         term to image i\n"
        "      --class K          shorthand for --objective \"class(K)\"\n"
        "      --negative         minimise instead (what the unit responds against)\n"
        "Optimisation:\n"
        "      --steps N          optimisation steps (default 512)\n"
        "      --lr X             Adam learning rate (default 0.05)\n"
        "      --seed N           random seed (default 0); same seed, device and settings\n"
        "                         give the same bytes\n"
        "      --size PX          image size (default 128, or the model's input if smaller)\n"
        "      --batch N          images (default: one per channel, or from the objective)\n"
        "      --param fft|pixel  parameterization (default fft: Lucid's spectral image)\n"
        "      --decay X          spectral decay power (default 1)\n"
        "      --no-decorrelate   plain RGB instead of decorrelated colour\n"
        "      --transforms none|standard   random jitter, scale and rotation each step\n"
        "                         (default standard; pixel amounts scale with the image\n"
        "                         below 128 px)\n"
        "      --no-redirect      no ReLU gradient redirection: by default, for the first\n"
        "                         16 steps ReLUs pass gradients that would switch a dead\n"
        "                         unit on, as Lucid does, so dead units still learn\n"
        "Output:\n"
        "  -o, --out FILE.png     the image, or a contact sheet of the batch (default render.png)\n"
        "      --out-dir DIR      also each image as DIR/<i>.png\n"
        "      --save-every N     also FILE_stepN.png every N steps\n"
        "      --json FILE        settings, seed, device, objective curve and timings\n"
        "      --device N|NAME    Vulkan device\n"
        CLI_PREPROC_HELP);
}

/* "0-7", "3,5,9", "2,10-12" -> list. */
static int parse_channels(const char *s, int *out, int max)
{
    int n = 0;
    while (*s) {
        char *end;
        long a = strtol(s, &end, 10), b = a;
        if (end == s || a < 0)
            return -1;
        s = end;
        if (*s == '-') {
            b = strtol(s + 1, &end, 10);
            if (end == s + 1 || b < a)
                return -1;
            s = end;
        }
        for (long c = a; c <= b; c++) {
            if (n == max)
                return -1;
            out[n++] = (int)c;
        }
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    return n;
}

struct progress {
    bool tty;
    double t0;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void on_progress(void *user, int step, int steps, double value)
{
    struct progress *p = user;
    double dt = now() - p->t0, rate = step / (dt > 0 ? dt : 1e-9);
    double eta = (steps - step) / rate;
    if (p->tty)
        fprintf(stderr, "\rstep %4d/%d  objective %10.4f  %6.2f steps/s  ETA %3dm%02ds   ", step, steps,
                value, rate, (int)eta / 60, (int)eta % 60);
    if (p->tty && step == steps)
        fprintf(stderr, "\n");
}

struct snap {
    const char *out;
};

static lvk_status write_sheet(const char *path, const float *images, int b, int c, int h, int w)
{
    struct lvk_image sheet;
    if (b == 1) {
        struct lvk_image one = {.w = w, .h = h, .c = c, .data = (float *)images};
        return lvk_png_write(path, &one);
    }
    LVK_CHECK(lvk_image_sheet(images, b, c, h, w, 0, 2, 1.0f, &sheet));
    lvk_status st = lvk_png_write(path, &sheet);
    lvk_image_free(&sheet);
    return st;
}

static void step_path(const char *out, int step, char *buf, size_t len)
{
    size_t n = strlen(out);
    if (n > 4 && !strcmp(out + n - 4, ".png"))
        n -= 4;
    snprintf(buf, len, "%.*s_step%d.png", (int)n, out, step);
}

static void on_snapshot(void *user, int step, const float *images, int b, int c, int h, int w)
{
    const struct snap *s = user;
    char path[1100];
    step_path(s->out, step, path, sizeof path);
    if (write_sheet(path, images, b, c, h, w) != LVK_OK)
        fprintf(stderr, "lucidvk: %s\n", lvk_last_error());
}

struct user {
    struct progress p;
    struct snap s;
};

static void cb_progress(void *u, int step, int steps, double v) { on_progress(&((struct user *)u)->p, step, steps, v); }
static void cb_snapshot(void *u, int step, const float *im, int b, int c, int h, int w)
{
    on_snapshot(&((struct user *)u)->s, step, im, b, c, h, w);
}

static lvk_status write_json(const char *path, const char *model, const char *objective,
                             const struct lvk_render_opts *o, const struct lvk_render_result *r,
                             const lvk_ctx_t *ctx)
{
    struct lvk_jw w = {0};
    lvk_jw_begin_object(&w);
    lvk_jw_key(&w, "model"); lvk_jw_string(&w, model);
    lvk_jw_key(&w, "objective"); lvk_jw_string(&w, objective);
    lvk_jw_key(&w, "negative"); lvk_jw_bool(&w, o->negative);
    lvk_jw_key(&w, "seed"); lvk_jw_int(&w, (int64_t)o->seed);
    lvk_jw_key(&w, "steps"); lvk_jw_int(&w, r->steps);
    lvk_jw_key(&w, "lr"); lvk_jw_number(&w, o->lr > 0 ? o->lr : 0.05);
    lvk_jw_key(&w, "param"); lvk_jw_string(&w, o->param == LVK_PARAM_FFT ? "fft" : "pixel");
    lvk_jw_key(&w, "decorrelate"); lvk_jw_bool(&w, !o->no_decorrelate);
    lvk_jw_key(&w, "transforms"); lvk_jw_string(&w, o->no_transforms ? "none" : "standard");
    lvk_jw_key(&w, "batch"); lvk_jw_int(&w, r->batch);
    lvk_jw_key(&w, "size"); lvk_jw_begin_array(&w); lvk_jw_int(&w, r->height); lvk_jw_int(&w, r->width); lvk_jw_end_array(&w);
    lvk_jw_key(&w, "network_size"); lvk_jw_begin_array(&w); lvk_jw_int(&w, r->net_height); lvk_jw_int(&w, r->net_width); lvk_jw_end_array(&w);
    lvk_jw_key(&w, "device"); lvk_jw_string(&w, lvk_ctx_device(ctx)->name);
    lvk_jw_key(&w, "driver"); lvk_jw_string(&w, lvk_ctx_device(ctx)->driver);
    lvk_jw_key(&w, "value_start"); lvk_jw_begin_array(&w);
    for (int b = 0; b < r->batch; b++) lvk_jw_number(&w, r->value_start[b]);
    lvk_jw_end_array(&w);
    lvk_jw_key(&w, "value_end"); lvk_jw_begin_array(&w);
    for (int b = 0; b < r->batch; b++) lvk_jw_number(&w, r->value_end[b]);
    lvk_jw_end_array(&w);
    lvk_jw_key(&w, "curve"); lvk_jw_begin_array(&w);
    for (int s = 0; s < r->steps; s++) {
        if (isnan(r->curve[s])) lvk_jw_null(&w);
        else lvk_jw_number(&w, r->curve[s]);
    }
    lvk_jw_end_array(&w);
    lvk_jw_key(&w, "setup_seconds"); lvk_jw_number(&w, r->setup_seconds);
    lvk_jw_key(&w, "seconds"); lvk_jw_number(&w, r->seconds);
    lvk_jw_key(&w, "steps_per_second"); lvk_jw_number(&w, r->steps / (r->seconds > 0 ? r->seconds : 1e-9));
    lvk_jw_end_object(&w);
    return lvk_jw_write(&w, path);
}

int cmd_render(int argc, char **argv)
{
    static const struct option opts[] = {
        {"layer", required_argument, 0, 'l'}, {"channels", required_argument, 0, 'c'},
        {"neuron", no_argument, 0, 'N'}, {"objective", required_argument, 0, 'x'},
        {"class", required_argument, 0, 'K'}, {"negative", no_argument, 0, 'g'},
        {"steps", required_argument, 0, 's'}, {"lr", required_argument, 0, 'r'},
        {"seed", required_argument, 0, 'S'}, {"size", required_argument, 0, 'z'},
        {"batch", required_argument, 0, 'b'}, {"param", required_argument, 0, 'p'},
        {"decay", required_argument, 0, 'D'}, {"no-decorrelate", no_argument, 0, 'R'},
        {"transforms", required_argument, 0, 'T'}, {"no-redirect", no_argument, 0, 'n'},
        {"out", required_argument, 0, 'o'}, {"out-dir", required_argument, 0, 'O'},
        {"save-every", required_argument, 0, 'e'}, {"json", required_argument, 0, 'j'},
        {"device", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'},
        CLI_PREPROC_OPTIONS, {0, 0, 0, 0}};
    struct cli_preproc pre = {0};
    lvk_preproc_default(&pre.p);
    struct lvk_render_opts o = {.redirect_steps = -1};
    const char *layer = NULL, *channels = NULL, *objective = NULL, *klass = NULL, *device = NULL;
    const char *out = "render.png", *out_dir = NULL, *json = NULL;
    bool neuron = false;
    int c, r;
    optind = 1;
    while ((c = getopt_long(argc, argv, "l:c:o:d:h", opts, NULL)) != -1) {
        if ((r = cli_preproc_parse(&pre, c, optarg)) != 0) {
            if (r < 0)
                return 2;
            continue;
        }
        switch (c) {
        case 'l': layer = optarg; break;
        case 'c': channels = optarg; break;
        case 'N': neuron = true; break;
        case 'x': objective = optarg; break;
        case 'K': klass = optarg; break;
        case 'g': o.negative = 1; break;
        case 's': o.steps = atoi(optarg); if (o.steps < 1) return cli_usage_error("render", "--steps must be at least 1"); break;
        case 'r': o.lr = strtof(optarg, NULL); if (!(o.lr > 0)) return cli_usage_error("render", "--lr must be positive"); break;
        case 'S': o.seed = strtoull(optarg, NULL, 10); break;
        case 'z': o.size = atoi(optarg); if (o.size < 8) return cli_usage_error("render", "--size must be at least 8"); break;
        case 'b': o.batch = atoi(optarg); if (o.batch < 1) return cli_usage_error("render", "--batch must be at least 1"); break;
        case 'p':
            if (!strcmp(optarg, "fft")) o.param = LVK_PARAM_FFT;
            else if (!strcmp(optarg, "pixel")) o.param = LVK_PARAM_PIXEL;
            else return cli_usage_error("render", "--param is fft or pixel, not '%s'", optarg);
            break;
        case 'D': o.decay_power = strtof(optarg, NULL); break;
        case 'R': o.no_decorrelate = 1; break;
        case 'T':
            if (!strcmp(optarg, "none")) o.no_transforms = 1;
            else if (strcmp(optarg, "standard")) return cli_usage_error("render", "--transforms is none or standard");
            break;
        case 'n': o.redirect_steps = 0; break;
        case 'o': out = optarg; break;
        case 'O': out_dir = optarg; break;
        case 'e': o.snapshot_every = atoi(optarg); break;
        case 'j': json = optarg; break;
        case 'd': device = optarg; break;
        case 'h': help(); return 0;
        default: return 2;
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("render", "expected one MODEL.onnx");
    const char *path = argv[optind];
    int nset = (layer != NULL) + (objective != NULL) + (klass != NULL);
    if (nset != 1)
        return cli_usage_error("render", "give exactly one of -l LAYER, --objective EXPR, --class K");
    if (layer && !channels)
        return cli_usage_error("render", "-l needs -c CHANNELS (e.g. -c 0-7)");

    /* -l/-c and --class become objective text. */
    char *text = NULL;
    if (layer) {
        int list[1024];
        int n = parse_channels(channels, list, 1024);
        if (n < 1)
            return cli_usage_error("render", "bad channel list '%s' (e.g. 7, 0-15, 3,5,9)", channels);
        size_t cap = (size_t)n * (strlen(layer) + 48) + 1;
        text = malloc(cap);
        if (!text)
            return 1;
        size_t k = 0;
        for (int i = 0; i < n; i++)
            k += (size_t)snprintf(text + k, cap - k, n == 1 ? "%s%s('%s', %d)" : "%s%s('%s', %d)@%d",
                                  i ? " + " : "", neuron ? "neuron" : "channel", layer, list[i], i);
        if (!o.batch)
            o.batch = n;
    } else if (klass) {
        text = malloc(strlen(klass) + 16);
        if (!text)
            return 1;
        sprintf(text, "class(%s)", klass);
    } else {
        text = strdup(objective);
    }
    o.objective = text;

    lvk_status st = cli_preproc_resolve(&pre, path, &o.pre);
    lvk_ctx_t *ctx = NULL;
    struct lvk_render_result res = {0};
    struct user u = {.p = {.tty = isatty(2), .t0 = now()}, .s = {.out = out}};
    o.progress = cb_progress;
    o.progress_every = u.p.tty ? 4 : 0;
    o.snapshot = cb_snapshot;
    o.user = &u;
    int status = 1;
    if (st == LVK_OK)
        st = cli_open(device, &ctx);
    if (st == LVK_OK) {
        if (u.p.tty)
            fprintf(stderr, "rendering %s on %s\n", text, lvk_ctx_device(ctx)->name);
        u.p.t0 = now();
        st = lvk_render(ctx, path, &o, &res);
    }
    if (st == LVK_OK)
        st = write_sheet(out, res.images, res.batch, res.channels, res.height, res.width);
    if (st == LVK_OK && out_dir) {
        mkdir(out_dir, 0755);
        size_t one = (size_t)res.channels * res.height * res.width;
        for (int b = 0; b < res.batch && st == LVK_OK; b++) {
            char p[2048];
            snprintf(p, sizeof p, "%s/%d.png", out_dir, b);
            struct lvk_image im = {.w = res.width, .h = res.height, .c = res.channels,
                                   .data = res.images + (size_t)b * one};
            st = lvk_png_write(p, &im);
        }
    }
    if (st == LVK_OK && json)
        st = write_json(json, path, text, &o, &res, ctx);
    if (st == LVK_OK) {
        double mean0 = 0, mean1 = 0;
        for (int b = 0; b < res.batch; b++) {
            mean0 += res.value_start[b] / res.batch;
            mean1 += res.value_end[b] / res.batch;
        }
        printf("%s: %d image%s %dx%d, %d steps in %.1f s (%.2f steps/s); objective %.4g -> %.4g\n",
               out, res.batch, res.batch == 1 ? "" : "s", res.width, res.height, res.steps, res.seconds,
               res.steps / (res.seconds > 0 ? res.seconds : 1e-9), mean0, mean1);
        status = 0;
    } else {
        if (u.p.tty)
            fprintf(stderr, "\n");
        cli_error(st, NULL);
    }
    lvk_render_result_free(&res);
    lvk_ctx_destroy(ctx);
    free(text);
    return status;
}
