/* The demo model that ships in assets/demo, as tests use it: its path, its
 * preprocessing, and running it on images in [0,1] to judge renders. */
#ifndef LVK_TEST_DEMO_H
#define LVK_TEST_DEMO_H

#include <stddef.h>

#include "lucidvk/lucidvk.h"
#include "lucidvk/preproc.h"

#define LVK_DEMO_MODEL LVK_SOURCE_DIR "/assets/demo/fashion_cnn.onnx"

/* The model's sidecar preprocessing (fails the test if it is missing). */
struct lvk_preproc lvk_test_demo_preproc(void);

/* Runs the demo model on n images [n, 1, h, w] with values in [0,1] and
 * returns `tensor` for all of them (malloc'd), its shape in *info. */
float *lvk_test_demo_run(const float *images, int n, int h, int w, const char *tensor,
                         struct lvk_tensor_info *info);

/* Mean over positions of channel c of a [n, C, H, W] tensor, per image. */
void lvk_test_channel_means(const float *act, const struct lvk_tensor_info *info, int c, double *out);

#endif
