/* The compute graph: building, preparing (shape inference and constant
 * folding), planning (what runs, what has a gradient, one arena for all
 * device memory) and recording of forward and backward passes.
 * See graph.h for the life of a model. */
#include <stdarg.h>
#include <string.h>

#include "nn/graph.h"

extern const struct lvk_op_def *const *const lvk_op_lists[];

/* ---- shapes ------------------------------------------------------------------- */

int64_t lvk_shape_count(const struct lvk_shape *s)
{
    int64_t c = 1;
    for (int i = 0; i < s->ndim; i++)
        c *= s->d[i];
    return c;
}

bool lvk_shape_eq(const struct lvk_shape *a, const struct lvk_shape *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->d[i] != b->d[i])
            return false;
    return true;
}

const char *lvk_shape_str(const struct lvk_shape *s, char *buf, size_t len)
{
    size_t k = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < s->ndim && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, i ? ", %lld" : "%lld", (long long)s->d[i]);
    if (k < len)
        snprintf(buf + k, len - k, "]");
    return buf;
}

lvk_status lvk_shape_broadcast(const struct lvk_shape *a, const struct lvk_shape *b,
                               struct lvk_shape *out)
{
    int nd = LVK_MAX(a->ndim, b->ndim);
    struct lvk_shape r = {.ndim = nd};
    for (int i = 0; i < nd; i++) {
        int ia = a->ndim - nd + i, ib = b->ndim - nd + i;
        int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[96], sb[96];
            return lvk_fail(LVK_ERR_FORMAT, "shapes %s and %s do not broadcast",
                            lvk_shape_str(a, sa, sizeof sa), lvk_shape_str(b, sb, sizeof sb));
        }
        r.d[i] = da == 1 ? db : da;
    }
    *out = r;
    return LVK_OK;
}

/* ---- attributes ------------------------------------------------------------------ */

const struct lvk_attr *lvk_attr_find(const struct lvk_node *n, const char *name)
{
    for (int i = 0; i < n->nattrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0)
            return &n->attrs[i];
    return NULL;
}

int64_t lvk_attr_int(const struct lvk_node *n, const char *name, int64_t def)
{
    const struct lvk_attr *a = lvk_attr_find(n, name);
    return a && a->type == LVK_ATTR_INT ? a->i : def;
}

float lvk_attr_float(const struct lvk_node *n, const char *name, float def)
{
    const struct lvk_attr *a = lvk_attr_find(n, name);
    if (a && a->type == LVK_ATTR_FLOAT)
        return a->f;
    if (a && a->type == LVK_ATTR_INT)
        return (float)a->i;
    return def;
}

const char *lvk_attr_str(const struct lvk_node *n, const char *name, const char *def)
{
    const struct lvk_attr *a = lvk_attr_find(n, name);
    return a && a->type == LVK_ATTR_STRING ? a->s : def;
}

int lvk_attr_ints(const struct lvk_node *n, const char *name, int64_t *out, int max)
{
    const struct lvk_attr *a = lvk_attr_find(n, name);
    if (!a)
        return 0;
    if (a->type == LVK_ATTR_INT) {
        if (max < 1)
            return -1;
        out[0] = a->i;
        return 1;
    }
    if (a->type != LVK_ATTR_INTS)
        return 0;
    if (a->n > max) {
        lvk_fail(LVK_ERR_UNSUPPORTED, "attribute '%s' has %d values (at most %d supported)",
                 name, a->n, max);
        return -1;
    }
    memcpy(out, a->ints, (size_t)a->n * sizeof *out);
    return a->n;
}

/* ---- building ----------------------------------------------------------------------- */

lvk_status lvk_node_fail(const struct lvk_model *m, const struct lvk_node *n, lvk_status s,
                         const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lvk_fail(s, "%s: node '%s' (%s): %s", m->path ? m->path : "model",
                    n->name ? n->name : "?", n->op_type, msg);
}

static char *dupstr(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    else
        lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    return d;
}

lvk_status lvk_graph_create(struct lvk_ctx *ctx, const char *name, struct lvk_model **out)
{
    *out = NULL;
    struct lvk_model *m = lvk_calloc(1, sizeof *m);
    if (!m)
        return LVK_ERR_HOST_OOM;
    m->ctx = ctx;
    m->path = dupstr(name ? name : "graph");
    m->opset = 13;
    if (!m->path) {
        free(m);
        return LVK_ERR_HOST_OOM;
    }
    *out = m;
    return LVK_OK;
}

int lvk_graph_find(const struct lvk_model *m, const char *name)
{
    /* Later definitions shadow earlier ones, as ONNX's SSA form never needs. */
    for (int i = m->nvalues - 1; i >= 0; i--)
        if (strcmp(m->values[i].name, name) == 0)
            return i;
    return -1;
}

static int add_value(struct lvk_model *m, const char *name, enum lvk_dtype dt,
                     const struct lvk_shape *shape)
{
    if (m->nvalues == m->cap_values) {
        int cap = m->cap_values ? 2 * m->cap_values : 64;
        struct lvk_value *nv = realloc(m->values, (size_t)cap * sizeof *nv);
        if (!nv) {
            lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
            return -1;
        }
        m->values = nv;
        m->cap_values = cap;
    }
    struct lvk_value *v = &m->values[m->nvalues];
    memset(v, 0, sizeof *v);
    v->name = dupstr(name);
    if (!v->name)
        return -1;
    v->dtype = dt;
    if (shape)
        v->shape = *shape;
    v->producer = -1;
    v->alias_of = -1;
    v->read_hi = INT64_MAX;
    return m->nvalues++;
}

int lvk_graph_add_input(struct lvk_model *m, const char *name, enum lvk_dtype dt,
                        const struct lvk_shape *shape)
{
    int i = add_value(m, name, dt, shape);
    if (i >= 0)
        m->values[i].is_input = true;
    return i;
}

static size_t dtype_size(enum lvk_dtype dt) { return dt == LVK_DTYPE_F32 ? 4 : 8; }

int lvk_graph_add_const(struct lvk_model *m, const char *name, enum lvk_dtype dt,
                        const struct lvk_shape *shape, const void *data)
{
    int i = add_value(m, name, dt, shape);
    if (i < 0)
        return -1;
    struct lvk_value *v = &m->values[i];
    size_t bytes = (size_t)lvk_shape_count(shape) * dtype_size(dt);
    v->host = malloc(bytes ? bytes : 1);
    if (!v->host) {
        lvk_fail(LVK_ERR_HOST_OOM, "out of host memory for constant '%s'", name);
        return -1;
    }
    if (bytes)
        memcpy(v->host, data, bytes);
    v->is_const = true;
    return i;
}

