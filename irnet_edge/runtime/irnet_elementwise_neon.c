/* irnet-edge runtime, NEON elementwise kernels (compiled to nothing elsewhere): irnet_sign_pack and irnet_add (their oracles in
 * irnet_kernels.c), bit for bit.
 *  - sign_pack is irnet_sign_pack_fast (irnet_neon_float.h): aarch64 with IEEE float compares, 16 channels at
 *    a time; armv7 on the float's bits with integer lanes, so -0.0 and NaN give +1 as in C and armv7's
 *    flush-to-zero of NEON float cannot touch a negative subnormal.
 *  - add is NEON float on aarch64 (IEEE, no flush); armv7 NEON float flushes subnormals to zero, so armv7
 *    uses the portable add. The activation is a per-lane select with the compares of irnet_activate. */
#include "irnet_internal.h"

#if defined(__ARM_NEON)
#include <arm_neon.h>
#include <stdint.h>
#include <string.h>
#include "irnet_neon_float.h"

void irnet_sign_pack_neon(const float *in, int pixels, int channels, uint32_t *out)
{
    irnet_sign_pack_fast(in, pixels, channels, out);
}

void irnet_add_neon(const float *a, const float *b, int n, int act, float *out)
{
#if defined(__aarch64__)
    const float32x4_t lo = vdupq_n_f32(-1.0f), hi = vdupq_n_f32(1.0f), zero = vdupq_n_f32(0.0f);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t y = vaddq_f32(vld1q_f32(a + i), vld1q_f32(b + i));
        if (act == IRNET_ACT_HARDTANH) {
            y = vbslq_f32(vcltq_f32(y, lo), lo, vbslq_f32(vcgtq_f32(y, hi), hi, y));
        } else if (act == IRNET_ACT_RELU) {
            y = vbslq_f32(vcgtq_f32(y, zero), y, zero);
        } else if (act == IRNET_ACT_SIGN) {
            y = vbslq_f32(vcltq_f32(y, zero), lo, hi);
        }
        vst1q_f32(out + i, y);
    }
    for (; i < n; ++i) {
        out[i] = irnet_activate(a[i] + b[i], act);
    }
#else
    irnet_add(a, b, n, act, out);
#endif
}

#else
typedef int irnet_elementwise_neon_unused; /* ISO C wants at least one declaration */
#endif
