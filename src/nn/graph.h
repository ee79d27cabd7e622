/* The compute graph behind lvk_model_t: values (tensors), nodes (ops), and
 * the passes that turn an ONNX graph into recorded Vulkan work.
 *
 * Life of a model:
 *   1. build    values and nodes are added (ONNX import, or tests through
 *               lvk_graph_add_*); constants carry host data.
 *   2. prepare  nodes in order: each op checks its attributes, infers its
 *               output shapes and asks for extra device buffers; nodes whose
 *               inputs are all constant (or that only read shapes) are
 *               folded on the CPU, which removes the integer shape
 *               arithmetic exporters emit.
 *   3. plan     only nodes needed for the requested outputs are kept; every
 *               runtime value, constant operand, gradient and extra buffer is
 *               sized and allocated in one arena.
 *   4. record   forward: each op's fwd in order; backward: gradients zeroed,
 *               then each op's bwd in reverse order, accumulating into the
 *               gradients of its inputs (so fan-out needs no special case).
 * Ops record into a command buffer they are given and never submit. */
#ifndef LVK_GRAPH_H
#define LVK_GRAPH_H

#include <stdbool.h>
#include <stdint.h>

#include "lucidvk/lucidvk.h"
#include "vk/lvk_vk.h"

struct lvk_node;
struct lvk_op_def;

enum lvk_dtype { LVK_DTYPE_F32, LVK_DTYPE_I64 };

struct lvk_shape {
    int ndim;
    int64_t d[LVK_MAX_DIMS];
};

int64_t lvk_shape_count(const struct lvk_shape *s);
bool lvk_shape_eq(const struct lvk_shape *a, const struct lvk_shape *b);
/* "[1, 3, 224, 224]" into buf; returns buf. */
const char *lvk_shape_str(const struct lvk_shape *s, char *buf, size_t len);

/* ---- attributes (ONNX AttributeProto, decoded) ------------------------------- */

enum lvk_attr_type {
    LVK_ATTR_INT, LVK_ATTR_FLOAT, LVK_ATTR_STRING,
    LVK_ATTR_INTS, LVK_ATTR_FLOATS, LVK_ATTR_TENSOR
};

struct lvk_attr {
    char *name;
    enum lvk_attr_type type;
    int64_t i;
    float f;
    char *s;
    int n;              /* element count of ints / floats */
    int64_t *ints;
    float *floats;
    int tensor;         /* TENSOR: index of a constant value holding it */
};

/* Lookups return the default when the attribute is absent; a present
 * attribute of the wrong type is an error reported by lvk_attr_check_type. */
const struct lvk_attr *lvk_attr_find(const struct lvk_node *n, const char *name);
int64_t lvk_attr_int(const struct lvk_node *n, const char *name, int64_t def);
float lvk_attr_float(const struct lvk_node *n, const char *name, float def);
const char *lvk_attr_str(const struct lvk_node *n, const char *name, const char *def);
/* Copies up to max ints into out; returns how many the attribute has
 * (0 when absent), or -1 (error set) when it has more than max. */
int lvk_attr_ints(const struct lvk_node *n, const char *name, int64_t *out, int max);

/* ---- values and nodes ----------------------------------------------------------- */

struct lvk_value {
    char *name;
    enum lvk_dtype dtype;
    struct lvk_shape shape;
    int producer;       /* node index; -1 for graph inputs and initializers */
    bool is_input;      /* graph input fed at run time */
    bool is_const;      /* known at load time */
    void *host;         /* constant data (float or int64_t by dtype), else NULL */
    /* Set by planning: */
    bool needed;        /* read by a node that runs, or requested */
    bool on_grad_path;  /* depends on a graph input: gets a gradient buffer */
    bool seeded;        /* a caller may seed its gradient before a backward
                         * (requested outputs, lvk_graph_seed_target): it is
                         * always zeroed and added to (lvk_node.grad_store) */
    int alias_of;       /* value whose buffers this one shares, or -1 */
    /* The channels along axis 1 that are read: [0, INT64_MAX), all, unless
     * a caller narrowed a requested value (lvk_graph_need_channels) and no
     * node that runs reads it whole (planning widens it back). */
    int64_t read_lo, read_hi;
    /* Channel c of the tensor the model file defines is channel
     * c - channel_base of this value along axis 1, for the channels that are
     * read: 0 unless lvk_graph_narrow_channels cut channels (for a cut
     * Concat output, only its read range holds them). */
    int64_t channel_base;
    struct lvk_buf *buf;    /* device data, NULL if not on the device */
    struct lvk_buf *grad;   /* d(objective)/d(value), NULL if none */
};

