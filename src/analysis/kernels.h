/* Convolution kernels as a neuroscientist would describe receptive fields:
 * preferred orientation, orientation selectivity, spatial frequency and
 * colour, measured from the weights of a conv layer, plus the pictures and
 * rankings built on them.
 *
 * ---- Definitions ---------------------------------------------------------------
 *
 * A kernel w[c][r][s] (C input channels, kh rows, kw columns) is read in
 * image coordinates with x = s (to the right) and y = -r (UP, as on the
 * screen), so angles are counterclockwise on the screen from the +x axis.
 *
 * Power spectrum: each channel's mean is removed (a uniform offset has no
 * orientation), the channel is zero-padded to N x N (N = LVK_KERNEL_FFT, a
 * fine sampling of its continuous spectrum) and Fourier transformed;
 *   P(f) = sum_c |W_c(f)|^2,  f = (fx, fy) in cycles per pixel, |fx|,|fy| <= 1/2.
 * Summing over channels lets a colour-opponent edge count like a gray one.
 *
 * Preferred orientation and selectivity: the power-weighted mean of the
 * doubled angle phi(f) = atan2(fy, fx) (doubled because P(f) = P(-f)),
 *   z = sum_f P(f) e^{2 i phi(f)} / sum_f P(f)   (f != 0),
 *   orientation = arg(z) / 2 in [0, 180) degrees, selectivity = |z| in [0, 1].
 * The orientation is that of the dominant spatial-frequency vector: the
 * direction across which the kernel changes, normal to its stripes, which
 * is the theta of a Gabor cos(2 pi (x cos theta + y sin theta) / lambda)
 * (skimage.filters.gabor_kernel's convention). Its stripes run at
 * orientation + 90. Selectivity is 0 for an isotropic kernel (centre-surround,
 * blob) and approaches 1 for a long grating.
 *
 * Spatial frequency: the power-weighted mean of |f|, in cycles per pixel
 * (a Gabor of wavelength lambda gives about 1 / lambda).
 *
 * Colour (C = 3): the share of the kernel's energy that is not achromatic,
 *   colour = 1 - C * sum_rs a^2 / sum_crs w^2,  a[r][s] = mean_c w[c][r][s];
 * 0 for a kernel equal in all channels, 1 when the channels sum to zero at
 * every position. Opponency (C = 3): max(0, -min over channel pairs of the
 * cosine between their weight vectors), 1 for two channels exactly opposed
 * (a red-green kernel). Both are 0 for other channel counts.
 *
 * Norm: the kernel's L2 norm.
 *
 * Only layers whose kernels see image-like inputs (the first conv, or a
 * depthwise conv) have meaningful orientations this way; 1x1 kernels have
 * none (selectivity 0).
 *
 * ---- Orientation from gratings (layers past the first) ------------------------
 *
 * Past the first conv the weights do not live in image space, so the model
 * is shown full-contrast sinusoidal gratings in [0, 1] image space (every
 * colour channel alike, then the model's preprocessing),
 *   g(x, y) = 0.5 + 0.5 cos(2 pi f (x cos theta + y sin theta) + phi),
 * x to the right and y UP from the image centre, as for kernels, at
 *   theta = 180 k / angles        (k < angles; default 36, every 5 degrees),
 *   f = 2^{-(j+3)/2} cycles/pixel (half octaves 0.354, 0.25, 0.177, ..., down
 *                                  to two cycles across the image),
 *   phi = 360 p / phases          (p < phases; default 8).
 * A channel's response r(theta, f) is the mean, over the phases and over the
 * central half of its map (rows [h/4, h - h/4), likewise columns; the whole
 * map when that is empty), of max(0, a). The centre because units near the
 * border see the padding instead of the grating; a region rather than one
 * unit because its positions and the phases together average over where
 * the stripes fall, which a single unit with few phases does not. Each unit
 * is rectified before averaging: a no-op after a ReLU, and on a linear map
 * it keeps opposite phases from cancelling to the orientation-blind mean.
 * Preferred frequency: the f whose strongest response over theta is the
 * highest. At that frequency orientation and selectivity are defined as for
 * the spectrum, with the responses as weights:
 *   z = sum_theta r e^{2 i theta} / sum_theta r,
 *   orientation = arg(z) / 2, selectivity = |z|.
 * theta is a grating's direction across its stripes, the same angle the
 * spectrum reports, so on a first layer the two methods agree (within the
 * difference between weighting all frequencies by power and one frequency
 * by rectified response; tests/test_kernels.c measures it). A channel that
 * responds to no grating gets 0 for all three. Colour, opponency and norm
 * stay those of the weights. */
#ifndef LVK_ANALYSIS_KERNELS_H
#define LVK_ANALYSIS_KERNELS_H

#include "io/lvk_io.h"
#include "lucidvk/lucidvk.h"
#include "lucidvk/preproc.h"

#define LVK_KERNEL_FFT 64
/* Below this selectivity a kernel's orientation is noise: the orientation
 * ranking puts such kernels after the oriented ones. */
#define LVK_KERNEL_MIN_SELECTIVITY 0.2f

struct lvk_kernel_stats {
    float orientation;  /* degrees in [0, 180) */
    float selectivity;  /* [0, 1] */
    float frequency;    /* cycles per pixel */
    float colour;       /* [0, 1]; 0 unless C == 3 */
    float opponency;    /* [0, 1]; 0 unless C == 3 */
    float norm;         /* L2 */
};

