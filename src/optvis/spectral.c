/* Lucid's spectral (fft_image) parameterisation: forward and exact adjoint
 * (contract in spectral.h).
 *
 * Forward, per image and channel: spectrum = s * param (shaders/
 * spectral_scale.comp, which folds Lucid's scale, numpy's 1/(H*W) and the
 * final 1/4 into one factor s(ky,kx)), then VkFFT's unnormalised C2R.
 * Parameters are free, so the kx = 0 (and, for even W, kx = W/2) columns
 * are not Hermitian along ky; numpy's irfft2 uses their Hermitian part
 * (z[ky] + conj(z[-ky])) / 2, VkFFT's C2R does something else with the rest
 * (optvis/fft.h), so the same shader writes the Hermitian part there. With
 * that, the device computes numpy's irfft2 of the scaled parameters.
 *
 * Adjoint. numpy's irfft2 transforms along H (a full complex inverse DFT),
 * then along W with a real inverse DFT that reads only the real part of the
 * kx = 0 column and, for even W, of kx = W/2, and counts every other column
 * twice (it stands for itself and its conjugate mirror). With
 * phi = 2 pi (ky y / H + kx x / W) and m(kx) that count (1 or 2), the
 * unnormalised C2R is therefore
 *   out[y,x] = sum_{ky,kx} m(kx) (Zr cos phi - Zi sin phi),
 * and for an upstream gradient g[y,x]
 *   d<g,out>/dZr = m(kx) sum g cos phi = m(kx) Re G,
 *   d<g,out>/dZi = -m(kx) sum g sin phi = m(kx) Im G,
 * with G = sum g e^{-i phi} = rfft2(g), VkFFT's unnormalised R2C. So the
 * adjoint is R2C followed by param_grad += m * s * G. (The Hermitian
 * projection of the forward changes nothing here: numpy's C2R already
 * depends on those columns only through their Hermitian part, and G's
 * kx = 0 and W/2 columns are Hermitian since g is real.) The imaginary parts
 * C2R cannot see need no special case either: G is real exactly where they
 * are (kx and ky both 0 or Nyquist), so their gradient comes out zero;
 * elsewhere in the kx = 0 column the imaginary parts do matter (through the
 * transform along H) and get m = 1. tests/test_fft.c checks all this against
 * finite differences, including those columns.
 *
 * Non-goals: Lucid's odd-W extra column (see spectral.h), colour
 * decorrelation (a separate stage). */
#include <math.h>
#include <string.h>

#include "nn/ops_common.h"
#include "optvis/spectral.h"

/* Elements per invocation in shaders/spectral_scale.comp. */
#define SCALE_PER 4

/* ---- initialisation --------------------------------------------------------- */

/* splitmix64 (Steele, Lea & Flood 2014): a 64-bit counter through a fixed
 * mixing function, so the stream is the same on every platform. */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A uniform in (0, 1]: 53 random bits, never 0 (log below). */
static double uniform01(uint64_t *state)
{
    return (double)((splitmix64(state) >> 11) + 1) * 0x1p-53;
}

void lvk_spectral_init_params(float *params, uint32_t nparams, uint64_t seed, double sd)
{
    uint64_t state = seed;
    for (uint32_t k = 0; k < nparams; k += 2) {
        double u1 = uniform01(&state), u2 = uniform01(&state);
        double r = sqrt(-2.0 * log(u1));
        params[k] = (float)(sd * r * cos(2.0 * M_PI * u2));
        if (k + 1 < nparams)
            params[k + 1] = (float)(sd * r * sin(2.0 * M_PI * u2));
    }
}

/* ---- create / destroy --------------------------------------------------------- */

