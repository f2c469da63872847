/* irnet-edge runtime, NEON elementwise kernels (compiled to nothing elsewhere): irnet_sign_pack, irnet_add,
 * irnet_avgpool and irnet_shortcut_a (their oracles in irnet_kernels.c), bit for bit.
 *  - sign_pack is irnet_sign_pack_fast (irnet_neon_float.h): aarch64 with IEEE float compares, 16 channels at
 *    a time; armv7 on the float's bits with integer lanes, so -0.0 and NaN give +1 as in C and armv7's
 *    flush-to-zero of NEON float cannot touch a negative subnormal.
 *  - add is NEON float on aarch64 (IEEE, no flush); armv7 NEON float flushes subnormals to zero, so armv7
 *    uses the portable add. The activation is a per-lane select with the compares of irnet_activate.
 *  - the global average pool is NEON float on aarch64 (16, then 4 channels per step, each lane one channel's
 *    sum in pixel order), the portable one on armv7; the option-A shortcut is loads and stores on both. */
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

#if defined(__aarch64__)
/* s / n lane by lane: FDIV, the correctly rounded quotient. The divisor is opaque at every use, so that
 * clang's -freciprocal-math cannot multiply the divisions that share it by one reciprocal (irnet_exact.h). */
static inline __attribute__((always_inline)) float32x4_t irnet_div4(float32x4_t s, float32x4_t n)
{
    IRNET_OPAQUE(n);
    return vdivq_f32(s, n);
}
#endif

void irnet_avgpool_neon(const float *in, int pixels, int channels, float *out)
{
#if defined(__aarch64__)
    /* each lane is one channel and sums its pixels in the oracle's order from +0.0 */
    const float32x4_t zero = vdupq_n_f32(0.0f), n = vdupq_n_f32((float)pixels);
    const float *x;
    int c = 0, p;
    for (; c + 16 <= channels; c += 16) {
        float32x4_t s0 = zero, s1 = zero, s2 = zero, s3 = zero;
        for (p = 0, x = in + c; p < pixels; ++p, x += channels) {
            const float32x4x4_t v = vld1q_f32_x4(x);
            s0 = vaddq_f32(s0, v.val[0]);
            s1 = vaddq_f32(s1, v.val[1]);
            s2 = vaddq_f32(s2, v.val[2]);
            s3 = vaddq_f32(s3, v.val[3]);
        }
        vst1q_f32(out + c, irnet_div4(s0, n));
        vst1q_f32(out + c + 4, irnet_div4(s1, n));
        vst1q_f32(out + c + 8, irnet_div4(s2, n));
        vst1q_f32(out + c + 12, irnet_div4(s3, n));
    }
    for (; c + 4 <= channels; c += 4) {
        float32x4_t s0 = zero;
        for (p = 0, x = in + c; p < pixels; ++p, x += channels) {
            s0 = vaddq_f32(s0, vld1q_f32(x));
        }
        vst1q_f32(out + c, irnet_div4(s0, n));
    }
    if (c < channels) {
        irnet_avgpool_from(in, pixels, channels, c, out);
    }
#else
    irnet_avgpool(in, pixels, channels, out); /* armv7 NEON float flushes subnormals to zero */
#endif
}

/* memmove of n floats, n a multiple of 4: upwards where dst lies below src (each chunk is loaded before it is
 * stored and ends before the next chunk's source starts), else downwards */
static inline void irnet_move4(float *dst, const float *src, int n)
{
    int i = 0;
    if ((uintptr_t)dst > (uintptr_t)src) {
        for (i = n - 4; i >= 0; i -= 4) {
            vst1q_f32(dst + i, vld1q_f32(src + i));
        }
        return;
    }
    for (; i + 8 <= n; i += 8) {
        const float32x4_t a = vld1q_f32(src + i), b = vld1q_f32(src + i + 4);
        vst1q_f32(dst + i, a);
        vst1q_f32(dst + i + 4, b);
    }
    if (i < n) {
        vst1q_f32(dst + i, vld1q_f32(src + i));
    }
}

/* +0.0 in n floats, n a multiple of 4 */
static inline void irnet_zero4(float *dst, int n)
{
    float32x4_t zero = vdupq_n_f32(0.0f);
    int i;
    __asm__("" : "+w"(zero)); /* a zero GCC cannot see: it would call memset for these few floats */
    for (i = 0; i < n; i += 4) {
        vst1q_f32(dst + i, zero);
    }
}

/* loads and stores only, no float arithmetic: the same on armv7. Each pixel is moved before its zeros are
 * written, as in irnet_shortcut_a (in place, the first row's output pixels overlap their own input pixels). */
void irnet_shortcut_a_neon(const float *in, int h, int w, int channels, int pad, float *out)
{
    const int ho = (h + 1) / 2, wo = (w + 1) / 2, cout = channels + 2 * pad;
    int oy, ox;
    if (channels % 4 != 0 || pad % 4 != 0) {
        irnet_shortcut_a(in, h, w, channels, pad, out);
        return;
    }
    for (oy = 0; oy < ho; ++oy) {
        float *dst = out + (long)oy * wo * cout;
        const float *src = in + (long)(2 * oy) * w * channels;
        for (ox = 0; ox < wo; ++ox, dst += cout, src += 2 * channels) {
            irnet_move4(dst + pad, src, channels);
            irnet_zero4(dst, pad);
            irnet_zero4(dst + pad + channels, pad);
        }
    }
}

#else
typedef int irnet_elementwise_neon_unused; /* ISO C wants at least one declaration */
#endif
