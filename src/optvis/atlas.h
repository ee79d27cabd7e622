/* Atlas: every channel of chosen layers of a model, rendered into a static
 * site (io/site.h), resumable after any interruption and split into shards
 * that separate processes or machines render independently.
 *
 * ---- Work list ---------------------------------------------------------------
 *
 * The work list is a pure function of the layers (names, shapes, channel
 * lists) and the settings, so every shard, every restart and the merge
 * rebuild the same list without talking to each other. It is a list of
 * units, one lvk_render call each (or one dataset pass), in this order for
 * every layer in turn:
 *   positive   channels in groups of `batch`, image i maximises channel i;
 *   negative   the same groups, minimised (settings.negative);
 *   diverse    one unit per channel of `diversity` images pushed apart by
 *              W * diversity(L) (settings.diversity > 0);
 *   examples   one pass of the dataset through the model: the images that
 *              drive each channel most (settings.top > 0 and a dataset).
 * Each unit has its own seed, a hash of (settings.seed, layer, first
 * channel, kind), so what a unit renders does not depend on which shard or
 * which run renders it: shards and resumed runs give the same bytes as one
 * uninterrupted run on the same device.
 *
 * Units break into items, one per output: a rendered image (layer, channel,
 * variant, k) or a channel's examples. A unit is done when all its items
 * are in the manifest, and the manifest is only ever rewritten whole, after
 * the unit's files are in place.
 *
 * ---- Files (relative to the site directory) -----------------------------------
 *
 *   img/<slug>/<c>.png, <c>_neg.png, <c>_div<k>.png      renders
 *   examples/<slug>/<name>.png                              dataset images
 *   manifest.json                                           an unsharded run, or a merge
 *   manifest.shard-<i>-of-<n>.json                          shard i of n
 * <slug> is the layer name with characters outside [A-Za-z0-9._-] replaced
 * by '_', plus '-' and a hash of the name when anything was replaced. */
#ifndef LVK_ATLAS_H
#define LVK_ATLAS_H

#include <stdint.h>

#include "lucidvk/lucidvk.h"
#include "lucidvk/preproc.h"

#define LVK_ATLAS_FORMAT "lucidvk-atlas"
#define LVK_ATLAS_VERSION 1

enum lvk_atlas_kind {
    LVK_ATLAS_POSITIVE,
    LVK_ATLAS_NEGATIVE,
    LVK_ATLAS_DIVERSE,
    LVK_ATLAS_EXAMPLES,
};
/* "positive", "negative", "diverse", "examples". */
const char *lvk_atlas_kind_str(enum lvk_atlas_kind k);

/* Everything that changes what a unit renders. Two runs can share a site
 * directory only when these are equal. */
struct lvk_atlas_settings {
    int steps;               /* optimisation steps */
    int size;                /* image side; 0: the render default */
    int batch;               /* images per render call */
    float lr;                /* Adam learning rate */
    int pixel;               /* pixel instead of spectral parameterization */
    float decay;             /* spectral decay power */
    int decorrelate;
    int transforms;
    int redirect;            /* steps of redirected ReLU gradient (-1: render default) */
    uint64_t seed;
    int negative;            /* also each channel minimised */
    int diversity;           /* K diverse images per channel; 0: none */
    float diversity_weight;
    int top;                 /* dataset examples per channel (with a dataset) */
    struct lvk_preproc pre;  /* labels are not part of it */
};

/* Lucid's usual settings: 512 steps, batch 8, lr 0.05, spectral,
 * decorrelated, standard transforms, diversity weight 100, top 8. */
void lvk_atlas_settings_default(struct lvk_atlas_settings *s);

struct lvk_atlas_layer {
    char *name;
    char *slug;
    int c, h, w;             /* one image's tensor (dense layers: h = w = 1) */
    int nch;
    int *channels;           /* [nch], the channels rendered, in order */
    double cost;             /* relative cost of one image through this layer */
};

struct lvk_atlas_unit {
    enum lvk_atlas_kind kind;
    int layer;
    int first, count;        /* channels[first .. first+count) of the layer */
    int nimages;             /* images rendered (0 for examples) */
    int item0, nitems;       /* its items */
    uint64_t seed;
    double cost;             /* for the shard split */
};

struct lvk_atlas_item {
    int unit, layer, channel;
    enum lvk_atlas_kind kind;
    int k;                   /* diverse: image index; else 0 */
    int batch_index;         /* image of the unit's batch */
};

struct lvk_atlas_example {
    char *source;            /* file name inside the dataset directory */
    char *file;              /* its copy in the site */
    double value;            /* the channel's mean activation on it */
};

/* What became of one item. */
struct lvk_atlas_result {
    int done;
    double value_start, value_end; /* objective on the initial and final image */
    int width, height;
    double seconds;          /* wall time of the whole unit */
    char time[32];           /* UTC, ISO 8601, when the unit finished */
    char *device, *driver;
    /* examples items */
    int nex;
    struct lvk_atlas_example *ex;  /* best first */
    int nimages;             /* dataset images measured */
    double mean, std, min, max, positive; /* of the channel's mean over the dataset;
                                             positive: fraction above 0 */
};

