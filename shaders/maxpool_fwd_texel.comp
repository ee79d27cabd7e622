#version 450
// Max pooling, forward, reading x through a texel buffer (an r32f view, or
// rgba32f where common/maxpool.glsl reads 4 columns at a time).
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
#include "common/index.glsl"
layout(std430, set = 0, binding = 0) writeonly buffer Y { vec4 y4[]; };       // y: [P, OH, OW]
layout(std430, set = 0, binding = 1) writeonly buffer A { ivec4 argmax4[]; }; // argmax: [P, OH, OW]
layout(set = 0, binding = 2) uniform textureBuffer x;                      // x: [P, H, W]
#define LOAD_X(i) texelFetch(x, int(i)).x
#define LOAD_X4(t) texelFetch(x, int(t))
#include "common/maxpool.glsl"