static lvk_status copy_attr(struct lvk_attr *d, const struct lvk_attr *s)
{
    *d = *s;
    d->name = dupstr(s->name);
    d->s = s->s ? dupstr(s->s) : NULL;
    d->ints = NULL;
    d->floats = NULL;
    if (s->ints && s->n) {
        d->ints = malloc((size_t)s->n * sizeof *d->ints);
        if (d->ints)
            memcpy(d->ints, s->ints, (size_t)s->n * sizeof *d->ints);
    }
    if (s->floats && s->n) {
        d->floats = malloc((size_t)s->n * sizeof *d->floats);
        if (d->floats)
            memcpy(d->floats, s->floats, (size_t)s->n * sizeof *d->floats);
    }
    if (!d->name || (s->s && !d->s) || (s->ints && s->n && !d->ints) ||
        (s->floats && s->n && !d->floats))
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    return LVK_OK;
}

lvk_status lvk_graph_add_node(struct lvk_model *m, const char *op_type, const char *name,
                              const char *const *inputs, int ninputs,
                              const char *const *outputs, int noutputs,
                              const struct lvk_attr *attrs, int nattrs)
{
    if (m->nnodes == m->cap_nodes) {
        int cap = m->cap_nodes ? 2 * m->cap_nodes : 64;
        struct lvk_node *nn = realloc(m->nodes, (size_t)cap * sizeof *nn);
        if (!nn)
            return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
        m->nodes = nn;
        m->cap_nodes = cap;
    }
    struct lvk_node *n = &m->nodes[m->nnodes];
    memset(n, 0, sizeof *n);
    m->nnodes++; /* counted first so lvk_graph_destroy frees a half-built node */
    n->act = n->sum = n->bwd_sum = -1;
    n->op_type = dupstr(op_type);
    n->name = dupstr(name && *name ? name : (noutputs > 0 ? outputs[0] : op_type));
    n->inputs = lvk_calloc((size_t)LVK_MAX(ninputs, 1), sizeof *n->inputs);
    n->outputs = lvk_calloc((size_t)LVK_MAX(noutputs, 1), sizeof *n->outputs);
    n->attrs = lvk_calloc((size_t)LVK_MAX(nattrs, 1), sizeof *n->attrs);
    if (!n->op_type || !n->name || !n->inputs || !n->outputs || !n->attrs)
        return LVK_ERR_HOST_OOM;
    for (int i = 0; i < nattrs; i++) {
        LVK_CHECK(copy_attr(&n->attrs[i], &attrs[i]));
        n->nattrs++;
    }
    n->ninputs = ninputs;
    for (int i = 0; i < ninputs; i++) {
        if (!inputs[i] || !inputs[i][0]) {
            n->inputs[i] = -1;
            continue;
        }
        n->inputs[i] = lvk_graph_find(m, inputs[i]);
        if (n->inputs[i] < 0)
            return lvk_node_fail(m, n, LVK_ERR_FORMAT,
                                 "input '%s' is not produced by any earlier node, initializer or graph input",
                                 inputs[i]);
    }
    int node_index = m->nnodes - 1;
    for (int i = 0; i < noutputs; i++) {
        if (!outputs[i] || !outputs[i][0]) {
            n->outputs[i] = -1;
            n->noutputs++;
            continue;
        }
        int v = add_value(m, outputs[i], LVK_DTYPE_F32, NULL);
        if (v < 0)
            return LVK_ERR_HOST_OOM;
        n = &m->nodes[node_index];
        m->values[v].producer = node_index;
        n->outputs[i] = v;
        n->noutputs++;
    }
    return LVK_OK;
}

lvk_status lvk_graph_mark_output(struct lvk_model *m, const char *name)
{
    int v = lvk_graph_find(m, name);
    if (v < 0)
        return lvk_fail(LVK_ERR_NOT_FOUND, "%s: graph output '%s' is never produced", m->path, name);
    int *no = realloc(m->graph_outputs, (size_t)(m->ngraph_outputs + 1) * sizeof *no);
    if (!no)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    m->graph_outputs = no;
    m->graph_outputs[m->ngraph_outputs++] = v;
    return LVK_OK;
}

int lvk_node_extra(struct lvk_node *n, VkDeviceSize bytes, void *init)
{
    LVK_ASSERT(n->nextra < LVK_MAX_EXTRA);
    n->extra_size[n->nextra] = bytes;
    n->extra_init[n->nextra] = init;
    return n->nextra++;
}

void lvk_node_scratch(struct lvk_node *n, int slot, VkDeviceSize bytes)
{
    LVK_ASSERT(slot >= 0 && slot < LVK_MAX_SCRATCH);
    n->scratch_size[slot] = LVK_MAX(n->scratch_size[slot], bytes);
}

lvk_status lvk_node_need_const(const struct lvk_model *m, const struct lvk_node *n, int i)
{
    if (i >= n->ninputs || n->inputs[i] < 0)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "input %d is missing", i);
    const struct lvk_value *v = &m->values[n->inputs[i]];
    if (!v->is_const)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                             "input %d ('%s') must be known at load time (an initializer or "
                             "computable from shapes), but it depends on run-time data",
                             i, v->name);
    return LVK_OK;
}

/* ---- preparing ------------------------------------------------------------------------- */

const struct lvk_op_def *lvk_op_find(const char *op_type)
{
    for (int l = 0; lvk_op_lists[l]; l++)
        for (int k = 0; lvk_op_lists[l][k]; k++)
            if (strcmp(lvk_op_lists[l][k]->op_type, op_type) == 0)
                return lvk_op_lists[l][k];
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "Add, AveragePool, ..." of every registered op, sorted. */
static void supported_ops(char *buf, size_t len)
{
    const char *names[256];
    int n = 0;
    for (int l = 0; lvk_op_lists[l]; l++)
        for (int k = 0; lvk_op_lists[l][k] && n < 256; k++)
            names[n++] = lvk_op_lists[l][k]->op_type;
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, i ? ", %s" : "%s", names[i]);
}

/* Marks in nodes[] those upstream of the values marked in vals[], which it
 * extends to every value they read (nodes are in topological order). */
static void mark_upstream(const struct lvk_model *m, bool *vals, bool *nodes)
{
    for (int i = m->nnodes - 1; i >= 0; i--) {
        const struct lvk_node *n = &m->nodes[i];
        for (int k = 0; k < n->noutputs; k++)
            nodes[i] = nodes[i] || (n->outputs[k] >= 0 && vals[n->outputs[k]]);
        for (int k = 0; nodes[i] && k < n->ninputs; k++)
            if (n->inputs[k] >= 0)
                vals[n->inputs[k]] = true;
    }
}

