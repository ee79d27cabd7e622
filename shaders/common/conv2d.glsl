// Geometry of a grouped, strided, dilated, padded 2-D convolution, shared by
// the forward and input-gradient kernels so that one specialization array
// (built by conv_spec() in src/nn/ops/conv.c) serves both. The batch index
// comes from gl_WorkGroupID.z, so N is not needed here. A 1-D convolution is
// the case H = KH = 1.
layout(constant_id = 1) const uint CG = 1;  // input channels per group
layout(constant_id = 2) const uint MG = 1;  // output channels per group
layout(constant_id = 3) const uint G = 1;   // groups
layout(constant_id = 4) const uint H = 1;   // input height
layout(constant_id = 5) const uint W = 1;   // input width
layout(constant_id = 6) const uint OH = 1;  // output height
layout(constant_id = 7) const uint OW = 1;  // output width
layout(constant_id = 8) const uint KH = 1;  // kernel height
layout(constant_id = 9) const uint KW = 1;  // kernel width
layout(constant_id = 10) const int SH = 1;  // stride along H
layout(constant_id = 11) const int SW = 1;  // stride along W
layout(constant_id = 12) const int DH = 1;  // dilation along H
layout(constant_id = 13) const int DW = 1;  // dilation along W
layout(constant_id = 14) const int PT = 0;  // padding before the first row
layout(constant_id = 15) const int PL = 0;  // padding before the first column
// Block shape of one invocation: BC channels (output channels forward,
// input channels backward) x BP pixels. Channels come from gl_WorkGroupID.y,
// so every lane of a workgroup reads the same weights.
layout(constant_id = 16) const uint BC = 1;
layout(constant_id = 17) const uint BP = 1;

const uint C = G * CG;
const uint M = G * MG;
const uint KK = KH * KW;
