/* Attribution: which pixels of an image matter for a class score or for any
 * objective (optvis/objective.h), from gradients with respect to the input.
 *
 * Methods (f is the target: a class score or an objective, x the image):
 *   saliency    |df/dx|, the largest over colour channels (Simonyan et al.);
 *   guided      guided backpropagation (Springenberg et al.): every ReLU and
 *               ReLU6 passes a gradient back only where its input is active
 *               AND the gradient is positive; then as saliency;
 *   ig          integrated gradients (Sundararajan et al.) from baseline x0:
 *               a_i = (x_i - x0_i) * integral_0^1 df/dx_i(x0 + t (x - x0)) dt,
 *               estimated from `steps` gradients as sum_k w_k df/dx_i(t_k).
 *               Completeness says sum_i a_i = f(x) - f(x0); the result
 *               reports how far off the sum is. Nodes (lvk_attr_ig_refine):
 *               half of them Gauss-Legendre, then two rounds of a quarter
 *               each, placed where the integral is least resolved: every
 *               gradient pass also gives f at its node, so the exact change
 *               of f over each interval between nodes is known and is
 *               compared with what the gradients predict (trapezoid rule);
 *               new nodes go to the intervals in proportion to the
 *               mismatch. Weights: each node stands for the stretch of path
 *               nearer to it than to its neighbours (lvk_attr_ig_weights).
 *               Why: with a black baseline, a ReLU6 network's df/dt is
 *               piecewise constant with narrow spikes where the image is
 *               nearly black; fixed nodes that land on one are badly off
 *               (64 Gauss-Legendre nodes: 23% on MobileNet V2 / coffee),
 *               adaptive ones put several nodes there. Steps run in
 *               batches of the model's batch size; the nodes do not depend
 *               on it;
 *   smoothgrad  SmoothGrad (Smilkov et al.): the gradient averaged over
 *               `samples` copies of x with Gaussian noise of standard
 *               deviation noise * (pixel range 1), then as saliency;
 *   gradcam     Grad-CAM (Selvaraju et al.) at a layer A [K, h, w]:
 *               relu(sum_k alpha_k A_k), alpha_k = mean over positions of
 *               df/dA_k, upsampled bilinearly to the image.
 *
 * Everything is in pixel space: images are [C, H, W] with values in [0, 1]
 * (C 1 or 3, at the model's input size), the model's preprocessing
 * (lucidvk/preproc.h) is applied on the way in and its Jacobian on the way
 * back, so gradients are d f / d pixel. Heat maps ([H, W], >= 0):
 *   saliency, guided, smoothgrad   max over channels of |gradient|;
 *   ig                             |sum over channels of a_i|;
 *   gradcam                        the upsampled class activation map.
 *
 * The target f is, per image of a batch, a class score (a channel of the
 * scores tensor, by default the first graph output or, when that is a
 * Softmax, its input: logits rather than probabilities) or an objective
 * made of model-tensor terms. The objective gradients reach the input
 * through the engine's backward pass; the sums over steps and channels and
 * Grad-CAM's reductions run on the host, on data the host reads anyway. */
#ifndef LVK_ANALYSIS_ATTRIBUTION_H
#define LVK_ANALYSIS_ATTRIBUTION_H

#include <stdint.h>

#include "io/colormap.h"
#include "io/lvk_io.h"
#include "lucidvk/lucidvk.h"
#include "lucidvk/preproc.h"

enum lvk_attr_method {
    LVK_ATTR_SALIENCY,
    LVK_ATTR_GUIDED,
    LVK_ATTR_IG,
    LVK_ATTR_SMOOTHGRAD,
    LVK_ATTR_GRADCAM,
};

/* "saliency", "guided", "ig", "smoothgrad", "gradcam"; LVK_ERR_INVALID_ARG
 * naming the choices otherwise. */
lvk_status lvk_attr_method_parse(const char *s, enum lvk_attr_method *out);
const char *lvk_attr_method_name(enum lvk_attr_method m);

#define LVK_ATTR_DEFAULT_STEPS   50
#define LVK_ATTR_DEFAULT_SAMPLES 50
#define LVK_ATTR_DEFAULT_NOISE   0.15f

struct lvk_attr_opts {
    enum lvk_attr_method method;
    /* Objective text (model-tensor terms only; no image terms, "@i" or
     * diversity), or NULL for a class score. */
    const char *objective;
    const char *scores;       /* class-score tensor; NULL: lvk_attr_default_scores() */
    int target;               /* class index; < 0: the image's top-1 class */
    const char *layer;        /* gradcam; NULL: lvk_attr_default_layer() */
    int steps;                /* ig; 0: LVK_ATTR_DEFAULT_STEPS */
    const float *baseline;    /* ig: [C, H, W] pixels; NULL: black (all 0) */
    int samples;              /* smoothgrad; 0: LVK_ATTR_DEFAULT_SAMPLES */
    float noise;              /* smoothgrad; 0: LVK_ATTR_DEFAULT_NOISE */
    uint64_t seed;            /* smoothgrad noise */
    struct lvk_preproc pre;   /* the model's preprocessing */
};

