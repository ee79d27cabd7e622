/* Atlas work list, shard split, manifest and the work of one unit (see
 * atlas.h). The site itself is written by io/site.c from the same struct.
 *
 * Non-goals: no locking between processes. Shards never share a file they
 * write (each item belongs to one unit, each unit to one shard, each shard
 * has its own manifest), so a shared file system needs nothing beyond
 * atomic rename. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "io/lvk_io.h"
#include "io/site.h"
#include "lucidvk/render.h"
#include "lvk_util.h"
#include "optvis/atlas.h"
#include "optvis/grid.h"

/* Dataset images forwarded per model call in an examples unit. */
#define EXAMPLES_BATCH 16
/* Longest side of a dataset image as copied into the site. */
#define EXAMPLE_SIDE 160
#define MAX_CHANNELS 65536

static const char *const k_kind[] = {"positive", "negative", "diverse", "examples"};

const char *lvk_atlas_kind_str(enum lvk_atlas_kind k)
{
    return (unsigned)k < LVK_ARRAY_LEN(k_kind) ? k_kind[k] : "?";
}

static int kind_parse(const char *s)
{
    for (int k = 0; k < (int)LVK_ARRAY_LEN(k_kind); k++)
        if (s && !strcmp(s, k_kind[k]))
            return k;
    return -1;
}

void lvk_atlas_settings_default(struct lvk_atlas_settings *s)
{
    memset(s, 0, sizeof *s);
    s->steps = 512;
    s->batch = 8;
    s->lr = 0.05f;
    s->decay = 1.0f;
    s->decorrelate = 1;
    s->transforms = 1;
    s->redirect = -1;
    s->diversity_weight = LVK_DIVERSITY_WEIGHT_DEFAULT;
    s->top = 8;
    lvk_preproc_default(&s->pre);
}

uint64_t lvk_atlas_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

char *lvk_atlas_slug(const char *name)
{
    size_t n = strlen(name);
    char *s = malloc(n + 18);
    if (!s)
        return NULL;
    int changed = n == 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        /* No leading '.': no hidden files, and never "." or "..". */
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                 c == '-' || (c == '.' && i > 0);
        s[i] = ok ? c : '_';
        changed |= !ok;
    }
    s[n] = 0;
    /* Replacing characters can make two names equal ("a/b" and "a_b"), so
     * a changed name carries a hash of the original. */
    if (changed)
        snprintf(s + n, 18, "-%08x", (unsigned)(lvk_fnv1a64(LVK_FNV1A64_BASIS, name, n) & 0xffffffffu));
    return s;
}

static void result_clear(struct lvk_atlas_result *r)
{
    free(r->device);
    free(r->driver);
    for (int i = 0; i < r->nex; i++) {
        free(r->ex[i].source);
        free(r->ex[i].file);
    }
    free(r->ex);
    memset(r, 0, sizeof *r);
}

/* ---- plan ------------------------------------------------------------------------- */

static uint64_t unit_seed(const struct lvk_atlas *a, int layer, int channel, enum lvk_atlas_kind kind)
{
    const char *name = a->layers[layer].name;
    uint64_t h = lvk_fnv1a64(LVK_FNV1A64_BASIS, name, strlen(name) + 1);
    int32_t v[2] = {channel, (int32_t)kind};
    h = lvk_fnv1a64(h, v, sizeof v);
    return lvk_atlas_mix(h ^ lvk_atlas_mix(a->s.seed));
}

lvk_status lvk_atlas_plan(struct lvk_atlas *a)
{
    for (int i = 0; a->results && i < a->nitems; i++)
        result_clear(&a->results[i]);
    free(a->results);
    free(a->units);
    free(a->items);
    a->results = NULL;
    a->units = NULL;
    a->items = NULL;
    a->nunits = a->nitems = 0;
    if (a->s.batch < 1 || a->s.steps < 1 || a->s.diversity < 0 || a->s.top < 0)
        return lvk_fail(LVK_ERR_INVALID_ARG, "atlas: batch and steps must be at least 1");
    int examples = a->images_dir && a->s.top > 0;
    /* Renders run at --size (by default 128, or the input if smaller),
     * dataset passes at the model's input size: a layer's cost, measured
     * at the input size, scales with the pixels. */
    int side = a->s.size ? a->s.size : LVK_MIN(128, a->input[2]);
    double pixels = 1;
    if (a->input[2] > 0 && a->input[3] > 0)
        pixels = (double)side * side / ((double)a->input[2] * a->input[3]);
    int nunits = 0, nitems = 0;
    for (int l = 0; l < a->nlayers; l++) {
        int nch = a->layers[l].nch, groups = (nch + a->s.batch - 1) / a->s.batch;
        nunits += groups * (1 + a->s.negative) + (a->s.diversity ? nch : 0) + examples;
        nitems += nch * (1 + a->s.negative + a->s.diversity + examples);
    }
    a->units = lvk_calloc((size_t)LVK_MAX(nunits, 1), sizeof *a->units);
    a->items = lvk_calloc((size_t)LVK_MAX(nitems, 1), sizeof *a->items);
    if (!a->units || !a->items)
        return LVK_ERR_HOST_OOM;

    int u = 0, it = 0;
    for (int l = 0; l < a->nlayers; l++) {
        const struct lvk_atlas_layer *L = &a->layers[l];
        for (int kind = LVK_ATLAS_POSITIVE; kind <= LVK_ATLAS_EXAMPLES; kind++) {
            if ((kind == LVK_ATLAS_NEGATIVE && !a->s.negative) || (kind == LVK_ATLAS_DIVERSE && !a->s.diversity) ||
                (kind == LVK_ATLAS_EXAMPLES && !examples))
                continue;
            int step = kind == LVK_ATLAS_DIVERSE ? 1 : kind == LVK_ATLAS_EXAMPLES ? L->nch : a->s.batch;
            for (int f = 0; f < L->nch; f += step) {
                struct lvk_atlas_unit *U = &a->units[u];
                U->kind = kind;
                U->layer = l;
                U->first = f;
                U->count = LVK_MIN(step, L->nch - f);
                U->nimages = kind == LVK_ATLAS_DIVERSE ? a->s.diversity : kind == LVK_ATLAS_EXAMPLES ? 0 : U->count;
                U->item0 = it;
                U->seed = unit_seed(a, l, L->channels[f], kind);
                /* Forward and backward cost about three forwards; a dataset
                 * pass is one forward per image. */
                U->cost = kind == LVK_ATLAS_EXAMPLES ? L->cost * a->ndataset
                                                     : 3.0 * L->cost * pixels * a->s.steps * U->nimages;
                int per = kind == LVK_ATLAS_DIVERSE ? a->s.diversity : 1;
                for (int c = 0; c < U->count; c++)
                    for (int k = 0; k < per; k++) {
                        struct lvk_atlas_item *I = &a->items[it++];
                        I->unit = u;
                        I->layer = l;
                        I->channel = L->channels[f + c];
                        I->kind = kind;
                        I->k = kind == LVK_ATLAS_DIVERSE ? k : 0;
                        I->batch_index = kind == LVK_ATLAS_DIVERSE ? k : c;
                    }
                U->nitems = it - U->item0;
                u++;
            }
        }
    }
    LVK_ASSERT(u == nunits && it == nitems);
    a->nunits = nunits;
    a->nitems = nitems;
    a->results = lvk_calloc((size_t)LVK_MAX(nitems, 1), sizeof *a->results);
    return a->results ? LVK_OK : LVK_ERR_HOST_OOM;
}

