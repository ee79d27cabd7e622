/* View plans: the movement ops (Concat, Split, Slice, Transpose, Pad,
 * Gather, Expand) described as a few copies between strided N-D views, run
 * by one shader (shaders/view_copy.comp) on the device and by the same code
 * on the host when an op is folded at load time.
 *
 * A step copies src -> dst over an iteration shape. Its destination is
 * dst_base + sum_d i_d * dst_stride[d]. Its source along a plain axis is
 * coordinate i_d times src_stride[d] (a step or a flip is a scaled or negative
 * stride, a broadcast a zero stride, a permutation a reordering of strides);
 * along a table axis it is a list of coordinates, and the copied value is the
 * sum over the product of the lists, or `fill` when one is empty. Backward
 * steps iterate over the input gradient and list, per axis, every output
 * coordinate that read it, so they are gathers and need no atomics.
 *
 * An op builds its plan in prepare(), stores it as the node's priv, and uses
 * lvk_view_fold / lvk_view_fwd / lvk_view_bwd as its op functions. The plan
 * is one allocation (freed by the graph with free()); its tables go to the
 * device in one extra buffer. Defined in slice.c. */
#ifndef LVK_VIEW_COPY_H
#define LVK_VIEW_COPY_H

#include "nn/graph.h"

struct lvk_view_step {
    int src, dst;           /* value indices; backward steps use their grads */
    bool bwd;               /* runs in backward (accumulating) */
    int ndim;
    int64_t size[LVK_MAX_DIMS];
    int64_t dst_stride[LVK_MAX_DIMS];
    int64_t src_stride[LVK_MAX_DIMS];
    int64_t dst_base, src_base;
    double fill;            /* value where a table list is empty */
    uint32_t table_mask;    /* bit d: axis d reads coordinates from the table */
    uint32_t direct_mask;   /* bit d: that table holds one coordinate per i_d */
    uint32_t table;         /* word offset of this step's tables in the plan */
};

struct lvk_view_plan {
    int nsteps, cap_steps;
    uint32_t nwords, cap_words;
    uint32_t *words;        /* tables, inside this allocation (after step[]) */
    int extra;              /* extra buffer slot holding words, or -1 */
    struct lvk_view_step step[];
};

/* Row-major strides of a shape, in elements. */
void lvk_view_strides(const struct lvk_shape *s, int64_t *stride);

/* A plan with room for `cap_steps` steps; NULL (error set) on failure. */
struct lvk_view_plan *lvk_view_plan_new(int cap_steps);

/* Appends a step over `shape` with contiguous strides on both sides, zero
 * bases and no tables, for the caller to adjust; returns its index. */
int lvk_view_add(struct lvk_view_plan *p, int src, int dst, bool bwd,
                 const struct lvk_shape *shape);

/* Reads axis `axis` of step `step` through a table built from `map`, where
 * map[o] is the source coordinate of destination coordinate o (-1: none).
 * invert = false: the step iterates over o (nmap == size[axis]) and o's list
 * is {map[o]}. invert = true (backward): the step iterates over source
 * coordinates x, and x's list is every o in [0, nmap) with map[o] == x.
 * Where no list is longer than one the table is direct (one coordinate per
 * entry, a third of the lookups).
 * A step's tables must be added one after the other (no other step's in
 * between), in increasing axis order. The plan may move: *p is updated. */
lvk_status lvk_view_map(struct lvk_view_plan **p, int step, int axis,
                        const int64_t *map, int64_t nmap, bool invert);

/* Merges and drops plain axes where that keeps every step's meaning, checks
 * that offsets fit the shader's 32-bit arithmetic, hands the tables to the
 * node as an extra buffer and stores the plan as n->priv. On failure the
 * plan is freed. */
lvk_status lvk_view_finish(struct lvk_model *m, struct lvk_node *n, struct lvk_view_plan *p);

/* Op functions over n->priv: fold runs the forward steps on the host
 * (outputs' dtype and shape set by prepare; float or int64 data); fwd and
 * bwd record them. */
lvk_status lvk_view_fold(struct lvk_model *m, struct lvk_node *n);
lvk_status lvk_view_fwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd);
lvk_status lvk_view_bwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd);

/* Shared by ops that take axes: maps a possibly negative axis into
 * [0, rank); fails naming the attribute or input when out of range. */
lvk_status lvk_view_axis(const struct lvk_model *m, const struct lvk_node *n,
                         int64_t axis, int rank, const char *what, int *out);

/* Reads constant input i (int64 or float) into out[max]; returns the count
 * in *count. Fails naming the input when it is not constant, not 1-D/scalar
 * or longer than max. */
lvk_status lvk_view_const_ints(const struct lvk_model *m, const struct lvk_node *n, int i,
                               int64_t *out, int max, int *count);

#endif
