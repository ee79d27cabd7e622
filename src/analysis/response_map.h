/* Neural response maps: a 2-D map of a network's neurons on which neurons
 * that respond alike sit together, and which lights up where a stimulus
 * drives the network.
 *
 * Fit (lvk_rmap_fit):
 *   1. responses   each neuron is one channel of a chosen layer; its response
 *                  to an image is the channel's spatially averaged activation
 *                  (on the device, straight from the activation buffers);
 *   2. scaling     min-max per neuron over the fit images; neurons with a
 *                  constant response are dropped (and listed);
 *   3. similarity  Spearman rank correlation of every pair, on the device:
 *                  a rank transform per neuron, then one matrix product of
 *                  the unit-length centred ranks with themselves;
 *   4. layout      t-SNE on the distance 1 - correlation: exact with all
 *                  pairs up to exact_max neurons; above, Barnes-Hut on each
 *                  neuron's 3 * perplexity most correlated neurons (the
 *                  correlation rows are streamed from the device block by
 *                  block and only the neighbours kept);
 *   5. scale       each axis min-max scaled to [-1, 1]; optionally the circle
 *                  projection (each point's radius divided by the largest
 *                  radius in its angle bin), which makes the map round.
 * The map is saved as JSON (lvk_rmap_write) with the model's SHA-256, the
 * layers, neurons, coordinates, scaling, dropped neurons, settings and
 * timings; plotting reads it back (lvk_rmap_read). */
#ifndef LVK_RESPONSE_MAP_H
#define LVK_RESPONSE_MAP_H

#include <stdbool.h>
#include <stdint.h>

#include "analysis/tsne.h"
#include "lucidvk/lucidvk.h"

struct lvk_rmap_layer {
    char *name;
    int channels;
};

struct lvk_rmap_neuron {
    int layer, channel;
    float x, y;     /* position on the map, in [-1, 1] */
    float lo, hi;   /* response range over the fit images (lo == hi: dropped) */
};

struct lvk_rmap {
    char *model;                    /* model path as given */
    char sha256[65];                /* of the model file, hex */
    char *inputs;                   /* the fit images (path as given) */
    int nimages;
    int nlayers;
    struct lvk_rmap_layer *layers;
    int n;                          /* neurons on the map */
    struct lvk_rmap_neuron *neurons;
    int ndropped;                   /* neurons with a constant response */
    struct lvk_rmap_neuron *dropped;
    /* Settings. */
    struct lvk_tsne_opts tsne;
    bool exact;                     /* exact t-SNE (else Barnes-Hut with k neighbours) */
    int neighbours;                 /* Barnes-Hut: k */
    bool circle;
    int circle_bins;
    /* Timings, seconds. */
    double t_responses, t_correlation, t_tsne, t_total;
};

void lvk_rmap_destroy(struct lvk_rmap *r);

/* ---- layers and responses ------------------------------------------------------------- */

/* Resolves layer names (or, with nnames == 0, picks every convolution,
 * activation, batch-norm, Add and Concat output of the model except a
 * pre-activation, i.e. a tensor read only by elementwise activations, whose
 * activation stands for it). Each must be a computed 4-D float tensor
 * [N, C, H, W]. *layers is malloc'd; free with lvk_rmap_layers_free. */
lvk_status lvk_rmap_layers(const lvk_model_t *m, const char *const *names, int nnames,
                           struct lvk_rmap_layer **layers, int *n);
void lvk_rmap_layers_free(struct lvk_rmap_layer *layers, int n);

/* A batch size for lvk_rmap_responses from a model loaded at any batch:
 * the most images (at most 32) whose activations (every computed tensor)
 * fit in `budget` bytes and whose largest tensor fits one storage buffer. */
int lvk_rmap_auto_batch(const lvk_model_t *m, uint64_t budget);

/* A source of preprocessed input images: load(user, i, img) writes image i
 * (the model input's C x H x W floats) for i < count. */
struct lvk_rmap_source {
    int count;
    lvk_status (*load)(void *user, int i, float *img);
    void *user;
};

/* Feeds every image of src through m (loaded with the layers among its
 * outputs; its batch size is the input's first dimension) and writes the
 * spatial mean of every channel: resp [neurons, src->count], neurons in
 * layer order then channel order. */
lvk_status lvk_rmap_responses(lvk_model_t *m, const struct lvk_rmap_layer *layers, int nlayers,
                              const struct lvk_rmap_source *src, float *resp);

/* ---- correlation ------------------------------------------------------------------------ */

/* Spearman correlation of the rows of x [n, m] (ties get average ranks),
 * on the device. Rows must not be constant. Exactly one of:
 *   corr [n, n]            the full matrix;
 *   nbr, dist [n, k]       for each row, the k other rows of highest
 *                          correlation (ties: lower index first) and their
 *                          distances 1 - correlation, ascending. */
lvk_status lvk_rmap_spearman(lvk_ctx_t *ctx, const float *x, int n, int m, float *corr,
                             int k, int32_t *nbr, float *dist);

/* ---- fit ------------------------------------------------------------------------------------ */

struct lvk_rmap_fit_opts {
    struct lvk_tsne_opts tsne;  /* theta is ignored: chosen by exact_max */
    int exact_max;              /* exact t-SNE up to this many neurons (default 2500) */
    bool circle;
    int circle_bins;            /* default 100 */
};

void lvk_rmap_fit_default(struct lvk_rmap_fit_opts *o);

/* From responses resp [neurons, nimages] (neurons as lvk_rmap_responses
 * orders them over `layers`): scaling, dropping, correlation, t-SNE and
 * layout. *out receives a map with the layers copied; the caller fills in
 * model, sha256 and inputs. */
lvk_status lvk_rmap_fit(lvk_ctx_t *ctx, const float *resp, int nimages,
                        const struct lvk_rmap_layer *layers, int nlayers,
                        const struct lvk_rmap_fit_opts *o, struct lvk_rmap **out);

/* Scales each coordinate of xy [n, 2] linearly onto [-1, 1] (an axis with
 * no extent goes to 0). */
void lvk_rmap_scale(float *xy, int n);

/* Circle projection: each point's radius from the origin is divided by the
 * largest radius among the points whose angle falls in the same of `bins`
 * equal angle bins, so every radius is in [0, 1] and the largest in each
 * bin is 1. */
void lvk_rmap_circle(float *xy, int n, int bins);

/* ---- files ---------------------------------------------------------------------------------- */

/* SHA-256 of a file, as 64 hex digits and a NUL. */
lvk_status lvk_sha256_file(const char *path, char hex[65]);

lvk_status lvk_rmap_write(const struct lvk_rmap *r, const char *path);
lvk_status lvk_rmap_read(const char *path, struct lvk_rmap **out);

#endif
