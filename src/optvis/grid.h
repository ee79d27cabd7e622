/* Neuron interaction grids and layer sweeps: the batch layouts and
 * objective texts that turn them into one lvk_render call each.
 *
 * ---- Interaction grid ------------------------------------------------------------
 *
 * For N neurons, an N x N grid of N*N images (cell (r, c) is image r*N + c)
 * shows each neuron alone on the diagonal and each pair combined off it.
 * The images share structure through an aligned parameterization (Lucid's
 * neuron interaction grids):
 *   - one shared term: an FFT image plus a low-resolution tensor at a
 *     quarter of the size, used by every cell;
 *   - one "pure" FFT image per neuron;
 *   - one "blend" FFT image per unordered pair {r, c} (r == c included), so
 *     cells (r, c) and (c, r) use the same blend;
 *   cell (r, c) = pure_mix(r, c) + blend(r, c) + 2 * shared, where
 *   pure_mix(r, r) = pure_r (with gradient) and, off the diagonal,
 *   pure_mix(r, c) = (pure_r + pure_c) / 2 with the gradient stopped: a
 *   pure image learns only from its own diagonal cell, so it shows the
 *   neuron alone and the blends carry what a pair needs beyond it.
 *   The sum goes through the colour transform at half scale (raw_scale 0.5).
 * Sources (struct lvk_param_layout numbering): FFT images 0 = shared,
 * 1 + n = pure n, 1 + N + pair(r, c) = blends; then the low-resolution
 * tensor, source 1 + N + N(N+1)/2.
 * Objective of cell (r, c): for each of its two neurons L:ch,
 *   0.2 * channel(L, ch) + neuron(L, ch), bound to the cell (the diagonal
 *   counts its neuron twice), and - 10 * blur over the whole batch (the
 *   recipe's weight, a parameter here: the blur term works on the [0,1]
 *   image while the neuron terms scale with the network, so its relative
 *   strength differs from model to model).
 *
 * ---- Layer sweep -------------------------------------------------------------------
 *
 * One render per layer: image i maximises channel(L, ch_i), all chosen
 * channels of the layer in one batch; or, with groups of G channels, image
 * i maximises group(L, the i-th G channels). */
#ifndef LVK_GRID_H
#define LVK_GRID_H

#include "lucidvk/render.h"

struct lvk_grid_neuron {
    const char *layer;
    int channel;
};

struct lvk_grid_plan {
    int n;                          /* neurons */
    int batch;                      /* n * n */
    struct lvk_param_layout layout; /* points into nterms and terms */
    int *nterms;                    /* [batch] */
    struct lvk_layout_term *terms;  /* [batch, LVK_LAYOUT_MAX_TERMS] */
    char *objective;                /* the whole batch's objective text */
};

/* Builds the layout and objective for n >= 1 neurons, with the blur term
 * weighted by -blur (10 in the recipe; 0 leaves it out). Fails with
 * LVK_ERR_INVALID_ARG on n < 1, a negative channel or blur, or a layer
 * name that holds both kinds of quote. */
lvk_status lvk_grid_plan_create(const struct lvk_grid_neuron *neurons, int n, double blur,
                                struct lvk_grid_plan *out);
/* NULL-safe; safe on a zeroed plan. */
void lvk_grid_plan_free(struct lvk_grid_plan *p);

/* Source numbers of the grid's layout for n neurons. */
static inline int lvk_grid_src_shared(void) { return 0; }
static inline int lvk_grid_src_pure(int k) { return 1 + k; }
/* The blend of the unordered pair {r, c}. */
int lvk_grid_src_blend(int n, int r, int c);
/* The shared low-resolution tensor. */
int lvk_grid_src_lowres(int n);

/* Lucid's crop of a grid cell: 15 px at the top and left and 25 px at the
 * bottom and right of a 128 px image, in proportion for other sizes
 * (rounded; at least 1 px is kept). */
void lvk_grid_crop(int size, int *top_left, int *bottom_right);

struct lvk_image;
/* The grid as a picture: the n*n images [n*n, c, h, w] cropped by
 * lvk_grid_crop(min(h, w)), shown `zoom` times larger (0: enough for cells
 * of at least 64 px), with 2 px gutters and `labels` ([n], "LAYER:CH")
 * left of the rows and above the columns (io/labelled_grid.h). */
lvk_status lvk_grid_compose(const float *images, int n, int c, int h, int w, const char *const *labels,
                            int zoom, struct lvk_image *out);

/* Objective text for one layer of a sweep: image i maximises
 * channel(layer, channels[i]) when group <= 1, else group(layer, ...) of
 * channels [i*group, (i+1)*group) (the last group may be shorter).
 * *text is malloc'd; *batch is the number of images. Fails with
 * LVK_ERR_INVALID_ARG on an empty list, a negative channel or an
 * unquotable layer name. */
lvk_status lvk_sweep_objective(const char *layer, const int *channels, int nchannels, int group,
                               char **text, int *batch);

/* Parses a channel list, "7", "0-15", "3,5,9", "2,10-12", into at most
 * `max` channels (in the order written, duplicates kept). Returns the
 * count, or -1 on bad syntax (anything but digits, ',' and '-'; blanks
 * and signs too), a number past INT_MAX, a descending range or more than
 * max. */
int lvk_channel_list_parse(const char *s, int *out, int max);

/* Runs the model on `batch` images [batch, c, h, w] in [0,1] (resized to
 * the model's net_h x net_w where they differ, then preprocessed by `pre`)
 * and reads, for every image b and unit k, the unit's channel at the centre
 * position (H/2, W/2) of its tensor into neuron[b*nunits + k] and the
 * channel's mean over positions into channel[b*nunits + k] (either may be
 * NULL): the activations the objective terms neuron() and channel() read,
 * measured on the images as they are, without transforms. */
lvk_status lvk_units_measure(lvk_ctx_t *ctx, const char *model_path, const struct lvk_preproc *pre,
                             const float *images, int batch, int c, int h, int w, int net_h, int net_w,
                             const struct lvk_grid_neuron *units, int nunits, double *neuron,
                             double *channel);

#endif
