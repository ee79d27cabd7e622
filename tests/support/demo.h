/* The demo model that ships in assets/demo, as tests use it: its path, its
 * preprocessing, rendering on it, and running it on images in [0,1] to
 * judge renders. */
#ifndef LVK_TEST_DEMO_H
#define LVK_TEST_DEMO_H

#include <stddef.h>

#include "lucidvk/lucidvk.h"
#include "lucidvk/preproc.h"
#include "lucidvk/render.h"
#include "optvis/grid.h"

#define LVK_DEMO_MODEL LVK_SOURCE_DIR "/assets/demo/fashion_cnn.onnx"

/* The model's sidecar preprocessing (fails the test if it is missing). */
struct lvk_preproc lvk_test_demo_preproc(void);

/* Renders `o` on the demo model with its sidecar preprocessing (set into
 * o->pre). Skips the test without a device; fails it with the library's
 * message when the render fails. */
void lvk_test_demo_render(struct lvk_render_opts *o, struct lvk_render_result *r);

/* lvk_units_measure on the demo model with its preprocessing, for images
 * shaped like r's ([r->batch, r->channels, r->height, r->width], such as
 * r->initial or r->images) at the size r's network ran at. Fails the
 * test with the library's message when the measurement fails. */
void lvk_test_demo_units(const struct lvk_render_result *r, const float *images,
                         const struct lvk_grid_neuron *units, int nunits, double *neuron, double *channel);

/* Runs the demo model on n images [n, 1, h, w] with values in [0,1] and
 * returns `tensor` for all of them (malloc'd), its shape in *info. */
float *lvk_test_demo_run(const float *images, int n, int h, int w, const char *tensor,
                         struct lvk_tensor_info *info);

/* Mean over positions of channel c of a [n, C, H, W] tensor, per image. */
void lvk_test_channel_means(const float *act, const struct lvk_tensor_info *info, int c, double *out);

#endif
