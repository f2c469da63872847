/* irnet-edge runtime, internal: the aarch64 NEON float helpers the binary and the float convolutions share, and
 * the NEON sign pack of both ISAs (irnet_kernels_neon.c, irnet_conv_f32_neon.c, irnet_elementwise_neon.c).
 * Include after irnet_internal.h, <arm_neon.h> and <string.h>. */
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

/* The sign bits x[c] < 0 of 16 floats (IEEE compares: -0.0 and NaN give 0), one byte each, weighted by the bit
 * they become within their byte of the word: the compare masks narrow to bytes */
static inline uint8x16_t irnet_negative_bytes(const float *x)
{
    static const uint8_t byte_bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const float32x4x4_t v = vld1q_f32_x4(x);
    const uint16x8_t m01 = vuzp1q_u16(vreinterpretq_u16_u32(vcltzq_f32(v.val[0])),
        vreinterpretq_u16_u32(vcltzq_f32(v.val[1])));
    const uint16x8_t m23 = vuzp1q_u16(vreinterpretq_u16_u32(vcltzq_f32(v.val[2])),
        vreinterpretq_u16_u32(vcltzq_f32(v.val[3])));
    return vandq_u8(vuzp1q_u8(vreinterpretq_u8_u16(m01), vreinterpretq_u8_u16(m23)), vld1q_u8(byte_bit));
}

/* The word of sign bits of x[0..15] (b = irnet_negative_bytes(x)) and x[16..31] (c, or zeros): three pairwise
 * adds sum each 8 bytes into one, the bits being disjoint */
static inline uint32_t irnet_sign_word(uint8x16_t b, uint8x16_t c)
{
    b = vpaddq_u8(b, c);
    b = vpaddq_u8(b, b);
    b = vpaddq_u8(b, b);
    return vgetq_lane_u32(vreinterpretq_u32_u8(b), 0);
}

/* irnet_sign_pack (bit = x < 0 on the float's value) with IEEE float compares: 16 or 32 channels at a time
 * (irnet_sign_word), then groups of 4 channels shifted in 4 bits at a time and one horizontal add, the last
 * 1-3 on the float's bits (as unsigned, the negative non-zero numbers are 0x80000001..0xFF800000) */
static inline void irnet_sign_pack_a64(const float *x, int pixels, int cout, uint32_t *out)
{
    static const uint32_t bit_values[4] = {1, 2, 4, 8};
    const uint32x4_t weights = vld1q_u32(bit_values);
    const int words = (cout + 31) / 32;
    int p, i, c;
    if (cout == 16) { /* the CIFAR ResNets' first stage */
        for (p = 0; p < pixels; ++p) {
            out[p] = irnet_sign_word(irnet_negative_bytes(x + 16 * p), vdupq_n_u8(0));
        }
        return;
    }
    if (cout % 32 == 0) {
        for (i = 0; i < pixels * words; ++i) {
            out[i] = irnet_sign_word(irnet_negative_bytes(x + 32 * i), irnet_negative_bytes(x + 32 * i + 16));
        }
        return;
    }
    for (p = 0; p < pixels; ++p, x += cout, out += words) {
        for (i = 0; i < words; ++i) {
            const int n = cout - 32 * i < 32 ? cout - 32 * i : 32;
            const float *const xw = x + 32 * i;
            uint32_t word = 0;
            c = 0;
            if (n >= 16) {
                c = n / 16 * 16;
                word = irnet_sign_word(irnet_negative_bytes(xw), c == 32 ? irnet_negative_bytes(xw + 16) :
                    vdupq_n_u8(0));
            }
            if (n - c >= 4) {
                const int c0 = c;
                uint32x4_t acc = vdupq_n_u32(0);
                for (c = n / 4 * 4 - 4; c >= c0; c -= 4) {
                    acc = vsliq_n_u32(vandq_u32(vcltzq_f32(vld1q_f32(xw + c)), weights), acc, 4);
                }
                word |= vaddvq_u32(acc) << c0;
                c = n / 4 * 4;
            }
            for (; c < n; ++c) {
                uint32_t b;
                memcpy(&b, xw + c, sizeof b);
                word |= (uint32_t)(b - 0x80000001u <= 0x7F7FFFFFu) << c;
            }
            out[i] = word;
        }
    }
}

/* y = acc * m; y = y + a, then the activation, on 4 channels */
static inline float32x4_t irnet_finish4(float32x4_t acc, float32x4_t m, float32x4_t a, int act)
{
    return irnet_act4(vaddq_f32(irnet_mul4(acc, m), a), act);
}
#endif

#if defined(__ARM_NEON) && !defined(__aarch64__)
/* x < 0 on the bits: as unsigned, negative non-zero numbers are 0x80000001..0xFF800000 (-0.0 and the
 * negative NaNs lie just outside), so one subtraction and one unsigned compare decide it, and armv7's
 * flush-to-zero of NEON float cannot touch a negative subnormal */
static inline uint32x4_t irnet_negative_lanes(const float *p)
{
    const uint32x4_t bits = vreinterpretq_u32_f32(vld1q_f32(p));
    return vcleq_u32(vsubq_u32(bits, vdupq_n_u32(0x80000001u)), vdupq_n_u32(0x7F7FFFFFu));
}

/* irnet_sign_pack on armv7: a word's vectors of lane masks are weighted 1, 2, 4, 8 per lane and shifted in
 * 4 bits at a time, then one horizontal add (the bits are disjoint); the last 1-3 channels on the bits too */
static inline void irnet_sign_pack_v7(const float *x, int pixels, int cout, uint32_t *out)
{
    static const uint32_t lane_bit[4] = {1u, 2u, 4u, 8u};
    const uint32x4_t weights = vld1q_u32(lane_bit);
    const int words = (cout + 31) / 32;
    int p, i, j, c;
    for (p = 0; p < pixels; ++p, x += cout, out += words) {
        for (i = 0; i < words; ++i) {
            const int n = cout - 32 * i < 32 ? cout - 32 * i : 32;
            uint32x4_t acc = vdupq_n_u32(0u);
            uint32x2_t half;
            uint32_t word;
            for (j = n / 4 - 1; j >= 0; --j) { /* acc = acc << 4 | the next 4 lanes' bits */
                acc = vsliq_n_u32(vandq_u32(irnet_negative_lanes(x + 32 * i + 4 * j), weights), acc, 4);
            }
            half = vadd_u32(vget_low_u32(acc), vget_high_u32(acc));
            word = vget_lane_u32(vpadd_u32(half, half), 0);
            for (c = n / 4 * 4; c < n; ++c) {
                uint32_t b;
                memcpy(&b, x + 32 * i + c, sizeof b);
                word |= (uint32_t)(b - 0x80000001u <= 0x7F7FFFFFu) << c;
            }
            out[i] = word;
        }
    }
}
#endif

#if defined(__ARM_NEON)
/* irnet_sign_pack (bit = x < 0 on the float's value: -0.0 and NaN give 0) */
static inline void irnet_sign_pack_fast(const float *x, int pixels, int cout, uint32_t *out)
{
#if defined(__aarch64__)
    irnet_sign_pack_a64(x, pixels, cout, out);
#else
    irnet_sign_pack_v7(x, pixels, cout, out);
#endif
}
#endif

#endif
