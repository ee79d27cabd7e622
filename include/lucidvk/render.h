/* Feature visualization: optimise a batch of images so that an objective on
 * a model fires, as Lucid's render.render_vis does, with every step on the
 * device. */
#ifndef LUCIDVK_RENDER_H
#define LUCIDVK_RENDER_H

#include <stdint.h>

#include "lucidvk/lucidvk.h"
#include "lucidvk/preproc.h"

#ifdef __cplusplus
extern "C" {
#endif

enum lvk_param_kind { LVK_PARAM_FFT, LVK_PARAM_PIXEL };

/* A composite parameterization (Lucid's aligned / shared images): each
 * image of the batch is a weighted sum of source images, before the colour
 * transform. Sources are `nfft` spectral images, then `nlowres` low-resolution
 * pixel images (size/lowres_div per side, bilinearly upsampled), then
 * `npixel` pixel images, numbered in that order. Image b is
 *     raw[b] = raw_scale * sum_k  w[b][k] * source[src[b][k]]
 * and source j's gradient receives w[b][k] * d/d raw[b] only where
 * grad[b][k] is set: a term with grad 0 is a stop-gradient. */
#define LVK_LAYOUT_MAX_TERMS 8
struct lvk_layout_term {
    int src;
    float w;
    int grad;
};
struct lvk_param_layout {
    int nfft, nlowres, npixel;
    int lowres_div;          /* 0: 4 */
    float raw_scale;         /* 0: 1 */
    const int *nterms;                   /* [batch] */
    const struct lvk_layout_term *terms; /* [batch][LVK_LAYOUT_MAX_TERMS] */
};

/* Default weight W of the term W*diversity(L) that 'lucidvk render' and
 * 'lucidvk atlas' add for K diverse images of a unit (--diversity K). The Gram-matrix cosines the term sums do not grow
 * with the unit's activation, so W follows the model's activation scale:
 * Lucid's 1e2 suits InceptionV1; on the demo model 1 or more leaves some
 * images without the unit, 0.3 spreads them and keeps it on
 * (tests/test_diversity.c). */
#define LVK_DIVERSITY_WEIGHT_DEFAULT 0.3f
/* Optimisation steps of a render unless told otherwise: Lucid's 512. */
#define LVK_RENDER_DEFAULT_STEPS 512

struct lvk_render_opts {
    const char *objective;   /* objective text (src/optvis/objective.h has the syntax) */
    int batch;               /* images; 0: 1, or the highest @i / batch(i, ...) + 1 */
    int size;                /* image side in pixels; 0: 128, or the model's input size
                                when that is smaller */
    int steps;               /* 0: LVK_RENDER_DEFAULT_STEPS */
    float lr;                /* Adam learning rate; 0: 0.05 */
    uint64_t seed;
    enum lvk_param_kind param;
    /* NULL: image b is source b, of kind `param`. Else the batch size must
     * be given and every image's terms listed. */
    const struct lvk_param_layout *layout;
    float decay_power;       /* spectral decay; 0: 1 */
    int no_decorrelate;      /* plain RGB instead of Lucid's decorrelated colour */
    int no_transforms;       /* no jitter/scale/rotate */
    int negative;            /* minimise instead of maximise */
    int redirect_steps;      /* steps of Lucid's redirected ReLU gradient; -1: 16, 0: off */
    struct lvk_preproc pre;  /* model input preprocessing */

    /* Called every `progress_every` steps (0: never) with the mean objective
     * value over the batch, and at the last step. */
    int progress_every;
    void (*progress)(void *user, int step, int steps, double value);
    /* Called every `snapshot_every` steps (0: never) with the current images. */
    int snapshot_every;
    void (*snapshot)(void *user, int step, const float *images, int b, int c, int h, int w);
    void *user;
    /* Time every dispatch of the last step (timestamp queries) and report
     * the totals in the result: LVK_RENDER_PROFILE_KERNELS by kernel,
     * LVK_RENDER_PROFILE_NODES by model node and kernel (which layer costs
     * what); 0: no timing. */
    int profile;
};

enum { LVK_RENDER_PROFILE_KERNELS = 1, LVK_RENDER_PROFILE_NODES = 2 };

#define LVK_RENDER_MAX_PHASES 256
#define LVK_RENDER_NODE_MAX 96
struct lvk_render_phase {
    const char *label;       /* kernel or op label (static string) */
    /* With LVK_RENDER_PROFILE_NODES: the model node that recorded the
     * dispatches (its ONNX name, cut to fit: names alike in their first 95
     * bytes share a phase), or "" for the parameterization's, the
     * objective's and the optimizer's. */
    char node[LVK_RENDER_NODE_MAX];
    int dispatches;
    double ms;               /* device time in one step */
};

struct lvk_render_result {
    int batch, channels, height, width;
    float *images;           /* [batch, channels, height, width] in [0,1], malloc'd */
    float *initial;          /* the same at step 0 */
    double *curve;           /* mean objective value before each step's update (steps
                                entries) */
    double *value_start;     /* [batch]: objective per image on the initial images */
    double *value_end;       /* [batch]: after the last step */
    int steps;
    int net_height, net_width; /* size the network ran at */
    double seconds;          /* optimisation loop only */
    double setup_seconds;    /* loading, planning, first recording */
    uint64_t device_bytes;   /* the most device memory the render held at once: network,
                                parameterization, optimizer state, images (VkFFT's own
                                scratch, when it needs any, not included) */
    /* With opts.profile: device time of one step by kernel (and node),
     * largest first. */
    struct lvk_render_phase phases[LVK_RENDER_MAX_PHASES];
    int nphases;
    double step_ms;          /* sum over all dispatches of one step */
};

/* Renders. A model whose layers cannot run at `size` (a classifier head of
 * fixed size) runs at its own input size and the image is resampled into it.
 * Errors: unknown layer, channel out of range, bad objective syntax
 * (lvk_last_error() names the column), and everything lvk_model_load
 * reports. */
lvk_status lvk_render(lvk_ctx_t *ctx, const char *model_path, const struct lvk_render_opts *opts,
                      struct lvk_render_result *out);
void lvk_render_result_free(struct lvk_render_result *r);

#ifdef __cplusplus
}
#endif
#endif
