/* Input preprocessing: how an image with pixels in [0,1] becomes a model's
 * input tensor. Kept beside a model as MODEL.lucidvk.json (the model path
 * with ".onnx" replaced), so it need not be repeated on every command:
 *   {"range": [-1, 1], "mean": [0.5], "std": [0.5], "bgr": false,
 *    "labels": "model.labels.txt"}
 * Order: x' = lo + x * (hi - lo); x'' = (x' - mean[c]) / std[c]; channels
 * reversed when bgr. */
#ifndef LUCIDVK_PREPROC_H
#define LUCIDVK_PREPROC_H

#include <stdbool.h>

#include "lucidvk/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvk_preproc {
    float lo, hi;      /* value range, default [0, 1] */
    float mean[3];     /* default 0 */
    float std[3];      /* default 1 */
    bool bgr;
    char labels[1024]; /* labels file ("" if none), resolved against the model's folder */
};

/* Defaults: range [0,1], mean 0, std 1, RGB, no labels. */
void lvk_preproc_default(struct lvk_preproc *p);

/* Reads MODEL.lucidvk.json if it exists (absent is not an error: *found = 0). */
lvk_status lvk_preproc_load_sidecar(const char *model_path, struct lvk_preproc *p, int *found);

/* Parses "lo,hi" / "m" or "m0,m1,m2" option values. */
lvk_status lvk_preproc_parse_range(struct lvk_preproc *p, const char *s);
lvk_status lvk_preproc_parse_triple(float out[3], const char *s, const char *what);

/* Applies the transform to a planar image of c channels (c*h*w floats in
 * [0,1]), in place. */
void lvk_preproc_apply(const struct lvk_preproc *p, float *img, int c, int h, int w);

/* Reads a labels file: one label per line; *labels is an array of n
 * malloc'd strings (free with lvk_labels_free). */
lvk_status lvk_labels_read(const char *path, char ***labels, int *n);
void lvk_labels_free(char **labels, int n);

#ifdef __cplusplus
}
#endif
#endif
