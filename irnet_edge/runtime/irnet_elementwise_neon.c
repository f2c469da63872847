/* irnet-edge runtime, NEON elementwise kernels (compiled to nothing elsewhere): irnet_sign_pack and irnet_add (their oracles in
 * irnet_kernels.c), bit for bit.
 *  - sign_pack decides x < 0 on the float's bits with integer lanes, so -0.0 and NaN give +1 as in C and
 *    armv7's flush-to-zero of NEON float cannot touch a negative subnormal. A word's vectors of lane masks
 *    are weighted 1, 2, 4, 8 per lane and shifted in 4 bits at a time, then one horizontal add: the bits
 *    are disjoint. aarch64 (IEEE compares) runs irnet_sign_pack_a64 instead, 16 channels at a time.
 *  - add is NEON float on aarch64 (IEEE, no flush); armv7 NEON float flushes subnormals to zero, so armv7
 *    uses the portable add. The activation is a per-lane select with the compares of irnet_activate. */
#include "irnet_internal.h"

#if defined(__ARM_NEON)
#include <arm_neon.h>
#include <stdint.h>
#include <string.h>
#include "irnet_neon_float.h"

/* x < 0 on the bits: as unsigned, negative non-zero numbers are 0x80000001..0xFF800000 (-0.0 and the
 * negative NaNs lie just outside), so one subtraction and one unsigned compare decide it */
static inline uint32x4_t irnet_negative_lanes(const float *p)
{
    const uint32x4_t bits = vreinterpretq_u32_f32(vld1q_f32(p));
    return vcleq_u32(vsubq_u32(bits, vdupq_n_u32(0x80000001u)), vdupq_n_u32(0x7F7FFFFFu));
}

static inline uint32_t irnet_add_lanes(uint32x4_t v)
{
#if defined(__aarch64__)
    return vaddvq_u32(v);
#else
    const uint32x2_t half = vadd_u32(vget_low_u32(v), vget_high_u32(v));
    return vget_lane_u32(vpadd_u32(half, half), 0);
#endif
}

void irnet_sign_pack_neon(const float *in, int pixels, int channels, uint32_t *out)
{
    static const uint32_t lane_bit[4] = {1u, 2u, 4u, 8u};
    const uint32x4_t weights = vld1q_u32(lane_bit);
    const int words = (channels + 31) / 32;
    int p, i, j, c;
#if defined(__aarch64__)
    irnet_sign_pack_a64(in, pixels, channels, out);
    return;
#endif
    for (p = 0; p < pixels; ++p) {
        const float *x = in + (long)p * channels;
        uint32_t *dst = out + (long)p * words;
        for (i = 0; i < words; ++i) {
            const int n = channels - 32 * i < 32 ? channels - 32 * i : 32;
            uint32x4_t acc = vdupq_n_u32(0u);
            uint32_t word;
            for (j = n / 4 - 1; j >= 0; --j) { /* acc = acc << 4 | the next 4 lanes' bits */
                acc = vsliq_n_u32(vandq_u32(irnet_negative_lanes(x + 32 * i + 4 * j), weights), acc, 4);
            }
            word = irnet_add_lanes(acc);
            for (c = n / 4 * 4; c < n; ++c) {
                if (x[32 * i + c] < 0.0f) {
                    word |= 1u << c;
                }
            }
            dst[i] = word;
        }
    }
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