void lvk_atlas_free(struct lvk_atlas *a)
{
    if (!a)
        return;
    for (int i = 0; a->results && i < a->nitems; i++)
        result_clear(&a->results[i]);
    for (int l = 0; a->layers && l < a->nlayers; l++) {
        free(a->layers[l].name);
        free(a->layers[l].slug);
        free(a->layers[l].channels);
    }
    free(a->layers);
    free(a->units);
    free(a->items);
    free(a->results);
    free(a->model_path);
    free(a->images_dir);
    memset(a, 0, sizeof *a);
}

void lvk_atlas_item_file(const struct lvk_atlas *a, int item, char *buf, size_t len)
{
    const struct lvk_atlas_item *I = &a->items[item];
    const char *slug = a->layers[I->layer].slug;
    switch (I->kind) {
    case LVK_ATLAS_POSITIVE: snprintf(buf, len, "img/%s/%d.png", slug, I->channel); break;
    case LVK_ATLAS_NEGATIVE: snprintf(buf, len, "img/%s/%d_neg.png", slug, I->channel); break;
    case LVK_ATLAS_DIVERSE: snprintf(buf, len, "img/%s/%d_div%d.png", slug, I->channel, I->k); break;
    default: snprintf(buf, len, "%s", ""); break;
    }
}

int lvk_atlas_find_item(const struct lvk_atlas *a, int layer, int channel, enum lvk_atlas_kind kind, int k)
{
    /* Items of a layer and kind are contiguous and in channel-list order,
     * so a scan over the layer's units finds it; atlases are small enough
     * that this linear walk is not worth an index. */
    for (int u = 0; u < a->nunits; u++) {
        const struct lvk_atlas_unit *U = &a->units[u];
        if (U->layer != layer || U->kind != kind)
            continue;
        for (int i = U->item0; i < U->item0 + U->nitems; i++)
            if (a->items[i].channel == channel && a->items[i].k == k)
                return i;
    }
    return -1;
}

/* ---- model and layers ---------------------------------------------------------- */

static lvk_status hash_file(const char *path, struct lvk_atlas *a)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return lvk_fail(LVK_ERR_IO, "%s: %s", path, strerror(errno));
    unsigned char buf[1 << 16];
    uint64_t h = LVK_FNV1A64_BASIS;
    int64_t total = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        h = lvk_fnv1a64(h, buf, n);
        total += (int64_t)n;
    }
    int err = ferror(f);
    fclose(f);
    if (err)
        return lvk_fail(LVK_ERR_IO, "%s: read error", path);
    snprintf(a->model_hash, sizeof a->model_hash, "%016llx", (unsigned long long)h);
    a->model_bytes = total;
    return LVK_OK;
}

static lvk_status parse_channels(const char *spec, int nch_layer, const char *layer, int **out, int *n)
{
    *out = NULL;
    *n = 0;
    if (!spec || !strcmp(spec, "all")) {
        int *ch = lvk_calloc((size_t)nch_layer, sizeof *ch);
        if (!ch)
            return LVK_ERR_HOST_OOM;
        for (int c = 0; c < nch_layer; c++)
            ch[c] = c;
        *out = ch;
        *n = nch_layer;
        return LVK_OK;
    }
    int *ch = lvk_calloc(MAX_CHANNELS, sizeof *ch);
    if (!ch)
        return LVK_ERR_HOST_OOM;
    int k = lvk_channel_list_parse(spec, ch, MAX_CHANNELS);
    if (k < 1) {
        free(ch);
        return lvk_fail(LVK_ERR_INVALID_ARG, "bad channel list '%s' (all, or e.g. 0-15 or 3,5,9)", spec);
    }
    for (int i = 0; i < k; i++) {
        if (ch[i] >= nch_layer) {
            int bad = ch[i];
            free(ch);
            return lvk_fail(LVK_ERR_INVALID_ARG, "layer '%s' has %d channels, not %d", layer, nch_layer, bad + 1);
        }
        for (int j = 0; j < i; j++)
            if (ch[j] == ch[i]) {
                int dup = ch[i];
                free(ch);
                return lvk_fail(LVK_ERR_INVALID_ARG, "channel %d is listed twice in '%s'", dup, spec);
            }
    }
    *out = ch;
    *n = k;
    return LVK_OK;
}

lvk_status lvk_atlas_init(lvk_ctx_t *ctx, const char *model_path, const char *const *layers, int nlayers,
                          const char *channels, const struct lvk_atlas_settings *s,
                          const char *images_dir, struct lvk_atlas *out)
{
    memset(out, 0, sizeof *out);
    lvk_model_t *m = NULL;
    double *prefix = NULL;
    lvk_status st;
    out->s = *s;
    out->s.pre.labels[0] = 0;
    if (nlayers < 1)
        return lvk_fail(LVK_ERR_INVALID_ARG, "atlas: no layers given");
    out->model_path = strdup(model_path);
    out->layers = lvk_calloc((size_t)nlayers, sizeof *out->layers);
    if (!out->model_path || !out->layers) {
        st = LVK_ERR_HOST_OOM;
        goto fail;
    }
    LVK_TRY(st, hash_file(model_path, out));
    struct lvk_model_opts mo = {0};
    LVK_TRY(st, lvk_model_load(ctx, model_path, &mo, &m));
    struct lvk_tensor_info t;
    LVK_TRY(st, lvk_model_tensor_find(m, lvk_model_input_name(m), &t));
    if (t.ndim != 4) {
        st = lvk_fail(LVK_ERR_UNSUPPORTED, "%s: image input '%s' is not [N, C, H, W]", model_path, t.name);
        goto fail;
    }
    for (int d = 0; d < 4; d++)
        out->input[d] = (int)t.shape[d];

    /* Cost of a layer: the activation elements computed up to it, in graph
     * order, per image. A proxy for FLOPs that needs only shapes; what
     * matters for the split is that deeper and wider layers cost more. */
    out->ntensors = lvk_model_tensor_count(m);
    prefix = lvk_calloc((size_t)out->ntensors + 1, sizeof *prefix);
    if (!prefix) {
        st = LVK_ERR_HOST_OOM;
        goto fail;
    }
    for (int i = 0; i < out->ntensors; i++) {
        LVK_TRY(st, lvk_model_tensor_at(m, i, &t));
        double e = 0;
        if (!t.is_const && t.ndim > 0) {
            e = 1;
            for (int d = 1; d < t.ndim; d++)
                e *= (double)t.shape[d];
        }
        prefix[i + 1] = prefix[i] + e;
    }

    out->nlayers = nlayers;
    for (int l = 0; l < nlayers; l++) {
        struct lvk_atlas_layer *L = &out->layers[l];
        for (int j = 0; j < l; j++)
            if (!strcmp(layers[j], layers[l])) {
                st = lvk_fail(LVK_ERR_INVALID_ARG, "layer '%s' is listed twice", layers[l]);
                goto fail;
            }
        LVK_TRY(st, lvk_model_tensor_find(m, layers[l], &t));
        if (!((t.ndim == 4 || t.ndim == 2) && t.shape[0] == 1 && !t.is_const)) {
            st = lvk_fail(LVK_ERR_UNSUPPORTED, "layer '%s' is not an activation of shape [1, C, H, W] or [1, C]",
                          layers[l]);
            goto fail;
        }
        L->name = strdup(layers[l]);
        L->slug = lvk_atlas_slug(layers[l]);
        if (!L->name || !L->slug) {
            st = LVK_ERR_HOST_OOM;
            goto fail;
        }
        L->c = (int)t.shape[1];
        L->h = t.ndim == 4 ? (int)t.shape[2] : 1;
        L->w = t.ndim == 4 ? (int)t.shape[3] : 1;
        for (int i = 0; i < out->ntensors; i++) {
            struct lvk_tensor_info ti;
            LVK_TRY(st, lvk_model_tensor_at(m, i, &ti));
            if (!strcmp(ti.name, layers[l])) {
                L->cost = floor(prefix[i + 1]);
                break;
            }
        }
        LVK_TRY(st, parse_channels(channels, L->c, L->name, &L->channels, &L->nch));
    }
    if (images_dir) {
        char **names = NULL;
        LVK_TRY(st, lvk_atlas_list_pngs(images_dir, &names, &out->ndataset));
        lvk_atlas_free_names(names, out->ndataset);
        if (out->ndataset == 0) {
            st = lvk_fail(LVK_ERR_INVALID_ARG, "%s: no PNG images", images_dir);
            goto fail;
        }
        out->images_dir = strdup(images_dir);
        if (!out->images_dir) {
            st = LVK_ERR_HOST_OOM;
            goto fail;
        }
    }
    LVK_TRY(st, lvk_atlas_plan(out));
    free(prefix);
    lvk_model_destroy(m);
    return LVK_OK;
fail:
    free(prefix);
    lvk_model_destroy(m);
    lvk_atlas_free(out);
    return st;
}