/* The values and nodes that `values` need, as planning finds them:
 * malloc'd flags, values[] marked in *vals and *req, their producers'
 * upstream in *vals and *nodes. */
static lvk_status mark_needed(const struct lvk_model *m, const int *values, int nvalues,
                              bool **vals, bool **req, bool **nodes)
{
    *vals = lvk_calloc((size_t)LVK_MAX(m->nvalues, 1), sizeof **vals);
    *req = lvk_calloc((size_t)LVK_MAX(m->nvalues, 1), sizeof **req);
    *nodes = lvk_calloc((size_t)LVK_MAX(m->nnodes, 1), sizeof **nodes);
    if (!*vals || !*req || !*nodes) {
        free(*vals);
        free(*req);
        free(*nodes);
        *vals = *req = *nodes = NULL;
        return LVK_ERR_HOST_OOM;
    }
    for (int r = 0; r < nvalues; r++)
        (*vals)[values[r]] = (*req)[values[r]] = true;
    mark_upstream(m, *vals, *nodes);
    return LVK_OK;
}

/* Prepares (and folds) the nodes marked in `upstream`, every node if it is
 * NULL. */
static lvk_status prepare(struct lvk_model *m, const bool *upstream)
{
    for (int i = 0; i < m->nnodes; i++) {
        struct lvk_node *n = &m->nodes[i];
        n->def = lvk_op_find(n->op_type);
        if (!n->def) {
            char list[2048];
            supported_ops(list, sizeof list);
            return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "unsupported op '%s'. Supported ops: %s",
                                 n->op_type, list);
        }
    }
    for (int i = 0; i < m->nnodes; i++) {
        struct lvk_node *n = &m->nodes[i];
        if (upstream && !upstream[i])
            continue;
        lvk_status st = n->def->prepare(m, n);
        if (st != LVK_OK) {
            /* Ops report through lvk_node_fail; add the node to bare messages. */
            if (!strstr(lvk_last_error(), "node '"))
                lvk_error_prefix("%s: node '%s' (%s): ", m->path, n->name, n->op_type);
            return st;
        }
        bool all_const = true;
        for (int k = 0; k < n->ninputs; k++)
            if (n->inputs[k] >= 0 && !m->values[n->inputs[k]].is_const)
                all_const = false;
        if (n->def->fold && (all_const || n->def->shape_only)) {
            st = n->def->fold(m, n);
            if (st != LVK_OK) {
                if (!strstr(lvk_last_error(), "node '"))
                    lvk_error_prefix("%s: node '%s' (%s): ", m->path, n->name, n->op_type);
                return st;
            }
            n->folded = true;
            for (int k = 0; k < n->noutputs; k++)
                if (n->outputs[k] >= 0) {
                    LVK_ASSERT(m->values[n->outputs[k]].host != NULL);
                    m->values[n->outputs[k]].is_const = true;
                }
        }
    }
    return LVK_OK;
}

/* ---- planning ----------------------------------------------------------------------------- */

static int alias_root(const struct lvk_model *m, int v)
{
    while (m->values[v].alias_of >= 0)
        v = m->values[v].alias_of;
    return v;
}

/* How often the needed nodes read each value, and the last read: the
 * fusions below act on values that one node reads once. */
struct value_reads {
    int count;
    int node, input; /* the last read: node index, input slot */
};

/* NULL without memory: the fusions are optimisations, and are skipped. */
static struct value_reads *count_reads(const struct lvk_model *m)
{
    struct value_reads *r = lvk_calloc((size_t)LVK_MAX(m->nvalues, 1), sizeof *r);
    for (int i = 0; r && i < m->nnodes; i++)
        for (int k = 0; m->nodes[i].needed && k < m->nodes[i].ninputs; k++) {
            const int v = m->nodes[i].inputs[k];
            if (v >= 0)
                r[v] = (struct value_reads){r[v].count + 1, i, k};
        }
    return r;
}

/* The Relu/ReLU6 that alone reads value v, as its input, where v is not
 * requested: a producer of v that can clamp may apply it. Else -1. */
static int sole_clamp(const struct lvk_model *m, const bool *requested,
                      const struct value_reads *reads, int v)
{
    if (requested[v] || reads[v].count != 1 || reads[v].input != 0)
        return -1;
    const struct lvk_node *a = &m->nodes[reads[v].node];
    float lo, hi;
    return a->def->clamp_bounds && a->def->clamp_bounds(a, &lo, &hi) ? reads[v].node : -1;
}

/* Fuses each Relu/ReLU6 into the Conv before it where nothing else reads
 * the Conv's output: the Conv clamps as it stores, so the pre-activation
 * tensor is never written or allocated and the activation's forward pass
 * (a full read and write of the tensor) disappears. The activation's
 * backward still runs, taking its gradient mask from its output (y in
 * (0, hi) exactly when x is). Requested tensors are never fused away.
 *
 * Likewise each such activation whose output y one node alone reads, and
 * whose backward can apply the mask (a Conv, a Concat, a MaxPool), hands its
 * backward to that node: it masks the gradient of y as it stores it and
 * writes the gradient of the activation's input, saving a pass that reads
 * and writes a whole gradient; y then has no gradient buffer. The reader
 * computes each element of y's gradient whole, so the mask, which may
 * depend on the gradient's sign (lvk_relu_mode), sees the final value. */
static void fuse_activations(struct lvk_model *m, const bool *requested,
                             const struct value_reads *reads)
{
    for (int i = 0; i < m->nnodes; i++) {
        struct lvk_node *c = &m->nodes[i];
        if (!c->needed || c->folded || !c->def->fuses_clamp || c->noutputs < 1 || c->outputs[0] < 0)
            continue;
        const int a = sole_clamp(m, requested, reads, c->outputs[0]);
        if (a >= 0) {
            c->act = a;
            m->nodes[a].fused = true;
        }
    }
    for (int i = 0; i < m->nnodes; i++) {
        struct lvk_node *a = &m->nodes[i];
        float lo, hi;
        if (!a->needed || !a->def->clamp_bounds || a->ninputs < 1 || a->inputs[0] < 0 ||
            a->outputs[0] < 0 || !a->def->clamp_bounds(a, &lo, &hi))
            continue;
        const int y = a->outputs[0];
        if (requested[y] || reads[y].count != 1 || !m->values[a->inputs[0]].on_grad_path)
            continue;
        const struct lvk_node *r = &m->nodes[reads[y].node];
        if (r->def->fuses_clamp_bwd && r->def->fuses_clamp_bwd(r, reads[y].input))
            a->bwd_fused = true;
    }
}

