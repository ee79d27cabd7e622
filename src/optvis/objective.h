/* Objectives for feature visualisation, as in Lucid (lucid.optvis.objectives):
 * what the render loop maximises, written as one line of text that the
 * command line and the C API share.
 *
 * ---- Syntax ------------------------------------------------------------------
 *
 *   expr    := term | NUMBER | expr ('+' | '-') expr | expr ('*' | '/') expr
 *            | '-' expr | '+' expr | '(' expr ')' | expr '@' INDEX
 *            | batch(INDEX, expr)
 *
 * with the usual precedence (unary minus, then '*' '/', then '+' '-', all
 * left-associative). Numbers are decimal ("2", "0.5", ".5", "1e-3"). A
 * product must have a number on at least one side ("2*channel(L,1)",
 * "channel(L,1)*2", "(2+1)*(a - b)"), a quotient a number on the right, and
 * the whole expression must contain a term: adding a constant to an
 * objective changes no gradient, so "channel(L,1) + 1" is rejected.
 * Whitespace is free between tokens; term names are case-insensitive.
 *
 * Terms on a model tensor (L: a tensor name, as 'lucidvk info MODEL' lists
 * them; tensors are NCHW [B, C, H, W], or [B, C] for dense layers, or
 * [B, C, L] for 1-D ones; "positions" are the H*W (or L, or 1) elements of
 * one channel of one image):
 *   channel(L, c)          mean of channel c over positions.
 *                          (Lucid: reduce_mean(T(L)[..., c]))
 *   neuron(L, c)           channel c at the centre position (H/2, W/2),
 *   neuron(L, c, x, y)     or at column x, row y (1-D tensors: x only, y = 0).
 *                          Lucid's neuron(L, c, x, y) indexes T[:, x, y, c] in
 *                          NHWC, so its x is the row: Lucid's (x=a, y=b) is
 *                          neuron(L, c, b, a) here. The centre is the same.
 *   layer(L)               mean of squares over channels and positions:
 *   deepdream(L)           DeepDream (Lucid: reduce_mean(T(L)**2)).
 *   direction(L, FILE)     mean over positions of the dot product of the
 *                          activation vector (C channels) at each position with
 *                          the vector stored in FILE, a .npy of C numbers (any
 *                          shape with C elements; read when the objective is
 *                          bound). Lucid's direction() with cossim_pow = 0.
 *   class(k)               logit k of the model's first graph output (Lucid's
 *   class(k, L)            class_logit), or of tensor L: channel k of it, so
 *                          a [B, K] tensor gives T[b, k]. Choose the
 *                          pre-softmax tensor if the model ends in Softmax.
 *   group(L, CHANNELS)     sum over a set of channels of each one's mean over
 *                          positions. CHANNELS is a comma-separated list of
 *                          indices and inclusive ranges, optionally in square
 *                          brackets: group(L, 0-7) (8 channels),
 *                          group(L, 3, 5, 9), group(L, [0-3, 8, 10-12]).
 *   diversity(L)           for each image b the Gram matrix of its activations
 *                          G_b = A_b^T A_b (A_b = [positions, C]), flattened and
 *                          scaled to unit length (g_b = G_b / max(|G_b|, 1e-5),
 *                          i.e. tf.nn.l2_normalize with epsilon 1e-10 on the
 *                          squared norm); value
 *                            -(1/B) sum over ordered pairs i != j of <g_i, g_j>.
 *                          Image i's share is -(1/B) sum_{j != i} <g_i, g_j>.
 *                          Lucid's diversity() returns the same sum WITHOUT the
 *                          minus sign and is used as "obj - 1e2*diversity(L)";
 *                          here it is already negated, so write
 *                          "channel(L, 3) + 100*diversity(L)". It compares the
 *                          images of a batch, so it cannot be bound to one.
 * A tensor name is quoted with '...' or "..." (no escapes), or bare: a bare
 * name runs to the next ',', ')', quote or whitespace, so '/', ':', '.',
 * '-' need no quotes: channel(mixed4a/conv:0, 3). A FILE is written the
 * same way.
 *
 * Terms on the image [B, C, H, W] with values in [0, 1] (regularisers;
 * usually given a negative weight, "- 0.05*tv"), written with or without "()":
 *   tv                     total variation: sum over channels of the absolute
 *   total_variation        differences of vertically and horizontally adjacent
 *                          pixels (Lucid: tf.image.total_variation).
 *   l1                     sum |x - 0.5| (Lucid's L1 with constant 0.5).
 *   l2                     sqrt(sum (x - 0.5)^2 + 1e-6) (Lucid's L2, constant
 *                          0.5, epsilon 1e-6).
 *   blur                   Lucid's blur_input_each_step: value
 *                          0.5 * sum (x - stop_gradient(blur(x)))^2, gradient
 *                          x - blur(x). blur is Lucid's _tf_blur: a 3x3 kernel
 *                          per channel, 1 at the centre and 0.5 around it,
 *                          normalised by its sum over the pixels inside the
 *                          image (so borders are not darkened). Maximising
 *                          -k*blur moves the image towards blur(image).
 *
 * Batch binding: "batch(i, expr)" or a suffix "@i" (on a term or a
 * parenthesised expression) makes every term inside apply to image i only;
 * unbound terms apply to every image. Each image's value is the sum of
 * weight * term value over the terms that apply to it, and a term's gradient
 * reaches only those images.
 *   "channel(mixed4a, 97)"
 *   "channel('mixed4a/conv:0', 3)@0 + channel(mixed4a/conv:0, 4)@1"
 *   "batch(0, neuron(conv2d2, 5, 3, 7)) - 0.5*l2 - 0.05*tv + 100*diversity(mixed4a)"
 *
 * Errors name the column (1-based) of the text and what was expected:
 *   objective "channel(mixed4a 3)": column 17: expected ',' after the tensor
 *   name 'mixed4a', found '3' (quote names that contain spaces)
 *
 * ---- Use -----------------------------------------------------------------------
 *
 *   lvk_objective_parse(text, &o);
 *   lvk_objective_tensors(o, model, names, max, &n);  // request as model outputs
 *   ... load the model with those outputs and gradients ...
 *   lvk_objective_bind(o, model, B, C, H, W, &g);
 *   per step, in one recording: forward, zero grads,
 *     lvk_objective_record_seed(cmd, g, sign), backward to the image,
 *     lvk_objective_record_image(cmd, g, img, img_grad, sign), ...
 *   lvk_objective_read_values(g, values) for progress display. */