/* ---- shards ----------------------------------------------------------------------- */

static const struct lvk_atlas *g_sort_atlas;

static int by_cost_desc(const void *pa, const void *pb)
{
    int a = *(const int *)pa, b = *(const int *)pb;
    double ca = g_sort_atlas->units[a].cost, cb = g_sort_atlas->units[b].cost;
    if (ca != cb)
        return ca > cb ? -1 : 1;
    return a - b;
}

void lvk_atlas_shard(const struct lvk_atlas *a, int n, int *owner)
{
    LVK_ASSERT(n >= 1);
    int *order = malloc((size_t)LVK_MAX(a->nunits, 1) * sizeof *order);
    double *load = calloc((size_t)n, sizeof *load);
    LVK_ASSERT(order && load);
    for (int u = 0; u < a->nunits; u++)
        order[u] = u;
    /* qsort is not stable, so the comparison breaks ties by position: the
     * order, and so the split, is the same in every process. */
    g_sort_atlas = a;
    qsort(order, (size_t)a->nunits, sizeof *order, by_cost_desc);
    g_sort_atlas = NULL;
    for (int i = 0; i < a->nunits; i++) {
        int best = 0;
        for (int s = 1; s < n; s++)
            if (load[s] < load[best])
                best = s;
        owner[order[i]] = best;
        load[best] += a->units[order[i]].cost;
    }
    free(order);
    free(load);
}

lvk_status lvk_atlas_shard_parse(const char *s, int *index, int *count)
{
    char *end;
    long i = strtol(s, &end, 10);
    if (end == s || *end != '/')
        return lvk_fail(LVK_ERR_INVALID_ARG, "shard '%s' is not I/N", s);
    const char *p = end + 1;
    long n = strtol(p, &end, 10);
    if (end == p || *end || n < 1 || i < 0 || i >= n || n > 1000000)
        return lvk_fail(LVK_ERR_INVALID_ARG, "shard '%s': need 0 <= I < N", s);
    *index = (int)i;
    *count = (int)n;
    return LVK_OK;
}

static int env_int(const char *name, long *v)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return 0;
    char *end;
    *v = strtol(s, &end, 10);
    return *end == 0;
}

lvk_status lvk_atlas_shard_from_env(int count_hint, int *index, int *count)
{
    long i, n, lo;
    if (env_int("JOB_COMPLETION_INDEX", &i)) {
        if (count_hint < 1)
            return lvk_fail(LVK_ERR_INVALID_ARG, "JOB_COMPLETION_INDEX is set: give the shard count with --shards N "
                                                 "(the Job's completions)");
        n = count_hint;
    } else if (env_int("SLURM_ARRAY_TASK_ID", &i)) {
        /* --array=1-8 numbers tasks from 1: shards count from the lowest. */
        if (env_int("SLURM_ARRAY_TASK_MIN", &lo))
            i -= lo;
        if (count_hint > 0)
            n = count_hint;
        else if (!env_int("SLURM_ARRAY_TASK_COUNT", &n))
            return lvk_fail(LVK_ERR_INVALID_ARG, "SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT: "
                                                 "give --shards N");
    } else {
        return lvk_fail(LVK_ERR_NOT_FOUND, "no shard in the environment (JOB_COMPLETION_INDEX or "
                                           "SLURM_ARRAY_TASK_ID)");
    }
    if (n < 1 || i < 0 || i >= n)
        return lvk_fail(LVK_ERR_INVALID_ARG, "shard %ld of %ld from the environment is out of range", i, n);
    *index = (int)i;
    *count = (int)n;
    return LVK_OK;
}

void lvk_atlas_manifest_name(int index, int count, char *buf, size_t len)
{
    if (count <= 1)
        snprintf(buf, len, "manifest.json");
    else
        snprintf(buf, len, "manifest.shard-%d-of-%d.json", index, count);
}

/* ---- manifest: writing --------------------------------------------------------------- */

static void jw_triple(struct lvk_jw *w, const char *key, const float *v, int n)
{
    lvk_jw_key(w, key);
    lvk_jw_begin_array(w);
    for (int i = 0; i < n; i++)
        lvk_jw_number(w, v[i]);
    lvk_jw_end_array(w);
}

static void write_settings(struct lvk_jw *w, const struct lvk_atlas_settings *s)
{
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed);
    lvk_jw_begin_object(w);
    lvk_jw_key(w, "steps"); lvk_jw_int(w, s->steps);
    lvk_jw_key(w, "size"); lvk_jw_int(w, s->size);
    lvk_jw_key(w, "batch"); lvk_jw_int(w, s->batch);
    lvk_jw_key(w, "lr"); lvk_jw_number(w, s->lr);
    lvk_jw_key(w, "param"); lvk_jw_string(w, s->pixel ? "pixel" : "fft");
    lvk_jw_key(w, "decay"); lvk_jw_number(w, s->decay);
    lvk_jw_key(w, "decorrelate"); lvk_jw_bool(w, s->decorrelate);
    lvk_jw_key(w, "transforms"); lvk_jw_bool(w, s->transforms);
    lvk_jw_key(w, "redirect"); lvk_jw_int(w, s->redirect);
    /* A string: 64-bit seeds do not survive a JSON number (double). */
    lvk_jw_key(w, "seed"); lvk_jw_string(w, seed);
    lvk_jw_key(w, "negative"); lvk_jw_bool(w, s->negative);
    lvk_jw_key(w, "diversity"); lvk_jw_int(w, s->diversity);
    lvk_jw_key(w, "diversity_weight"); lvk_jw_number(w, s->diversity_weight);
    lvk_jw_key(w, "top"); lvk_jw_int(w, s->top);
    float range[2] = {s->pre.lo, s->pre.hi};
    jw_triple(w, "range", range, 2);
    jw_triple(w, "mean", s->pre.mean, 3);
    jw_triple(w, "std", s->pre.std, 3);
    lvk_jw_key(w, "bgr"); lvk_jw_bool(w, s->pre.bgr);
    lvk_jw_end_object(w);
}