/* Fuses each Add into the producer of one operand where nothing else reads
 * that operand and the producer can add as it stores (a residual block's
 * last convolution, which then adds the block's input): the producer
 * writes the sum, so the operand is never written or allocated and the
 * Add's forward pass (two reads and a write of the tensor) disappears. The
 * other operand must be computed before the producer runs (nodes run in
 * order); of two fusable producers, the later one writes the sum. A clamp
 * that alone reads the sum comes along (ResNet's Add then Relu): the
 * producer clamps too and writes the activation's output. The Add's
 * backward still runs; it reads no values. */
static void fuse_sums(struct lvk_model *m, const bool *requested, const struct value_reads *reads)
{
    for (int i = 0; i < m->nnodes; i++) {
        struct lvk_node *a = &m->nodes[i];
        if (!a->needed || a->folded || !a->def->sums || !a->def->sums(m, a))
            continue;
        for (int k = 0; k < 2; k++) {
            const int x = a->inputs[k], other = a->inputs[1 - k];
            const int p = m->values[x].producer;
            /* Read once (by this Add), x has no clamp or other Add fused. */
            if (p < 0 || requested[x] || reads[x].count != 1 || m->values[other].producer >= p)
                continue;
            struct lvk_node *c = &m->nodes[p];
            if (!c->needed || c->folded || c->outputs[0] != x || !c->def->fuses_sum ||
                !c->def->fuses_sum(c))
                continue;
            c->sum = i;
            a->fused = true;
            const int r = c->def->fuses_clamp ? sole_clamp(m, requested, reads, a->outputs[0]) : -1;
            if (r >= 0) {
                c->act = a->act = r;
                m->nodes[r].fused = true;
            }
            break;
        }
    }
}

/* The first node whose backward writes a gradient (nodes run backwards)
 * stores it instead of adding to zeros, where its op can: that gradient then
 * needs no zeroing, a pass over it saved each step (a render's gradients
 * are as large as its activations). Not where the node writes it twice
 * (one value read as two inputs), nor for the gradient of a requested
 * value, which a caller may have seeded before the backward. */
static void plan_grad_stores(struct lvk_model *m)
{
    const int ngrad = m->grad_end - m->grad_first;
    bool *seen = m->grad_zero + ngrad;
    for (int i = 0; i < ngrad; i++) {
        m->grad_zero[i] = true;
        seen[i] = false;
    }
    for (int v = 0; v < m->nvalues; v++)
        if (m->values[v].seeded && m->values[v].grad)
            seen[m->values[v].grad - m->bufs - m->grad_first] = true;
    for (int i = m->nnodes - 1; i >= 0; i--) {
        struct lvk_node *n = &m->nodes[i];
        n->grad_store = 0;
        if (!lvk_graph_node_runs(m, n, true))
            continue;
        for (int k = 0; k < n->ninputs; k++) {
            const struct lvk_buf *g = n->inputs[k] >= 0 ? lvk_graph_input_grad(m, n, k) : NULL;
            const ptrdiff_t gi = g ? g - m->bufs - m->grad_first : 0;
            if (!g || seen[gi])
                continue;
            seen[gi] = true;
            bool twice = false;
            for (int j = 0; j < n->ninputs; j++)
                twice |= j != k && n->inputs[j] >= 0 && lvk_graph_input_grad(m, n, j) == g;
            if (!twice && n->def->stores_grad && n->def->stores_grad(n, k)) {
                n->grad_store |= 1u << k;
                m->grad_zero[gi] = false;
            }
        }
    }
}

lvk_status lvk_graph_seed_target(struct lvk_model *m, int v)
{
    struct lvk_value *val = &m->values[v];
    if (val->seeded)
        return LVK_OK;
    /* An Add's operand that uses its output's gradient buffer (share_grads)
     * would pass its seed to the Add's other operand too, which requested
     * values never do. (An alias is the same tensor: its seed is right.) */
    for (int i = 0; i < m->nnodes; i++)
        for (int k = 0; k < m->nodes[i].ninputs; k++)
            if ((m->nodes[i].grad_shared >> k & 1u) && m->nodes[i].inputs[k] == v)
                return lvk_fail(LVK_ERR_INVALID_ARG,
                                "%s: tensor '%s' shares its gradient buffer with '%s'; request "
                                "it as an output when loading to seed it", m->path, val->name,
                                m->values[m->nodes[i].outputs[0]].name);
    val->seeded = true;
    plan_grad_stores(m);
    return LVK_OK;
}

/* An input whose gradient always equals its reader's output's (an Add's
 * operand of the output's shape) shares the output's gradient buffer when
 * nothing else reads it: the reader's backward then copies nothing for it,
 * and the input's producer reads the output's gradient directly (a residual
 * block's last convolution, the Add's only reader). share[v] is the value
 * whose gradient buffer v uses, or -1. Graph inputs keep their own, which
 * callers read, and so do seeded values (requested outputs), whose seed
 * must reach no other. */
static void share_grads(struct lvk_model *m, const struct value_reads *reads, int *share)
{
    for (int v = 0; v < m->nvalues; v++)
        share[v] = -1;
    for (int i = 0; reads && m->gradients && i < m->nnodes; i++) {
        struct lvk_node *n = &m->nodes[i];
        if (!n->needed || n->folded || !n->def->passes_grad || n->noutputs < 1 || n->outputs[0] < 0)
            continue;
        for (int k = 0; k < n->ninputs; k++) {
            const int v = n->inputs[k];
            const struct lvk_value *val = v >= 0 ? &m->values[v] : NULL;
            if (!val || reads[v].count != 1 || !val->on_grad_path || val->is_input || val->seeded ||
                val->alias_of >= 0 ||
                (val->producer >= 0 && m->nodes[val->producer].bwd_fused) ||
                !n->def->passes_grad(m, n, k))
                continue;
            share[v] = n->outputs[0];
            n->grad_shared |= 1u << k;
        }
    }
}

/* A residual block's input x is read by the block's first layer C and by
 * the Add that closes the block, whose other operand uses the Add's
 * gradient buffer (share_grads): the Add's backward would only copy its
 * output's gradient into x's, for C's backward to add to. C adds it as it
 * stores instead (lvk_node.bwd_sum), reading it once where the copy read
 * and wrote it and C read it back, and the Add's backward has nothing left
 * to do. Only where those two are x's only readers (no alias of it), and
 * x is not requested and takes its own gradient (no activation's mask
 * applied by C, whose second input binding that holds). */
