/* Batched 2-D real FFTs on the device (VkFFT), recorded into a caller's
 * command buffer: R2C (real -> half spectrum) and C2R (half spectrum ->
 * real), out of place, UNNORMALISED (c2r(r2c(x)) = h*w * x), all `batch`
 * images in one plan.
 *
 * Layouts, float32, row-major:
 *   real      [batch, h, w]
 *   spectrum  [batch, h, w/2+1, 2]   (re, im interleaved; kx = 0 .. w/2)
 * Conventions are numpy's: r2c = np.fft.rfft2, c2r = np.fft.irfft2 * h*w
 * (for odd w the last column is kx = (w-1)/2 and every column but kx = 0 has
 * a mirror), with one condition on the C2R input: its kx = 0 column, and for
 * even w its kx = w/2 column, must be Hermitian along ky
 * (z[ky] = conj(z[(h-ky) % h])), as in every rfft2 of real data. numpy
 * silently uses the Hermitian part of any other input; VkFFT (measured with
 * 1.2.26, even w) gives a different real image. Callers that build spectra
 * from free parameters project those columns first (optvis/spectral.c).
 *
 * Buffer requirements:
 *   - `real` must hold at least lvk_fft_real_bytes(f) bytes, which is the
 *     size of the SPECTRUM, not batch*h*w*4: VkFFT 1.2.26 declares the real
 *     side of an out-of-place R2C/C2R with the padded complex size, and a
 *     smaller buffer is out of range (a validation error, undefined
 *     behaviour on GPUs). Only the first batch*h*w floats are read/written.
 *   - `spectrum` must hold lvk_fft_spectrum_bytes(f) bytes. C2R uses it as
 *     scratch: after lvk_fft_record_c2r its contents are undefined.
 *
 * Recording: each lvk_fft_record_* appends the transform's dispatches and
 * then the barrier lvk_cmd_dispatch emits (all compute and transfer writes
 * before all later compute and transfer accesses), so a recording can be
 * replayed any number of times. A VkFFT plan is tied to the buffers it was
 * first recorded with (re-pointing it would rewrite descriptor sets that
 * earlier recordings still use), so lvk_fft keeps one plan per distinct
 * (spectrum, real) pair, up to LVK_FFT_MAX_PLANS; the first is compiled at
 * create (glslang, about 100 ms), the others reuse its SPIR-V. */
#ifndef LVK_OPTVIS_FFT_H
#define LVK_OPTVIS_FFT_H

#include <stdint.h>

#include "vk/lvk_vk.h"

#define LVK_FFT_MAX_PLANS 8

struct lvk_fft;

/* Plans the transforms of `batch` images of h x w (compiles VkFFT's shaders).
 * Returns LVK_ERR_INVALID_ARG for zero sizes, LVK_ERR_UNSUPPORTED if VkFFT
 * cannot plan the size; *out is NULL on failure. */
lvk_status lvk_fft_create(struct lvk_ctx *ctx, uint32_t batch, uint32_t h, uint32_t w,
                          struct lvk_fft **out);
/* NULL-safe; the device must be idle with respect to recordings using f. */
void lvk_fft_destroy(struct lvk_fft *f);

/* Whether f's shaders were loaded from the cache folder (lvk_ctx.cache_dir)
 * rather than compiled: a create that compiles saves them there, and later
 * creates of the same transform with the same VkFFT, device and driver load
 * them (glslang took most of the 0.15-0.3 s of a create; see fft.c). */
bool lvk_fft_cached(const struct lvk_fft *f);

/* Minimum sizes of the buffers passed to the record functions (see above). */
VkDeviceSize lvk_fft_spectrum_bytes(const struct lvk_fft *f);
VkDeviceSize lvk_fft_real_bytes(const struct lvk_fft *f);

/* spectrum -> real: real = irfft2(spectrum) * h*w (for spectra with the
 * Hermitian columns above). Clobbers spectrum. */
lvk_status lvk_fft_record_c2r(struct lvk_cmd *cmd, struct lvk_fft *f,
                              const struct lvk_buf *spectrum, /* (batch, h, w/2+1, 2) in, scratch */
                              const struct lvk_buf *real);    /* (batch, h, w) out */

/* real -> spectrum: spectrum = rfft2(real). real is left unchanged. */
lvk_status lvk_fft_record_r2c(struct lvk_cmd *cmd, struct lvk_fft *f,
                              const struct lvk_buf *real,      /* (batch, h, w) in */
                              const struct lvk_buf *spectrum); /* (batch, h, w/2+1, 2) out */

#endif
