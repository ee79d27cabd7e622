/* The lucidvk command: one function per subcommand, sharing option
 * handling for the device and for input preprocessing. */
#ifndef LVK_CLI_H
#define LVK_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "lucidvk/lucidvk.h"
#include "lucidvk/preproc.h"

int cmd_devices(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_render(int argc, char **argv);
int cmd_grid(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_atlas(int argc, char **argv);
int cmd_atlas_merge(int argc, char **argv);
int cmd_response_map(int argc, char **argv);
int cmd_attribute(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_kernels(int argc, char **argv);

/* Prints "lucidvk: <what>: <lvk_last_error()>" and returns exit status 1. */
int cli_error(lvk_status st, const char *what);
/* Prints a usage error and returns exit status 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Numeric option values. The whole of `arg` must be the number (no blanks,
 * no trailing text), finite and within range; `opt` names the option as
 * the user wrote it ("--steps"). On success *out is set and 0 returned;
 * otherwise *out is left alone and one usage error names the option, the
 * text and the range: "--steps takes an integer of at least 1, not '1x'";
 * the return value is then the exit status (2).
 *   cli_int    an integer in [lo, hi] (hi at most INT_MAX);
 *   cli_float  a number in [lo, hi], or (lo, hi] when lo_open; lo may be
 *              -INFINITY, hi INFINITY;
 *   cli_seed   a random seed: any unsigned 64-bit integer. */
int cli_int(const char *cmd, const char *opt, const char *arg, long lo, long hi, int *out);
int cli_float(const char *cmd, const char *opt, const char *arg, double lo, double hi, bool lo_open,
              double *out);
int cli_seed(const char *cmd, const char *opt, const char *arg, uint64_t *out);

/* Upper bounds of the options that size images (--size, --zoom): far
 * past what renders and sheets are drawn at, and low enough that pixel
 * counts stay within int arithmetic. */
#define CLI_MAX_SIZE 4096
#define CLI_MAX_ZOOM 64

/* Opens the device chosen by --device (NULL: $LVK_DEVICE or the best). */
lvk_status cli_open(const char *device, lvk_ctx_t **ctx);

/* Preprocessing options shared by every command that feeds images. */
#define CLI_PREPROC_OPTIONS                                   \
    {"range", required_argument, 0, 0x100},                   \
    {"mean", required_argument, 0, 0x101},                    \
    {"std", required_argument, 0, 0x102},                     \
    {"bgr", no_argument, 0, 0x103},                           \
    {"labels", required_argument, 0, 0x104}
#define CLI_PREPROC_HELP                                                              \
    "  --range LO,HI      map pixels in [0,1] linearly to [LO,HI] (default 0,1)\n"    \
    "  --mean M[,M,M]     subtract per channel after --range (default 0)\n"           \
    "  --std S[,S,S]      then divide per channel (default 1)\n"                      \
    "  --bgr              feed channels in BGR order\n"                               \
    "  --labels FILE      class names, one per line\n"                                \
    "  Defaults come from MODEL.lucidvk.json beside the model when it exists.\n"

/* Explicit preprocessing options; cli_preproc_resolve() lays them over the
 * model's sidecar file. cli_preproc_parse() returns 1 when it handled
 * `opt`, 0 when `opt` is not a preprocessing option, -1 on a bad value. */
struct cli_preproc {
    struct lvk_preproc p;
    bool set_range, set_mean, set_std, set_bgr, set_labels;
};
int cli_preproc_parse(struct cli_preproc *c, int opt, const char *arg);
lvk_status cli_preproc_resolve(const struct cli_preproc *c, const char *model, struct lvk_preproc *out);

/* Loads a PNG, resizes it to (h, w) with c channels and applies p; *data is
 * malloc'd c*h*w floats. */
lvk_status cli_load_image(const char *path, int c, int h, int w, const struct lvk_preproc *p,
                          float **data);

/* The input of m, the model in file `model`, into *in; an error naming the
 * file unless it is an image [N, 1|3, H, W]. */
lvk_status cli_image_input(const lvk_model_t *m, const char *model, struct lvk_tensor_info *in);
/* cli_image_input(), then the PNG `image` at that input's channels and
 * size through cli_load_image(): *data is one batch entry of the input. */
lvk_status cli_load_input(const lvk_model_t *m, const char *model, const char *image,
                          const struct lvk_preproc *p, struct lvk_tensor_info *in, float **data);

/* The model in file `path` at batch 1 and its own input size, or at
 * size x size (when size > 0) if the file does not fix its size: every
 * tensor's shape is known and every node prepared, for checks made before
 * anything renders. */
lvk_status cli_model_probe(lvk_ctx_t *ctx, const char *path, int size, lvk_model_t **m);

/* For renders that minimise `layer` (--negative, the negative half of
 * --both): when the op producing it clamps at 0 (Relu, or Clip with lower
 * bound 0: ReLU6), the unit cannot go below 0, so once it is 0 everywhere
 * its gradient is too and the negative render comes out flat. Prints one
 * warning line to standard error naming the activation's input, the
 * pre-activation, which can go below 0. Nothing for other layers or names
 * m does not have. m comes from cli_model_probe. */
void cli_warn_negative_relu(const char *cmd, const lvk_model_t *m, const char *layer);

/* Seconds on a monotonic clock, for durations. */
double cli_now(void);

/* Progress of an optimisation on standard error, one report per call of
 * cli_progress_step: "[PREFIX: ]step s/n  objective v  r steps/s  ETA".
 * On a terminal, one line rewritten in place and ended at the last step.
 * Otherwise (a batch job's log) plain lines, at most one per tenth of the
 * steps, and the last step. */
struct cli_progress {
    const char *prefix; /* e.g. the layer; NULL: none */
    double t0;          /* cli_now() when the steps began */
    bool tty;           /* standard error is a terminal */
    bool open;          /* a line rewritten in place awaits its newline */
    int next;           /* without a terminal: the first step to report again */
    int first;          /* the first step reported, and when: the rate counts */
    double t_first;     /* from there, so the setup before step 1 is left out */
};
/* The lvk_render_opts.progress_every for a run of `steps` steps (0: the
 * default), every few
 * steps on a terminal, every tenth of the run in a log (which is all
 * cli_progress_step prints there; each report reads the objective back). */
int cli_progress_every(int steps);
/* DIR/TENSOR.EXT with every character of the tensor name other than letters,
 * digits, '.', '-' and '_' turned into '_' ("MobilenetV2/Conv/Relu6" gives
 * MobilenetV2_Conv_Relu6): one file per tensor. */
void cli_tensor_path(const char *dir, const char *tensor, const char *ext, char *out, size_t len);
/* Starts the clock of a run. */
void cli_progress_begin(struct cli_progress *p, const char *prefix);
/* The lvk_render_opts.progress callback; `progress` is a struct cli_progress. */
void cli_progress_step(void *progress, int step, int steps, double value);
/* Ends a line left open by a run that stopped early, so that an error
 * message starts on a line of its own. */
void cli_progress_end(struct cli_progress *p);

#endif
