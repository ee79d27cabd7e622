/* The atlas: the shard split covers the work list exactly once for any
 * shard count, manifests round-trip byte for byte, a run killed with
 * SIGKILL resumes by rendering only what is missing, three shards merged
 * equal one unsharded run byte for byte, top dataset examples match the
 * model run directly, and the site loads in headless Chromium.
 *
 * The end-to-end tests run the lucidvk binary as a child process on the
 * demo model, as a user or a scheduler would. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/lvk_io.h"
#include "io/site.h"
#include "optvis/atlas.h"
#include "support/op_harness.h"

#define DEMO LVK_SOURCE_DIR "/assets/demo/fashion_cnn.onnx"
#define DEMO_IMAGES LVK_SOURCE_DIR "/assets/demo"
#define LUCIDVK LVK_BINARY_DIR "/lucidvk"
#define OUT LVK_BINARY_DIR "/test_output/atlas"

/* ---- helpers ------------------------------------------------------------------------- */

static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (system(cmd) != 0)
        fail_msg("command failed: %s", cmd);
}

/* A fresh, empty directory under the test output folder. */
static const char *fresh(const char *name)
{
    static char path[8][1024];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, sizeof path[0], "%s/%s", OUT, name);
    sh("rm -rf '%s' && mkdir -p '%s'", p, p);
    return p;
}

static pid_t spawn(char *const *argv, const char *log)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static char *slurp(const char *path)
{
    uint8_t *d;
    size_t n;
    if (lvk_read_file(path, &d, &n) != LVK_OK)
        fail_msg("%s", lvk_last_error());
    return (char *)d;
}

/* Runs lucidvk with the arguments (NULL-terminated); returns its output
 * (malloc'd) and fails the test unless it exits with `want`. */
static char *lucidvk(int want, ...)
{
    char *argv[64];
    int n = 0;
    argv[n++] = LUCIDVK;
    va_list ap;
    va_start(ap, want);
    const char *s;
    while ((s = va_arg(ap, const char *)) && n < 63)
        argv[n++] = (char *)s;
    va_end(ap);
    argv[n] = NULL;
    char log[1100];
    snprintf(log, sizeof log, "%s/last_command.log", OUT);
    int status;
    pid_t pid = spawn(argv, log);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    char *text = slurp(log);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != want)
        fail_msg("lucidvk %s ... exited %d, wanted %d:\n%s", argv[1], WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                 want, text);
    if (strstr(text, "lucidvk: validation"))
        fail_msg("validation messages:\n%s", text);
    return text;
}

/* The end-to-end tests need the demo model, the binary and a device. */
static int have_demo(void)
{
    const char *missing = access(DEMO, R_OK) ? DEMO : access(LUCIDVK, X_OK) ? LUCIDVK : NULL;
    if (missing)
        print_message("%s not found: skipped\n", missing);
    return !missing && lvk_test_ctx() != NULL;
}

/* The common options of every end-to-end run: two layers, six channels,
 * negatives, batches of two; few steps, since what is tested is the
 * bookkeeping, not the pictures. */
#define JOB                                                                                                 \
    DEMO, "-l", "conv1_relu,conv2_relu", "-c", "0-5", "--negative", "--batch", "2", "--steps", "6", "--size", "28", \
        "--seed", "7"

static int count_items(const char *manifest)
{
    struct lvk_json *j;
    if (lvk_json_read(manifest, &j) != LVK_OK)
        return -1;
    const struct lvk_json *items = lvk_json_get(j, "items");
    int n = items ? (int)items->count : -1;
    lvk_json_free(j);
    return n;
}

/* ---- a work list without a model ----------------------------------------------------- */

/* Three layers of very different cost and channel count, as in a real
 * network: cheap and narrow early, expensive and wide late. */