static void write_common(struct lvk_jw *w, const struct lvk_atlas_result *r)
{
    lvk_jw_key(w, "device"); lvk_jw_string(w, r->device ? r->device : "");
    lvk_jw_key(w, "driver"); lvk_jw_string(w, r->driver ? r->driver : "");
    lvk_jw_key(w, "seconds"); lvk_jw_number(w, r->seconds);
    lvk_jw_key(w, "time"); lvk_jw_string(w, r->time);
}

static void write_item(struct lvk_jw *w, const struct lvk_atlas *a, int i)
{
    const struct lvk_atlas_item *I = &a->items[i];
    const struct lvk_atlas_unit *U = &a->units[I->unit];
    const struct lvk_atlas_result *r = &a->results[i];
    char buf[600];
    lvk_jw_begin_object(w);
    lvk_jw_key(w, "layer"); lvk_jw_string(w, a->layers[I->layer].name);
    lvk_jw_key(w, "channel"); lvk_jw_int(w, I->channel);
    lvk_jw_key(w, "variant"); lvk_jw_string(w, lvk_atlas_kind_str(I->kind));
    if (I->kind == LVK_ATLAS_EXAMPLES) {
        lvk_jw_key(w, "images"); lvk_jw_int(w, r->nimages);
        lvk_jw_key(w, "mean"); lvk_jw_number(w, (float)r->mean);
        lvk_jw_key(w, "std"); lvk_jw_number(w, (float)r->std);
        lvk_jw_key(w, "min"); lvk_jw_number(w, (float)r->min);
        lvk_jw_key(w, "max"); lvk_jw_number(w, (float)r->max);
        lvk_jw_key(w, "positive"); lvk_jw_number(w, (float)r->positive);
        lvk_jw_key(w, "top");
        lvk_jw_begin_array(w);
        for (int e = 0; e < r->nex; e++) {
            lvk_jw_begin_object(w);
            lvk_jw_key(w, "source"); lvk_jw_string(w, r->ex[e].source);
            lvk_jw_key(w, "file"); lvk_jw_string(w, r->ex[e].file);
            lvk_jw_key(w, "value"); lvk_jw_number(w, (float)r->ex[e].value);
            lvk_jw_end_object(w);
        }
        lvk_jw_end_array(w);
    } else {
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)U->seed);
        lvk_jw_key(w, "k"); lvk_jw_int(w, I->k);
        lvk_atlas_item_file(a, i, buf + 32, sizeof buf - 32);
        lvk_jw_key(w, "file"); lvk_jw_string(w, buf + 32);
        lvk_jw_key(w, "seed"); lvk_jw_string(w, buf);
        lvk_jw_key(w, "batch_index"); lvk_jw_int(w, I->batch_index);
        lvk_jw_key(w, "batch_size"); lvk_jw_int(w, U->nimages);
        lvk_jw_key(w, "value_start"); lvk_jw_number(w, (float)r->value_start);
        lvk_jw_key(w, "value_end"); lvk_jw_number(w, (float)r->value_end);
        lvk_jw_key(w, "width"); lvk_jw_int(w, r->width);
        lvk_jw_key(w, "height"); lvk_jw_int(w, r->height);
    }
    write_common(w, r);
    lvk_jw_end_object(w);
}

lvk_status lvk_atlas_manifest_write(const struct lvk_atlas *a, const char *path, int shard_index, int shard_count)
{
    struct lvk_jw w = {0};
    lvk_jw_begin_object(&w);
    lvk_jw_key(&w, "format"); lvk_jw_string(&w, LVK_ATLAS_FORMAT);
    lvk_jw_key(&w, "version"); lvk_jw_int(&w, LVK_ATLAS_VERSION);
    lvk_jw_key(&w, "model");
    lvk_jw_begin_object(&w);
    lvk_jw_key(&w, "path"); lvk_jw_string(&w, a->model_path);
    lvk_jw_key(&w, "bytes"); lvk_jw_int(&w, a->model_bytes);
    lvk_jw_key(&w, "fnv1a64"); lvk_jw_string(&w, a->model_hash);
    lvk_jw_key(&w, "input");
    lvk_jw_begin_array(&w);
    for (int d = 0; d < 4; d++)
        lvk_jw_int(&w, a->input[d]);
    lvk_jw_end_array(&w);
    lvk_jw_key(&w, "tensors"); lvk_jw_int(&w, a->ntensors);
    lvk_jw_end_object(&w);
    lvk_jw_key(&w, "settings");
    write_settings(&w, &a->s);
    lvk_jw_key(&w, "dataset");
    if (a->images_dir) {
        lvk_jw_begin_object(&w);
        lvk_jw_key(&w, "dir"); lvk_jw_string(&w, a->images_dir);
        lvk_jw_key(&w, "images"); lvk_jw_int(&w, a->ndataset);
        lvk_jw_end_object(&w);
    } else {
        lvk_jw_null(&w);
    }
    if (shard_count > 1) {
        lvk_jw_key(&w, "shard");
        lvk_jw_begin_object(&w);
        lvk_jw_key(&w, "index"); lvk_jw_int(&w, shard_index);
        lvk_jw_key(&w, "count"); lvk_jw_int(&w, shard_count);
        lvk_jw_end_object(&w);
    }
    lvk_jw_key(&w, "layers");
    lvk_jw_begin_array(&w);
    for (int l = 0; l < a->nlayers; l++) {
        const struct lvk_atlas_layer *L = &a->layers[l];
        lvk_jw_begin_object(&w);
        lvk_jw_key(&w, "name"); lvk_jw_string(&w, L->name);
        lvk_jw_key(&w, "slug"); lvk_jw_string(&w, L->slug);
        lvk_jw_key(&w, "shape");
        lvk_jw_begin_array(&w);
        lvk_jw_int(&w, L->c); lvk_jw_int(&w, L->h); lvk_jw_int(&w, L->w);
        lvk_jw_end_array(&w);
        lvk_jw_key(&w, "cost"); lvk_jw_number(&w, L->cost);
        lvk_jw_key(&w, "channels");
        lvk_jw_begin_array(&w);
        for (int c = 0; c < L->nch; c++)
            lvk_jw_int(&w, L->channels[c]);
        lvk_jw_end_array(&w);
        lvk_jw_end_object(&w);
    }
    lvk_jw_end_array(&w);
    lvk_jw_key(&w, "total_items"); lvk_jw_int(&w, a->nitems);
    lvk_jw_key(&w, "items");
    lvk_jw_begin_array(&w);
    for (int i = 0; i < a->nitems; i++)
        if (a->results[i].done)
            write_item(&w, a, i);
    lvk_jw_end_array(&w);
    lvk_jw_end_object(&w);
    return lvk_jw_write(&w, path);
}

/* ---- manifest: reading --------------------------------------------------------------- */

