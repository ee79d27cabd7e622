#version 450
// Max pooling, forward, with storage-buffer loads: see common/maxpool.glsl.
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
#include "common/index.glsl"
layout(std430, set = 0, binding = 0) writeonly buffer Y { vec4 y4[]; };       // y: [P, OH, OW]
layout(std430, set = 0, binding = 1) writeonly buffer A { ivec4 argmax4[]; }; // argmax: [P, OH, OW]
layout(std430, set = 0, binding = 2) readonly buffer X { float x[]; };     // x: [P, H, W]
layout(std430, set = 0, binding = 2) readonly buffer X4 { vec4 x4[]; };    // the same, 4 at a time
#define LOAD_X(i) x[i]
#define LOAD_X4(t) x4[t]
#include "common/maxpool.glsl"
