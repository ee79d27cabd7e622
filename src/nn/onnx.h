/* ONNX import: ModelProto (protobuf-c bindings generated at build time from
 * Debian's onnx.proto) into a lvk graph. */
#ifndef LVK_ONNX_H
#define LVK_ONNX_H

#include "nn/graph.h"

/* A tensor given at load time for a graph input of the same name: it
 * becomes a constant, so shape operands fed as inputs (as ONNX's own test
 * cases do) can be folded. */
struct lvk_feed {
    const char *name;
    enum lvk_dtype dtype;
    struct lvk_shape shape;
    const void *data;
};

/* Parses `path` into an unfinalized graph (see lvk_graph_finalize). Input
 * shapes follow opts (batch, height, width) where given. */
lvk_status lvk_onnx_load_graph(struct lvk_ctx *ctx, const char *path,
                               const struct lvk_model_opts *opts,
                               const struct lvk_feed *feeds, int nfeeds,
                               struct lvk_model **out);

/* Reads a serialized TensorProto (ONNX test data, input_0.pb). *data is
 * malloc'd float or int64_t by *dtype; *name is malloc'd (may be ""). */
lvk_status lvk_onnx_read_tensor(const char *path, char **name, enum lvk_dtype *dtype,
                                struct lvk_shape *shape, void **data);

#endif