static void fold_add_grads(struct lvk_model *m, const struct value_reads *reads)
{
    for (int i = 0; reads && m->gradients && i < m->nnodes; i++) {
        struct lvk_node *a = &m->nodes[i];
        if (!a->needed || a->folded || !a->def->passes_grad || a->ninputs != 2)
            continue;
        for (int k = 0; k < 2; k++) {
            const int x = a->inputs[k];
            const struct lvk_value *val = x >= 0 ? &m->values[x] : NULL;
            if (!val || !(a->grad_shared >> (1 - k) & 1u) || reads[x].count != 2 ||
                !val->on_grad_path || val->seeded || val->alias_of >= 0 ||
                lvk_graph_grad_mask(m, x, NULL, NULL) || !a->def->passes_grad(m, a, k))
                continue;
            int c = -1;
            for (int j = 0; j < i; j++)
                for (int q = 0; m->nodes[j].needed && q < m->nodes[j].ninputs; q++)
                    if (m->nodes[j].inputs[q] == x)
                        c = q == 0 && c == -1 ? j : -2;
            struct lvk_node *cn = c >= 0 ? &m->nodes[c] : NULL;
            if (!cn || cn->folded || cn->bwd_sum >= 0 || !cn->def->fuses_sum_bwd ||
                !cn->def->fuses_sum_bwd(cn))
                continue;
            cn->bwd_sum = i;
            a->grad_folded |= 1u << k;
        }
    }
}

static lvk_status plan(struct lvk_model *m, const struct lvk_model_opts *opts)
{
    /* What runs: everything upstream of the requested values. */
    int nreq = opts && opts->outputs ? opts->noutputs : m->ngraph_outputs;
    bool *requested = lvk_calloc((size_t)LVK_MAX(m->nvalues, 1), sizeof *requested);
    if (!requested)
        return LVK_ERR_HOST_OOM;
    for (int r = 0; r < nreq; r++) {
        int v = opts && opts->outputs ? lvk_graph_find(m, opts->outputs[r]) : m->graph_outputs[r];
        LVK_ASSERT(v >= 0); /* names checked by lvk_graph_finalize */
        m->values[v].needed = true;
        m->values[v].seeded = true;
        requested[v] = true;
    }
    for (int i = m->nnodes - 1; i >= 0; i--) {
        struct lvk_node *n = &m->nodes[i];
        if (n->folded)
            continue;
        for (int k = 0; k < n->noutputs; k++)
            if (n->outputs[k] >= 0 && m->values[n->outputs[k]].needed)
                n->needed = true;
        if (!n->needed)
            continue;
        /* Nodes run in order, so every reader of a value comes before its
         * producer here: one that reads it whole has widened its channels. */
        for (int k = 0; k < n->ninputs; k++)
            if (n->inputs[k] >= 0 && (!n->def->needs_input || n->def->needs_input(m, n, k))) {
                m->values[n->inputs[k]].needed = true;
                m->values[n->inputs[k]].read_lo = 0;
                m->values[n->inputs[k]].read_hi = INT64_MAX;
            }
    }

    /* Which values carry gradients: runtime floats downstream of a graph input. */
    if (m->gradients) {
        for (int v = 0; v < m->nvalues; v++)
            if (m->values[v].is_input && !m->values[v].is_const &&
                m->values[v].dtype == LVK_DTYPE_F32)
                m->values[v].on_grad_path = true;
        for (int i = 0; i < m->nnodes; i++) {
            struct lvk_node *n = &m->nodes[i];
            if (!n->needed)
                continue;
            bool any = false;
            for (int k = 0; k < n->ninputs; k++)
                if (n->inputs[k] >= 0 && m->values[n->inputs[k]].on_grad_path)
                    any = true;
            if (!any)
                continue;
            if (!n->def->bwd && !n->def->alias)
                return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                                     "op has no backward pass, but gradients must flow through it");
            for (int k = 0; k < n->noutputs; k++)
                if (n->outputs[k] >= 0 && m->values[n->outputs[k]].dtype == LVK_DTYPE_F32)
                    m->values[n->outputs[k]].on_grad_path = true;
        }
    }

    /* Fusions rewrite the plan for values one node reads once; LVK_NO_FUSE=1
     * turns them off (for comparisons). */
    struct value_reads *reads = lvk_env_on("LVK_NO_FUSE") ? NULL : count_reads(m);
    if (reads) {
        fuse_activations(m, requested, reads);
        fuse_sums(m, requested, reads);
    }
    /* From here `requested` also marks every value some pass reads on the
     * device: a constant marked by neither gets no device buffer. */
    for (int i = 0; i < m->nnodes; i++) {
        const struct lvk_node *n = &m->nodes[i];
        if (!n->needed || n->folded)
            continue;
        for (int k = 0; k < n->ninputs; k++)
            if (n->inputs[k] >= 0 && (!n->def->reads_input || n->def->reads_input(n, k)))
                requested[n->inputs[k]] = true;
    }

    /* Aliases share their input's storage. */
    for (int i = 0; i < m->nnodes; i++) {
        struct lvk_node *n = &m->nodes[i];
        if (n->needed && n->def->alias && n->outputs[0] >= 0)
            m->values[n->outputs[0]].alias_of = alias_root(m, n->inputs[0]);
    }

    /* Size every buffer, then allocate them all at once. */
    int cap = 2 * m->nvalues + LVK_MAX_EXTRA * m->nnodes + LVK_MAX_SCRATCH + 1;
    VkDeviceSize *sizes = lvk_calloc((size_t)cap, sizeof *sizes);
    int *val_buf = lvk_calloc((size_t)m->nvalues, sizeof *val_buf);
    int *val_grad = lvk_calloc((size_t)m->nvalues, sizeof *val_grad);
    int *share = lvk_calloc((size_t)LVK_MAX(m->nvalues, 1), sizeof *share);
    if (!sizes || !val_buf || !val_grad || !share) {
        free(sizes); free(val_buf); free(val_grad); free(share); free(requested); free(reads);
        return LVK_ERR_HOST_OOM;
    }
    share_grads(m, reads, share);
    fold_add_grads(m, reads);
    free(reads);
    int nb = 0;
    sizes[nb++] = sizeof(struct lvk_ctrl); /* buffer 0: control block */
    for (int v = 0; v < m->nvalues; v++) {
        struct lvk_value *val = &m->values[v];
        val_buf[v] = val_grad[v] = -1;
        if (!val->needed || val->alias_of >= 0)
            continue;
        if (val->dtype != LVK_DTYPE_F32)
            continue; /* integer values are host-side constants only */
        if (val->is_const && !requested[v])
            continue; /* read by no pass on the device */
        VkDeviceSize bytes = (VkDeviceSize)lvk_shape_count(&val->shape) * 4;
        const bool fused_away = val->producer >= 0 && (m->nodes[val->producer].act >= 0 ||
                                                       m->nodes[val->producer].sum >= 0);
        if (!fused_away) {
            val_buf[v] = nb;
            sizes[nb++] = bytes;
        }
    }
    /* Gradients next to each other, so that one fill zeroes each run of them. */
    const int first_grad = nb;
    for (int v = 0; v < m->nvalues; v++) {
        const struct lvk_value *val = &m->values[v];
        /* The output of an activation whose backward its reader applies has
         * no gradient of its own (fuse_activations). */
        const bool masked_away = val->producer >= 0 && m->nodes[val->producer].bwd_fused;
        if (val->needed && val->alias_of < 0 && val->dtype == LVK_DTYPE_F32 && val->on_grad_path &&
            !masked_away && share[v] < 0) {
            val_grad[v] = nb;
            sizes[nb++] = (VkDeviceSize)lvk_shape_count(&val->shape) * 4;
        }
    }
    const int end_grad = nb;
    free(requested);
    int *extra_base = lvk_calloc((size_t)LVK_MAX(m->nnodes, 1), sizeof *extra_base);
    if (!extra_base) {
        free(sizes); free(val_buf); free(val_grad); free(share);
        return LVK_ERR_HOST_OOM;
    }
    for (int i = 0; i < m->nnodes; i++) {
        extra_base[i] = nb;
        if (m->nodes[i].needed)
            for (int k = 0; k < m->nodes[i].nextra; k++)
                sizes[nb++] = m->nodes[i].extra_size[k];
    }
    int scratch_buf[LVK_MAX_SCRATCH];
    for (int k = 0; k < LVK_MAX_SCRATCH; k++) {
        VkDeviceSize size = 0;
        for (int i = 0; i < m->nnodes; i++)
            if (m->nodes[i].needed)
                size = LVK_MAX(size, m->nodes[i].scratch_size[k]);
        scratch_buf[k] = size ? nb : -1;
        if (size)
            sizes[nb++] = size;
    }
    m->bufs = lvk_calloc((size_t)nb, sizeof *m->bufs);
    lvk_status st = m->bufs ? LVK_OK : LVK_ERR_HOST_OOM;
    if (st == LVK_OK) {
        st = lvk_arena_create(m->ctx, sizes, nb, m->bufs, &m->arena);
        if (st == LVK_OK)
            m->nbufs = nb;
        else
            lvk_error_prefix("%s: ", m->path);
    }
    if (st == LVK_OK) {
        m->ctrl = &m->bufs[0];
        for (int v = 0; v < m->nvalues; v++) {
            int root = m->values[v].alias_of >= 0 ? m->values[v].alias_of : v;
            if (val_buf[root] >= 0)
                m->values[v].buf = &m->bufs[val_buf[root]];
            int g = root;
            while (share[g] >= 0) /* chains: an Add's operand that is an Add */
                g = share[g];
            if (val_grad[g] >= 0)
                m->values[v].grad = &m->bufs[val_grad[g]];
        }
        for (int i = 0; i < m->nnodes; i++)
            if (m->nodes[i].needed)
                for (int k = 0; k < m->nodes[i].nextra; k++)
                    m->nodes[i].extra[k] = &m->bufs[extra_base[i] + k];
        for (int k = 0; k < LVK_MAX_SCRATCH; k++)
            m->scratch[k] = scratch_buf[k] >= 0 ? &m->bufs[scratch_buf[k]] : NULL;
        /* Without a span (gradients split over allocations), each gradient
         * is zeroed on its own. */
        if (end_grad > first_grad &&
            lvk_arena_span(m->ctx, &m->bufs[first_grad], &m->bufs[end_grad - 1], &m->grad_span) !=
                LVK_OK)
            m->grad_span.buf = VK_NULL_HANDLE;
        m->grad_first = first_grad;
        m->grad_end = end_grad;
        /* grad_zero, then plan_grad_stores' scratch. */
        m->grad_zero = lvk_calloc((size_t)LVK_MAX(2 * (end_grad - first_grad), 1),
                                  sizeof *m->grad_zero);
        if (m->grad_zero)
            plan_grad_stores(m);
        else
            st = LVK_ERR_HOST_OOM;
    }
    free(sizes); free(val_buf); free(val_grad); free(share); free(extra_base);
    return st;
}

