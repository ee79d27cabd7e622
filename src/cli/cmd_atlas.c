/* lucidvk atlas and lucidvk atlas-merge: every channel of chosen layers
 * as a browsable static site, resumable and split into shards
 * (optvis/atlas.h has the work list and the manifest, io/site.h the
 * pages). */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "io/lvk_io.h"
#include "io/site.h"
#include "lucidvk/render.h"
#include "lvk_util.h"
#include "optvis/atlas.h"

#define MAX_LAYERS 1024

static void help(void)
{
    printf(
        "usage: lucidvk atlas MODEL.onnx -l LAYER[,LAYER...] -o SITE [options]\n\n"
        "Renders every channel of the chosen layers and writes a static site: SITE/index.html\n"
        "(model and layers), a page per layer (all its channels), a page per channel (the\n"
        "render, its variants, top dataset examples, statistics) and SITE/manifest.json\n"
        "(every item with its settings, seed, device and time). It opens from disk.\n\n"
        "Interrupt it any time (Ctrl-C, kill -9, power loss): the same command again\n"
        "renders only what is missing. Every file is written atomically and the manifest\n"
        "after each batch.\n\n"
        "What to render:\n"
        "  -l, --layers LIST      tensors, comma-separated ('lucidvk info MODEL' lists them);\n"
        "                         may be repeated\n"
        "  -c, --channels all|LIST  channels of every layer, e.g. 0-15 (default all)\n"
        "      --negative         also each channel minimised (flat on a ReLU output: a warning\n"
        "                         names the pre-activation to use instead)\n"
        "      --diversity K      also K diverse images per channel\n"
        "      --diversity-weight W   (default %g, as in 'lucidvk render', whose help says\n"
        "                         how to choose it)\n"
        "      --images DIR       PNG dataset: each channel's top examples and statistics\n"
        "      --top K            examples per channel (default 8)\n"
        "Optimisation (as 'lucidvk render'):\n"
        "      --steps N          (default 512)\n"
        "      --size PX          (default 128, or the model's input if smaller)\n"
        "      --batch N          images per render call (default 8)\n"
        "      --lr X  --seed N  --param fft|pixel  --decay X  --no-decorrelate\n"
        "      --transforms none|standard  --no-redirect\n"
        "Scale-out:\n"
        "      --shard I/N        render only shard I (0-based) of N: a fixed split that\n"
        "                         balances layers of different cost. Shards write into the\n"
        "                         same SITE (shared file system) or their own; then run\n"
        "                         'lucidvk atlas-merge SITE...'\n"
        "      --shard auto       I and N from SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT\n"
        "                         or JOB_COMPLETION_INDEX (Kubernetes; needs --shards)\n"
        "      --shards N         the count for --shard auto (implies it)\n"
        "Output:\n"
        "  -o, --out SITE         site directory (created)\n"
        "      --device N|NAME    Vulkan device\n"
        CLI_PREPROC_HELP,
        (double)LVK_DIVERSITY_WEIGHT_DEFAULT);
}

static void help_merge(void)
{
    printf("usage: lucidvk atlas-merge [-o OUT] [--partial] SITE...\n\n"
           "Combines the manifests of atlas shards (SITE/manifest.shard-I-of-N.json, and any\n"
           "manifest.json) found in each SITE into OUT/manifest.json and writes the site\n"
           "there, copying images from the other directories. OUT defaults to the first SITE.\n"
           "Fails when items are missing, unless --partial.\n");
}

static void hms(double s, char *buf, size_t len)
{
    long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
    snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

static int add_layers(const char *arg, char **names, int *n)
{
    char *copy = strdup(arg), *save = NULL;
    if (!copy)
        return -1;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n == MAX_LAYERS || !(names[*n] = strdup(t))) {
            free(copy);
            return -1;
        }
        (*n)++;
    }
    free(copy);
    return 0;
}

/* Loads what an earlier run of this shard left in SITE; a different job
 * there is an error, not something to overwrite. Returns items reused. */
static lvk_status resume(struct lvk_atlas *a, const char *site, const char *manifest, int *reused, int *dropped)
{
    *reused = *dropped = 0;
    if (access(manifest, F_OK) != 0)
        return LVK_OK;
    struct lvk_atlas old;
    LVK_CHECK(lvk_atlas_manifest_read(manifest, &old, NULL, NULL));
    char why[512];
    if (!lvk_atlas_same_job(a, &old, why, sizeof why)) {
        lvk_atlas_free(&old);
        return lvk_fail(LVK_ERR_INVALID_ARG,
                        "%s was written by a different job: %s. Use another -o directory, or the same options.",
                        manifest, why);
    }
    *dropped = lvk_atlas_verify(&old, site);
    *reused = lvk_atlas_take_results(a, &old);
    lvk_atlas_free(&old);
    return LVK_OK;
}

