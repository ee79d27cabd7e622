/* Lucid's spectral image parameterisation (fft_image), on the device.
 *
 * B images of C channels, H x W pixels. The parameters are a half spectrum
 * per image and channel,
 *   param  [B, C, H, W/2+1, 2]   (re, im interleaved; float32)
 * and the raw image (before colour decorrelation and sigmoid) is
 *   raw = irfft2(param * scale, s=(H, W)) / 4        raw: [B, C, H, W]
 *   scale(ky, kx) = sqrt(H*W) / max(f, 1/max(H, W))^decay_power,
 *   f = sqrt(fy^2 + fx^2), fy = numpy fftfreq(H)[ky], fx = rfftfreq(W)[kx]
 * with numpy's irfft2 (normalised by 1/(H*W); it ignores the imaginary parts
 * of the kx = 0 column, and of kx = W/2 for even W, after the transform
 * along H). Low frequencies get large scales, so plain gradient steps on
 * the parameters favour smooth images. For even W this is exactly Lucid's
 * formula; for odd W Lucid keeps one extra (aliased) column and crops, while
 * here the spectrum has numpy's W/2+1 columns.
 *
 * Initial parameters are N(0, 0.01^2), drawn in order over the flattened
 * param array from splitmix64(seed) with Box-Muller on pairs of draws
 * (re from the cosine, im from the sine); see lvk_spectral_init_params.
 *
 * Gradients: lvk_spectral_record_bwd ACCUMULATES d loss / d param into
 * `param_grad` (the render loop zeroes it once per step, e.g. with
 * lvk_cmd_fill). `param` and `param_grad` are laid out alike, nparams floats,
 * so an optimiser can update them elementwise. */
#ifndef LVK_OPTVIS_SPECTRAL_H
#define LVK_OPTVIS_SPECTRAL_H

#include <stdint.h>

#include "optvis/fft.h"

struct lvk_spectral {
    struct lvk_ctx *ctx;
    uint32_t b, c, h, w;
    float decay_power;
    uint32_t nparams;            /* floats in param and param_grad: B*C*H*(W/2+1)*2 */
    struct lvk_buf *param;       /* [B, C, H, W/2+1, 2] */
    struct lvk_buf *param_grad;  /* [B, C, H, W/2+1, 2], accumulated by bwd */
    VkDeviceSize raw_bytes;      /* minimum size of the raw / raw grad buffers, >= B*C*H*W*4 */

    /* private */
    struct lvk_fft *fft;
    struct lvk_buf bufs[3];      /* param, param_grad, spectrum scratch */
    struct lvk_arena arena;
};

/* Creates the parameters (initialised from `seed`, uploaded) and the FFT
 * plans. decay_power is Lucid's (1 by default). Returns LVK_ERR_INVALID_ARG
 * for empty sizes or sizes whose parameter count overflows 32 bits. */
lvk_status lvk_spectral_create(struct lvk_ctx *ctx, uint32_t b, uint32_t c, uint32_t h,
                               uint32_t w, float decay_power, uint64_t seed,
                               struct lvk_spectral **out);
/* NULL-safe; the device must be idle with respect to recordings using s. */
void lvk_spectral_destroy(struct lvk_spectral *s);

/* Host side of the initialisation: fills params[nparams] with the N(0, sd^2)
 * stream of `seed` described above (deterministic across platforms up to the
 * last bit of libm's log/cos/sin, before rounding to float). */
void lvk_spectral_init_params(float *params, uint32_t nparams, uint64_t seed, double sd);

/* Records the forward pass: raw = irfft2(param * scale) / 4, overwriting
 * raw. raw must hold at least s->raw_bytes (VkFFT's out-of-place layout,
 * see optvis/fft.h); only its first B*C*H*W floats are written. */
lvk_status lvk_spectral_record_fwd(struct lvk_cmd *cmd, struct lvk_spectral *s,
                                   const struct lvk_buf *raw); /* (B,C,H,W) out */

/* Records the backward pass: param_grad += d<raw_grad, raw>/d param, the
 * exact adjoint of the forward (see spectral.c). raw_grad must hold at least
 * s->raw_bytes; it is read only. */
lvk_status lvk_spectral_record_bwd(struct lvk_cmd *cmd, struct lvk_spectral *s,
                                   const struct lvk_buf *raw_grad); /* (B,C,H,W) in */

#endif