/* Uploads constants that runtime ops read, and the ops' initial extras. */
static lvk_status upload(struct lvk_model *m)
{
    struct lvk_ctrl ctrl = {.relu_mode = LVK_RELU_GRAD_NORMAL};
    LVK_CHECK(lvk_buf_upload(m->ctx, m->ctrl, 0, &ctrl, sizeof ctrl));
    for (int v = 0; v < m->nvalues; v++) {
        struct lvk_value *val = &m->values[v];
        if (val->buf && val->is_const && val->host && val->alias_of < 0)
            LVK_CHECK(lvk_buf_upload(m->ctx, val->buf, 0, val->host,
                                     (VkDeviceSize)lvk_shape_count(&val->shape) * 4));
    }
    for (int i = 0; i < m->nnodes; i++) {
        struct lvk_node *n = &m->nodes[i];
        for (int k = 0; k < n->nextra; k++) {
            if (n->extra[k] && n->extra_init[k])
                LVK_CHECK(lvk_buf_upload(m->ctx, n->extra[k], 0, n->extra_init[k], n->extra_size[k]));
            free(n->extra_init[k]);
            n->extra_init[k] = NULL;
        }
    }
    return LVK_OK;
}

void lvk_graph_need_channels(struct lvk_model *m, int v, int64_t lo, int64_t hi)
{
    LVK_ASSERT(!m->planned);
    m->values[v].read_lo = lo;
    m->values[v].read_hi = hi;
}

/* How many inputs of the nodes marked in `among` (every node if NULL) are
 * value v. */
static int graph_readers(const struct lvk_model *m, int v, const bool *among)
{
    int count = 0;
    for (int i = 0; i < m->nnodes; i++)
        for (int k = 0; k < m->nodes[i].ninputs; k++)
            if (m->nodes[i].inputs[k] == v && (!among || among[i]))
                count++;
    return count;
}

bool lvk_graph_value_read(const struct lvk_model *m, int v)
{
    for (int i = 0; i < m->ngraph_outputs; i++)
        if (m->graph_outputs[i] == v)
            return true;
    return graph_readers(m, v, NULL) > 0;
}

/* A channelwise op (lvk_op_def.channelwise) whose other inputs (Clip's
 * bounds) are constants. Runs before prepare(), which sets n->def. */