#define LVK_MAX_EXTRA 8
#define LVK_MAX_SCRATCH 2

struct lvk_node {
    char *name;         /* ONNX node name, or its first output's name */
    char *op_type;
    const struct lvk_op_def *def;
    int ninputs, noutputs;
    int *inputs;        /* value indices; -1 for an omitted optional input */
    int *outputs;
    int nattrs;
    struct lvk_attr *attrs;
    bool needed;
    bool folded;        /* evaluated at load time */
    /* Set by planning when an activation is fused into its producer
     * (fuse_activations in graph.c): on the producer, the index of the
     * activation node whose clamp its forward applies, writing the
     * activation's output directly (else -1); on the activation, `fused`:
     * its forward does not run and its backward reads its output, as the
     * producer's output is never stored. */
    int act;
    bool fused;
    /* The same for the backward (fuse_activations), on the activation:
     * the one node that reads its output applies its gradient mask as it
     * stores that input's gradient, writing the gradient of the
     * activation's input instead (lvk_graph_grad_mask); the activation's
     * backward does not run and its output has no gradient buffer. */
    bool bwd_fused;
    /* Set by planning when an Add is fused into the producer of one of its
     * operands (fuse_sums in graph.c): on the producer, the index of the
     * Add, whose output its forward writes, adding the other operand as it
     * stores (then clamping, where the Add's reader is an activation fused
     * along: `act` names it on both); its own output is never stored. On
     * the Add, `fused`: its forward does not run; its backward does. */
    int sum;
    /* Set by planning (plan_grad_stores in graph.c): bit k when this node's
     * backward is the first to write the gradient of input k
     * (lvk_graph_input_grad) and its op can overwrite it
     * (lvk_op_def.stores_grad): it stores instead of adding, and that
     * gradient is not zeroed before the backward. */
    uint32_t grad_store;
    /* Set by planning (share_grads in graph.c): bit k when input k's
     * gradient is the gradient of output 0, the same buffer (an Add's
     * operand that only it reads): the backward writes nothing for it. */
    uint32_t grad_shared;
    /* Set by planning (fold_add_grads in graph.c) on an Add: bit k when
     * another node adds output 0's gradient into input k's as it writes
     * that (bwd_sum): the backward writes nothing for it. On that node,
     * bwd_sum is the Add's index (else -1); it adds the gradient of the
     * Add's output to the gradient of its input 0 as it stores it. */
    uint32_t grad_folded;
    int bwd_sum;

    /* Op-private state from prepare(), released with free(). */
    void *priv;
    /* Extra device buffers an op asks for in prepare(): tensors forward saves
     * for backward (max-pool argmax), or re-laid-out weights. extra_init, if
     * set by prepare, is uploaded once at load and then freed. */
    int nextra;
    VkDeviceSize extra_size[LVK_MAX_EXTRA];
    void *extra_init[LVK_MAX_EXTRA];
    struct lvk_buf *extra[LVK_MAX_EXTRA];
    VkDeviceSize scratch_size[LVK_MAX_SCRATCH];  /* lvk_node_scratch */
};

/* One ONNX op type. Ops live in src/nn/ops/NAME.c, each exporting
 * `const struct lvk_op_def *const lvk_ops_NAME[]` (NULL-terminated); the
 * build collects them into the registry. */