int cmd_atlas(int argc, char **argv)
{
    static const struct option opts[] = {
        {"layers", required_argument, 0, 'l'}, {"channels", required_argument, 0, 'c'},
        {"negative", no_argument, 0, 'g'}, {"diversity", required_argument, 0, 'V'},
        {"diversity-weight", required_argument, 0, 'W'}, {"images", required_argument, 0, 'I'},
        {"top", required_argument, 0, 't'}, {"steps", required_argument, 0, 's'},
        {"size", required_argument, 0, 'z'}, {"batch", required_argument, 0, 'b'},
        {"lr", required_argument, 0, 'r'}, {"seed", required_argument, 0, 'S'},
        {"param", required_argument, 0, 'p'}, {"decay", required_argument, 0, 'D'},
        {"no-decorrelate", no_argument, 0, 'R'}, {"transforms", required_argument, 0, 'T'},
        {"no-redirect", no_argument, 0, 'n'}, {"shard", required_argument, 0, 'H'},
        {"shards", required_argument, 0, 'N'}, {"out", required_argument, 0, 'o'},
        {"device", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'},
        CLI_PREPROC_OPTIONS, {0, 0, 0, 0}};
    struct lvk_atlas_settings s;
    lvk_atlas_settings_default(&s);
    double x;
    struct cli_preproc pre = {0};
    lvk_preproc_default(&pre.p);
    char *layers[MAX_LAYERS];
    int nlayers = 0, shard_i = 0, shard_n = 1, shard_auto = 0, shards_hint = 0, c, r;
    const char *channels = NULL, *images = NULL, *site = NULL, *device = NULL, *shard = NULL;
    int status = 2;
    optind = 1;
    while ((c = getopt_long(argc, argv, "l:c:o:d:h", opts, NULL)) != -1) {
        if ((r = cli_preproc_parse(&pre, c, optarg)) != 0) {
            if (r < 0)
                goto out;
            continue;
        }
        bool ok = true;
        switch (c) {
        case 'l':
            if (add_layers(optarg, layers, &nlayers))
                ok = !cli_usage_error("atlas", "too many layers");
            break;
        case 'c': channels = optarg; break;
        case 'g': s.negative = 1; break;
        case 'V': ok = !cli_int("atlas", "--diversity", optarg, 2, INT_MAX, &s.diversity); break;
        case 'W':
            if ((ok = !cli_float("atlas", "--diversity-weight", optarg, 0, INFINITY, false, &x)))
                s.diversity_weight = (float)x;
            break;
        case 'I': images = optarg; break;
        case 't': ok = !cli_int("atlas", "--top", optarg, 1, INT_MAX, &s.top); break;
        case 's': ok = !cli_int("atlas", "--steps", optarg, 1, INT_MAX, &s.steps); break;
        case 'z': ok = !cli_int("atlas", "--size", optarg, 8, CLI_MAX_SIZE, &s.size); break;
        case 'b': ok = !cli_int("atlas", "--batch", optarg, 1, INT_MAX, &s.batch); break;
        case 'r':
            if ((ok = !cli_float("atlas", "--lr", optarg, 0, INFINITY, true, &x)))
                s.lr = (float)x;
            break;
        case 'S': ok = !cli_seed("atlas", "--seed", optarg, &s.seed); break;
        case 'p':
            s.pixel = !strcmp(optarg, "pixel");
            if (!s.pixel && strcmp(optarg, "fft"))
                ok = !cli_usage_error("atlas", "--param is fft or pixel, not '%s'", optarg);
            break;
        case 'D':
            if ((ok = !cli_float("atlas", "--decay", optarg, 0, INFINITY, true, &x)))
                s.decay = (float)x;
            break;
        case 'R': s.decorrelate = 0; break;
        case 'T':
            s.transforms = strcmp(optarg, "none") != 0;
            if (s.transforms && strcmp(optarg, "standard"))
                ok = !cli_usage_error("atlas", "--transforms is none or standard");
            break;
        case 'n': s.redirect = 0; break;
        case 'H': shard = optarg; break;
        case 'N': ok = !cli_int("atlas", "--shards", optarg, 1, INT_MAX, &shards_hint); break;
        case 'o': site = optarg; break;
        case 'd': device = optarg; break;
        case 'h': help(); status = 0; goto out;
        default: goto out;
        }
        if (!ok)
            goto out;
    }
    if (optind != argc - 1) {
        cli_usage_error("atlas", "expected one MODEL.onnx");
        goto out;
    }
    if (!nlayers || !site) {
        cli_usage_error("atlas", "give the layers (-l A,B) and the site directory (-o SITE)");
        goto out;
    }
    if (shard && !strcmp(shard, "auto"))
        shard_auto = 1;
    else if (shard && lvk_atlas_shard_parse(shard, &shard_i, &shard_n) != LVK_OK) {
        cli_usage_error("atlas", "%s", lvk_last_error());
        goto out;
    }
    if (shards_hint && shard && !shard_auto) {
        cli_usage_error("atlas", "--shards goes with --shard auto, not with --shard I/N");
        goto out;
    }
    if ((shard_auto || shards_hint) && lvk_atlas_shard_from_env(shards_hint, &shard_i, &shard_n) != LVK_OK) {
        cli_usage_error("atlas", "%s", lvk_last_error());
        goto out;
    }

    status = 1;
    const char *model = argv[optind];
    lvk_ctx_t *ctx = NULL;
    struct lvk_atlas a = {0};
    char **dataset = NULL;
    int ndataset = 0, *owner = NULL;
    char manifest[4200], name[64];
    lvk_status st = cli_preproc_resolve(&pre, model, &s.pre);
    if (st == LVK_OK) st = cli_open(device, &ctx);
    if (st == LVK_OK) st = lvk_atlas_init(ctx, model, (const char *const *)layers, nlayers, channels, &s, images, &a);
    if (st == LVK_OK && s.negative) {
        lvk_model_t *m = NULL;
        st = cli_model_probe(ctx, model, s.size, &m);
        for (int l = 0; st == LVK_OK && l < a.nlayers; l++)
            cli_warn_negative_relu("atlas", m, a.layers[l].name);
        lvk_model_destroy(m);
    }
    if (st == LVK_OK) st = lvk_mkdir_p(site);
    if (st == LVK_OK && images) st = lvk_atlas_list_pngs(images, &dataset, &ndataset);
    lvk_atlas_manifest_name(shard_i, shard_n, name, sizeof name);
    snprintf(manifest, sizeof manifest, "%s/%s", site, name);
    int reused = 0, dropped = 0;
    if (st == LVK_OK) st = resume(&a, site, manifest, &reused, &dropped);
    if (st == LVK_OK && !(owner = lvk_calloc((size_t)LVK_MAX(a.nunits, 1), sizeof *owner)))
        st = LVK_ERR_HOST_OOM;
    if (st != LVK_OK) {
        cli_error(st, NULL);
        goto done;
    }
    lvk_atlas_shard(&a, shard_n, owner);

    /* This shard's share, in items and in cost (for the ETA: a deep layer's
     * batch takes longer than an early one's). */
    int mine = 0, mine_done = 0, todo_units = 0;
    double cost_left = 0;
    for (int u = 0; u < a.nunits; u++) {
        if (owner[u] != shard_i)
            continue;
        mine += a.units[u].nitems;
        if (lvk_atlas_unit_done(&a, u)) {
            mine_done += a.units[u].nitems;
        } else {
            todo_units++;
            cost_left += a.units[u].cost;
        }
    }
    bool tty = isatty(2);
    fprintf(stderr, "atlas: %d layer%s, %d items", a.nlayers, a.nlayers == 1 ? "" : "s", a.nitems);
    if (shard_n > 1)
        fprintf(stderr, "; shard %d/%d has %d", shard_i, shard_n, mine);
    fprintf(stderr, "; %d done", mine_done);
    if (dropped)
        fprintf(stderr, " (%d redone: files missing or unreadable)", dropped);
    fprintf(stderr, "; %d batches to render on %s\n", todo_units, lvk_ctx_device(ctx)->name);

    double t0 = cli_now(), cost_done = 0;
    int rendered = 0, images_rendered = 0;
    for (int u = 0; u < a.nunits && st == LVK_OK; u++) {
        if (owner[u] != shard_i || lvk_atlas_unit_done(&a, u))
            continue;
        const struct lvk_atlas_unit *U = &a.units[u];
        const struct lvk_atlas_layer *L = &a.layers[U->layer];
        st = lvk_atlas_run_unit(ctx, &a, u, site, dataset, ndataset);
        /* The manifest follows the files it lists: after this write the
         * unit is done for good, before it the unit is redone whole. */
        if (st == LVK_OK)
            st = lvk_atlas_manifest_write(&a, manifest, shard_i, shard_n);
        if (st != LVK_OK)
            break;
        rendered += U->nitems;
        images_rendered += U->nimages;
        mine_done += U->nitems;
        cost_done += U->cost;
        cost_left -= U->cost;
        double dt = cli_now() - t0;
        char eta[32], ch[48];
        hms(cost_done > 0 ? dt * cost_left / cost_done : 0, eta, sizeof eta);
        if (U->count > 1)
            snprintf(ch, sizeof ch, "%d-%d", L->channels[U->first], L->channels[U->first + U->count - 1]);
        else
            snprintf(ch, sizeof ch, "%d", L->channels[U->first]);
        fprintf(stderr, "%s[%*d/%d items %5.1f%%] %s %s %s  %.0f images/h  ETA %s%s", tty ? "\r\033[K" : "",
                (int)snprintf(NULL, 0, "%d", mine), mine_done, mine, 100.0 * mine_done / LVK_MAX(mine, 1),
                L->name, ch, lvk_atlas_kind_str(U->kind), images_rendered * 3600 / (dt > 0 ? dt : 1e-9), eta,
                tty ? "" : "\n");
    }
    if (tty && rendered)
        fprintf(stderr, "\n");
    if (st != LVK_OK) {
        cli_error(st, NULL);
        fprintf(stderr, "lucidvk: what was finished is kept; the same command resumes.\n");
        goto done;
    }
    /* A run with nothing left to do still writes its manifest, so a shard
     * with no units leaves a part for atlas-merge to count. */
    if (!rendered)
        st = lvk_atlas_manifest_write(&a, manifest, shard_i, shard_n);
    if (st == LVK_OK && shard_n == 1)
        st = lvk_site_write(&a, site);
    if (st != LVK_OK) {
        cli_error(st, NULL);
        goto done;
    }
    double dt = cli_now() - t0;
    printf("rendered %d items (%d images) in %.1f s", rendered, images_rendered, dt);
    if (images_rendered && dt > 0)
        printf(", %.0f images per hour", images_rendered * 3600 / dt);
    printf("; %d were already done\n", reused);
    if (shard_n == 1)
        printf("site: %s/index.html\n", site);
    else
        printf("shard %d/%d complete: %s; when every shard is, run 'lucidvk atlas-merge %s'\n", shard_i, shard_n,
               manifest, site);
    status = 0;
done:
    free(owner);
    lvk_atlas_free_names(dataset, ndataset);
    lvk_atlas_free(&a);
    lvk_ctx_destroy(ctx);
out:
    for (int i = 0; i < nlayers; i++)
        free(layers[i]);
    return status;
}

/* ---- atlas-merge ------------------------------------------------------------------------- */

static int is_manifest(const char *name)
{
    int i, n, len = 0;
    if (!strcmp(name, "manifest.json"))
        return 1;
    return sscanf(name, "manifest.shard-%d-of-%d.json%n", &i, &n, &len) == 2 && name[len] == 0;
}

static lvk_status copy_file(const char *from_dir, const char *to_dir, const char *file)
{
    char src[4200], dst[4200];
    snprintf(src, sizeof src, "%s/%s", from_dir, file);
    snprintf(dst, sizeof dst, "%s/%s", to_dir, file);
    char *slash = strrchr(dst, '/');
    *slash = 0;
    LVK_CHECK(lvk_mkdir_p(dst));
    *slash = '/';
    uint8_t *data;
    size_t len;
    LVK_CHECK(lvk_read_file(src, &data, &len));
    lvk_status st = lvk_write_file_atomic(dst, data, len);
    free(data);
    return st;
}

static int same_dir(const char *x, const char *y)
{
    struct stat a, b;
    return stat(x, &a) == 0 && stat(y, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* The files of item i that live in the site directory. */
static lvk_status copy_item(const struct lvk_atlas *a, int i, const char *from, const char *to)
{
    const struct lvk_atlas_result *r = &a->results[i];
    if (a->items[i].kind != LVK_ATLAS_EXAMPLES) {
        char file[600];
        lvk_atlas_item_file(a, i, file, sizeof file);
        return copy_file(from, to, file);
    }
    for (int e = 0; e < r->nex; e++)
        LVK_CHECK(copy_file(from, to, r->ex[e].file));
    return LVK_OK;
}

int cmd_atlas_merge(int argc, char **argv)
{
    static const struct option opts[] = {{"out", required_argument, 0, 'o'}, {"partial", no_argument, 0, 'P'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *out = NULL;
    int partial = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'P': partial = 1; break;
        case 'h': help_merge(); return 0;
        default: return 2;
        }
    }
    if (optind >= argc)
        return cli_usage_error("atlas-merge", "give at least one SITE directory");
    if (!out)
        out = argv[optind];

    struct lvk_atlas a = {0};
    int *from = NULL, nparts = 0, status = 1, count_seen = 0;
    unsigned char *shard_seen = NULL;
    lvk_status st = LVK_OK;
    for (int d = optind; d < argc && st == LVK_OK; d++) {
        DIR *dir = opendir(argv[d]);
        if (!dir) {
            st = lvk_fail(LVK_ERR_IO, "%s: cannot open directory", argv[d]);
            break;
        }
        /* Sorted, so the same inputs merge the same way every time. */
        char **names = NULL;
        int n = 0, cap = 0;
        struct dirent *e;
        while ((e = readdir(dir)))
            if (is_manifest(e->d_name)) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 16;
                    char **nn = realloc(names, (size_t)cap * sizeof *nn);
                    if (!nn)
                        break;
                    names = nn;
                }
                if (!(names[n] = strdup(e->d_name)))
                    break;
                n++;
            }
        closedir(dir);
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
                if (strcmp(names[j], names[i]) < 0) {
                    char *t = names[i];
                    names[i] = names[j];
                    names[j] = t;
                }
        for (int i = 0; i < n && st == LVK_OK; i++) {
            char path[4200], why[512];
            struct lvk_atlas part;
            int si, sn;
            snprintf(path, sizeof path, "%s/%s", argv[d], names[i]);
            if ((st = lvk_atlas_manifest_read(path, &part, &si, &sn)) != LVK_OK)
                break;
            int dropped = lvk_atlas_verify(&part, argv[d]);
            if (dropped)
                fprintf(stderr, "atlas-merge: %s: %d items left out (files missing or unreadable)\n", path, dropped);
            if (!nparts) {
                a = part;
                from = lvk_calloc((size_t)LVK_MAX(a.nitems, 1), sizeof *from);
                if (!from) {
                    st = LVK_ERR_HOST_OOM;
                    break;
                }
                for (int k = 0; k < a.nitems; k++)
                    from[k] = a.results[k].done ? d : -1;
            } else if (!lvk_atlas_same_job(&a, &part, why, sizeof why)) {
                st = lvk_fail(LVK_ERR_INVALID_ARG, "%s belongs to a different atlas: %s", path, why);
                lvk_atlas_free(&part);
                break;
            } else {
                for (int k = 0; k < a.nitems; k++)
                    if (part.results[k].done && !a.results[k].done)
                        from[k] = d;
                lvk_atlas_take_results(&a, &part);
                lvk_atlas_free(&part);
            }
            if (sn > 1) {
                if (!shard_seen) {
                    count_seen = sn;
                    shard_seen = lvk_calloc((size_t)sn, 1);
                }
                if (shard_seen && sn == count_seen && si >= 0 && si < sn)
                    shard_seen[si] = 1;
            }
            nparts++;
        }
        lvk_atlas_free_names(names, n);
    }
    if (st == LVK_OK && !nparts)
        st = lvk_fail(LVK_ERR_NOT_FOUND, "no atlas manifests in the given directories");
    if (st != LVK_OK) {
        cli_error(st, "atlas-merge");
        goto done;
    }
    int done = lvk_atlas_done_items(&a);
    if (done < a.nitems) {
        fprintf(stderr, "atlas-merge: %d of %d items are missing", a.nitems - done, a.nitems);
        const char *sep = "; no manifest from shard ";
        for (int s = 0; shard_seen && s < count_seen; s++)
            if (!shard_seen[s]) {
                fprintf(stderr, "%s%d/%d", sep, s, count_seen);
                sep = ", ";
            }
        fprintf(stderr, "\n");
        if (!partial) {
            fprintf(stderr, "atlas-merge: finish the missing shards (rerunning one resumes it), or pass "
                            "--partial\n");
            goto done;
        }
    }
    st = lvk_mkdir_p(out);
    for (int i = 0; i < a.nitems && st == LVK_OK; i++)
        if (a.results[i].done && !same_dir(argv[from[i]], out))
            st = copy_item(&a, i, argv[from[i]], out);
    char path[4200];
    snprintf(path, sizeof path, "%s/manifest.json", out);
    if (st == LVK_OK) st = lvk_atlas_manifest_write(&a, path, 0, 1);
    if (st == LVK_OK) st = lvk_site_write(&a, out);
    if (st != LVK_OK) {
        cli_error(st, "atlas-merge");
        goto done;
    }
    printf("merged %d manifest%s: %d of %d items; site: %s/index.html\n", nparts, nparts == 1 ? "" : "s", done,
           a.nitems, out);
    status = 0;
done:
    free(shard_seen);
    free(from);
    lvk_atlas_free(&a);
    return status;
}