static bool channelwise(const struct lvk_model *m, const struct lvk_node *n)
{
    const struct lvk_op_def *def = lvk_op_find(n->op_type);
    if (!def || !def->channelwise || n->noutputs != 1 || n->ninputs < 1 || n->inputs[0] < 0)
        return false;
    for (int k = 1; k < n->ninputs; k++)
        if (n->inputs[k] >= 0 && !m->values[n->inputs[k]].is_const)
            return false;
    return true;
}

/* Longest run of channelwise nodes narrowing walks back through. */
#define MAX_CHAIN 16

/* Walks back from value v through channelwise nodes to the Conv computing
 * it: fills chain[] (v first, the Conv's output last) and returns the
 * Conv's index, or -1. With `nneed`, every value after v must be read by
 * the next node alone among the needed ones, and none requested. */
static int conv_chain(const struct lvk_model *m, int v, const bool *nneed, const bool *req,
                      int *chain, int *nchain)
{
    *nchain = 0;
    for (int cur = v; *nchain < MAX_CHAIN;) {
        chain[(*nchain)++] = cur;
        const int p = m->values[cur].producer;
        if (p < 0)
            return -1;
        const struct lvk_node *n = &m->nodes[p];
        if (strcmp(n->op_type, "Conv") == 0)
            return n->outputs[0] == cur ? p : -1;
        if (!channelwise(m, n))
            return -1;
        cur = n->inputs[0];
        if (nneed && (req[cur] || graph_readers(m, cur, nneed) != 1))
            return -1;
    }
    return -1;
}

/* Out channels of the Conv that computes value v through channelwise
 * nodes (its weights' first dimension), or -1. */
static int64_t conv_channels(const struct lvk_model *m, int v)
{
    int chain[MAX_CHAIN], nchain;
    const int c = conv_chain(m, v, NULL, NULL, chain, &nchain);
    const int wi = c >= 0 && m->nodes[c].ninputs > 1 ? m->nodes[c].inputs[1] : -1;
    return wi >= 0 && m->values[wi].is_const && m->values[wi].shape.ndim >= 3
               ? m->values[wi].shape.d[0]
               : -1;
}

/* Cuts Conv `conv` to its out channels [lo, hi): one group, constant float
 * weights and bias that only it reads. */
static bool cut_conv(struct lvk_model *m, int conv, int64_t lo, int64_t hi)
{
    const struct lvk_node *n = &m->nodes[conv];
    const int wi = n->ninputs > 1 ? n->inputs[1] : -1, bi = n->ninputs > 2 ? n->inputs[2] : -1;
    if (lvk_attr_int(n, "group", 1) != 1 || wi < 0)
        return false;
    struct lvk_value *w = &m->values[wi], *b = bi >= 0 ? &m->values[bi] : NULL;
    if (!w->is_const || !w->host || w->dtype != LVK_DTYPE_F32 || w->shape.ndim < 3 ||
        hi > w->shape.d[0] || graph_readers(m, wi, NULL) != 1)
        return false;
    if (b && (!b->is_const || !b->host || b->dtype != LVK_DTYPE_F32 || b->shape.ndim != 1 ||
              b->shape.d[0] != w->shape.d[0] || graph_readers(m, bi, NULL) != 1))
        return false;
    const size_t row = (size_t)(lvk_shape_count(&w->shape) / w->shape.d[0]);
    float *wh = w->host;
    memmove(wh, wh + (size_t)lo * row, (size_t)(hi - lo) * row * sizeof *wh);
    w->shape.d[0] = hi - lo;
    if (b) {
        float *bh = b->host;
        memmove(bh, bh + lo, (size_t)(hi - lo) * sizeof *bh);
        b->shape.d[0] = hi - lo;
    }
    return true;
}

bool lvk_graph_narrow_channels(struct lvk_model *m, int v, int64_t lo, int64_t hi,
                               const int *requested, int nrequested)
{
    LVK_ASSERT(!m->planned);
    if (lo < 0 || lo >= hi)
        return false;
    bool *vneed, *req, *nneed;
    const bool ok = mark_needed(m, requested, nrequested, &vneed, &req, &nneed) == LVK_OK;
    int chain[MAX_CHAIN], nchain = 0, conv = -1, cat = -1;
    int64_t off = 0;   /* with a Concat: where the branch's channels start in v */
    if (ok && graph_readers(m, v, nneed) == 0) {
        conv = conv_chain(m, v, nneed, req, chain, &nchain);
        /* v = Concat of branches along the channels: the one branch that
         * holds [lo, hi), each branch before it ending in a Conv (whose
         * weights give its channels). */
        const int p = m->values[v].producer;
        if (conv < 0 && p >= 0 && strcmp(m->nodes[p].op_type, "Concat") == 0 &&
            lvk_attr_int(&m->nodes[p], "axis", 0) == 1) {
            const struct lvk_node *n = &m->nodes[p];
            for (int k = 0; k < n->ninputs && cat < 0; k++) {
                const int u = n->inputs[k];
                const int64_t c = u >= 0 ? conv_channels(m, u) : -1;
                if (c < 0)
                    break;
                if (lo >= off && hi <= off + c) {
                    cat = p;
                    if (!req[u] && graph_readers(m, u, nneed) == 1)
                        conv = conv_chain(m, u, nneed, req, chain, &nchain);
                } else {
                    off += c;
                }
            }
        }
    }
    free(vneed);
    free(nneed);
    free(req);
    if (conv < 0 || !cut_conv(m, conv, lo - off, hi - off))
        return false;
    for (int k = 0; k < nchain; k++)
        m->values[chain[k]].channel_base = lo - off;
    if (cat >= 0) {
        /* Channel lo of the file's v is now channel off; the Concat needs
         * no other branch. */
        m->values[v].channel_base = lo - off;
        lvk_graph_need_channels(m, v, off, off + hi - lo);
    }
    return true;
}

