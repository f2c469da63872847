/* irnet-edge runtime, internal: the aarch64 NEON float helpers the binary and the float convolutions share
 * (irnet_kernels_neon.c, irnet_conv_f32_neon.c). Include after irnet_internal.h and <arm_neon.h>. */
#ifndef IRNET_NEON_FLOAT_H
#define IRNET_NEON_FLOAT_H

#if defined(__ARM_NEON) && defined(__aarch64__)
/* A float product that no compiler may fuse with the addition that follows (irnet_exact.h) */
static inline __attribute__((always_inline)) float32x4_t irnet_mul4(float32x4_t a, float32x4_t b)
{
    float32x4_t product = vmulq_f32(a, b);
    IRNET_FENCE(product);
    return product;
}

/* The activation on 4 lanes: the operations of irnet_activate, lane by lane (aarch64 NEON float is IEEE,
 * armv7's is not) */
static inline float32x4_t irnet_act4(float32x4_t y, int act)
{
    const float32x4_t one = vdupq_n_f32(1.0f), minus_one = vdupq_n_f32(-1.0f), zero = vdupq_n_f32(0.0f);
    if (act == IRNET_ACT_HARDTANH) { /* FMIN and FMAX return a NaN operand as it is, like the compares */
        return vmaxq_f32(vminq_f32(y, one), minus_one);
    }
    if (act == IRNET_ACT_RELU) {
        return vbslq_f32(vcgtq_f32(y, zero), y, zero);
    }
    if (act == IRNET_ACT_SIGN) {
        return vbslq_f32(vcltq_f32(y, zero), minus_one, one);
    }
    return y;
}

/* y = acc * m; y = y + a, then the activation, on 4 channels */
static inline float32x4_t irnet_finish4(float32x4_t acc, float32x4_t m, float32x4_t a, int act)
{
    return irnet_act4(vaddq_f32(irnet_mul4(acc, m), a), act);
}
#endif

#endif