static void synthetic(struct lvk_atlas *a, const char *const *names, int nlayers)
{
    static const int nch[] = {5, 13, 31};
    static const double cost[] = {1000, 9000, 40000};
    memset(a, 0, sizeof *a);
    lvk_atlas_settings_default(&a->s);
    a->s.steps = 16;
    a->s.batch = 4;
    a->s.negative = 1;
    a->s.diversity = 3;
    a->s.seed = 42;
    a->model_path = strdup("model.onnx");
    snprintf(a->model_hash, sizeof a->model_hash, "0123456789abcdef");
    a->model_bytes = 1234;
    a->nlayers = nlayers;
    a->layers = calloc((size_t)nlayers, sizeof *a->layers);
    for (int l = 0; l < nlayers; l++) {
        int k = names[l][5] - 'a'; /* "layerA/..." -> 0, 1, 2 */
        struct lvk_atlas_layer *L = &a->layers[l];
        L->name = strdup(names[l]);
        L->slug = lvk_atlas_slug(names[l]);
        L->c = nch[k] + 2;
        L->h = L->w = 7;
        L->nch = nch[k];
        L->channels = calloc((size_t)L->nch, sizeof *L->channels);
        for (int c = 0; c < L->nch; c++)
            L->channels[c] = L->c - 1 - c; /* descending: the list's order, not the index, counts */
        L->cost = cost[k];
    }
    assert_int_equal(lvk_atlas_plan(a), LVK_OK);
}

static const char *const k_names[] = {"layera/conv:0", "layerb", "layerc"};

static int cmp_int(const void *x, const void *y)
{
    return *(const int *)x - *(const int *)y;
}

static void test_plan_covers_every_item(void **state)
{
    struct lvk_atlas a;
    synthetic(&a, k_names, 3);
    /* Independent count: per channel one positive, one negative, three
     * diverse images. */
    int want = 0;
    for (int l = 0; l < 3; l++)
        want += a.layers[l].nch * (1 + 1 + 3);
    assert_int_equal(a.nitems, want);
    for (int l = 0; l < 3; l++)
        for (int c = 0; c < a.layers[l].nch; c++) {
            int ch = a.layers[l].channels[c];
            assert_true(lvk_atlas_find_item(&a, l, ch, LVK_ATLAS_POSITIVE, 0) >= 0);
            assert_true(lvk_atlas_find_item(&a, l, ch, LVK_ATLAS_NEGATIVE, 0) >= 0);
            for (int k = 0; k < 3; k++)
                assert_true(lvk_atlas_find_item(&a, l, ch, LVK_ATLAS_DIVERSE, k) >= 0);
            assert_int_equal(lvk_atlas_find_item(&a, l, ch, LVK_ATLAS_DIVERSE, 3), -1);
        }
    /* Units hold at most `batch` channels of one layer and kind. */
    for (int u = 0; u < a.nunits; u++) {
        const struct lvk_atlas_unit *U = &a.units[u];
        assert_true(U->nimages >= 1 && U->nimages <= (U->kind == LVK_ATLAS_DIVERSE ? 3 : 4));
        for (int i = U->item0; i < U->item0 + U->nitems; i++) {
            assert_int_equal(a.items[i].unit, u);
            assert_int_equal(a.items[i].layer, U->layer);
            assert_int_equal(a.items[i].kind, U->kind);
        }
    }
    lvk_atlas_free(&a);
}

static void test_shard_split(void **state)
{
    struct lvk_atlas a;
    synthetic(&a, k_names, 3);
    int ns[] = {1, 2, 3, 4, 5, 7, 16, a.nunits, a.nunits + 5};
    int *owner = malloc((size_t)a.nunits * sizeof *owner), *again = malloc((size_t)a.nunits * sizeof *again);
    int *seen = malloc((size_t)a.nitems * sizeof *seen);
    double maxcost = 0;
    for (int u = 0; u < a.nunits; u++)
        maxcost = fmax(maxcost, a.units[u].cost);
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        int n = ns[t];
        lvk_atlas_shard(&a, n, owner);
        lvk_atlas_shard(&a, n, again);
        assert_memory_equal(owner, again, (size_t)a.nunits * sizeof *owner);
        /* Each shard lists its items as a process would; the lists
         * together are every item exactly once. */
        int total = 0;
        double lo = INFINITY, hi = 0;
        for (int s = 0; s < n; s++) {
            double load = 0;
            for (int u = 0; u < a.nunits; u++) {
                if (owner[u] != s)
                    continue;
                load += a.units[u].cost;
                for (int i = a.units[u].item0; i < a.units[u].item0 + a.units[u].nitems; i++)
                    seen[total++] = i;
            }
            lo = fmin(lo, load);
            hi = fmax(hi, load);
        }
        assert_int_equal(total, a.nitems);
        qsort(seen, (size_t)total, sizeof *seen, cmp_int);
        for (int i = 0; i < total; i++)
            assert_int_equal(seen[i], i);
        /* Greedy on decreasing costs: no shard exceeds another by more
         * than the largest unit. */
        if (n <= a.nunits && hi - lo > maxcost)
            fail_msg("%d shards: loads %g..%g differ by more than the largest unit %g", n, lo, hi, maxcost);
        for (int u = 0; u < a.nunits; u++)
            assert_true(owner[u] >= 0 && owner[u] < n);
    }
    free(owner);
    free(again);
    free(seen);
    lvk_atlas_free(&a);
}

