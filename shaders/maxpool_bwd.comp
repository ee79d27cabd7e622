#version 450
// Gradient of max pooling with storage-buffer loads: dx[p, ih, iw] += sum of
// dy over the windows whose saved arg-max is (ih, iw); see common/maxpool.glsl.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x = 64) in;
#include "common/index.glsl"
#include "common/relu_mode.glsl"
layout(std430, set = 0, binding = 0) buffer DX { vec4 dx4[]; };           // dx: [P, H, W]
layout(std430, set = 0, binding = 1) readonly buffer DY { float dy[]; };  // dy: [P, OH, OW]
layout(std430, set = 0, binding = 2) readonly buffer A { int argmax[]; }; // argmax: [P, OH, OW]
// With a fused gradient mask: the forward's x, and the run-time ReLU mode.
layout(std430, set = 0, binding = 3) readonly buffer ACT { vec4 act4[]; };
layout(std430, set = 0, binding = 4) readonly buffer Ctrl { uint relu_mode; } ctrl;
#define LOAD_DY(o) dy[o]
#define LOAD_ARG(o) argmax[o]
#define LOAD_ACT4(t) act4[t]
#include "common/maxpool.glsl"
