// Flat invocation index for 1-D work spread over a 2-D grid of workgroups:
// maxComputeWorkGroupCount[0] may be as low as 65535, so lvk_dispatch_1d()
// (src/nn/ops_common.c) folds large counts into (x, y) groups.
uint lvk_flat_index()
{
    return (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x
           + gl_LocalInvocationID.x;
}