/* Measures one kernel w [c, kh, kw] (kh, kw <= LVK_KERNEL_FFT). */
lvk_status lvk_kernel_stats(const float *w, int c, int kh, int kw, struct lvk_kernel_stats *out);

/* A kernel whose norm is below LVK_KERNEL_DEAD times the largest of its
 * layer is dead (pruned, or never trained away from zero): its spectrum is
 * rounding noise, so every measure but the norm is set to 0, as for a
 * kernel with no structure. Returns how many of the n were dead. */
#define LVK_KERNEL_DEAD 1e-4f
int lvk_kernels_mark_dead(struct lvk_kernel_stats *s, int n);

enum lvk_kernel_rank {
    LVK_RANK_ORIENTATION, /* ascending orientation; unselective kernels last */
    LVK_RANK_FREQUENCY,   /* ascending spatial frequency */
    LVK_RANK_COLOUR,      /* descending colour */
    LVK_RANK_NORM,        /* descending norm */
};

/* "orientation", "frequency", "colour" (or "color"), "norm". */
lvk_status lvk_kernel_rank_parse(const char *s, enum lvk_kernel_rank *out);
const char *lvk_kernel_rank_name(enum lvk_kernel_rank r);

/* order[0..n) = kernel indices in rank order (stable: ties keep index order). */
void lvk_kernels_rank(const struct lvk_kernel_stats *stats, int n, enum lvk_kernel_rank by, int *order);

/* The weights of a Conv node: w [cout, cin, kh, kw] (cin per group). */
struct lvk_conv_weights {
    char node[256];     /* the Conv node's name */
    char tensor[256];   /* the weight tensor's name */
    char output[256];   /* the tensor the Conv produces */
    int sees_image;     /* its input is the graph's image input, directly or
                           through elementwise ops (a first layer) */
    int cout, cin, kh, kw, group;
    float *w;           /* malloc'd copy */
};

/* Finds the Conv named by `layer`: a Conv node's name, the tensor it
 * produces, or a tensor computed from one through elementwise ops
 * (Relu, Clip, BatchNormalization, Add/Mul/Sub/Div with a constant, ...),
 * so "conv1/Relu6" finds "conv1"'s Conv. NULL: the first Conv of the
 * graph. Works on unfinalized graphs (no device needed). Fails with
 * LVK_ERR_NOT_FOUND naming the layer, LVK_ERR_UNSUPPORTED for a Conv
 * whose weights are not constant or not 2-D. */
lvk_status lvk_conv_weights_find(const lvk_model_t *m, const char *layer, struct lvk_conv_weights *out);
void lvk_conv_weights_free(struct lvk_conv_weights *cw);

/* Pictures of the kernels order[0..n) as one labelled sheet: each kernel
 * upscaled `zoom` times (0: to about 48 pixels), in RGB when cin == 3, else
 * the input channel with the most energy in gray; mid-gray is 0, and
 * weights are scaled by the kernel's own largest |w| (or the layer's, when
 * shared_scale). Above each tile its index and, when stats is given, the
 * value ranked by (orientation in degrees, frequency, colour or norm). */
lvk_status lvk_kernels_render(const struct lvk_conv_weights *cw, const int *order, int n,
                              const struct lvk_kernel_stats *stats, enum lvk_kernel_rank by,
                              int zoom, int shared_scale, struct lvk_image *out);

/* Where orientation, selectivity and frequency come from. */
enum lvk_orient_method {
    LVK_ORIENT_SPECTRUM, /* the weights' power spectrum */
    LVK_ORIENT_GRATINGS, /* responses to gratings (lvk_grating_stats) */
};

/* "spectrum", "gratings". */
const char *lvk_orient_method_name(enum lvk_orient_method m);

struct lvk_grating_opts {
    int angles;   /* orientations over [0, 180); 0: 36 */
    int phases;   /* 0: 8 */
    int batch;    /* gratings per forward pass; 0: as many as fit 256 MiB of
                     activations (at most 32) */
};

/* The grating frequencies for an image of h x w: up to max of them into f
 * (cycles per pixel, falling); returns how many there are. */
int lvk_grating_frequencies(int h, int w, float *f, int max);

/* Measures every channel of `tensor` ([N, K, h, w], K == nchannels) of the
 * model at `model_path`, run at its declared input size with preprocessing
 * `pre`, and sets orientation, selectivity and frequency of stats[0..K) as
 * defined above, leaving the other fields. The gratings run in batches of
 * o->batch. Fails with LVK_ERR_NOT_FOUND for an unknown tensor,
 * LVK_ERR_INVALID_ARG when it is not 4-D with nchannels channels or the
 * input is not an image [N, C, H, W], and with what lvk_model_load reports. */
lvk_status lvk_grating_stats(lvk_ctx_t *ctx, const char *model_path, const char *tensor,
                             const struct lvk_preproc *pre, const struct lvk_grating_opts *o,
                             struct lvk_kernel_stats *stats, int nchannels);

/* Writes {"layer", "tensor", "shape", "method", "response_of", "definitions", "rank",
 * "kernels": [{"index", "rank", "orientation", "selectivity", "frequency", "colour",
 * "opponency", "norm"}]} in rank order, atomically. "response_of" (gratings
 * only) names the tensor measured; the definitions are those of `method`. */
lvk_status lvk_kernels_write_json(const char *path, const struct lvk_conv_weights *cw,
                                  const struct lvk_kernel_stats *stats, const int *order,
                                  enum lvk_kernel_rank by, enum lvk_orient_method method,
                                  const char *response_of);

#endif
