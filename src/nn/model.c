/* Public model API (include/lucidvk/lucidvk.h) on top of the graph:
 * inputs, forward, reads and input gradients. */
#include <string.h>

#include "nn/graph.h"

const char *lvk_model_input_name(const lvk_model_t *m)
{
    for (int v = 0; v < m->nvalues; v++)
        if (m->values[v].is_input && !m->values[v].is_const)
            return m->values[v].name;
    return NULL;
}

int lvk_model_output_count(const lvk_model_t *m) { return m->ngraph_outputs; }

const char *lvk_model_output_name(const lvk_model_t *m, int i)
{
    return i >= 0 && i < m->ngraph_outputs ? m->values[m->graph_outputs[i]].name : NULL;
}

/* Named tensors in graph order: inputs, initializers, then node outputs. */
int lvk_model_tensor_count(const lvk_model_t *m) { return m->nvalues; }

static void fill_info(const struct lvk_model *m, int v, struct lvk_tensor_info *info)
{
    const struct lvk_value *val = &m->values[v];
    info->name = val->name;
    info->op_type = val->producer >= 0 ? m->nodes[val->producer].op_type : "";
    info->ndim = val->shape.ndim;
    memcpy(info->shape, val->shape.d, sizeof info->shape);
    info->is_const = val->is_const;
}

lvk_status lvk_model_tensor_at(const lvk_model_t *m, int i, struct lvk_tensor_info *info)
{
    if (i < 0 || i >= m->nvalues)
        return lvk_fail(LVK_ERR_INVALID_ARG, "tensor index %d out of range", i);
    fill_info(m, i, info);
    return LVK_OK;
}

static lvk_status find(const struct lvk_model *m, const char *name, int *v)
{
    *v = lvk_graph_find(m, name);
    if (*v < 0)
        return lvk_fail(LVK_ERR_NOT_FOUND, "%s: no tensor named '%s' (list them with 'lucidvk info %s')",
                        m->path, name, m->path);
    return LVK_OK;
}

lvk_status lvk_model_tensor_find(const lvk_model_t *m, const char *name, struct lvk_tensor_info *info)
{
    int v;
    LVK_CHECK(find(m, name, &v));
    fill_info(m, v, info);
    return LVK_OK;
}

static lvk_status not_computed(const struct lvk_model *m, const char *name)
{
    return lvk_fail(LVK_ERR_INVALID_ARG,
                    "%s: tensor '%s' is not computed (request it as an output when loading)",
                    m->path, name);
}

/* Also refuses a tensor past a load's named outputs: nothing computed it,
 * and it has no shape (only the nodes the outputs need are prepared). */
static lvk_status check_count(const struct lvk_model *m, const struct lvk_value *val, size_t count)
{
    if (val->producer >= 0 && !val->needed && !val->is_const)
        return not_computed(m, val->name);
    size_t want = (size_t)lvk_shape_count(&val->shape);
    if (count != want) {
        char s[128];
        return lvk_fail(LVK_ERR_INVALID_ARG, "%s: tensor '%s' %s has %zu elements, not %zu",
                        m->path, val->name, lvk_shape_str(&val->shape, s, sizeof s), want, count);
    }
    return LVK_OK;
}

lvk_status lvk_model_set_input(lvk_model_t *m, const char *name, const float *data, size_t count)
{
    int v;
    LVK_CHECK(find(m, name, &v));
    struct lvk_value *val = &m->values[v];
    if (!val->is_input)
        return lvk_fail(LVK_ERR_INVALID_ARG, "%s: '%s' is not a graph input", m->path, name);
    LVK_CHECK(check_count(m, val, count));
    if (!val->buf)
        return LVK_OK; /* no requested output depends on it */
    return lvk_buf_upload(m->ctx, val->buf, 0, data, count * sizeof *data);
}

static lvk_status record_forward(struct lvk_cmd *cmd, void *m) { return lvk_graph_record_forward(m, cmd); }
static lvk_status record_backward(struct lvk_cmd *cmd, void *m) { return lvk_graph_record_backward(m, cmd); }