lvk_status lvk_graph_finalize(struct lvk_model *m, const struct lvk_model_opts *opts)
{
    LVK_ASSERT(!m->planned);
    /* Known to prepare(): an op may plan less for a model without them. */
    m->gradients = opts && opts->gradients;
    m->fast_conv = opts && opts->fast_conv;
    /* Named outputs: only what they need is prepared, so the layers past
     * a render's objective cost no planning (GoogLeNet's inception4e-5b and
     * classifier, for inception4d) and their shapes need not fit; else
     * everything is ('lucidvk info' shows every shape). */
    bool *vals = NULL, *req = NULL, *upstream = NULL;
    if (opts && opts->outputs) {
        int *outs = lvk_calloc((size_t)LVK_MAX(opts->noutputs, 1), sizeof *outs);
        if (!outs)
            return LVK_ERR_HOST_OOM;
        for (int r = 0; r < opts->noutputs; r++)
            if ((outs[r] = lvk_graph_find(m, opts->outputs[r])) < 0) {
                free(outs);
                return lvk_fail(LVK_ERR_NOT_FOUND, "%s: no tensor named '%s' (see 'lucidvk info')",
                                m->path, opts->outputs[r]);
            }
        lvk_status st = mark_needed(m, outs, opts->noutputs, &vals, &req, &upstream);
        free(outs);
        LVK_CHECK(st);
    }
    lvk_status st = prepare(m, upstream);
    free(vals);
    free(req);
    free(upstream);
    LVK_CHECK(st);
    LVK_CHECK(plan(m, opts));
    LVK_CHECK(upload(m));
    m->planned = true;
    return LVK_OK;
}

/* ---- recording ------------------------------------------------------------------------------- */

bool lvk_graph_node_runs(const struct lvk_model *m, const struct lvk_node *n, bool bwd)
{
    if (!n->needed)
        return false;
    if (!bwd)
        return n->def->fwd && !n->fused;
    if (!n->def->bwd || n->bwd_fused)
        return false;
    for (int k = 0; k < n->ninputs; k++)
        if (n->inputs[k] >= 0 && lvk_graph_input_grad(m, n, k))
            return true;
    return false;
}

const struct lvk_buf *lvk_graph_input_grad(const struct lvk_model *m, const struct lvk_node *n,
                                           int k)
{
    if ((n->grad_shared | n->grad_folded) >> k & 1u)
        return NULL;
    const struct lvk_node *a = lvk_graph_grad_mask(m, n->inputs[k], NULL, NULL);
    return a ? m->values[a->inputs[0]].grad : m->values[n->inputs[k]].grad;
}

const struct lvk_node *lvk_graph_grad_mask(const struct lvk_model *m, int v, float *lo, float *hi)
{
    int p = m->values[v].producer;
    if (p < 0 || !m->nodes[p].bwd_fused)
        return NULL;
    const struct lvk_node *a = &m->nodes[p];
    float l, h;
    LVK_ASSERT(a->def->clamp_bounds(a, &l, &h));
    if (lo)
        *lo = l;
    if (hi)
        *hi = h;
    return a;
}

lvk_status lvk_graph_record_node(struct lvk_model *m, struct lvk_node *n, bool bwd, struct lvk_cmd *cmd)
{
    const char *outer = cmd->scope;
    cmd->scope = n->name;   /* timestamps name the node (render profiles) */
    lvk_status st = bwd ? n->def->bwd(m, n, cmd) : n->def->fwd(m, n, cmd);
    cmd->scope = outer;
    if (st != LVK_OK && !strstr(lvk_last_error(), "node '"))
        lvk_error_prefix("%s: node '%s' (%s): ", m->path, n->name, n->op_type);
    return st;
}

lvk_status lvk_graph_record_forward(struct lvk_model *m, struct lvk_cmd *cmd)
{
    for (int i = 0; i < m->nnodes; i++)
        if (lvk_graph_node_runs(m, &m->nodes[i], false))
            LVK_CHECK(lvk_graph_record_node(m, &m->nodes[i], false, cmd));
    return LVK_OK;
}

/* One fill per run of neighbouring gradients to zero (through grad_span,
 * where they share an allocation; else one per gradient), behind one
 * barrier with whatever fills follow (lvk_cmd_fill): since the first
 * writers store (plan_grad_stores), the gradients to zero are scattered
 * among the others. */
void lvk_graph_record_zero_grads(struct lvk_model *m, struct lvk_cmd *cmd)
{
    const struct lvk_buf *first = &m->bufs[m->grad_first];
    for (int i = m->grad_first; i < m->grad_end;) {
        if (!m->grad_zero[i - m->grad_first]) {
            i++;
            continue;
        }
        int j = i + 1;
        if (m->grad_span.buf) {
            while (j < m->grad_end && m->grad_zero[j - m->grad_first])
                j++;
            const struct lvk_buf *a = &m->bufs[i], *z = &m->bufs[j - 1];
            lvk_cmd_fill(cmd, &m->grad_span, a->offset - first->offset,
                         z->offset + z->size - a->offset, 0);
        } else {
            lvk_cmd_fill(cmd, &m->bufs[i], 0, VK_WHOLE_SIZE, 0);
        }
        i = j;
    }
}

lvk_status lvk_graph_record_backward(struct lvk_model *m, struct lvk_cmd *cmd)
{
    LVK_ASSERT(m->gradients);
    for (int i = m->nnodes - 1; i >= 0; i--)
        if (lvk_graph_node_runs(m, &m->nodes[i], true))
            LVK_CHECK(lvk_graph_record_node(m, &m->nodes[i], true, cmd));
    return LVK_OK;
}

lvk_status lvk_graph_set_relu_mode(struct lvk_model *m, enum lvk_relu_mode mode)
{
    struct lvk_ctrl ctrl = {.relu_mode = (uint32_t)mode};
    return lvk_buf_upload(m->ctx, m->ctrl, 0, &ctrl, sizeof ctrl);
}

/* ---- destruction --------------------------------------------------------------------------------- */

void lvk_model_destroy(lvk_model_t *m)
{
    if (!m)
        return;
    lvk_cmd_destroy(m->fwd_cmd);
    lvk_cmd_destroy(m->zero_cmd);
    lvk_cmd_destroy(m->bwd_cmd);
    if (m->grad_span.buf)
        vkDestroyBuffer(m->ctx->device, m->grad_span.buf, NULL);
    if (m->bufs)
        lvk_arena_destroy(m->ctx, m->bufs, m->nbufs, &m->arena);
    free(m->bufs);
    free(m->grad_zero);
    for (int i = 0; i < m->nnodes; i++) {
        struct lvk_node *n = &m->nodes[i];
        for (int k = 0; k < n->nattrs; k++) {
            free(n->attrs[k].name);
            free(n->attrs[k].s);
            free(n->attrs[k].ints);
            free(n->attrs[k].floats);
        }
        for (int k = 0; k < n->nextra; k++)
            free(n->extra_init[k]);
        free(n->attrs);
        free(n->inputs);
        free(n->outputs);
        free(n->name);
        free(n->op_type);
        free(n->priv);
    }
    for (int v = 0; v < m->nvalues; v++) {
        free(m->values[v].name);
        free(m->values[v].host);
    }
    free(m->nodes);
    free(m->values);
    free(m->graph_outputs);
    free(m->path);
    free(m);
}