struct lvk_op_def {
    const char *op_type;
    /* Checks attributes and input shapes/dtypes, sets every output's dtype and
     * shape, and may request extra buffers (lvk_node_extra). Integer operands
     * such as Reshape's shape must be constant here (value->host). */
    lvk_status (*prepare)(struct lvk_model *m, struct lvk_node *n);
    /* CPU evaluation at load time: fills value->host of the outputs. Used
     * when every input is constant, or always when shape_only is set. NULL:
     * the op always runs on the device. */
    lvk_status (*fold)(struct lvk_model *m, struct lvk_node *n);
    bool shape_only;    /* fold reads only input shapes (Shape) */
    /* Output 0 is input 0 reinterpreted (Reshape, Flatten, Squeeze,
     * Unsqueeze, Identity, Dropout): it shares buffer and gradient, and
     * fwd/bwd may be NULL. */
    bool alias;
    /* Output 0 is input 0 with one function applied to every element, the
     * same for every channel (Relu, Clip, Sigmoid, ...; other inputs, such
     * as Clip's bounds, are scalars): a Conv that feeds it may compute only
     * the channels read (lvk_graph_narrow_channels). */
    bool channelwise;
    lvk_status (*fwd)(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd);
    /* Accumulates into the grad of each input that has one (value->grad may
     * be NULL: constants, or inputs not on the gradient path). NULL: not
     * differentiable; planning fails if the op sits on a gradient path. */
    lvk_status (*bwd)(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd);
    /* Activations a producer may apply in its forward: true with the bounds
     * when the node is a clamp to [0, hi] (Relu, ReLU6), whose gradient mask
     * the output alone determines. */
    bool (*clamp_bounds)(const struct lvk_node *n, float *lo, float *hi);
    /* Producers whose forward can apply such a clamp (see lvk_node.act). */
    bool fuses_clamp;
    /* Whether output 0 is input 0 + input 1, all three of one shape (an Add
     * without broadcasting). NULL: never. Called after prepare(). */
    bool (*sums)(const struct lvk_model *m, const struct lvk_node *n);
    /* Whether the node's forward can add a tensor of its output's shape as
     * it stores, writing such a sum in place of its output (lvk_node.sum).
     * NULL: it cannot. Called after prepare(). */
    bool (*fuses_sum)(const struct lvk_node *n);
    /* Whether the node's backward can apply such a clamp's gradient mask to
     * the gradient of its input k as it stores it, computing each element
     * of it whole (see lvk_node.bwd_fused). NULL: it cannot. Called after
     * prepare(). */
    bool (*fuses_clamp_bwd)(const struct lvk_node *n, int k);
    /* Whether the recorded passes read input k's device buffer. NULL: they
     * do. A constant no pass reads on the device (Conv weights re-laid out
     * into the op's own buffers) gets no device copy. Called after
     * prepare(). */
    bool (*reads_input)(const struct lvk_node *n, int k);
    /* Whether the backward can overwrite the gradient of input k rather
     * than add to it (lvk_node.grad_store): it writes every element of it,
     * each once. NULL: it cannot. Called after prepare(). */
    bool (*stores_grad)(const struct lvk_node *n, int k);
    /* Whether the gradient of input k always equals that of output 0 (an
     * operand of Add with the output's shape), so the two may share a
     * buffer (lvk_node.grad_shared). NULL: never. Called after prepare(). */
    bool (*passes_grad)(const struct lvk_model *m, const struct lvk_node *n, int k);
    /* Whether the backward can add a tensor laid out like input 0 to the
     * gradient of input 0 as it writes it (lvk_node.bwd_sum). NULL: it
     * cannot. Called after prepare(). */
    bool (*fuses_sum_bwd)(const struct lvk_node *n);
    /* Whether input k is needed to compute what is read of the outputs
     * (lvk_value.read_lo, read_hi): a Concat needs no input outside the
     * channels read.
     * NULL: every input. Called after prepare(). */
    bool (*needs_input)(const struct lvk_model *m, const struct lvk_node *n, int k);
};

/* How Relu-like ops (Relu, Clip with min 0) propagate gradients; read by
 * their bwd shaders from the model's control buffer at run time, so one
 * recording serves every mode. */
enum lvk_relu_mode {
    LVK_RELU_GRAD_NORMAL = 0,
    /* Lucid's redirected ReLU: where the unit is off and the gradient would
     * increase it, let the gradient through anyway, so dead units learn. */
    LVK_RELU_GRAD_REDIRECT = 1,
    /* Guided backprop: pass only positive gradients through positive inputs. */
    LVK_RELU_GRAD_GUIDED = 2,
};

/* Layout of the control buffer (binding it is optional for ops). */
struct lvk_ctrl {
    uint32_t relu_mode;
    uint32_t pad[3];
};

struct lvk_model {
    struct lvk_ctx *ctx;
    char *path;             /* for messages */
    int opset;

    struct lvk_value *values;
    int nvalues, cap_values;
    struct lvk_node *nodes;
    int nnodes, cap_nodes;
    int *graph_outputs;     /* value indices of the ONNX graph outputs */
    int ngraph_outputs;