#ifndef LVK_OBJECTIVE_H
#define LVK_OBJECTIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "nn/graph.h"

enum lvk_term_kind {
    LVK_TERM_CHANNEL,
    LVK_TERM_NEURON,
    LVK_TERM_LAYER,
    LVK_TERM_DIRECTION,
    LVK_TERM_CLASS,
    LVK_TERM_GROUP,
    LVK_TERM_DIVERSITY,
    /* Image terms (regularisers) from here on. */
    LVK_TERM_TV,
    LVK_TERM_L1,
    LVK_TERM_L2,
    LVK_TERM_BLUR,
};

static inline bool lvk_term_on_image(enum lvk_term_kind k) { return k >= LVK_TERM_TV; }

/* Name of a term kind as written in the syntax ("channel"). */
const char *lvk_term_name(enum lvk_term_kind k);

/* One term of a parsed objective. */
struct lvk_term {
    enum lvk_term_kind kind;
    double weight;      /* product of the scalars around it, signs included */
    int batch;          /* image it applies to, or -1 for every image */
    char *tensor;       /* model tensor; NULL for image terms and class(k) */
    int channel;        /* channel, neuron, class */
    int x, y;           /* neuron position; -1: the centre */
    int *channels;      /* group: the channel set, in order written */
    int nchannels;
    char *path;         /* direction: the .npy file */
    int col, len;       /* where the term is in the text (col 1-based) */
};

struct lvk_objective {
    char *text;
    struct lvk_term *terms;
    int nterms;
};

/* Parses `text`. On failure returns LVK_ERR_INVALID_ARG, *out = NULL, and
 * lvk_last_error() names the column and what was expected there. */
lvk_status lvk_objective_parse(const char *text, struct lvk_objective **out);
/* NULL-safe. */
void lvk_objective_destroy(struct lvk_objective *o);

/* The distinct model tensors the objective reads, in order of first use, so
 * the caller can request them as outputs when planning the model
 * (struct lvk_model_opts.outputs). class(k) without a tensor reads
 * lvk_model_output_name(m, 0): `m` may be a graph that is not finalized yet
 * (lvk_onnx_load_graph), since graph outputs are known from the file. Names
 * point into `o` or `m`. Fills at most `max` and sets *count; fails with
 * LVK_ERR_INVALID_ARG if there are more than max, LVK_ERR_NOT_FOUND (the
 * message quoting the term and its column) if `m` has no tensor of that
 * name, or if class(k) is used and `m` is NULL or has no graph output. */
lvk_status lvk_objective_tensors(const struct lvk_objective *o, const struct lvk_model *m,
                                 const char **names, int max, int *count);

/* The channels (axis 1) the objective's terms read of tensor `name`: the
 * smallest range [*lo, *hi) holding them all, or [0, INT64_MAX) where a
 * term reads every channel (layer, deepdream, direction, diversity). For
 * lvk_graph_need_channels; `m` as for lvk_objective_tensors. */
void lvk_objective_channels(const struct lvk_objective *o, const struct lvk_model *m,
                            const char *name, int64_t *lo, int64_t *hi);

/* ---- device side ----------------------------------------------------------------- */

/* A term resolved against a model and image size by lvk_objective_bind
 * (objective.c) and recorded by objective_gpu.c. Model tensors are viewed as
 * [B, c, s]: channels, then positions. */
