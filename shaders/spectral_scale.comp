#version 450
// Lucid's spectral scaling, between the fft_image parameters and the half
// spectrum VkFFT transforms (src/optvis/spectral.c):
//   forward   (BACKWARD = 0):  y  = s(ky,kx) * x             y: spectrum, x: params
//   backward  (BACKWARD = 1):  y += m(kx) * s(ky,kx) * x     y: param grad, x: rfft2(raw grad)
// with s = 1 / (4 sqrt(H W) max(f, 1/max(H,W))^DECAY): Lucid's sqrt(H W) / max(..)^DECAY,
// numpy's irfft2 1/(H W) (VkFFT's C2R is unnormalised) and Lucid's final / 4.
// f = sqrt(fy^2 + fx^2), fy = numpy fftfreq(H)[ky], fx = rfftfreq(W)[kx].
// m = 2 for the columns that stand for a conjugate pair (0 < kx < W/2), 1 for
// kx = 0 and, for even W, kx = W/2: the adjoint of numpy's C2R is m * R2C.
// The forward also projects the kx = 0 (and W/2) columns onto their Hermitian
// part, which makes VkFFT's C2R agree with numpy's (see below).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
#include "common/index.glsl"

layout(constant_id = 0) const uint NC = 1;          // images * channels
layout(constant_id = 1) const uint H = 1;           // image height
layout(constant_id = 2) const uint W = 1;           // image width
layout(constant_id = 3) const float DECAY = 1.0;    // Lucid's decay_power
layout(constant_id = 4) const uint BACKWARD = 0;    // 0: forward, 1: accumulate the adjoint

const uint WH = W / 2u + 1u;                        // half-spectrum columns
const uint COUNT = NC * H * WH;                     // complex elements

// y is written by the forward and accumulated by the backward: read-write.
layout(std430, set = 0, binding = 0) buffer Y { vec2 y[]; };          // y: [NC, H, W/2+1] complex
layout(std430, set = 0, binding = 1) readonly buffer X { vec2 x[]; }; // x: [NC, H, W/2+1] complex

// Each invocation handles PER elements, strided by the workgroup size so
// neighbouring invocations touch neighbouring addresses.
const uint PER = 4;

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint base = (lvk_flat_index() - lid) * PER + lid;
    for (uint k = 0; k < PER; ++k) {
        uint i = base + k * gl_WorkGroupSize.x;
        if (i >= COUNT)
            return;
        uint kx = i % WH;
        uint ky = (i / WH) % H;
        // numpy's fftfreq: 0, 1, .., (H-1)/2, then the negative frequencies.
        float fy = float(ky < (H + 1u) / 2u ? int(ky) : int(ky) - int(H)) / float(H);
        float fx = float(kx) / float(W);
        float f = max(sqrt(fy * fy + fx * fx), 1.0 / float(max(H, W)));
        float s = 1.0 / (4.0 * sqrt(float(H) * float(W)) * pow(f, DECAY));
        if (BACKWARD == 0u) {
            if (kx == 0u || 2u * kx == W) {
                // C2R reads these columns, after its transform along H, as
                // spectra of real rows: they must be Hermitian along ky.
                // numpy's irfft2 silently keeps the Hermitian part
                // (z[ky] + conj(z[-ky])) / 2 of any input; VkFFT does not, so
                // project here (s is even in ky).
                vec2 m = x[i - ky * WH + ((H - ky) % H) * WH];
                y[i] = 0.5 * s * (x[i] + vec2(m.x, -m.y));
            } else {
                y[i] = s * x[i];
            }
        } else {
            bool paired = kx != 0u && 2u * kx != W;
            y[i] += (paired ? 2.0 * s : s) * x[i];
        }
    }
}