static void test_seeds_depend_on_the_item_only(void **state)
{
    /* The same layer in a different job (other layers around it) gets the
     * same seeds: a unit's pixels do not depend on the rest of the list. */
    struct lvk_atlas a, b;
    synthetic(&a, k_names, 3);
    const char *const only[] = {"layerb"};
    synthetic(&b, only, 1);
    int matched = 0;
    for (int u = 0; u < a.nunits; u++) {
        if (a.units[u].layer != 1)
            continue;
        for (int v = 0; v < b.nunits; v++)
            if (b.units[v].kind == a.units[u].kind && b.units[v].first == a.units[u].first) {
                assert_true(a.units[u].seed == b.units[v].seed);
                matched++;
            }
    }
    assert_int_equal(matched, b.nunits);
    /* and distinct units get distinct seeds */
    for (int u = 0; u < a.nunits; u++)
        for (int v = u + 1; v < a.nunits; v++)
            assert_false(a.units[u].seed == a.units[v].seed);
    lvk_atlas_free(&a);
    lvk_atlas_free(&b);
}

static void test_shard_options(void **state)
{
    int i, n;
    assert_int_equal(lvk_atlas_shard_parse("2/5", &i, &n), LVK_OK);
    assert_int_equal(i, 2);
    assert_int_equal(n, 5);
    assert_int_not_equal(lvk_atlas_shard_parse("5/5", &i, &n), LVK_OK);
    assert_int_not_equal(lvk_atlas_shard_parse("1/0", &i, &n), LVK_OK);
    assert_int_not_equal(lvk_atlas_shard_parse("-1/3", &i, &n), LVK_OK);
    assert_int_not_equal(lvk_atlas_shard_parse("1", &i, &n), LVK_OK);

    unsetenv("JOB_COMPLETION_INDEX");
    unsetenv("SLURM_ARRAY_TASK_ID");
    unsetenv("SLURM_ARRAY_TASK_MIN");
    unsetenv("SLURM_ARRAY_TASK_COUNT");
    assert_int_equal(lvk_atlas_shard_from_env(0, &i, &n), LVK_ERR_NOT_FOUND);
    /* Slurm arrays may start at 1 (--array=1-4): shards count from the minimum. */
    setenv("SLURM_ARRAY_TASK_ID", "3", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "1", 1);
    setenv("SLURM_ARRAY_TASK_COUNT", "4", 1);
    assert_int_equal(lvk_atlas_shard_from_env(0, &i, &n), LVK_OK);
    assert_int_equal(i, 2);
    assert_int_equal(n, 4);
    /* Kubernetes: the index from the Job, the count from --shards. */
    setenv("JOB_COMPLETION_INDEX", "6", 1);
    assert_int_not_equal(lvk_atlas_shard_from_env(0, &i, &n), LVK_OK);
    assert_int_equal(lvk_atlas_shard_from_env(8, &i, &n), LVK_OK);
    assert_int_equal(i, 6);
    assert_int_equal(n, 8);
    assert_int_not_equal(lvk_atlas_shard_from_env(6, &i, &n), LVK_OK);
    unsetenv("JOB_COMPLETION_INDEX");
    unsetenv("SLURM_ARRAY_TASK_ID");
    unsetenv("SLURM_ARRAY_TASK_MIN");
    unsetenv("SLURM_ARRAY_TASK_COUNT");
}

