/* FLOP counts of the work a planned model records, for throughput figures
 * (GFLOP/s in bench/, per-op shares in profiles). The counting convention is
 * described at the top of flops.c and in bench/README.md. */
#ifndef LVK_FLOPS_H
#define LVK_FLOPS_H

#include "nn/graph.h"

struct lvk_flops {
    double fwd;     /* one forward pass */
    double bwd;     /* one backward pass to the input (input gradient only) */
};

/* Counts of one node. Zero for nodes that do not run (folded at load, or not
 * needed for the requested outputs) and for pure data movement; bwd is zero
 * unless the node's backward runs (some input has a gradient buffer). The
 * model must be finalized (lvk_graph_finalize). */
struct lvk_flops lvk_node_flops(const struct lvk_model *m, const struct lvk_node *n);

/* Sum of lvk_node_flops over every node of the model. */
struct lvk_flops lvk_model_flops(const struct lvk_model *m);

#endif