    bool planned;
    bool gradients;
    bool fast_conv;         /* lvk_model_opts.fast_conv, for ops' prepare() */
    /* Device memory: every buffer of the model lives in this one arena. */
    struct lvk_buf *bufs;
    int nbufs;
    struct lvk_arena arena;
    struct lvk_buf grad_span; /* over every gradient (lvk_arena_span), or none */
    /* Gradients are bufs[grad_first .. grad_end - 1]; grad_zero[i] for
     * bufs[grad_first + i]: zeroed before each backward (lvk_node.grad_store);
     * as many bools again after it are planning's scratch. */
    int grad_first, grad_end;
    bool *grad_zero;
    struct lvk_buf *ctrl;   /* struct lvk_ctrl */
    /* Scratch buffers any node may use within one of its passes
     * (lvk_node_scratch), or NULL: each as large as the largest request of
     * a node that runs. What a dispatch leaves there, another node's
     * overwrites: every dispatch ends with a barrier, so nodes never run
     * side by side. */
    struct lvk_buf *scratch[LVK_MAX_SCRATCH];

    struct lvk_cmd *fwd_cmd;    /* forward, recorded on first use */
    struct lvk_cmd *zero_cmd;   /* zeroes every gradient */
    struct lvk_cmd *bwd_cmd;    /* backward of every node on a gradient path */
};

/* The registered op for an ONNX op type, or NULL. */
const struct lvk_op_def *lvk_op_find(const char *op_type);

/* ---- building ------------------------------------------------------------------ */

lvk_status lvk_graph_create(struct lvk_ctx *ctx, const char *name, struct lvk_model **out);
/* Adds a graph input; returns its value index, or -1 (error set). */
int lvk_graph_add_input(struct lvk_model *m, const char *name, enum lvk_dtype dt,
                        const struct lvk_shape *shape);
/* Adds a constant, copying `data` (float or int64_t by dt). */
int lvk_graph_add_const(struct lvk_model *m, const char *name, enum lvk_dtype dt,
                        const struct lvk_shape *shape, const void *data);
/* Adds a node. inputs[i] may be "" for an omitted optional input. Output
 * values are created. Attributes are deep-copied. */
lvk_status lvk_graph_add_node(struct lvk_model *m, const char *op_type, const char *name,
                              const char *const *inputs, int ninputs,
                              const char *const *outputs, int noutputs,
                              const struct lvk_attr *attrs, int nattrs);
lvk_status lvk_graph_mark_output(struct lvk_model *m, const char *name);
int lvk_graph_find(const struct lvk_model *m, const char *name);
/* Whether some node reads value v or the graph outputs it. */
bool lvk_graph_value_read(const struct lvk_model *m, int v);

/* Before lvk_graph_finalize: of value v, which the caller requests as an
 * output, it will read only channels [lo, hi) along axis 1. Nodes that feed
 * only other channels then do not run (a Concat's other inputs: an
 * inception block's other branches, for a channel objective), and those
 * channels of v are left undefined. A range that turns out to lie outside
 * v's channels restricts nothing. */
void lvk_graph_need_channels(struct lvk_model *m, int v, int64_t lo, int64_t hi);

/* Before lvk_graph_finalize: where value v, which nothing the caller
 * requests (requested[0 .. nrequested)) reads, is computed from a Conv's
 * output through channelwise activations alone (Relu, Clip, ...), none of
 * whose values anything else reads, gives the Conv only its out channels
 * [lo, hi): its weights and bias are cut to them, and v and the values
 * between hold those channels alone (lvk_value.channel_base = lo). Where v
 * is a Concat along the channels of such branches instead, the branch that
 * holds [lo, hi) is cut (each branch before it must end in a Conv, whose
 * weights give its channels): v keeps the branches before it, so channel
 * lo is then channel lo - channel_base of v, and v's read range names the
 * cut channels, which leaves the other branches idle. A render whose
 * objective reads a few channels of a convolution's output then computes
 * only those (MobileNet V2's 576-channel `expand` layers, GoogLeNet's
 * inception blocks), forward and backward. lvk_graph_finalize must then be given the same
 * outputs, so that the nodes past v, which expect every channel, are not
 * prepared. Returns whether it did; else nothing changed. */
bool lvk_graph_narrow_channels(struct lvk_model *m, int v, int64_t lo, int64_t hi,
                               const int *requested, int nrequested);

/* Prepares and folds (with named outputs, only the nodes they need), plans
 * and allocates; see struct lvk_model_opts. */
lvk_status lvk_graph_finalize(struct lvk_model *m, const struct lvk_model_opts *opts);

/* ---- running --------------------------------------------------------------------- */

/* Whether node n records anything in the forward pass (bwd false: needed,
 * not fused into its producer) or the backward (needed, and an input has a
 * gradient): the rule the two recordings below follow, for tools that
 * record node by node (bench/bench_forward.c times each node). */