static void test_manifest_round_trip(void **state)
{
    struct lvk_atlas a, b;
    synthetic(&a, k_names, 3);
    srand(5);
    /* Every other item done, with values that are not round in decimal. */
    for (int i = 0; i < a.nitems; i += 2) {
        struct lvk_atlas_result *r = &a.results[i];
        r->done = 1;
        r->value_start = (float)(rand() / (double)RAND_MAX - 0.3);
        r->value_end = (float)(rand() / (double)RAND_MAX * 7.1);
        r->width = r->height = 28;
        r->seconds = rand() / (double)RAND_MAX;
        snprintf(r->time, sizeof r->time, "2024-01-02T03:04:05Z");
        r->device = strdup("dev \"quoted\" <x>");
        r->driver = strdup("drv");
    }
    const char *dir = fresh("roundtrip");
    char p1[1100], p2[1100];
    snprintf(p1, sizeof p1, "%s/one.json", dir);
    snprintf(p2, sizeof p2, "%s/two.json", dir);
    assert_int_equal(lvk_atlas_manifest_write(&a, p1, 1, 3), LVK_OK);
    int si, sn;
    if (lvk_atlas_manifest_read(p1, &b, &si, &sn) != LVK_OK)
        fail_msg("%s", lvk_last_error());
    assert_int_equal(si, 1);
    assert_int_equal(sn, 3);
    char why[256];
    if (!lvk_atlas_same_job(&a, &b, why, sizeof why))
        fail_msg("%s", why);
    assert_int_equal(b.nitems, a.nitems);
    for (int i = 0; i < a.nitems; i++) {
        assert_int_equal(b.results[i].done, a.results[i].done);
        assert_true((float)b.results[i].value_end == (float)a.results[i].value_end);
    }
    assert_int_equal(lvk_atlas_manifest_write(&b, p2, 1, 3), LVK_OK);
    char *t1 = slurp(p1), *t2 = slurp(p2);
    assert_string_equal(t1, t2);
    free(t1);
    free(t2);

    /* A different job is told apart, naming what differs; the diversity
     * weight counts only when there are diverse images. */
    b.s.diversity_weight = a.s.diversity_weight + 1;
    a.s.diversity = b.s.diversity = 0;
    assert_true(lvk_atlas_same_job(&a, &b, why, sizeof why));
    a.s.diversity = b.s.diversity = 2;
    assert_false(lvk_atlas_same_job(&a, &b, why, sizeof why));
    assert_non_null(strstr(why, "--diversity-weight"));
    b.s.diversity_weight = a.s.diversity_weight;
    b.s.steps++;
    assert_false(lvk_atlas_same_job(&a, &b, why, sizeof why));
    assert_non_null(strstr(why, "--steps"));
    lvk_atlas_free(&a);
    lvk_atlas_free(&b);
}

static void test_slug_and_escaping(void **state)
{
    char *s1 = lvk_atlas_slug("a/b"), *s2 = lvk_atlas_slug("a_b"), *s3 = lvk_atlas_slug("conv1_relu");
    char *s4 = lvk_atlas_slug("../x");
    assert_string_equal(s3, "conv1_relu");
    /* The hash is FNV-1a 64 of the name, low 32 bits (computed in Python). */
    char *s5 = lvk_atlas_slug("MobilenetV2/Conv/Relu6");
    assert_string_equal(s5, "MobilenetV2_Conv_Relu6-99648f96");
    free(s5);
    assert_string_equal(s2, "a_b");
    assert_string_not_equal(s1, s2);
    for (const char *p = s1; *p; p++)
        assert_non_null(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p));
    assert_null(strchr(s4, '/'));
    assert_true(s4[0] != '.');
    free(s1);
    free(s2);
    free(s3);
    free(s4);

    struct lvk_html h = {0};
    lvk_html_text(&h, "<a href=\"x\">Tom & 'Jerry'</a>");
    assert_string_equal(h.buf, "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;");
    lvk_html_free(&h);
}

/* ---- end to end ------------------------------------------------------------------------ */

struct png_id {
    ino_t ino;
    struct timespec mtime;
};

static void stat_png(const char *site, const char *file, struct png_id *id)
{
    char p[2200];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", site, file);
    assert_int_equal(stat(p, &sb), 0);
    id->ino = sb.st_ino;
    id->mtime = sb.st_mtim;
}

