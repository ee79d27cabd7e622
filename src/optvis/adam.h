/* Adam optimiser on device buffers (shaders/adam.comp).
 *
 * The update is recorded once and replayed every step; the values that
 * change per step (learning rate, bias corrections 1 - beta1^t and
 * 1 - beta2^t) live in a small device buffer that lvk_adam_set_step()
 * rewrites before each submit. The form is Kingma & Ba's Algorithm 1 (as
 * PyTorch's torch.optim.Adam): eps is added to sqrt(v / (1 - beta2^t)).
 * Lucid used TensorFlow's Adam, which adds eps to sqrt(v) before the bias
 * correction; with eps = 1e-8 the two differ only where v ~ 1e-16. */
#ifndef LVK_OPTVIS_ADAM_H
#define LVK_OPTVIS_ADAM_H

#include <stdbool.h>
#include <stdint.h>

#include "vk/lvk_vk.h"

struct lvk_adam_opts {
    float lr;       /* 0.05, Lucid's render_vis default */
    float beta1;    /* 0.9 */
    float beta2;    /* 0.999 */
    float eps;      /* 1e-8 */
    bool minimise;  /* false: param += step (ascend: the objective is maximised) */
};

void lvk_adam_opts_default(struct lvk_adam_opts *o);

struct lvk_adam {
    struct lvk_ctx *ctx;
    uint32_t count;          /* parameters updated */
    struct lvk_adam_opts opts;
    float lr;                /* learning rate of the next lvk_adam_set_step(); starts at opts.lr */
    struct lvk_buf bufs[3];  /* m (count), v (count), step (lr, bc1, bc2, 0) */
    struct lvk_arena arena;  /* m and v */
    struct lvk_arena step_arena; /* step, mapped: written before every step */
};

/* Allocates m and v for `count` parameters, both zero. opts NULL: defaults. */
lvk_status lvk_adam_create(struct lvk_ctx *ctx, uint32_t count, const struct lvk_adam_opts *opts,
                           struct lvk_adam **out);
void lvk_adam_destroy(struct lvk_adam *a);

/* Zeroes m and v (a fresh optimisation; the next step should be t = 1). */
lvk_status lvk_adam_reset(struct lvk_adam *a);

/* Records one update of param[0..count) from grad[0..count). Every
 * dispatch ends in a barrier, so grad may be zeroed right after. */
lvk_status lvk_adam_record(struct lvk_cmd *cmd, const struct lvk_adam *a,
                           const struct lvk_buf *param, /* (count) updated in place */
                           const struct lvk_buf *grad); /* (count) */

/* Uploads the per-step values of step t (1, 2, ...): lr = a->lr,
 * 1 - beta1^t, 1 - beta2^t. Call before each submit. */
lvk_status lvk_adam_set_step(struct lvk_adam *a, int t);

#endif