lvk_status lvk_model_forward(lvk_model_t *m)
{
    if (!m->fwd_cmd) {
        LVK_CHECK(lvk_cmd_create(m->ctx, false, &m->fwd_cmd));
        lvk_status st = lvk_cmd_record(m->fwd_cmd, record_forward, m);
        if (st != LVK_OK) {
            lvk_cmd_destroy(m->fwd_cmd);
            m->fwd_cmd = NULL;
            return st;
        }
    }
    return lvk_cmd_submit(m->fwd_cmd);
}

lvk_status lvk_model_read(lvk_model_t *m, const char *name, float *data, size_t count)
{
    int v;
    LVK_CHECK(find(m, name, &v));
    struct lvk_value *val = &m->values[v];
    LVK_CHECK(check_count(m, val, count));
    if (val->dtype != LVK_DTYPE_F32) {
        const int64_t *h = val->host;
        for (size_t i = 0; i < count; i++)
            data[i] = (float)h[i];
        return LVK_OK;
    }
    if (val->buf)
        return lvk_buf_download(m->ctx, val->buf, 0, data, count * sizeof *data);
    if (val->host) {
        memcpy(data, val->host, count * sizeof *data);
        return LVK_OK;
    }
    return not_computed(m, name);
}

lvk_status lvk_model_backward(lvk_model_t *m, const char *tensor, const float *seed,
                              size_t seed_count, float *grad, size_t grad_count)
{
    if (!m->gradients)
        return lvk_fail(LVK_ERR_INVALID_ARG, "%s: model was loaded without gradients", m->path);
    int t;
    LVK_CHECK(find(m, tensor, &t));
    struct lvk_value *tv = &m->values[t];
    LVK_CHECK(check_count(m, tv, seed_count));
    if (!tv->grad)
        return lvk_fail(LVK_ERR_INVALID_ARG,
                        "%s: tensor '%s' does not depend on the input or was not requested", m->path, tensor);
    const char *in = lvk_model_input_name(m);
    struct lvk_value *iv = &m->values[lvk_graph_find(m, in)];
    LVK_CHECK(check_count(m, iv, grad_count));

    /* Zero every gradient, seed the target's, then propagate: the backward
     * recording is the same for every target (zero gradients flow through
     * the nodes downstream of it), so it is recorded once, again only when
     * a new target's gradient must no longer be stored over (graph.h). */
    if (!tv->seeded) {
        LVK_CHECK(lvk_graph_seed_target(m, t));
        lvk_cmd_destroy(m->zero_cmd);
        lvk_cmd_destroy(m->bwd_cmd);
        m->zero_cmd = m->bwd_cmd = NULL;
    }
    if (!m->bwd_cmd) {
        struct lvk_cmd *zero = NULL, *bwd = NULL;
        lvk_status st = lvk_cmd_create(m->ctx, false, &zero);
        if (st == LVK_OK) st = lvk_cmd_create(m->ctx, false, &bwd);
        if (st == LVK_OK) st = lvk_cmd_begin(zero);
        if (st == LVK_OK) {
            lvk_graph_record_zero_grads(m, zero);
            st = lvk_cmd_end(zero);
        }
        if (st == LVK_OK) st = lvk_cmd_record(bwd, record_backward, m);
        if (st != LVK_OK) {
            lvk_cmd_destroy(zero);
            lvk_cmd_destroy(bwd);
            return st;
        }
        m->zero_cmd = zero;
        m->bwd_cmd = bwd;
    }
    LVK_CHECK(lvk_cmd_submit(m->zero_cmd));
    LVK_CHECK(lvk_buf_upload(m->ctx, tv->grad, 0, seed, seed_count * sizeof *seed));
    LVK_CHECK(lvk_cmd_submit(m->bwd_cmd));
    if (!iv->grad)
        return lvk_fail(LVK_ERR_INVALID_ARG, "%s: input '%s' has no gradient", m->path, in);
    return lvk_buf_download(m->ctx, iv->grad, 0, grad, grad_count * sizeof *grad);
}