/* Every item of the work list is in the manifest once and its PNG decodes. */
static void check_complete(const char *site, const char *manifest_name)
{
    char manifest[1200];
    snprintf(manifest, sizeof manifest, "%s/%s", site, manifest_name);
    struct lvk_atlas a;
    if (lvk_atlas_manifest_read(manifest, &a, NULL, NULL) != LVK_OK)
        fail_msg("%s", lvk_last_error());
    assert_int_equal(lvk_atlas_done_items(&a), a.nitems);
    /* manifest_read marks items done; a duplicate entry would show as
     * more entries than items. */
    assert_int_equal(count_items(manifest), a.nitems);
    for (int i = 0; i < a.nitems; i++) {
        char file[600], p[2000];
        lvk_atlas_item_file(&a, i, file, sizeof file);
        if (!*file)
            continue;
        snprintf(p, sizeof p, "%s/%s", site, file);
        struct lvk_image im;
        if (lvk_png_read(p, 0, &im) != LVK_OK)
            fail_msg("%s", lvk_last_error());
        assert_int_equal(im.w, a.results[i].width);
        assert_int_equal(im.h, a.results[i].height);
        assert_int_equal(im.w, 28);
        lvk_image_free(&im);
    }
    lvk_atlas_free(&a);
}

static void test_resume_after_kill(void **state)
{
    if (!have_demo())
        skip();
    const char *site = fresh("resume");
    char manifest[1100], log[1100];
    snprintf(manifest, sizeof manifest, "%s/manifest.json", site);
    snprintf(log, sizeof log, "%s/first_run.log", OUT);
    char *argv[] = {LUCIDVK, "atlas", JOB, "-o", (char *)site, NULL};
    pid_t pid = spawn(argv, log);
    /* Kill it as soon as some but not all of the 24 items are written. */
    int before = 0, status;
    for (int tries = 0; tries < 60000; tries++) {
        before = count_items(manifest);
        if (before > 0 && before < 24)
            break;
        if (waitpid(pid, &status, WNOHANG) == pid)
            fail_msg("the first run ended before it could be killed (%d items)", before);
        usleep(2000);
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    /* Read what the manifest holds after the kill: the unit in flight may
     * have finished between the poll and the signal. */
    struct lvk_atlas a;
    if (lvk_atlas_manifest_read(manifest, &a, NULL, NULL) != LVK_OK)
        fail_msg("manifest after SIGKILL: %s", lvk_last_error());
    before = lvk_atlas_done_items(&a);
    assert_true(before > 0 && before < 24);
    print_message("killed after %d of 24 items\n", before);
    int *was_done = calloc((size_t)a.nitems, sizeof *was_done);
    struct png_id *ids = calloc((size_t)a.nitems, sizeof *ids);
    for (int i = 0; i < a.nitems; i++)
        if ((was_done[i] = a.results[i].done)) {
            char file[600];
            lvk_atlas_item_file(&a, i, file, sizeof file);
            stat_png(site, file, &ids[i]);
        }

    char *text = lucidvk(0, "atlas", JOB, "-o", site, NULL);
    int rendered = -1, reused = -1;
    const char *line = strstr(text, "rendered ");
    assert_non_null(line);
    assert_int_equal(sscanf(line, "rendered %d items", &rendered), 1);
    const char *r2 = strstr(line, "; ");
    assert_non_null(r2);
    assert_int_equal(sscanf(r2, "; %d were already done", &reused), 1);
    assert_int_equal(rendered, 24 - before);
    assert_int_equal(reused, before);
    free(text);
    check_complete(site, "manifest.json");

    /* The items done before the kill were not rewritten: same file (a
     * rewrite renames a new inode into place) and same timestamp. */
    for (int i = 0; i < a.nitems; i++)
        if (was_done[i]) {
            char file[600];
            struct png_id now;
            lvk_atlas_item_file(&a, i, file, sizeof file);
            stat_png(site, file, &now);
            assert_true(now.ino == ids[i].ino);
            assert_true(now.mtime.tv_sec == ids[i].mtime.tv_sec && now.mtime.tv_nsec == ids[i].mtime.tv_nsec);
        }
    /* A third run has nothing to do. */
    text = lucidvk(0, "atlas", JOB, "-o", site, NULL);
    assert_non_null(strstr(text, "rendered 0 items"));
    free(text);
    /* A damaged image is noticed and its whole batch redone. */
    char file[600], p[1800];
    lvk_atlas_item_file(&a, 0, file, sizeof file);
    snprintf(p, sizeof p, "%s/%s", site, file);
    assert_int_equal(lvk_write_file_atomic(p, "not a png", 9), LVK_OK);
    text = lucidvk(0, "atlas", JOB, "-o", site, NULL);
    assert_non_null(strstr(text, "rendered 2 items"));
    free(text);
    check_complete(site, "manifest.json");
    /* Bad lists and layers fail with a message naming them. */
    text = lucidvk(1, "atlas", DEMO, "-l", "conv1_relu", "-c", "5-2", "-o", site, NULL);
    assert_non_null(strstr(text, "bad channel list '5-2'"));
    free(text);
    text = lucidvk(1, "atlas", DEMO, "-l", "conv1_relu", "-c", "0,40", "-o", site, NULL);
    assert_non_null(strstr(text, "'conv1_relu' has 32 channels"));
    free(text);
    text = lucidvk(1, "atlas", DEMO, "-l", "conv1_relu,nope", "-o", site, NULL);
    assert_non_null(strstr(text, "nope"));
    free(text);
    /* Other settings in the same directory are refused. */
    text = lucidvk(1, "atlas", JOB, "--steps", "7", "-o", site, NULL);
    assert_non_null(strstr(text, "different job"));
    free(text);
    free(was_done);
    free(ids);
    lvk_atlas_free(&a);
}

/* Items of two manifests, each without its timing fields, as text. */
static void strip_timing(struct lvk_json *items)
{
    for (struct lvk_json *o = items->child; o; o = o->next)
        for (struct lvk_json *f = o->child; f; f = f->next)
            if (!strcmp(f->key, "seconds") || !strcmp(f->key, "time")) {
                f->type = LVK_JSON_NULL;
                free(f->string);
                f->string = NULL;
                f->number = 0;
            }
}

static int json_equal(const struct lvk_json *x, const struct lvk_json *y)
{
    if (x->type != y->type || x->count != y->count || (x->key == NULL) != (y->key == NULL) ||
        (x->key && strcmp(x->key, y->key)))
        return 0;
    if (x->type == LVK_JSON_NUMBER || x->type == LVK_JSON_BOOL)
        return x->number == y->number;
    if (x->type == LVK_JSON_STRING)
        return !strcmp(x->string, y->string);
    for (const struct lvk_json *a = x->child, *b = y->child; a; a = a->next, b = b->next)
        if (!json_equal(a, b))
            return 0;
    return 1;
}

static void files_equal(const char *d1, const char *d2, const char *file)
{
    char p1[1800], p2[1800];
    uint8_t *a, *b;
    size_t na, nb;
    snprintf(p1, sizeof p1, "%s/%s", d1, file);
    snprintf(p2, sizeof p2, "%s/%s", d2, file);
    assert_int_equal(lvk_read_file(p1, &a, &na), LVK_OK);
    assert_int_equal(lvk_read_file(p2, &b, &nb), LVK_OK);
    if (na != nb || memcmp(a, b, na))
        fail_msg("%s differs between %s and %s", file, d1, d2);
    free(a);
    free(b);
}

static void test_merge_equals_unsharded(void **state)
{
    if (!have_demo())
        skip();
    const char *one = fresh("unsharded"), *shared = fresh("shards_shared"), *own = fresh("shard_own");
    free(lucidvk(0, "atlas", JOB, "-o", one, NULL));
    /* Shards 0 and 1 share a directory, as on a shared file system;
     * shard 2 writes its own, as on a machine without one. */
    free(lucidvk(0, "atlas", JOB, "--shard", "0/3", "-o", shared, NULL));
    free(lucidvk(0, "atlas", JOB, "--shard", "1/3", "-o", shared, NULL));
    /* Merging now is refused: shard 2 is missing. */
    char *text = lucidvk(1, "atlas-merge", shared, NULL);
    assert_non_null(strstr(text, "shard 2/3"));
    free(text);
    /* The scheduler's environment picks the shard (Slurm array, task 3 of 1-3). */
    setenv("SLURM_ARRAY_TASK_ID", "3", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "1", 1);
    setenv("SLURM_ARRAY_TASK_COUNT", "3", 1);
    text = lucidvk(0, "atlas", JOB, "--shard", "auto", "-o", own, NULL);
    unsetenv("SLURM_ARRAY_TASK_ID");
    unsetenv("SLURM_ARRAY_TASK_MIN");
    unsetenv("SLURM_ARRAY_TASK_COUNT");
    assert_non_null(strstr(text, "shard 2/3 complete"));
    free(text);

    /* The three parts are disjoint. */
    int parts = 0;
    for (int s = 0; s < 3; s++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/manifest.shard-%d-of-3.json", s < 2 ? shared : own, s);
        int n = count_items(p);
        assert_true(n > 0);
        parts += n;
    }
    assert_int_equal(parts, 24);

    text = lucidvk(0, "atlas-merge", shared, own, NULL);
    assert_non_null(strstr(text, "24 of 24 items"));
    free(text);
    check_complete(shared, "manifest.json");

    /* Same manifest entries (but for wall time and date) and the same
     * PNG bytes as the unsharded run. */
    char m1[1200], m2[1200];
    snprintf(m1, sizeof m1, "%s/manifest.json", one);
    snprintf(m2, sizeof m2, "%s/manifest.json", shared);
    struct lvk_json *j1, *j2;
    assert_int_equal(lvk_json_read(m1, &j1), LVK_OK);
    assert_int_equal(lvk_json_read(m2, &j2), LVK_OK);
    struct lvk_json *i1 = (struct lvk_json *)lvk_json_get(j1, "items"), *i2 = (struct lvk_json *)lvk_json_get(j2, "items");
    assert_int_equal(i1->count, 24);
    strip_timing(i1);
    strip_timing(i2);
    assert_true(json_equal(i1, i2));
    assert_true(json_equal(lvk_json_get(j1, "settings"), lvk_json_get(j2, "settings")));
    assert_true(json_equal(lvk_json_get(j1, "layers"), lvk_json_get(j2, "layers")));
    for (const struct lvk_json *o = i1->child; o; o = o->next)
        files_equal(one, shared, lvk_json_get(o, "file")->string);
    lvk_json_free(j1);
    lvk_json_free(j2);
    /* The merged site has every page the unsharded one has. */
    files_equal(one, shared, "layer/conv2_relu.html");
}

/* The dataset examples, recomputed here by running the model on every
 * image and ranking the channel means. */
static void test_top_examples(void **state)
{
    if (!have_demo() || access(DEMO_IMAGES, R_OK) != 0)
        skip();
    const char *site = fresh("examples");
    char *text = lucidvk(0, "atlas", DEMO, "-l", "conv2_relu", "-c", "0-3", "--steps", "4", "--batch", "4",
                         "--images", DEMO_IMAGES, "--top", "3", "-o", site, NULL);
    free(text);
    char manifest[1200];
    snprintf(manifest, sizeof manifest, "%s/manifest.json", site);
    struct lvk_atlas a;
    if (lvk_atlas_manifest_read(manifest, &a, NULL, NULL) != LVK_OK)
        fail_msg("%s", lvk_last_error());
    assert_int_equal(lvk_atlas_done_items(&a), a.nitems);

    char **names;
    int n;
    assert_int_equal(lvk_atlas_list_pngs(DEMO_IMAGES, &names, &n), LVK_OK);
    assert_true(n >= 3);
    assert_int_equal(a.ndataset, n);
    struct lvk_preproc pre;
    int found;
    lvk_preproc_default(&pre);
    assert_int_equal(lvk_preproc_load_sidecar(DEMO, &pre, &found), LVK_OK);
    const char *outs[] = {"conv2_relu"};
    struct lvk_model_opts mo = {.batch = 1, .outputs = outs, .noutputs = 1};
    lvk_model_t *m;
    assert_int_equal(lvk_model_load(lvk_test_ctx(), DEMO, &mo, &m), LVK_OK);
    struct lvk_tensor_info t;
    assert_int_equal(lvk_model_tensor_find(m, "conv2_relu", &t), LVK_OK);
    size_t hw = (size_t)t.shape[2] * t.shape[3], per = (size_t)t.shape[1] * hw;
    float *y = malloc(per * sizeof *y);
    double *mean = calloc((size_t)n * 4, sizeof *mean);
    for (int i = 0; i < n; i++) {
        char p[1200];
        struct lvk_image im;
        snprintf(p, sizeof p, "%s/%s", DEMO_IMAGES, names[i]);
        assert_int_equal(lvk_png_read(p, 1, &im), LVK_OK);
        assert_true(im.w == 28 && im.h == 28);
        lvk_preproc_apply(&pre, im.data, 1, 28, 28);
        assert_int_equal(lvk_model_set_input(m, lvk_model_input_name(m), im.data, 28 * 28), LVK_OK);
        assert_int_equal(lvk_model_forward(m), LVK_OK);
        assert_int_equal(lvk_model_read(m, "conv2_relu", y, per), LVK_OK);
        for (int c = 0; c < 4; c++) {
            for (size_t k = 0; k < hw; k++)
                mean[c * n + i] += y[c * hw + k];
            mean[c * n + i] /= (double)hw;
        }
        lvk_image_free(&im);
    }
    for (int c = 0; c < 4; c++) {
        int it = lvk_atlas_find_item(&a, 0, c, LVK_ATLAS_EXAMPLES, 0);
        assert_true(it >= 0);
        const struct lvk_atlas_result *r = &a.results[it];
        assert_int_equal(r->nex, 3);
        double best = INFINITY;
        for (int e = 0; e < 3; e++) {
            int i = 0;
            while (i < n && strcmp(names[i], r->ex[e].source))
                i++;
            assert_true(i < n);
            double v = mean[c * n + i];
            assert_true(fabs(r->ex[e].value - v) <= 1e-5 + 1e-5 * fabs(v));
            /* best first, and nothing left out beats the last one shown */
            assert_true(v <= best + 1e-6);
            best = v;
            char p[1800];
            struct lvk_image im;
            snprintf(p, sizeof p, "%s/%s", site, r->ex[e].file);
            assert_int_equal(lvk_png_read(p, 0, &im), LVK_OK);
            lvk_image_free(&im);
        }
        int above = 0;
        double hi = -INFINITY;
        for (int i = 0; i < n; i++) {
            above += mean[c * n + i] > best + 1e-5 * fabs(best) + 1e-6;
            hi = fmax(hi, mean[c * n + i]);
        }
        assert_true(above <= 2);
        assert_true(fabs(r->max - hi) <= 1e-5 + 1e-5 * fabs(hi));
    }
    free(y);
    free(mean);
    lvk_model_destroy(m);
    lvk_atlas_free_names(names, n);
    lvk_atlas_free(&a);
    lvk_test_assert_no_validation();
}

static void test_site_in_chromium(void **state)
{
    if (!have_demo())
        skip();
    const char *site = fresh("site");
    free(lucidvk(0, "atlas", JOB, "--diversity", "2", "--images", DEMO_IMAGES, "--top", "3", "-o", site, NULL));
    const char *shots = fresh("browser");
    char cmd[3000];
    snprintf(cmd, sizeof cmd,
             "sh '%s/tests/atlas_browser.sh' '%s' '%s' index.html layer/conv2_relu.html "
             "channel/conv2_relu/3.html > '%s/browser.log' 2>&1",
             LVK_SOURCE_DIR, site, shots, OUT);
    int rc = system(cmd);
    char logpath[1200];
    snprintf(logpath, sizeof logpath, "%s/browser.log", OUT);
    char *text = slurp(logpath);
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 77) {
        free(text);
        print_message("chromium is not installed (apt-get install chromium): skipped\n");
        skip();
    }
    if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
        fail_msg("the site failed in Chromium:\n%s", text);
    /* Every image of the three pages was inspected: a layer page shows
     * its six channels, a channel page the render, the negative, two
     * diverse images and three dataset examples. */
    assert_non_null(strstr(text, "layer/conv2_relu.html: 6 images, 0 broken"));
    assert_non_null(strstr(text, "channel/conv2_relu/3.html: 7 images, 0 broken"));
    print_message("%s", text);
    free(text);
}

int main(void)
{
    mkdir(LVK_BINARY_DIR "/test_output", 0755);
    mkdir(OUT, 0755);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_covers_every_item),
        cmocka_unit_test(test_shard_split),
        cmocka_unit_test(test_seeds_depend_on_the_item_only),
        cmocka_unit_test(test_shard_options),
        cmocka_unit_test(test_manifest_round_trip),
        cmocka_unit_test(test_slug_and_escaping),
        cmocka_unit_test(test_resume_after_kill),
        cmocka_unit_test(test_merge_equals_unsharded),
        cmocka_unit_test(test_top_examples),
        cmocka_unit_test(test_site_in_chromium),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