struct lvk_attr_result {
    int c, h, w;
    float *attr;              /* [C, H, W]: gradient (saliency, guided), mean
                                 gradient (smoothgrad), a_i (ig); NULL for gradcam */
    float *map;               /* [H, W] heat map, >= 0 */
    int target;               /* class used, -1 for an objective */
    double value;             /* f(x) */
    int batch;                /* images per pass */
    int passes;               /* forward+backward passes run (forward-only ones not counted) */
    int images;               /* images whose gradient was taken: IG's path nodes,
                                 SmoothGrad's samples, else 1 */
    /* ig */
    int steps;
    double *nodes;            /* [steps] the t_k, ascending */
    double *weights;          /* [steps] the w_k (sum 1) */
    double baseline_value;    /* f(x0) */
    double attr_sum;          /* sum of a_i */
    double completeness;      /* |attr_sum - (value - baseline_value)| / |value - baseline_value| */
    /* gradcam */
    char layer[256];
    int cam_h, cam_w;
    float *cam;               /* [cam_h, cam_w], before upsampling */
};

/* The class-score tensor: the first graph output, or the input of the
 * Softmax/LogSoftmax that produces it. Works on finalized and unfinalized
 * graphs. NULL when the graph has no output. */
const char *lvk_attr_default_scores(const lvk_model_t *m);

/* Grad-CAM's default layer: the last 4-D tensor with more than one position
 * that carries a gradient (the last convolutional feature map before
 * global pooling). Needs a finalized model with gradients; NULL if none. */
const char *lvk_attr_default_layer(const lvk_model_t *m);

/* Loads an ONNX model for o: with gradients, the tensors o reads as
 * outputs, at a batch of min(want, steps or samples) images (1 for the
 * single-image methods; want <= 0: no cap), halving the batch while the
 * device runs out of memory. */
lvk_status lvk_attr_load(lvk_ctx_t *ctx, const char *path, const struct lvk_attr_opts *o,
                         int want, lvk_model_t **out);

/* Computes the attribution of `image` ([C, H, W] pixels at the model's
 * input size) on m (finalized with gradients and with the tensors o reads
 * among its outputs; any batch). Fills r (free with lvk_attr_result_free).
 * Fails with LVK_ERR_INVALID_ARG for an image of the wrong size, a class
 * out of range, objective terms attribution cannot use; LVK_ERR_NOT_FOUND
 * for unknown tensors. The model's ReLU gradient mode is normal on return. */
lvk_status lvk_attr_compute(lvk_model_t *m, const struct lvk_attr_opts *o, const float *image,
                            struct lvk_attr_result *r);
void lvk_attr_result_free(struct lvk_attr_result *r);

/* The n Gauss-Legendre nodes t[k] (ascending) and weights w[k] on [0, 1]:
 * sum_k w[k] p(t[k]) = integral_0^1 p for polynomials p of degree < 2n. */
void lvk_attr_ig_nodes(int n, double *t, double *w);

/* Weights of m ascending nodes in (0, 1): w[k] is the length of the part of
 * [0, 1] nearer to t[k] than to any other node (cuts halfway between
 * neighbours); they sum to 1. */
void lvk_attr_ig_weights(const double *t, int m, double *w);

/* Chooses `add` new nodes (into out, unsorted) given m >= 1 ascending nodes
 * t with df/dt g and values f there, and f0 = f(0), f1 = f(1): the m + 1
 * intervals [0, t0], [t0, t1], ..., [t(m-1), 1] each get a share of `add`
 * proportional to |predicted - actual change of f| (prediction: trapezoid
 * of g; the end intervals use their one g), rounded by largest remainders
 * (ties to the earlier interval), or to their length when every prediction
 * is exact; an interval's new nodes split it evenly. */
lvk_status lvk_attr_ig_refine(const double *t, const double *g, const double *f, int m, double f0,
                              double f1, int add, double *out);

/* ---- baselines and pictures ------------------------------------------------------- */

enum lvk_attr_baseline { LVK_BASELINE_BLACK, LVK_BASELINE_BLUR, LVK_BASELINE_NOISE };

/* Fills out [C, H, W]: black (0); the image under a Gaussian blur of
 * standard deviation max(H, W) / 16 pixels (edges clamped); or uniform
 * noise in [0, 1] from `seed`. */
lvk_status lvk_attr_baseline(enum lvk_attr_baseline kind, const float *image, int c, int h, int w,
                             uint64_t seed, float *out);

/* Heat map picture: map / (its clip_pct-th percentile, 100 = maximum),
 * clamped to [0, 1], through the colormap; over `image` ([c, h, w], or NULL
 * for the heat map alone) each pixel is mixed as (1 - t) * image / 2 +
 * t * colour for heat t, so cold regions show the image, dimmed so that
 * the heat stands out. out is RGB h x w. */
lvk_status lvk_attr_render(const float *map, int h, int w, const float *image, int c,
                           enum lvk_cmap cmap, float clip_pct, struct lvk_image *out);

#endif