lvk_status lvk_spectral_create(struct lvk_ctx *ctx, uint32_t b, uint32_t c, uint32_t h,
                               uint32_t w, float decay_power, uint64_t seed,
                               struct lvk_spectral **out)
{
    *out = NULL;
    uint64_t n = (uint64_t)b * c * h * (w / 2 + 1) * 2;
    if (n == 0 || (uint64_t)b * c * h * w == 0)
        return lvk_fail(LVK_ERR_INVALID_ARG, "spectral: empty image (%u x %u x %u x %u)", b, c, h, w);
    if (n > UINT32_MAX)
        return lvk_fail(LVK_ERR_INVALID_ARG, "spectral: %llu parameters exceed 32-bit indexing",
                        (unsigned long long)n);
    struct lvk_spectral *s = lvk_calloc(1, sizeof *s);
    if (!s)
        return LVK_ERR_HOST_OOM;
    s->ctx = ctx;
    s->b = b;
    s->c = c;
    s->h = h;
    s->w = w;
    s->decay_power = decay_power;
    s->nparams = (uint32_t)n;
    float *init = NULL;
    lvk_status st;
    LVK_TRY(st, lvk_fft_create(ctx, b * c, h, w, &s->fft));
    s->raw_bytes = lvk_fft_real_bytes(s->fft);

    VkDeviceSize sizes[3] = {n * sizeof(float), n * sizeof(float), lvk_fft_spectrum_bytes(s->fft)};
    LVK_TRY(st, lvk_arena_create(ctx, sizes, 3, s->bufs, &s->arena));
    s->param = &s->bufs[0];
    s->param_grad = &s->bufs[1];

    init = lvk_calloc(n, sizeof *init);
    if (!init) {
        st = LVK_ERR_HOST_OOM;
        goto fail;
    }
    lvk_spectral_init_params(init, s->nparams, seed, 0.01);
    LVK_TRY(st, lvk_buf_upload(ctx, s->param, 0, init, n * sizeof(float)));
    free(init);
    *out = s;
    return LVK_OK;
fail:
    free(init);
    lvk_spectral_destroy(s);
    return st;
}

void lvk_spectral_destroy(struct lvk_spectral *s)
{
    if (!s)
        return;
    lvk_arena_destroy(s->ctx, s->bufs, 3, &s->arena);
    lvk_fft_destroy(s->fft);
    free(s);
}

/* ---- recording ------------------------------------------------------------------ */

static lvk_status record_scale(struct lvk_cmd *cmd, struct lvk_spectral *s, bool backward,
                               const struct lvk_buf *y, const struct lvk_buf *x)
{
    const uint32_t spec[] = {s->b * s->c, s->h, s->w, lvk_spec_f32(s->decay_power), backward};
    const struct lvk_pipeline *p =
        lvk_pipeline_get(cmd->ctx, LVK_SHADER_SPECTRAL_SCALE, spec, LVK_ARRAY_LEN(spec));
    if (!p)
        return LVK_ERR_VULKAN;
    uint64_t count = (uint64_t)s->nparams / 2; /* complex elements */
    return lvk_dispatch_1d(cmd, p, LVK_BINDS(LVK_B(y), LVK_B(x)), 2, NULL, 0,
                           LVK_CEIL_DIV(count, SCALE_PER),
                           backward ? "spectral_scale_bwd" : "spectral_scale_fwd");
}

lvk_status lvk_spectral_record_fwd(struct lvk_cmd *cmd, struct lvk_spectral *s,
                                   const struct lvk_buf *raw)
{
    const struct lvk_buf *spectrum = &s->bufs[2];
    LVK_CHECK(record_scale(cmd, s, false, spectrum, s->param));
    return lvk_fft_record_c2r(cmd, s->fft, spectrum, raw);
}

lvk_status lvk_spectral_record_bwd(struct lvk_cmd *cmd, struct lvk_spectral *s,
                                   const struct lvk_buf *raw_grad)
{
    const struct lvk_buf *spectrum = &s->bufs[2];
    LVK_CHECK(lvk_fft_record_r2c(cmd, s->fft, raw_grad, spectrum));
    return record_scale(cmd, s, true, s->param_grad, spectrum);
}
