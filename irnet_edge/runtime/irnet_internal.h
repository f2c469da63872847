/* irnet-edge runtime: helpers shared by the kernel files (portable and optimised kernels must agree to the
 * bit). Not part of the API. */
#ifndef IRNET_INTERNAL_H
#define IRNET_INTERNAL_H

#include "irnet_runtime.h"

/* A helper kept out of line where the compiler knows how: inlined, its loops would share the caller's registers */
#if defined(__GNUC__)
#define IRNET_NOINLINE __attribute__((noinline))
#else
#define IRNET_NOINLINE
#endif

/* One 32-bit word: the textbook SWAR popcount (a byte holds at most 8 here, so one mask suffices). */
static inline int32_t irnet_popcount(uint32_t x)
{
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0Fu;
    return (int32_t)((x * 0x01010101u) >> 24);
}

static inline float irnet_activate(float y, int act)
{
    if (act == IRNET_ACT_HARDTANH) {
        return y < -1.0f ? -1.0f : (y > 1.0f ? 1.0f : y);
    }
    if (act == IRNET_ACT_RELU) {
        return y > 0.0f ? y : 0.0f;
    }
    if (act == IRNET_ACT_SIGN) {
        return y < 0.0f ? -1.0f : 1.0f;
    }
    return y;
}

/* The fused pool of a binary convolution with float output (irnet_fusion): out holds each pooled value's best dot
 * product d as the float float(d); each becomes act(fl(fl(float(d) * mult) + add)) in place */
void irnet_pool_dots_finish(const irnet_bconv_params *prm, float *out);

/* irnet_avgpool of channels c .. channels - 1 only (the channels an optimised kernel leaves) */
void irnet_avgpool_from(const float *in, int pixels, int channels, int c, float *out);

#endif
