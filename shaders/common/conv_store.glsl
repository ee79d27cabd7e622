// What conv2d_texel.comp and conv2d_wino_out.comp (Winograd's output
// transform, which finishes the texel kernel's products) do to each element
// they store, chosen by the same FLAGS bits (TX_* in src/nn/ops/conv.c): add
// a fused Add's other operand (forward) or a residual Add's gradient
// (backward), clamp by a fused Relu/ReLU6 (forward), mask by an
// activation's gradient (backward), add to what "out" holds (backward
// without grad_store). The includer declares FLAGS, ACT_LO and ACT_HI and
// includes common/relu_mode.glsl first.
const bool ACT = (FLAGS & 16) != 0, MASK = (FLAGS & 64) != 0, RESID = (FLAGS & 256) != 0;
// Not BWD && ...: glslang evaluates a && of constants as control flow in
// main, which specialisation breaks.
const bool ADD = (FLAGS & (2 | 128)) == 2;

// v: the sum (bias included); a: the element of aux (with RESID the Add's
// operand or its output's gradient, with MASK the activation's output);
// old: out's element (read only with ADD); mode: the run-time ReLU gradient
// mode (MASK).
float lvk_conv_store_value(float v, float a, float old, uint mode)
{
    if (RESID)
        v += a;
    if (ACT)
        v = min(max(v, ACT_LO), ACT_HI);
    if (MASK)
        v = lvk_relu_grad(mode, a, v, ACT_LO, ACT_HI);
    if (ADD)
        v += old;
    return v;
}
