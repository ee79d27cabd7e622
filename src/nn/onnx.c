/* ONNX import. Decodes a ModelProto with protobuf-c, converts initializers
 * (raw_data or typed fields; float16/double become float32, integer types
 * int64), resolves the input shapes, and adds every node to a graph. It
 * checks what it reads: a corrupt, truncated or unsupported file fails with
 * a message naming the file and, where there is one, the node. */
#include <string.h>

#include "io/lvk_io.h"
#include "nn/onnx.h"
#include "onnx.pb-c.h"

enum {
    DT_FLOAT = 1, DT_UINT8 = 2, DT_INT8 = 3, DT_UINT16 = 4, DT_INT16 = 5,
    DT_INT32 = 6, DT_INT64 = 7, DT_STRING = 8, DT_BOOL = 9, DT_FLOAT16 = 10,
    DT_DOUBLE = 11, DT_UINT32 = 12, DT_UINT64 = 13,
};

static const char *dtype_name(int dt)
{
    static const char *names[] = {"undefined", "float", "uint8", "int8", "uint16", "int16",
                                  "int32", "int64", "string", "bool", "float16", "double",
                                  "uint32", "uint64", "complex64", "complex128", "bfloat16"};
    return dt >= 0 && dt < (int)LVK_ARRAY_LEN(names) ? names[dt] : "unknown";
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp - 15 + 127) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static size_t elem_size(int dt)
{
    switch (dt) {
    case DT_FLOAT: case DT_INT32: case DT_UINT32: return 4;
    case DT_INT64: case DT_UINT64: case DT_DOUBLE: return 8;
    case DT_UINT8: case DT_INT8: case DT_BOOL: return 1;
    case DT_UINT16: case DT_INT16: case DT_FLOAT16: return 2;
    default: return 0;
    }
}

/* Converts a TensorProto to float32 or int64 host data. `where` names the
 * file and tensor for messages. */
static lvk_status convert_tensor(const Onnx__TensorProto *t, const char *where,
                                 enum lvk_dtype *dtype, struct lvk_shape *shape, void **data)
{
    *data = NULL;
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return lvk_fail(LVK_ERR_UNSUPPORTED,
                        "%s: stored as external data; lucid-vk needs every weight inside the "
                        ".onnx file (re-export without external data)", where);
    if (t->n_dims > LVK_MAX_DIMS)
        return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: %zu dimensions (at most %d supported)", where,
                        t->n_dims, LVK_MAX_DIMS);
    shape->ndim = (int)t->n_dims;
    int64_t count = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0 || (t->dims[i] > 0 && count > INT64_MAX / 4 / t->dims[i]))
            return lvk_fail(LVK_ERR_FORMAT, "%s: invalid dimension %lld", where, (long long)t->dims[i]);
        shape->d[i] = t->dims[i];
        count *= t->dims[i];
    }
    int dt = t->data_type;
    size_t es = elem_size(dt);
    if (es == 0)
        return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: data type %s is not supported", where, dtype_name(dt));
    bool is_float = dt == DT_FLOAT || dt == DT_DOUBLE || dt == DT_FLOAT16;
    *dtype = is_float ? LVK_DTYPE_F32 : LVK_DTYPE_I64;
    void *out = malloc((size_t)(count ? count : 1) * (is_float ? 4 : 8));
    if (!out)
        return lvk_fail(LVK_ERR_HOST_OOM, "%s: out of host memory", where);
    float *f = out;
    int64_t *q = out;

    if (t->has_raw_data) {
        if (t->raw_data.len != (size_t)count * es) {
            free(out);
            return lvk_fail(LVK_ERR_FORMAT, "%s: raw data has %zu bytes, expected %lld (truncated or corrupt file)",
                            where, t->raw_data.len, (long long)count * (long long)es);
        }
        const uint8_t *r = t->raw_data.data;
        for (int64_t i = 0; i < count; i++, r += es) {
            switch (dt) {
            case DT_FLOAT: memcpy(&f[i], r, 4); break;
            case DT_DOUBLE: { double d; memcpy(&d, r, 8); f[i] = (float)d; } break;
            case DT_FLOAT16: { uint16_t h; memcpy(&h, r, 2); f[i] = half_to_float(h); } break;
            case DT_INT64: case DT_UINT64: memcpy(&q[i], r, 8); break;
            case DT_INT32: { int32_t v; memcpy(&v, r, 4); q[i] = v; } break;
            case DT_UINT32: { uint32_t v; memcpy(&v, r, 4); q[i] = v; } break;
            case DT_INT16: { int16_t v; memcpy(&v, r, 2); q[i] = v; } break;
            case DT_UINT16: { uint16_t v; memcpy(&v, r, 2); q[i] = v; } break;
            case DT_INT8: q[i] = (int8_t)r[0]; break;
            default: q[i] = r[0]; break; /* uint8, bool */
            }
        }
    } else {
        /* Typed fields: float_data (float), double_data (double), int64_data
         * (int64), uint64_data, and int32_data for every narrower type,
         * float16 included (as raw bits). */
        size_t have;
        switch (dt) {
        case DT_FLOAT: have = t->n_float_data; break;
        case DT_DOUBLE: have = t->n_double_data; break;
        case DT_INT64: have = t->n_int64_data; break;
        case DT_UINT64: case DT_UINT32: have = t->n_uint64_data; break;
        default: have = t->n_int32_data; break;
        }
        if (have != (size_t)count) {
            free(out);
            return lvk_fail(LVK_ERR_FORMAT, "%s: has %zu values, its shape needs %lld (corrupt file)",
                            where, have, (long long)count);
        }
        for (int64_t i = 0; i < count; i++) {
            switch (dt) {
            case DT_FLOAT: f[i] = t->float_data[i]; break;
            case DT_DOUBLE: f[i] = (float)t->double_data[i]; break;
            case DT_FLOAT16: f[i] = half_to_float((uint16_t)t->int32_data[i]); break;
            case DT_INT64: q[i] = t->int64_data[i]; break;
            case DT_UINT64: case DT_UINT32: q[i] = (int64_t)t->uint64_data[i]; break;
            default: q[i] = t->int32_data[i]; break;
            }
        }
    }
    *data = out;
    return LVK_OK;
}

