// Gradient of a unit that passes its input through on (lo, hi) and is flat
// outside (ReLU: lo = 0, hi = +inf; ReLU6: lo = 0, hi = 6), under the
// run-time ReLU gradient mode (enum lvk_relu_mode, src/nn/graph.h).
// Gradients are d(objective)/dy for an objective being MAXIMISED, so g > 0
// means "increasing y helps".
#define LVK_RELU_GRAD_NORMAL   0u
#define LVK_RELU_GRAD_REDIRECT 1u
#define LVK_RELU_GRAD_GUIDED   2u

float lvk_relu_grad(uint mode, float x, float g, float lo, float hi)
{
    bool on = x > lo && x < hi;
    if (mode == LVK_RELU_GRAD_REDIRECT) {
        // Lucid's redirected ReLU: a unit stuck at a bound still passes the
        // gradients that would move it back into the range, so dead units
        // can recover during optimisation.
        on = on || (x <= lo && g > 0.0) || (x >= hi && g < 0.0);
    } else if (mode == LVK_RELU_GRAD_GUIDED) {
        // Guided backprop: only positive evidence through active units.
        on = on && g > 0.0;
    }
    return on ? g : 0.0;
}