struct lvk_atlas {
    /* the model */
    char *model_path;
    int64_t model_bytes;
    char model_hash[17];     /* FNV-1a 64 of the file, hex */
    int input[4];            /* N, C, H, W of its image input */
    int ntensors;
    /* the job */
    struct lvk_atlas_settings s;
    char *images_dir;        /* dataset directory, or NULL */
    int ndataset;            /* its PNG count */
    int nlayers;
    struct lvk_atlas_layer *layers;
    /* the plan (lvk_atlas_plan) */
    int nunits, nitems;
    struct lvk_atlas_unit *units;
    struct lvk_atlas_item *items;
    struct lvk_atlas_result *results; /* [nitems] */
};

/* Reads the model (shapes, hash) and checks the layers: each must be a
 * tensor of shape [1, C, H, W] or [1, C]. `channels` is "all" (or NULL) or
 * a list such as "0-7,12" applied to every layer; a channel past a layer's
 * count fails naming the layer. `images_dir` (may be NULL) is the dataset
 * for top examples. Builds the plan. */
lvk_status lvk_atlas_init(lvk_ctx_t *ctx, const char *model_path, const char *const *layers, int nlayers,
                          const char *channels, const struct lvk_atlas_settings *s,
                          const char *images_dir, struct lvk_atlas *out);
/* Builds units, items and empty results from layers and settings. */
lvk_status lvk_atlas_plan(struct lvk_atlas *a);
/* NULL-safe; safe on a zeroed or half-built atlas. */
void lvk_atlas_free(struct lvk_atlas *a);

/* The layer's file-name-safe form (malloc'd). */
char *lvk_atlas_slug(const char *name);
/* An item's image path relative to the site ("" for examples items). */
void lvk_atlas_item_file(const struct lvk_atlas *a, int item, char *buf, size_t len);
/* Index of the item (layer, channel, kind, k), or -1. */
int lvk_atlas_find_item(const struct lvk_atlas *a, int layer, int channel, enum lvk_atlas_kind kind, int k);

/* ---- Shards ------------------------------------------------------------------- */

/* Assigns every unit to one of n shards: owner[u] in [0, n). Longest
 * processing time first: units by decreasing cost (ties by position) each
 * go to the shard with the least cost so far (ties to the lower index), so
 * every shard gets a share of cheap early layers and expensive deep ones,
 * and no shard's total exceeds another's by more than the largest unit. */
void lvk_atlas_shard(const struct lvk_atlas *a, int n, int *owner);

/* Parses "I/N" (0 <= I < N). */
lvk_status lvk_atlas_shard_parse(const char *s, int *index, int *count);
/* Shard index and count from a scheduler: JOB_COMPLETION_INDEX
 * (Kubernetes indexed Jobs; the count must be given: count_hint > 0), else
 * SLURM_ARRAY_TASK_ID minus SLURM_ARRAY_TASK_MIN with SLURM_ARRAY_TASK_COUNT
 * (or count_hint when set). LVK_ERR_NOT_FOUND when neither is set. */
lvk_status lvk_atlas_shard_from_env(int count_hint, int *index, int *count);

/* "manifest.json" for count <= 1, else "manifest.shard-<index>-of-<count>.json". */
void lvk_atlas_manifest_name(int index, int count, char *buf, size_t len);

/* ---- Manifest ------------------------------------------------------------------ */

/* Writes the model, settings, layers and every done item, atomically.
 * shard_count <= 1 writes no shard field. */
lvk_status lvk_atlas_manifest_write(const struct lvk_atlas *a, const char *path, int shard_index,
                                    int shard_count);
/* Reads a manifest into a fresh atlas (plan rebuilt, results of the items
 * it lists marked done). *shard_index / *shard_count (may be NULL) get its
 * shard, 0 / 1 when unsharded. */
lvk_status lvk_atlas_manifest_read(const char *path, struct lvk_atlas *out, int *shard_index, int *shard_count);

/* 1 when a and b describe the same job (model file, settings, layers and
 * channels); else 0 and `why` names the first difference. */
int lvk_atlas_same_job(const struct lvk_atlas *a, const struct lvk_atlas *b, char *why, size_t len);

/* Copies the done results of `src` (same job) into `dst` where dst has
 * none. Returns the number copied. */
int lvk_atlas_take_results(struct lvk_atlas *dst, const struct lvk_atlas *src);

/* Marks not done every done item of `dir`'s atlas whose files are missing
 * or do not decode as PNG, and then every item of a unit that is not
 * entirely done (so a unit is always redone whole). Returns the number of
 * items dropped. */
int lvk_atlas_verify(struct lvk_atlas *a, const char *dir);

/* Number of done items; units all of whose items are done. */
int lvk_atlas_done_items(const struct lvk_atlas *a);
int lvk_atlas_unit_done(const struct lvk_atlas *a, int unit);

/* ---- Work ----------------------------------------------------------------------- */

/* The objective text of a render unit (malloc'd). */
char *lvk_atlas_unit_objective(const struct lvk_atlas *a, int unit);

/* Renders one unit into `dir` (img/...), writing its PNGs atomically, and
 * fills its results. Examples units read the dataset; `dataset` lists its
 * PNG names (relative to a->images_dir), sorted. */
lvk_status lvk_atlas_run_unit(lvk_ctx_t *ctx, struct lvk_atlas *a, int unit, const char *dir,
                              char *const *dataset, int ndataset);

/* Lists the PNG files of a directory (not recursive), sorted by name;
 * *names is malloc'd, each entry too. */
lvk_status lvk_atlas_list_pngs(const char *dir, char ***names, int *n);
void lvk_atlas_free_names(char **names, int n);

/* A seed mixed from a hash (splitmix64; the hashes are lvk_fnv1a64's). */
uint64_t lvk_atlas_mix(uint64_t x);

#endif