lvk_status lvk_onnx_read_tensor(const char *path, char **name, enum lvk_dtype *dtype,
                                struct lvk_shape *shape, void **data)
{
    uint8_t *bytes;
    size_t len;
    *name = NULL;
    *data = NULL;
    LVK_CHECK(lvk_read_file(path, &bytes, &len));
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, len, bytes);
    free(bytes);
    if (!t)
        return lvk_fail(LVK_ERR_FORMAT, "%s: not a valid ONNX TensorProto", path);
    lvk_status st = convert_tensor(t, path, dtype, shape, data);
    if (st == LVK_OK) {
        const char *n = t->name ? t->name : "";
        *name = malloc(strlen(n) + 1);
        if (*name)
            strcpy(*name, n);
        else
            st = lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    }
    onnx__tensor_proto__free_unpacked(t, NULL);
    return st;
}

/* ---- graph import ---------------------------------------------------------------- */

static bool is_initializer(const Onnx__GraphProto *g, const char *name)
{
    for (size_t i = 0; i < g->n_initializer; i++)
        if (g->initializer[i]->name && strcmp(g->initializer[i]->name, name) == 0)
            return true;
    return false;
}

/* Resolves a graph input's shape: declared dims, with the batch (dim 0) and
 * the spatial dims of a 4-D image input replaced where opts ask; symbolic
 * dims must be one of those. */