static double jnum(const struct lvk_json *o, const char *key, double dflt)
{
    const struct lvk_json *v = lvk_json_get(o, key);
    return v && (v->type == LVK_JSON_NUMBER || v->type == LVK_JSON_BOOL) ? v->number : dflt;
}

static const char *jstr(const struct lvk_json *o, const char *key)
{
    const struct lvk_json *v = lvk_json_get(o, key);
    return v && v->type == LVK_JSON_STRING ? v->string : NULL;
}

static void jfloats(const struct lvk_json *o, const char *key, float *out, int n)
{
    const struct lvk_json *v = lvk_json_get(o, key);
    if (!v || v->type != LVK_JSON_ARRAY)
        return;
    int i = 0;
    for (const struct lvk_json *c = v->child; c && i < n; c = c->next, i++)
        out[i] = (float)c->number;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static lvk_status read_settings(const struct lvk_json *j, struct lvk_atlas_settings *s)
{
    if (!j || j->type != LVK_JSON_OBJECT)
        return lvk_fail(LVK_ERR_FORMAT, "no settings object");
    lvk_atlas_settings_default(s);
    s->steps = (int)jnum(j, "steps", 0);
    s->size = (int)jnum(j, "size", 0);
    s->batch = (int)jnum(j, "batch", 0);
    s->lr = (float)jnum(j, "lr", 0);
    const char *p = jstr(j, "param");
    s->pixel = p && !strcmp(p, "pixel");
    s->decay = (float)jnum(j, "decay", 0);
    s->decorrelate = (int)jnum(j, "decorrelate", 0);
    s->transforms = (int)jnum(j, "transforms", 0);
    s->redirect = (int)jnum(j, "redirect", 0);
    const char *seed = jstr(j, "seed");
    s->seed = seed ? strtoull(seed, NULL, 10) : 0;
    s->negative = (int)jnum(j, "negative", 0);
    s->diversity = (int)jnum(j, "diversity", 0);
    s->diversity_weight = (float)jnum(j, "diversity_weight", 0);
    s->top = (int)jnum(j, "top", 0);
    float range[2] = {0, 1};
    jfloats(j, "range", range, 2);
    s->pre.lo = range[0];
    s->pre.hi = range[1];
    jfloats(j, "mean", s->pre.mean, 3);
    jfloats(j, "std", s->pre.std, 3);
    s->pre.bgr = jnum(j, "bgr", 0) != 0;
    if (s->steps < 1 || s->batch < 1 || s->diversity < 0 || s->top < 0)
        return lvk_fail(LVK_ERR_FORMAT, "settings out of range");
    return LVK_OK;
}

static lvk_status read_layers(const struct lvk_json *j, struct lvk_atlas *a)
{
    if (!j || j->type != LVK_JSON_ARRAY || j->count < 1)
        return lvk_fail(LVK_ERR_FORMAT, "no layers");
    a->layers = lvk_calloc(j->count, sizeof *a->layers);
    if (!a->layers)
        return LVK_ERR_HOST_OOM;
    a->nlayers = (int)j->count;
    int l = 0;
    for (const struct lvk_json *o = j->child; o; o = o->next, l++) {
        struct lvk_atlas_layer *L = &a->layers[l];
        const char *name = jstr(o, "name");
        const struct lvk_json *shape = lvk_json_get(o, "shape"), *ch = lvk_json_get(o, "channels");
        if (!name || !shape || shape->type != LVK_JSON_ARRAY || shape->count != 3 || !ch ||
            ch->type != LVK_JSON_ARRAY || ch->count < 1)
            return lvk_fail(LVK_ERR_FORMAT, "layer %d: needs name, shape [C,H,W] and channels", l);
        L->name = strdup(name);
        L->slug = lvk_atlas_slug(name);
        L->channels = lvk_calloc(ch->count, sizeof *L->channels);
        if (!L->name || !L->slug || !L->channels)
            return LVK_ERR_HOST_OOM;
        L->c = (int)shape->child->number;
        L->h = (int)shape->child->next->number;
        L->w = (int)shape->child->next->next->number;
        L->cost = jnum(o, "cost", 0);
        for (const struct lvk_json *c = ch->child; c; c = c->next) {
            int v = (int)c->number;
            if (c->type != LVK_JSON_NUMBER || v < 0 || v >= L->c)
                return lvk_fail(LVK_ERR_FORMAT, "layer '%s': channel out of range", name);
            L->channels[L->nch++] = v;
        }
    }
    return LVK_OK;
}

static void read_common(const struct lvk_json *o, struct lvk_atlas_result *r)
{
    r->device = dup_or_null(jstr(o, "device"));
    r->driver = dup_or_null(jstr(o, "driver"));
    r->seconds = jnum(o, "seconds", 0);
    const char *t = jstr(o, "time");
    snprintf(r->time, sizeof r->time, "%s", t ? t : "");
}

static lvk_status read_item(const struct lvk_json *o, struct lvk_atlas *a)
{
    const char *layer = jstr(o, "layer");
    int kind = kind_parse(jstr(o, "variant"));
    int channel = (int)jnum(o, "channel", -1), k = (int)jnum(o, "k", 0);
    int l = 0;
    while (layer && l < a->nlayers && strcmp(a->layers[l].name, layer))
        l++;
    if (!layer || l == a->nlayers || kind < 0)
        return lvk_fail(LVK_ERR_FORMAT, "item of unknown layer or variant");
    int i = lvk_atlas_find_item(a, l, channel, (enum lvk_atlas_kind)kind, k);
    if (i < 0)
        return lvk_fail(LVK_ERR_FORMAT, "item %s/%d/%s/%d is not in the work list", layer, channel,
                        lvk_atlas_kind_str((enum lvk_atlas_kind)kind), k);
    struct lvk_atlas_result *r = &a->results[i];
    result_clear(r);
    read_common(o, r);
    if (kind == LVK_ATLAS_EXAMPLES) {
        r->nimages = (int)jnum(o, "images", 0);
        r->mean = (float)jnum(o, "mean", 0);
        r->std = (float)jnum(o, "std", 0);
        r->min = (float)jnum(o, "min", 0);
        r->max = (float)jnum(o, "max", 0);
        r->positive = (float)jnum(o, "positive", 0);
        const struct lvk_json *top = lvk_json_get(o, "top");
        if (top && top->type == LVK_JSON_ARRAY && top->count) {
            r->ex = lvk_calloc(top->count, sizeof *r->ex);
            if (!r->ex)
                return LVK_ERR_HOST_OOM;
            for (const struct lvk_json *e = top->child; e; e = e->next) {
                const char *src = jstr(e, "source"), *file = jstr(e, "file");
                if (!src || !file)
                    return lvk_fail(LVK_ERR_FORMAT, "example without source or file");
                struct lvk_atlas_example *x = &r->ex[r->nex++];
                x->source = strdup(src);
                x->file = strdup(file);
                x->value = (float)jnum(e, "value", 0);
                if (!x->source || !x->file)
                    return LVK_ERR_HOST_OOM;
            }
        }
    } else {
        r->value_start = (float)jnum(o, "value_start", NAN);
        r->value_end = (float)jnum(o, "value_end", NAN);
        r->width = (int)jnum(o, "width", 0);
        r->height = (int)jnum(o, "height", 0);
    }
    r->done = 1;
    return LVK_OK;
}

lvk_status lvk_atlas_manifest_read(const char *path, struct lvk_atlas *a, int *shard_index, int *shard_count)
{
    memset(a, 0, sizeof *a);
    struct lvk_json *j = NULL;
    lvk_status st = lvk_json_read(path, &j);
    if (st != LVK_OK)
        return st;
    const char *format = jstr(j, "format");
    const struct lvk_json *model = lvk_json_get(j, "model"), *ds = lvk_json_get(j, "dataset");
    const struct lvk_json *shard = lvk_json_get(j, "shard"), *items = lvk_json_get(j, "items");
    if (!format || strcmp(format, LVK_ATLAS_FORMAT) || jnum(j, "version", 0) != LVK_ATLAS_VERSION) {
        st = lvk_fail(LVK_ERR_FORMAT, "not a version %d atlas manifest", LVK_ATLAS_VERSION);
        goto fail;
    }
    const char *mpath = jstr(model, "path"), *hash = jstr(model, "fnv1a64");
    if (!mpath || !hash || !items || items->type != LVK_JSON_ARRAY) {
        st = lvk_fail(LVK_ERR_FORMAT, "manifest lacks model or items");
        goto fail;
    }
    a->model_path = strdup(mpath);
    snprintf(a->model_hash, sizeof a->model_hash, "%s", hash);
    a->model_bytes = (int64_t)jnum(model, "bytes", 0);
    a->ntensors = (int)jnum(model, "tensors", 0);
    const struct lvk_json *in = lvk_json_get(model, "input");
    int d = 0;
    for (const struct lvk_json *c = in && in->type == LVK_JSON_ARRAY ? in->child : NULL; c && d < 4; c = c->next)
        a->input[d++] = (int)c->number;
    LVK_TRY(st, read_settings(lvk_json_get(j, "settings"), &a->s));
    if (ds && ds->type == LVK_JSON_OBJECT) {
        a->images_dir = dup_or_null(jstr(ds, "dir"));
        a->ndataset = (int)jnum(ds, "images", 0);
    }
    if (shard_index)
        *shard_index = shard ? (int)jnum(shard, "index", 0) : 0;
    if (shard_count)
        *shard_count = shard ? (int)jnum(shard, "count", 1) : 1;
    LVK_TRY(st, read_layers(lvk_json_get(j, "layers"), a));
    LVK_TRY(st, lvk_atlas_plan(a));
    for (const struct lvk_json *o = items->child; o; o = o->next)
        LVK_TRY(st, read_item(o, a));
    lvk_json_free(j);
    return LVK_OK;
fail:
    lvk_error_prefix("%s: ", path);
    lvk_json_free(j);
    lvk_atlas_free(a);
    return st;
}

/* ---- comparing and combining ------------------------------------------------------------ */

static int differ(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int differ(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return 0;
}

int lvk_atlas_same_job(const struct lvk_atlas *a, const struct lvk_atlas *b, char *why, size_t len)
{
    if (strcmp(a->model_hash, b->model_hash) || a->model_bytes != b->model_bytes)
        return differ(why, len, "a different model file (%s vs %s)", a->model_path, b->model_path);
    const struct lvk_atlas_settings *x = &a->s, *y = &b->s;
#define SAME(f, label)                                                                   \
    if (x->f != y->f)                                                                    \
        return differ(why, len, "different %s (%g vs %g)", label, (double)x->f, (double)y->f);
    SAME(steps, "--steps") SAME(size, "--size") SAME(batch, "--batch") SAME(lr, "--lr")
    SAME(pixel, "--param") SAME(decay, "--decay") SAME(decorrelate, "--no-decorrelate")
    SAME(transforms, "--transforms") SAME(redirect, "--no-redirect") SAME(seed, "--seed")
    SAME(negative, "--negative") SAME(diversity, "--diversity")
    /* The weight only matters to diverse images. */
    if (x->diversity)
        SAME(diversity_weight, "--diversity-weight")
    SAME(top, "--top") SAME(pre.lo, "--range")
    SAME(pre.hi, "--range") SAME(pre.bgr, "--bgr")
    for (int c = 0; c < 3; c++) {
        SAME(pre.mean[c], "--mean") SAME(pre.std[c], "--std")
    }
#undef SAME
    if ((a->images_dir != NULL) != (b->images_dir != NULL) || a->ndataset != b->ndataset)
        return differ(why, len, "a different --images dataset (%d vs %d images)", a->ndataset, b->ndataset);
    if (a->nlayers != b->nlayers)
        return differ(why, len, "different --layers (%d vs %d layers)", a->nlayers, b->nlayers);
    for (int l = 0; l < a->nlayers; l++) {
        const struct lvk_atlas_layer *p = &a->layers[l], *q = &b->layers[l];
        if (strcmp(p->name, q->name))
            return differ(why, len, "different --layers ('%s' vs '%s')", p->name, q->name);
        if (p->nch != q->nch || memcmp(p->channels, q->channels, (size_t)p->nch * sizeof *p->channels))
            return differ(why, len, "different --channels for layer '%s'", p->name);
    }
    return 1;
}

static lvk_status result_copy(struct lvk_atlas_result *d, const struct lvk_atlas_result *s)
{
    result_clear(d);
    *d = *s;
    d->device = dup_or_null(s->device);
    d->driver = dup_or_null(s->driver);
    d->ex = NULL;
    d->nex = 0;
    if (s->nex) {
        d->ex = lvk_calloc((size_t)s->nex, sizeof *d->ex);
        if (!d->ex)
            return LVK_ERR_HOST_OOM;
        for (int e = 0; e < s->nex; e++) {
            d->ex[e].source = strdup(s->ex[e].source);
            d->ex[e].file = strdup(s->ex[e].file);
            d->ex[e].value = s->ex[e].value;
            d->nex++;
        }
    }
    return LVK_OK;
}

int lvk_atlas_take_results(struct lvk_atlas *dst, const struct lvk_atlas *src)
{
    int n = 0;
    for (int i = 0; i < dst->nitems && i < src->nitems; i++)
        if (src->results[i].done && !dst->results[i].done && result_copy(&dst->results[i], &src->results[i]) == LVK_OK)
            n++;
    return n;
}

static int png_ok(const char *dir, const char *file)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    struct lvk_image im = {0};
    if (lvk_png_read(path, 0, &im) != LVK_OK)
        return 0;
    lvk_image_free(&im);
    return 1;
}

int lvk_atlas_verify(struct lvk_atlas *a, const char *dir)
{
    int dropped = 0;
    char file[600];
    for (int i = 0; i < a->nitems; i++) {
        struct lvk_atlas_result *r = &a->results[i];
        if (!r->done)
            continue;
        int ok = 1;
        if (a->items[i].kind == LVK_ATLAS_EXAMPLES) {
            for (int e = 0; e < r->nex && ok; e++)
                ok = png_ok(dir, r->ex[e].file);
        } else {
            lvk_atlas_item_file(a, i, file, sizeof file);
            ok = png_ok(dir, file);
        }
        if (!ok) {
            result_clear(r);
            dropped++;
        }
    }
    for (int u = 0; u < a->nunits; u++) {
        const struct lvk_atlas_unit *U = &a->units[u];
        if (lvk_atlas_unit_done(a, u))
            continue;
        for (int i = U->item0; i < U->item0 + U->nitems; i++)
            if (a->results[i].done) {
                result_clear(&a->results[i]);
                dropped++;
            }
    }
    return dropped;
}

int lvk_atlas_done_items(const struct lvk_atlas *a)
{
    int n = 0;
    for (int i = 0; i < a->nitems; i++)
        n += a->results[i].done != 0;
    return n;
}

int lvk_atlas_unit_done(const struct lvk_atlas *a, int unit)
{
    const struct lvk_atlas_unit *U = &a->units[unit];
    for (int i = U->item0; i < U->item0 + U->nitems; i++)
        if (!a->results[i].done)
            return 0;
    return 1;
}

/* ---- work --------------------------------------------------------------------------- */

/* A tensor name quoted for the objective parser: '...' unless it holds a
 * single quote. */
static char quote_for(const char *name)
{
    return strchr(name, '\'') ? '"' : '\'';
}

char *lvk_atlas_unit_objective(const struct lvk_atlas *a, int unit)
{
    const struct lvk_atlas_unit *U = &a->units[unit];
    const struct lvk_atlas_layer *L = &a->layers[U->layer];
    char q = quote_for(L->name);
    size_t cap = (size_t)U->count * (strlen(L->name) + 40) + strlen(L->name) + 80;
    char *t = malloc(cap);
    if (!t)
        return NULL;
    size_t k = 0;
    if (U->kind == LVK_ATLAS_DIVERSE) {
        snprintf(t, cap, "channel(%c%s%c, %d) + %.9g*diversity(%c%s%c)", q, L->name, q, L->channels[U->first],
                 (double)a->s.diversity_weight, q, L->name, q);
        return t;
    }
    for (int c = 0; c < U->count; c++)
        k += (size_t)snprintf(t + k, cap - k, "%schannel(%c%s%c, %d)@%d", c ? " + " : "", q, L->name, q,
                              L->channels[U->first + c], c);
    return t;
}

static void utc_now(char *buf, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static lvk_status set_device(lvk_ctx_t *ctx, struct lvk_atlas_result *r)
{
    const struct lvk_device_info *d = lvk_ctx_device(ctx);
    r->device = strdup(d->name);
    r->driver = strdup(d->driver);
    return r->device && r->driver ? LVK_OK : LVK_ERR_HOST_OOM;
}

static lvk_status run_render(lvk_ctx_t *ctx, struct lvk_atlas *a, int unit, const char *dir)
{
    const struct lvk_atlas_unit *U = &a->units[unit];
    const struct lvk_atlas_layer *L = &a->layers[U->layer];
    char *text = lvk_atlas_unit_objective(a, unit);
    if (!text)
        return LVK_ERR_HOST_OOM;
    struct lvk_render_opts o = {
        .objective = text, .batch = U->nimages, .size = a->s.size, .steps = a->s.steps, .lr = a->s.lr,
        .seed = U->seed, .param = a->s.pixel ? LVK_PARAM_PIXEL : LVK_PARAM_FFT, .decay_power = a->s.decay,
        .no_decorrelate = !a->s.decorrelate, .no_transforms = !a->s.transforms,
        .negative = U->kind == LVK_ATLAS_NEGATIVE, .redirect_steps = a->s.redirect, .pre = a->s.pre,
    };
    struct lvk_render_result res = {0};
    double t0 = mono();
    lvk_status st = lvk_render(ctx, a->model_path, &o, &res);
    free(text);
    if (st != LVK_OK)
        return st;
    char path[4200], file[600];
    snprintf(path, sizeof path, "%s/img/%s", dir, L->slug);
    LVK_TRY(st, lvk_mkdir_p(path));
    size_t one = (size_t)res.channels * res.height * res.width;
    for (int i = U->item0; i < U->item0 + U->nitems; i++) {
        const struct lvk_atlas_item *I = &a->items[i];
        lvk_atlas_item_file(a, i, file, sizeof file);
        snprintf(path, sizeof path, "%s/%s", dir, file);
        struct lvk_image im = {.w = res.width, .h = res.height, .c = res.channels,
                               .data = res.images + (size_t)I->batch_index * one};
        LVK_TRY(st, lvk_png_write(path, &im));
    }
    double secs = mono() - t0;
    char when[32];
    utc_now(when, sizeof when);
    for (int i = U->item0; i < U->item0 + U->nitems; i++) {
        struct lvk_atlas_result *r = &a->results[i];
        result_clear(r);
        int b = a->items[i].batch_index;
        r->value_start = (float)res.value_start[b];
        r->value_end = (float)res.value_end[b];
        r->width = res.width;
        r->height = res.height;
        r->seconds = secs;
        snprintf(r->time, sizeof r->time, "%s", when);
        LVK_TRY(st, set_device(ctx, r));
        r->done = 1;
    }
fail:
    lvk_render_result_free(&res);
    return st;
}

/* A dataset file name made safe for the site, unique per source name. */
static void example_file(const struct lvk_atlas_layer *L, const char *source, char *buf, size_t len)
{
    char *slug = lvk_atlas_slug(source);
    size_t n = slug ? strlen(slug) : 0;
    /* The slug keeps ".png" (or gains a hash after it); either way the
     * copy ends in ".png" exactly once. */
    if (n > 4 && !strcmp(slug + n - 4, ".png"))
        slug[n - 4] = 0;
    snprintf(buf, len, "examples/%s/%s.png", L->slug, slug ? slug : "image");
    free(slug);
}

struct ranked {
    int image;
    double value;
};

static int by_value_desc(const void *pa, const void *pb)
{
    const struct ranked *a = pa, *b = pb;
    if (a->value != b->value)
        return a->value > b->value ? -1 : 1;
    return a->image - b->image;
}

static lvk_status copy_example(const char *src, const char *dst)
{
    struct lvk_image im = {0}, small = {0};
    LVK_CHECK(lvk_png_read(src, 0, &im));
    lvk_status st = LVK_OK;
    int side = LVK_MAX(im.w, im.h);
    if (side > EXAMPLE_SIDE) {
        int w = LVK_MAX(1, (int)lround((double)im.w * EXAMPLE_SIDE / side));
        int h = LVK_MAX(1, (int)lround((double)im.h * EXAMPLE_SIDE / side));
        st = lvk_image_resize(&im, w, h, &small);
        if (st == LVK_OK)
            st = lvk_png_write(dst, &small);
    } else {
        st = lvk_png_write(dst, &im);
    }
    lvk_image_free(&im);
    lvk_image_free(&small);
    return st;
}

static lvk_status run_examples(lvk_ctx_t *ctx, struct lvk_atlas *a, int unit, const char *dir,
                               char *const *dataset, int ndataset)
{
    const struct lvk_atlas_unit *U = &a->units[unit];
    const struct lvk_atlas_layer *L = &a->layers[U->layer];
    if (ndataset != a->ndataset)
        return lvk_fail(LVK_ERR_INVALID_ARG, "%s holds %d images, the atlas was planned with %d", a->images_dir,
                        ndataset, a->ndataset);
    int C = a->input[1], H = a->input[2], W = a->input[3], NB = LVK_MIN(EXAMPLES_BATCH, ndataset);
    size_t per_in = (size_t)C * H * W, per_out = (size_t)L->c * L->h * L->w, hw = (size_t)L->h * L->w;
    const char *outs[] = {L->name};
    struct lvk_model_opts mo = {.batch = NB, .height = H, .width = W, .outputs = outs, .noutputs = 1};
    lvk_model_t *m = NULL;
    float *x = NULL, *y = NULL;
    double *means = NULL; /* [nch, ndataset] */
    struct ranked *rank = NULL;
    char path[4200], file[4200];
    double t0 = mono();
    lvk_status st;
    x = lvk_calloc((size_t)NB * per_in, sizeof *x);
    y = lvk_calloc((size_t)NB * per_out, sizeof *y);
    means = lvk_calloc((size_t)L->nch * ndataset, sizeof *means);
    rank = lvk_calloc((size_t)ndataset, sizeof *rank);
    if (!x || !y || !means || !rank) {
        st = LVK_ERR_HOST_OOM;
        goto fail;
    }
    LVK_TRY(st, lvk_model_load(ctx, a->model_path, &mo, &m));
    for (int b0 = 0; b0 < ndataset; b0 += NB) {
        int nb = LVK_MIN(NB, ndataset - b0);
        for (int b = 0; b < nb; b++) {
            struct lvk_image im = {0}, sized = {0};
            snprintf(path, sizeof path, "%s/%s", a->images_dir, dataset[b0 + b]);
            LVK_TRY(st, lvk_png_read(path, C, &im));
            if (im.w != W || im.h != H) {
                st = lvk_image_resize(&im, W, H, &sized);
                lvk_image_free(&im);
                if (st != LVK_OK)
                    goto fail;
                im = sized;
            }
            memcpy(x + (size_t)b * per_in, im.data, per_in * sizeof *x);
            lvk_image_free(&im);
            lvk_preproc_apply(&a->s.pre, x + (size_t)b * per_in, C, H, W);
        }
        /* A short last batch repeats its last image; those rows are not read. */
        for (int b = nb; b < NB; b++)
            memcpy(x + (size_t)b * per_in, x + (size_t)(nb - 1) * per_in, per_in * sizeof *x);
        LVK_TRY(st, lvk_model_set_input(m, lvk_model_input_name(m), x, (size_t)NB * per_in));
        LVK_TRY(st, lvk_model_forward(m));
        LVK_TRY(st, lvk_model_read(m, L->name, y, (size_t)NB * per_out));
        for (int b = 0; b < nb; b++)
            for (int k = 0; k < L->nch; k++) {
                const float *p = y + (size_t)b * per_out + (size_t)L->channels[k] * hw;
                double s = 0;
                for (size_t i = 0; i < hw; i++)
                    s += p[i];
                means[(size_t)k * ndataset + b0 + b] = s / (double)hw;
            }
    }
    snprintf(path, sizeof path, "%s/examples/%s", dir, L->slug);
    LVK_TRY(st, lvk_mkdir_p(path));
    char when[32];
    utc_now(when, sizeof when);
    int top = LVK_MIN(a->s.top, ndataset);
    /* Each top image is copied once per layer, however many channels rank it. */
    unsigned char *copied = lvk_calloc((size_t)ndataset, 1);
    if (!copied) {
        st = LVK_ERR_HOST_OOM;
        goto fail;
    }
    for (int k = 0; k < L->nch && st == LVK_OK; k++) {
        int item = U->item0 + k;
        struct lvk_atlas_result *r = &a->results[item];
        const double *v = means + (size_t)k * ndataset;
        result_clear(r);
        double s = 0, s2 = 0, lo = INFINITY, hi = -INFINITY;
        int pos = 0;
        for (int i = 0; i < ndataset; i++) {
            s += v[i];
            lo = fmin(lo, v[i]);
            hi = fmax(hi, v[i]);
            pos += v[i] > 0;
            rank[i] = (struct ranked){i, v[i]};
        }
        double mean = s / ndataset;
        for (int i = 0; i < ndataset; i++)
            s2 += (v[i] - mean) * (v[i] - mean);
        r->nimages = ndataset;
        r->mean = (float)mean;
        r->std = (float)sqrt(s2 / ndataset);
        r->min = (float)lo;
        r->max = (float)hi;
        r->positive = (float)((double)pos / ndataset);
        qsort(rank, (size_t)ndataset, sizeof *rank, by_value_desc);
        r->ex = lvk_calloc((size_t)top, sizeof *r->ex);
        if (!r->ex) {
            st = LVK_ERR_HOST_OOM;
            break;
        }
        for (int e = 0; e < top && st == LVK_OK; e++) {
            int img = rank[e].image;
            example_file(L, dataset[img], file, sizeof file);
            r->ex[e].source = strdup(dataset[img]);
            r->ex[e].file = strdup(file);
            r->ex[e].value = (float)rank[e].value;
            r->nex++;
            if (!r->ex[e].source || !r->ex[e].file) {
                st = LVK_ERR_HOST_OOM;
                break;
            }
            if (!copied[img]) {
                char src[4200], dst[8500];
                snprintf(src, sizeof src, "%s/%s", a->images_dir, dataset[img]);
                snprintf(dst, sizeof dst, "%s/%s", dir, file);
                st = copy_example(src, dst);
                copied[img] = 1;
            }
        }
        snprintf(r->time, sizeof r->time, "%s", when);
        if (st == LVK_OK)
            st = set_device(ctx, r);
        r->done = st == LVK_OK;
    }
    free(copied);
    /* Every item records the time of the whole unit, as for renders. */
    for (int k = 0; k < L->nch && st == LVK_OK; k++)
        a->results[U->item0 + k].seconds = mono() - t0;
fail:
    if (st != LVK_OK)
        for (int i = U->item0; i < U->item0 + U->nitems; i++)
            result_clear(&a->results[i]);
    lvk_model_destroy(m);
    free(x);
    free(y);
    free(means);
    free(rank);
    return st;
}

lvk_status lvk_atlas_run_unit(lvk_ctx_t *ctx, struct lvk_atlas *a, int unit, const char *dir,
                              char *const *dataset, int ndataset)
{
    lvk_status st = a->units[unit].kind == LVK_ATLAS_EXAMPLES ? run_examples(ctx, a, unit, dir, dataset, ndataset)
                                                              : run_render(ctx, a, unit, dir);
    if (st != LVK_OK)
        lvk_error_prefix("layer '%s' channel %d (%s): ", a->layers[a->units[unit].layer].name,
                         a->layers[a->units[unit].layer].channels[a->units[unit].first],
                         lvk_atlas_kind_str(a->units[unit].kind));
    return st;
}

/* ---- dataset listing ------------------------------------------------------------------- */

static int by_name(const void *pa, const void *pb)
{
    return strcmp(*(char *const *)pa, *(char *const *)pb);
}

lvk_status lvk_atlas_list_pngs(const char *dir, char ***names, int *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return lvk_fail(LVK_ERR_IO, "%s: %s", dir, strerror(errno));
    char **v = NULL;
    int count = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || e->d_name[0] == '.' || strcasecmp(e->d_name + len - 4, ".png"))
            continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 64;
            char **nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv)
                break;
            v = nv;
        }
        if (!(v[count] = strdup(e->d_name)))
            break;
        count++;
    }
    int oom = e != NULL;
    closedir(d);
    if (oom) {
        lvk_atlas_free_names(v, count);
        return lvk_fail(LVK_ERR_HOST_OOM, "%s: out of memory listing images", dir);
    }
    qsort(v, (size_t)count, sizeof *v, by_name);
    *names = v;
    *n = count;
    return LVK_OK;
}

void lvk_atlas_free_names(char **names, int n)
{
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}
