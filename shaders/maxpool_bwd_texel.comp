#version 450
// Gradient of max pooling reading dy (r32f view) and the arg-maxes (r32i
// view) through texel buffers; see common/maxpool.glsl.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x = 64) in;
#include "common/index.glsl"
#include "common/relu_mode.glsl"
layout(std430, set = 0, binding = 0) buffer DX { vec4 dx4[]; };  // dx: [P, H, W]
layout(set = 0, binding = 1) uniform textureBuffer dy;           // dy: [P, OH, OW]
layout(set = 0, binding = 2) uniform itextureBuffer argmax;      // argmax: [P, OH, OW]
// With a fused gradient mask: the forward's x (rgba32f view), and the
// run-time ReLU mode.
layout(set = 0, binding = 3) uniform textureBuffer act;
layout(std430, set = 0, binding = 4) readonly buffer Ctrl { uint relu_mode; } ctrl;
#define LOAD_DY(o) texelFetch(dy, int(o)).x
#define LOAD_ARG(o) texelFetch(argmax, int(o)).x
#define LOAD_ACT4(t) texelFetch(act, int(t))
#include "common/maxpool.glsl"