static lvk_status input_shape(const char *path, const Onnx__ValueInfoProto *vi,
                              const struct lvk_model_opts *opts, struct lvk_shape *s)
{
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: input '%s' is not a tensor", path, vi->name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (tt->elem_type != DT_FLOAT)
        return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: input '%s' has type %s; lucid-vk needs float inputs",
                        path, vi->name, dtype_name(tt->elem_type));
    if (!tt->shape)
        return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: input '%s' has no declared shape", path, vi->name);
    if (tt->shape->n_dim > LVK_MAX_DIMS)
        return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: input '%s' has %zu dimensions", path, vi->name,
                        tt->shape->n_dim);
    s->ndim = (int)tt->shape->n_dim;
    for (int i = 0; i < s->ndim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        int64_t v = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ? d->dim_value : -1;
        int64_t want = -1;
        if (i == 0 && opts && opts->batch > 0)
            want = opts->batch;
        else if (i == 0 && v < 0)
            want = 1;
        else if (s->ndim == 4 && i == 2 && opts && opts->height > 0)
            want = opts->height;
        else if (s->ndim == 4 && i == 3 && opts && opts->width > 0)
            want = opts->width;
        if (want > 0)
            v = want;
        if (v <= 0)
            return lvk_fail(LVK_ERR_UNSUPPORTED,
                            "%s: input '%s' dimension %d is symbolic ('%s'); give the size "
                            "explicitly (batch, --size)", path, vi->name, i,
                            d->dim_param ? d->dim_param : "?");
        s->d[i] = v;
    }
    return LVK_OK;
}

static lvk_status add_attrs(struct lvk_model *m, const Onnx__NodeProto *np, struct lvk_attr *attrs,
                            int *nattrs)
{
    *nattrs = 0;
    for (size_t k = 0; k < np->n_attribute; k++) {
        const Onnx__AttributeProto *a = np->attribute[k];
        struct lvk_attr at = {.name = a->name, .tensor = -1};
        switch (a->type) {
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: at.type = LVK_ATTR_FLOAT; at.f = a->f; break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: at.type = LVK_ATTR_INT; at.i = a->i; break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: {
            at.type = LVK_ATTR_STRING;
            char *s = malloc(a->s.len + 1);
            if (!s)
                return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
            memcpy(s, a->s.data, a->s.len);
            s[a->s.len] = 0;
            at.s = s;
        } break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
            at.type = LVK_ATTR_FLOATS; at.n = (int)a->n_floats; at.floats = a->floats; break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
            at.type = LVK_ATTR_INTS; at.n = (int)a->n_ints; at.ints = a->ints; break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
            if (!a->t)
                return lvk_fail(LVK_ERR_FORMAT, "%s: node '%s': attribute '%s' has no tensor", m->path,
                                np->name ? np->name : "", a->name);
            char where[512], cname[512];
            snprintf(where, sizeof where, "%s: node '%s' attribute '%s'", m->path,
                     np->name ? np->name : "", a->name);
            snprintf(cname, sizeof cname, "%s/%s:%s", np->name ? np->name : "",
                     np->n_output ? np->output[0] : "", a->name);
            enum lvk_dtype dt;
            struct lvk_shape sh = {0};
            void *data;
            LVK_CHECK(convert_tensor(a->t, where, &dt, &sh, &data));
            at.type = LVK_ATTR_TENSOR;
            at.tensor = lvk_graph_add_const(m, cname, dt, &sh, data);
            free(data);
            if (at.tensor < 0)
                return LVK_ERR_HOST_OOM;
        } break;
        default:
            continue; /* graphs, sparse tensors, strings lists: no supported op reads them */
        }
        attrs[(*nattrs)++] = at;
    }
    return LVK_OK;
}