bool lvk_graph_node_runs(const struct lvk_model *m, const struct lvk_node *n, bool bwd);

/* For value v, read by a node whose backward applies the gradient mask of
 * the activation that produced v (lvk_node.bwd_fused): that activation, its
 * bounds in *lo, *hi (either may be NULL); the reader then writes the
 * gradient of the activation's input (lvk_in(m, act, 0)->grad) and takes
 * the mask from v's buffer. Else NULL. */
const struct lvk_node *lvk_graph_grad_mask(const struct lvk_model *m, int v, float *lo, float *hi);

/* The gradient buffer node n's backward writes for its input k: the
 * input's own, or with a fused activation mask the activation input's
 * (lvk_graph_grad_mask); NULL when there is none, or when it is the
 * output's own (lvk_node.grad_shared) and needs no writing. */
const struct lvk_buf *lvk_graph_input_grad(const struct lvk_model *m, const struct lvk_node *n,
                                           int k);
/* Whether node n's backward stores the gradient of its input k rather than
 * adding to it (lvk_node.grad_store). */
static inline bool lvk_graph_grad_stores(const struct lvk_node *n, int k)
{
    return (n->grad_store >> k & 1u) != 0;
}
/* Records one node's forward or backward; errors name the node. */
lvk_status lvk_graph_record_node(struct lvk_model *m, struct lvk_node *n, bool bwd, struct lvk_cmd *cmd);
/* Records the forward pass of every needed node. */
lvk_status lvk_graph_record_forward(struct lvk_model *m, struct lvk_cmd *cmd);
/* Declares that callers seed value v's gradient before backward passes
 * (objectives on tensors not requested at load): it is then zeroed and
 * added to, never stored over (lvk_node.grad_store). Recordings made
 * earlier keep the plan they were made with, which stays consistent as
 * long as they do not seed v. Fails for a value whose gradient buffer
 * planning shared with another's (an Add's operand): request it at load. */
lvk_status lvk_graph_seed_target(struct lvk_model *m, int v);
/* Records zeroing of every gradient buffer the backward adds to before
 * storing (see lvk_node.grad_store). */
void lvk_graph_record_zero_grads(struct lvk_model *m, struct lvk_cmd *cmd);
/* Records every needed node's backward, in reverse order. The caller seeds
 * the gradients of the objective's tensors between zeroing and this. */
lvk_status lvk_graph_record_backward(struct lvk_model *m, struct lvk_cmd *cmd);
/* Sets the run-time control block (ReLU gradient mode). */
lvk_status lvk_graph_set_relu_mode(struct lvk_model *m, enum lvk_relu_mode mode);

/* ---- helpers for op implementations ---------------------------------------------- */

static inline struct lvk_value *lvk_in(struct lvk_model *m, const struct lvk_node *n, int i)
{
    return (i < n->ninputs && n->inputs[i] >= 0) ? &m->values[n->inputs[i]] : NULL;
}
static inline struct lvk_value *lvk_out(struct lvk_model *m, const struct lvk_node *n, int i)
{
    return &m->values[n->outputs[i]];
}

/* Formats an error that names the model file, node and op:
 * "model.onnx: node 'conv1' (Conv): <message>". */
lvk_status lvk_node_fail(const struct lvk_model *m, const struct lvk_node *n,
                         lvk_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Requests an extra device buffer of `bytes`; returns its slot. `init`, if
 * not NULL, is malloc'd host data uploaded at load and freed by the graph. */
int lvk_node_extra(struct lvk_node *n, VkDeviceSize bytes, void *init);

/* Asks for the model's scratch buffer `slot` (< LVK_MAX_SCRATCH) to hold at
 * least `bytes` when the node runs (struct lvk_model: scratch); from
 * prepare(). */
void lvk_node_scratch(struct lvk_node *n, int slot, VkDeviceSize bytes);

/* Requires input i to exist and be constant; fails with a message naming it. */
lvk_status lvk_node_need_const(const struct lvk_model *m, const struct lvk_node *n, int i);

/* Numpy-style broadcast of two shapes; fails when incompatible. */
lvk_status lvk_shape_broadcast(const struct lvk_shape *a, const struct lvk_shape *b,
                               struct lvk_shape *out);

/* Records y[i] += alpha * x[i] for i < count (both float32 buffers). The
 * shared building block of backward passes that pass gradients through. */
lvk_status lvk_record_axpy(struct lvk_cmd *cmd, const struct lvk_buf *y,
                           const struct lvk_buf *x, float alpha, uint32_t count,
                           const char *label);

#endif