struct lvk_objective_op {
    enum lvk_term_kind kind;
    float weight;
    uint32_t b0, nb;        /* images [b0, b0 + nb) */
    int value;              /* model value index; -1 for image terms */
    uint32_t c, s;          /* channels and positions of the tensor */
    uint32_t base;          /* the term's channel k is the tensor's k - base
                             * (lvk_value.channel_base) */
    uint32_t p0, npos;      /* positions read: [p0, p0 + npos) */
    uint32_t power;         /* 1: linear in the tensor, 2: mean of squares */
    float *coef;            /* [c] weight per channel (host, for the upload) */
    uint32_t c0, nc;        /* the non-zero coefficients lie in [c0, c0 + nc) */
    /* Device buffers (in the objective's arena), NULL where unused: */
    struct lvk_buf *gram;      /* diversity: [B, c, c] Gram matrices */
    struct lvk_buf *mix;       /* diversity: [2, B, B] Gram dot products, then mixing weights */
    struct lvk_buf *dgram;     /* diversity: [B, c, c] d(value)/d(Gram) */
};

/* Consecutive terms with coefficients (all but diversity and the image
 * terms) on one tensor, read alike (positions, power), on images no two of
 * them share: one objective_reduce and one objective_seed dispatch for all
 * (a batch whose image i renders channel i: one run, not B). Each of their
 * images is an entry of the table. */
struct lvk_objective_run {
    int op0, nops;          /* ops[op0, op0 + nops) */
    uint32_t nentries;      /* the terms' images, counted over the terms */
    uint32_t max_nc;        /* the widest coefficient range [c0, c0 + nc) */
    struct lvk_buf *coef;   /* [nops, c]: each term's coefficients */
    struct lvk_buf *table;  /* [nentries, 5]: image, c0, nc, term (coef row), weight */
};

struct lvk_objective_gpu {
    struct lvk_ctx *ctx;
    struct lvk_model *m;
    int batch, channels, height, width;
    struct lvk_objective_op *ops;
    int nops;
    struct lvk_objective_run *runs;
    int nruns;
    struct lvk_buf *bufs;   /* runs' and diversity's buffers */
    int nbufs;
    struct lvk_arena arena;
    /* [B] objective value per image, mapped (lvk_arena_create_mapped): a
     * render reads it after every step at the cost of a memcpy. */
    struct lvk_buf values_buf;
    struct lvk_arena values_arena;
};

/* Resolves the objective against model `m` (finalized with gradients and
 * with the objective's tensors among its outputs) and an image of
 * [batch, channels, height, width], and creates the device buffers.
 * Fails with
 *   LVK_ERR_NOT_FOUND    unknown tensor (the message names it and suggests
 *                        'lucidvk info MODEL'), unreadable direction file;
 *   LVK_ERR_INVALID_ARG  channel, class, position or image index out of
 *                        range (naming the tensor, its shape and channel
 *                        count), a direction vector of the wrong length,
 *                        diversity with fewer than 2 images, a tensor that
 *                        was not requested as an output or has no gradient;
 *   LVK_ERR_UNSUPPORTED  a tensor that is not float or not of rank 2 to 4
 *                        with the batch first.
 * Every message quotes the term and its column. */
lvk_status lvk_objective_bind(struct lvk_objective *o, struct lvk_model *m, int batch,
                              int channels, int height, int width,
                              struct lvk_objective_gpu **out);
/* NULL-safe. */
void lvk_objective_gpu_destroy(struct lvk_objective_gpu *g);

/* Records: values[B] = 0, then for every term on a model tensor, its value
 * added into values (weighted) and d(sign * objective)/d(tensor) ADDED into
 * the tensor's gradient (m->values[i].grad). Record after the forward pass
 * and after the gradients are zeroed, before the backward pass. sign is +1
 * to maximise, -1 to minimise (negative renders); it is fixed in the
 * recording. */
lvk_status lvk_objective_record_seed(struct lvk_cmd *cmd, struct lvk_objective_gpu *g,
                                     float sign);

/* Records the image terms (tv, l1, l2, blur) on img (the image the network
 * is fed, [B, C, H, W] as bound, values in [0,1]): their values added into
 * values[B] and d(sign * objective)/d(img) ADDED into img_grad. Record after
 * lvk_objective_record_seed in the same step (which zeroes values). Records
 * nothing when the objective has no image terms. */
lvk_status lvk_objective_record_image(struct lvk_cmd *cmd, struct lvk_objective_gpu *g,
                                      const struct lvk_buf *img, const struct lvk_buf *img_grad,
                                      float sign);

/* Downloads values[B] (as of the last completed submit) into values. */
lvk_status lvk_objective_read_values(struct lvk_objective_gpu *g, float *values);

/* Internal to objective.c: creates g's mapped values, groups g->ops into
 * runs, creates g's arena for them (and diversity's buffers) and uploads
 * their coefficients and tables. */
lvk_status lvk_objective_gpu_alloc(struct lvk_objective_gpu *g);

#endif