static lvk_status build(struct lvk_model *m, const Onnx__ModelProto *mp,
                        const struct lvk_model_opts *opts, const struct lvk_feed *feeds, int nfeeds)
{
    const char *path = m->path;
    const Onnx__GraphProto *g = mp->graph;
    if (!g || g->n_node == 0)
        return lvk_fail(LVK_ERR_FORMAT, "%s: the model has no graph (empty or truncated file)", path);
    m->opset = 0;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if (!o->domain || !o->domain[0] || strcmp(o->domain, "ai.onnx") == 0)
            m->opset = (int)o->version;
    }
    if (m->opset == 0)
        return lvk_fail(LVK_ERR_FORMAT, "%s: no opset for the default ONNX domain", path);
    if (m->opset < 7 || m->opset > 18)
        return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: opset %d; lucid-vk supports opsets 7 to 18", path, m->opset);

    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        char where[512];
        snprintf(where, sizeof where, "%s: initializer '%s'", path, t->name ? t->name : "");
        enum lvk_dtype dt;
        struct lvk_shape sh = {0};
        void *data;
        LVK_CHECK(convert_tensor(t, where, &dt, &sh, &data));
        int v = lvk_graph_add_const(m, t->name ? t->name : "", dt, &sh, data);
        free(data);
        if (v < 0)
            return LVK_ERR_HOST_OOM;
    }
    for (size_t i = 0; i < g->n_input; i++) {
        const Onnx__ValueInfoProto *vi = g->input[i];
        if (!vi->name || is_initializer(g, vi->name))
            continue;
        const struct lvk_feed *feed = NULL;
        for (int f = 0; f < nfeeds; f++)
            if (strcmp(feeds[f].name, vi->name) == 0)
                feed = &feeds[f];
        if (feed) {
            if (lvk_graph_add_const(m, vi->name, feed->dtype, &feed->shape, feed->data) < 0)
                return LVK_ERR_HOST_OOM;
            continue;
        }
        struct lvk_shape sh = {0};
        LVK_CHECK(input_shape(path, vi, opts, &sh));
        if (lvk_graph_add_input(m, vi->name, LVK_DTYPE_F32, &sh) < 0)
            return LVK_ERR_HOST_OOM;
    }
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *np = g->node[i];
        if (!np->op_type)
            return lvk_fail(LVK_ERR_FORMAT, "%s: node %zu has no op type", path, i);
        if (np->domain && np->domain[0] && strcmp(np->domain, "ai.onnx") != 0)
            return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: node '%s': op '%s' from domain '%s' is not supported "
                            "(only standard ONNX ops)", path, np->name ? np->name : "", np->op_type, np->domain);
        struct lvk_attr *attrs = lvk_calloc(np->n_attribute + 1, sizeof *attrs);
        if (!attrs)
            return LVK_ERR_HOST_OOM;
        int nattrs;
        lvk_status st = add_attrs(m, np, attrs, &nattrs);
        if (st == LVK_OK)
            st = lvk_graph_add_node(m, np->op_type, np->name, (const char *const *)np->input,
                                    (int)np->n_input, (const char *const *)np->output,
                                    (int)np->n_output, attrs, nattrs);
        for (int k = 0; k < nattrs; k++)
            if (attrs[k].type == LVK_ATTR_STRING)
                free(attrs[k].s);
        free(attrs);
        LVK_CHECK(st);
    }
    for (size_t i = 0; i < g->n_output; i++)
        LVK_CHECK(lvk_graph_mark_output(m, g->output[i]->name));
    return LVK_OK;
}

lvk_status lvk_onnx_load_graph(struct lvk_ctx *ctx, const char *path,
                               const struct lvk_model_opts *opts,
                               const struct lvk_feed *feeds, int nfeeds,
                               struct lvk_model **out)
{
    *out = NULL;
    uint8_t *bytes;
    size_t len;
    LVK_CHECK(lvk_read_file(path, &bytes, &len));
    if (len == 0) {
        free(bytes);
        return lvk_fail(LVK_ERR_FORMAT, "%s: empty file, not an ONNX model", path);
    }
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, bytes);
    free(bytes);
    if (!mp)
        return lvk_fail(LVK_ERR_FORMAT, "%s: not a valid ONNX model (the protobuf does not parse: "
                        "corrupt or truncated file?)", path);
    struct lvk_model *m;
    lvk_status st = lvk_graph_create(ctx, path, &m);
    if (st == LVK_OK) {
        st = build(m, mp, opts, feeds, nfeeds);
        if (st != LVK_OK) {
            lvk_model_destroy(m);
            m = NULL;
        }
    }
    onnx__model_proto__free_unpacked(mp, NULL);
    *out = m;
    return st;
}

lvk_status lvk_model_load(lvk_ctx_t *ctx, const char *path, const struct lvk_model_opts *opts,
                          lvk_model_t **out)
{
    struct lvk_model *m;
    LVK_CHECK(lvk_onnx_load_graph(ctx, path, opts, NULL, 0, &m));
    lvk_status st = lvk_graph_finalize(m, opts);
    if (st != LVK_OK) {
        lvk_model_destroy(m);
        return st;
    }
    *out = m;
    return LVK_OK;
}
