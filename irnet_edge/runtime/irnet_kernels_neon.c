/* irnet-edge runtime, NEON kernels (aarch64 and armv7 with NEON; compiled to nothing elsewhere): the
 * arithmetic of irnet_bconv in irnet_kernels.c (its oracle), bit for bit.
 *
 * Binary convolution. An output's popcount runs over its k*k*words activation words against its weight row
 * [k][k][words], word for word; the order of the words does not matter.
 *  - With padding, the input is first copied into a zero-bordered image, so every tap exists: +1 padding is
 *    then exact, and zero padding takes the absent taps' weight popcounts back through a table per border
 *    class (which taps are absent) and channel.
 *  - 16 output pixels are gathered into a stream [step][pixel][4 words], so one load feeds 4 pixels and the
 *    boundaries between kernel rows cost nothing in the inner loop.
 *  - Cin <= 16 fills half a word: the stream then holds two 16-bit taps per word (from images of vertically
 *    and horizontally paired pixels, the weights paired alike), 5 words for a 3x3 window instead of 9.
 *  - 3x3, stride 1, Cin <= 16 and 16 output channels (the CIFAR ResNets' first stage, an output width that is
 *    a multiple of 4): no gather; 4 pixels of a row at a time are read from the paired images, the popcounts
 *    stay in bytes (at most 144) and the bits, or the floats and their fused sign bits, are made in registers
 *    (irnet_c16_*: a function of its own, which builds the paired images straight from the input, so that the
 *    other layers' code is compiled as before).
 *  - Register block of 4 output channels x 16 pixels: per 128-bit step and pixel, VEOR and VCNT for each
 *    channel, pairwise adds fold the four channels' byte counts into one vector, one more pairwise add joins
 *    two pixels' vectors and VPADAL adds that to 16-bit lanes: lane c is the first pixel's channel c, lane
 *    4 + c the second's, so the lanes are the popcounts themselves. The last 2 or 1 words of the row form a
 *    half or quarter step whose weight vector holds 2 or 4 channels, so they cost what their bits cost.
 *  - Pixels are sorted by border class, so most blocks load one bound vector per group.
 *  - 16-bit lanes and dots are exact while k*k*Cin <= IRNET_MAX_BITS (a lane holds one popcount, at
 *    most k*k*Cin); larger layers use the portable kernel.
 *  - The weights of each group of 4 channels are first copied into the order the block reads them (one
 *    pointer, one load per step; at most IRNET_PACK_BYTES at a time, whole output words).
 *  - Output bits: dot < threshold <=> popcount >= a bound per border class and channel, one compare. A
 *    group of output word w holds channels 32w + g + 8c (g = 0..7), so each group's compare bit is shifted
 *    into the top of a byte per pixel and channel lane, and after 8 groups the bytes are the output words.
 *  - Float output: dot = a per-class constant - 2 * popcount in 16-bit lanes; on aarch64 then converted,
 *    multiplied, added and activated 4 channels per vector (IEEE, the oracle's operations lane by lane);
 *    armv7 NEON float flushes subnormals to zero, so armv7 finishes each output in scalar VFP code.
 *  - Fused ops of a float output (irnet_fusion, docs/arithmetic.md "Fused ops"): the residual is read where
 *    its output is written, by the same thread, before it. The sign packs the finished output
 *    (irnet_sign_pack_fast), about one instruction per value on aarch64. A pool goes to the portable kernel.
 *  - Built with -fopenmp, blocks of output pixels are shared among threads; every output is computed by one
 *    thread exactly as without threads, so any thread count gives the same bits.
 *
 * The float convolution (irnet_conv_f32_neon) and max-pool are in irnet_conv_f32_neon.c. */
#include "irnet_internal.h"

#if defined(__ARM_NEON)
#include <arm_neon.h>
#include <stdint.h>
#include <string.h>
#if defined(_OPENMP)
/* of the OpenMP API (omp.h, which a cross toolchain's clang may lack) */
int omp_get_max_threads(void);
int omp_get_thread_num(void);
#endif

#define IRNET_PX 16
#define IRNET_MAX_BITS 32766
#define IRNET_PACK_BYTES 32768

/* GCC's first scheduling pass hoists the loads of the 16-accumulator loop above its arithmetic and then
 * spills accumulators: twice the instructions. Code hoisting merges the float output's per-activation copies
 * back into one that finishes all 16 vectors before the activation's branch and spills the addresses. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-schedule-insns", "no-code-hoisting")
#endif

static inline uint8x16_t irnet_padd8(uint8x16_t a, uint8x16_t b)
{
#if defined(__aarch64__)
    return vpaddq_u8(a, b);
#else
    return vcombine_u8(vpadd_u8(vget_low_u8(a), vget_high_u8(a)), vpadd_u8(vget_low_u8(b), vget_high_u8(b)));
#endif
}

static inline uint16x8_t irnet_padd16(uint16x8_t a, uint16x8_t b)
{
#if defined(__aarch64__)
    return vpaddq_u16(a, b);
#else
    return vcombine_u16(vpadd_u16(vget_low_u16(a), vget_high_u16(a)),
        vpadd_u16(vget_low_u16(b), vget_high_u16(b)));
#endif
}

static inline uint32x4_t irnet_padd32(uint32x4_t a, uint32x4_t b)
{
#if defined(__aarch64__)
    return vpaddq_u32(a, b);
#else
    return vcombine_u32(vpadd_u32(vget_low_u32(a), vget_high_u32(a)),
        vpadd_u32(vget_low_u32(b), vget_high_u32(b)));
#endif
}

static inline uint8x16x4_t irnet_load4(const uint8_t *p)
{
#if defined(__aarch64__)
    return vld1q_u8_x4(p);
#else
    uint8x16x4_t v;
    v.val[0] = vld1q_u8(p);
    v.val[1] = vld1q_u8(p + 16);
    v.val[2] = vld1q_u8(p + 32);
    v.val[3] = vld1q_u8(p + 48);
    return v;
#endif
}

/* word i of four weight rows, one row per lane */
static inline uint8x16_t irnet_column(const uint32_t *const wr[4], int i)
{
    uint32x4_t v = vld1q_dup_u32(wr[0] + i);
    v = vld1q_lane_u32(wr[1] + i, v, 1);
    v = vld1q_lane_u32(wr[2] + i, v, 2);
    v = vld1q_lane_u32(wr[3] + i, v, 3);
    return vreinterpretq_u8_u32(v);
}

/* words i and i+1 of weight rows a and b */
static inline uint8x16_t irnet_pair(const uint32_t *a, const uint32_t *b, int i)
{
    return vreinterpretq_u8_u32(vcombine_u32(vld1_u32(a + i), vld1_u32(b + i)));
}

/* popcounts of words [i0, i0 + n) of four weight rows: lanes 2c and 2c + 1 sum to row c's */
static inline uint16x8_t irnet_row_pops(const uint32_t *const wr[4], int i0, int n)
{
    uint16x8_t acc = vdupq_n_u16(0);
    int i = i0;
    for (; i + 4 <= i0 + n; i += 4) {
        acc = vpadalq_u8(acc, irnet_padd8(
            irnet_padd8(vcntq_u8(vreinterpretq_u8_u32(vld1q_u32(wr[0] + i))),
                vcntq_u8(vreinterpretq_u8_u32(vld1q_u32(wr[1] + i)))),
            irnet_padd8(vcntq_u8(vreinterpretq_u8_u32(vld1q_u32(wr[2] + i))),
                vcntq_u8(vreinterpretq_u8_u32(vld1q_u32(wr[3] + i))))));
    }
    if (i + 2 <= i0 + n) {
        acc = vpadalq_u8(acc, irnet_padd8(vcntq_u8(irnet_pair(wr[0], wr[1], i)),
            vcntq_u8(irnet_pair(wr[2], wr[3], i))));
        i += 2;
    }
    if (i < i0 + n) {
        acc = vpadalq_u8(acc, vcntq_u8(irnet_column(wr, i)));
    }
    return acc;
}

/* the four channels' counts of x ^ w0..w3 folded into 16 bytes: bytes 4c..4c+3 belong to channel c */
#define IRNET_FOLD(x) irnet_padd8( \
        irnet_padd8(vcntq_u8(veorq_u8(x, w0)), vcntq_u8(veorq_u8(x, w1))), \
        irnet_padd8(vcntq_u8(veorq_u8(x, w2)), vcntq_u8(veorq_u8(x, w3))))
/* a half step: x holds the pixel's last two words twice, h01 those of channels 0 and 1, h23 of 2 and 3 */
#define IRNET_HALF(x) irnet_padd8(vcntq_u8(veorq_u8(x, h01)), vcntq_u8(veorq_u8(x, h23)))
/* a quarter step: x holds the pixel's last word four times, q the last word of each channel */
#define IRNET_QUARTER(x) vcntq_u8(veorq_u8(x, q))
/* Two pixels' folds fold once more, so a 16-bit lane holds one pixel's channel outright: lanes 0-3 are the
 * first pixel's channels, lanes 4-7 the second's, and the sums need no final reduction. A byte then adds
 * 8 counts of at most 8 bits. */
#define IRNET_SET(M, acc, x, y) acc = vpaddlq_u8(irnet_padd8(M(x), M(y)))
#define IRNET_ADD(M, acc, x, y) acc = vpadalq_u8(acc, irnet_padd8(M(x), M(y)))
#define IRNET_ALL(A, M, s) do { \
        uint8x16x4_t v = irnet_load4(s); \
        A(M, a0, v.val[0], v.val[1]); \
        A(M, a1, v.val[2], v.val[3]); \
        v = irnet_load4((s) + 64); \
        A(M, a2, v.val[0], v.val[1]); \
        A(M, a3, v.val[2], v.val[3]); \
        v = irnet_load4((s) + 128); \
        A(M, a4, v.val[0], v.val[1]); \
        A(M, a5, v.val[2], v.val[3]); \
        v = irnet_load4((s) + 192); \
        A(M, a6, v.val[0], v.val[1]); \
        A(M, a7, v.val[2], v.val[3]); \
    } while (0)

/* Popcounts of 16 gathered pixels against one packed weight group wp of 4 rows (n words each, laid out as
 * irnet_pack writes them): pop[j] lanes 0-3 are pixel 2j's four rows, lanes 4-7 pixel 2j+1's. With
 * half (the quarter step's word is one 16-bit tap) that step holds pixel pairs instead, see
 * irnet_bconv_neon. */
static inline __attribute__((always_inline)) void irnet_block(const uint8_t *act, const uint8_t *wp, int n, int half,
    uint16x8_t pop[8])
{
    const int nf = n / 4;
    uint16x8_t a0, a1, a2, a3, a4, a5, a6, a7;
    int s;
    if (nf > 0) { /* the first step sets the accumulators */
        const uint8x16x4_t wv = irnet_load4(wp);
        const uint8x16_t w0 = wv.val[0], w1 = wv.val[1], w2 = wv.val[2], w3 = wv.val[3];
        IRNET_ALL(IRNET_SET, IRNET_FOLD, act);
        act += 256;
        wp += 64;
    } else {
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = vdupq_n_u16(0);
    }
    for (s = 1; s < nf; ++s) {
        const uint8x16x4_t wv = irnet_load4(wp);
        const uint8x16_t w0 = wv.val[0], w1 = wv.val[1], w2 = wv.val[2], w3 = wv.val[3];
        IRNET_ALL(IRNET_ADD, IRNET_FOLD, act);
        act += 256;
        wp += 64;
    }
    if (n & 2) {
        const uint8x16_t h01 = vld1q_u8(wp), h23 = vld1q_u8(wp + 16);
        IRNET_ALL(IRNET_ADD, IRNET_HALF, act);
        act += 256;
        wp += 32;
    }
    if (n & 1) {
        const uint8x16_t q = vld1q_u8(wp);
        if (half) {
            a0 = vpadalq_u8(a0, IRNET_QUARTER(vld1q_u8(act)));
            a1 = vpadalq_u8(a1, IRNET_QUARTER(vld1q_u8(act + 16)));
            a2 = vpadalq_u8(a2, IRNET_QUARTER(vld1q_u8(act + 32)));
            a3 = vpadalq_u8(a3, IRNET_QUARTER(vld1q_u8(act + 48)));
            a4 = vpadalq_u8(a4, IRNET_QUARTER(vld1q_u8(act + 64)));
            a5 = vpadalq_u8(a5, IRNET_QUARTER(vld1q_u8(act + 80)));
            a6 = vpadalq_u8(a6, IRNET_QUARTER(vld1q_u8(act + 96)));
            a7 = vpadalq_u8(a7, IRNET_QUARTER(vld1q_u8(act + 112)));
        } else {
            IRNET_ALL(IRNET_ADD, IRNET_QUARTER, act);
        }
    }
    pop[0] = a0;
    pop[1] = a1;
    pop[2] = a2;
    pop[3] = a3;
    pop[4] = a4;
    pop[5] = a5;
    pop[6] = a6;
    pop[7] = a7;
}

#include "irnet_neon_float.h" /* after the pragmas above: its inline helpers must share them */

#if defined(__aarch64__)
/* The dots bound - 2 * pop of 16 pixels and 4 channels (pixel 2j in the low half of pop[j] and bd[j], 2j + 1
 * in the high half), finished and stored dp[p] bytes past o. The widening subtract of the 16-bit operands
 * (both below 2^16), modulo 2^32, is the signed dot. Called with a constant act: with act known only at run
 * time GCC computes all 16 vectors ahead of the activation's branch and spills the addresses. */
static inline void irnet_store16(char *o, const int *dp, const uint16x8_t pop[8], const uint16x8_t bd[8],
    float32x4_t m, float32x4_t a, int act)
{
    int j;
#pragma GCC unroll 8
    for (j = 0; j < 8; ++j) {
        const uint16x8_t p2 = vshlq_n_u16(pop[j], 1);
        const int32x4_t lo = vreinterpretq_s32_u32(vsubl_u16(vget_low_u16(bd[j]), vget_low_u16(p2)));
        const int32x4_t hi = vreinterpretq_s32_u32(vsubl_high_u16(bd[j], p2));
        vst1q_f32((float *)(o + dp[2 * j]), irnet_finish4(vcvtq_f32_s32(lo), m, a, act));
        vst1q_f32((float *)(o + dp[2 * j + 1]), irnet_finish4(vcvtq_f32_s32(hi), m, a, act));
    }
}

/* irnet_store16 on the dots themselves (pixel 2j in the low half of dots[j]) with the fused residual add: with r
 * (not null) each value z = ract(y + the residual dp[p] bytes past r), the residual read before its place in o
 * is written (r may be o: a full block has 16 distinct pixels) */
static inline __attribute__((always_inline)) void irnet_store16_fused(char *o, const int *dp,
    const uint16x8_t dots[8], float32x4_t m, float32x4_t a, int act, const char *r, int ract)
{
    int j;
#pragma GCC unroll 8
    for (j = 0; j < 8; ++j) {
        const int16x8_t d = vreinterpretq_s16_u16(dots[j]);
        float32x4_t lo = irnet_finish4(vcvtq_f32_s32(vmovl_s16(vget_low_s16(d))), m, a, act);
        float32x4_t hi = irnet_finish4(vcvtq_f32_s32(vmovl_high_s16(d)), m, a, act);
        if (r != 0) {
            lo = irnet_act4(vaddq_f32(lo, vld1q_f32((const float *)(r + dp[2 * j]))), ract);
            hi = irnet_act4(vaddq_f32(hi, vld1q_f32((const float *)(r + dp[2 * j + 1]))), ract);
        }
        vst1q_f32((float *)(o + dp[2 * j]), lo);
        vst1q_f32((float *)(o + dp[2 * j + 1]), hi);
    }
}
#endif

/* distinct (first, end) ranges of present taps along one axis, in output order; the outputs sharing a range
 * are consecutive, from start[i] to start[i + 1] */
static int irnet_tap_ranges(int n_out, int size, int k, int stride, int pad, int *start, int *first, int *end)
{
    int o, n = 0;
    for (o = 0; o < n_out; ++o) {
        const int i0 = o * stride - pad;
        const int t0 = i0 < 0 ? -i0 : 0;
        const int t1 = i0 + k > size ? size - i0 : k;
        if (n == 0 || first[n - 1] != t0 || end[n - 1] != t1) {
            first[n] = t0;
            end[n] = t1;
            start[n] = o;
            ++n;
        }
        if (t0 == 0 && t1 == k) { /* so are the outputs up to the last whose window ends within the map */
            const int o_last = (size - k + pad) / stride;
            o = o_last > o ? (o_last < n_out - 1 ? o_last : n_out - 1) : o;
        }
    }
    start[n] = n_out;
    return n;
}

/* The output channel of weight slot s (lane c = s % 4 of group s / 4), or -1 past the last channel. Bits
 * output: the g-th of the G groups of output word w holds channels 32w + g + Gc (G = 8 but in a last word of
 * up to 28 channels), so that each group's bit can be shifted into the top of a 16-bit lane and, once the 8
 * groups of a word are in, the lane's high byte is byte c of the word. Float output: channels in order. */
static inline int irnet_slot_channel(int s, int cout, int bits)
{
    const int left = cout - s / 32 * 32;
    const int gw = left < 29 ? (left + 3) / 4 : 8;
    const int ch = bits ? s / 32 * 32 + s / 4 % 8 + gw * (s % 4) : s;
    return ch < cout && (!bits || s / 4 % 8 < gw) ? ch : -1;
}

/* the weight rows of group g; an empty slot takes the last channel's row (its results are dropped) */
static inline void irnet_rows(const uint32_t *weight, int n, int cout, int bits, int g, const uint32_t *wr[4])
{
    int c;
    for (c = 0; c < 4; ++c) {
        const int ch = irnet_slot_channel(4 * g + c, cout, bits);
        wr[c] = weight + (ch >= 0 ? ch : cout - 1) * n;
    }
}

/* Groups [g0, g1) as irnet_block reads them, 4n words each: per full step the 4 rows' next 4 words, then
 * the last 2 words of rows 0, 1, 2, 3 (the half step's pairs), then the last word of each row. Weight rows
 * are rn words long; with taps (not null) stream word j is tap taps[2j] | tap taps[2j + 1] << 16 (none if
 * negative), as the activation stream pairs them; with half the last word is one such tap, see
 * irnet_block. */
static inline __attribute__((always_inline)) void irnet_pack(const uint32_t *weight, int rn, int n, const int *taps,
    int half, int cout, int bits, int g0, int g1, uint32_t *rows4, uint32_t *dst)
{
    int g, s, c;
    for (g = g0; g < g1; ++g) {
        const uint32_t *wr[4];
        irnet_rows(weight, rn, cout, bits, g, wr);
        if (taps != 0) {
            for (c = 0; c < 4; ++c) {
                for (s = 0; s < n; ++s) {
                    rows4[c * n + s] = wr[c][taps[2 * s]] | (taps[2 * s + 1] >= 0 ? wr[c][taps[2 * s + 1]] << 16 : 0);
                }
                wr[c] = rows4 + c * n;
            }
        }
        for (s = 0; s + 4 <= n; s += 4) {
#pragma GCC unroll 4
            for (c = 0; c < 4; ++c) {
                vst1q_u32(dst, vld1q_u32(wr[c] + s));
                dst += 4;
            }
        }
        if (n & 2) {
#pragma GCC unroll 4
            for (c = 0; c < 4; ++c) {
                vst1_u32(dst, vld1_u32(wr[c] + s));
                dst += 2;
            }
            s += 2;
        }
        if (n & 1 && half) { /* 16-bit taps: rows 0 and 1 share a word, as do 2 and 3, twice */
            dst[0] = dst[2] = wr[0][s] | wr[1][s] << 16;
            dst[1] = dst[3] = wr[2][s] | wr[3][s] << 16;
            dst += 4;
        } else if (n & 1) {
            for (c = 0; c < 4; ++c) {
                *dst++ = wr[c][s];
            }
        }
    }
}

/* per pixel pair j, the bounds of channel slots co..co+3: one border class, or each pixel's own */
#define IRNET_UNIFORM_BOUND(j) bnd
#define IRNET_CLASS_BOUND(j) vcombine_u16(vld1_u16(pb[2 * (j)] + co), vld1_u16(pb[2 * (j) + 1] + co))
/* Bits output: the compare masks of pixel pairs 2i and 2i + 1 narrow to the bytes of pixels 4i..4i+3, the
 * new bit (pop >= bound) enters each byte at the top and the earlier groups' bits move down */
#define IRNET_SHIFT_IN(B) do { \
        int i_; \
        _Pragma("GCC unroll 4") \
        for (i_ = 0; i_ < 4; ++i_) { \
            m[i_] = vsriq_n_u8(vuzpq_u8(vreinterpretq_u8_u16(vcgeq_u16(pop[2 * i_], B(2 * i_))), \
                vreinterpretq_u8_u16(vcgeq_u16(pop[2 * i_ + 1], B(2 * i_ + 1)))).val[0], m[i_], 1); \
        } \
    } while (0)

/* What the fused residual add needs (irnet_fusion), read once per call: the stores through the output would
 * otherwise make the compiler read the parameters again for every group */
typedef struct {
    const float *residual, *mult, *add;
    int residual_act, act, cout;
    int acts; /* the pair (act, residual_act) irnet_fused_group has a copy for: 1 (none, hardtanh), 2 (none, relu),
               * 3 (none, none); 0 any other */
} irnet_fused_ops;

static irnet_fused_ops irnet_fused_ops_of(const irnet_bconv_params *prm)
{
    irnet_fused_ops f;
    f.residual = prm->fuse.residual;
    f.mult = prm->mult;
    f.add = prm->add;
    f.residual_act = prm->fuse.residual_act;
    f.act = prm->act;
    f.cout = prm->cout;
    f.acts = f.act != IRNET_ACT_NONE ? 0 : f.residual_act == IRNET_ACT_HARDTANH ? 1 : f.residual_act == IRNET_ACT_RELU ?
        2 : f.residual_act == IRNET_ACT_NONE ? 3 : 0;
    return f;
}

/* act(y + a), plus the residual r, then ract. The fences keep each sum scalar: with four channels written out
 * side by side clang's SLP vectorizer would pack them into Neon vectors, which flush subnormals on armv7. */
static inline __attribute__((always_inline)) float irnet_fused_value(float y, float a, float r, int act, int ract)
{
    y = irnet_activate(y + a, act);
    IRNET_FENCE(y);
    y = irnet_activate(y + r, ract);
    IRNET_FENCE(y);
    return y;
}

/* irnet_fused_group in scalar code (VFP on armv7), with the activations as constants: dot[4p + c] is pixel p's
 * channel co + c */
static inline __attribute__((always_inline)) void irnet_fused_scalar(const irnet_fused_ops *f, float *out_f32,
    const int *dp, int np, int co, const int16_t *dot, int act, int ract)
{
    const int nc = f->cout - co < 4 ? f->cout - co : 4;
    const float *const residual = f->residual, *const mult = f->mult + co, *const add = f->add + co;
    int p, c;
    if (nc == 4 && residual != 0) {
        /* the group's scales in registers: with the stores through y_out (floats too) GCC would read them again
         * for every output */
        const float m0 = mult[0], m1 = mult[1], m2 = mult[2], m3 = mult[3];
        const float a0 = add[0], a1 = add[1], a2 = add[2], a3 = add[3];
        for (p = 0; p < np; ++p) {
            float *const y_out = (float *)((char *)out_f32 + dp[p]) + co;
            const float *const r_in = (const float *)((const char *)residual + dp[p]) + co;
            const int16_t *const d = dot + 4 * p;
            float y0 = (float)d[0] * m0, y1 = (float)d[1] * m1, y2 = (float)d[2] * m2, y3 = (float)d[3] * m3;
            IRNET_FENCE(y0);
            IRNET_FENCE(y1);
            IRNET_FENCE(y2);
            IRNET_FENCE(y3);
            y_out[0] = irnet_fused_value(y0, a0, r_in[0], act, ract);
            y_out[1] = irnet_fused_value(y1, a1, r_in[1], act, ract);
            y_out[2] = irnet_fused_value(y2, a2, r_in[2], act, ract);
            y_out[3] = irnet_fused_value(y3, a3, r_in[3], act, ract);
        }
        return;
    }
    for (p = 0; p < np; ++p) {
        float *const y_out = (float *)((char *)out_f32 + dp[p]) + co;
        const float *const r_in = residual != 0 ? (const float *)((const char *)residual + dp[p]) + co : 0;
        for (c = 0; c < nc; ++c) {
            float y = (float)dot[4 * p + c] * mult[c];
            IRNET_FENCE(y);
            y = irnet_activate(y + add[c], act);
            if (r_in != 0) {
                y = irnet_activate(y + r_in[c], ract);
            }
            y_out[c] = y;
        }
    }
}

/* The float output of channels co..co + 3 of a block (dots[j] as irnet_store16 reads them, dp[p] the byte
 * offset of pixel p's output) with the residual add of f. On aarch64 lane-wise (irnet_store16_fused) but for a
 * last group of 1-3 channels and a short block added in place (its repeated pixels would add the residual
 * twice); armv7 in scalar VFP code. */
static inline __attribute__((always_inline)) void irnet_fused_group(const irnet_fused_ops *f, float *out_f32,
    const int *dp, int np, int co, const uint16x8_t dots[8])
{
    const int act = f->act, residual_act = f->residual_act;
    int j;
#if defined(__aarch64__)
    if (co + 4 <= f->cout && (f->residual == 0 || np == IRNET_PX)) {
        const float32x4_t mv = vld1q_f32(f->mult + co), av = vld1q_f32(f->add + co);
        char *const o = (char *)(out_f32 + co);
        const char *const r = f->residual != 0 ? (const char *)(f->residual + co) : 0;
        if (f->acts == 1 && r != 0) { /* the ResNets' blocks: no test of r per store */
            irnet_store16_fused(o, dp, dots, mv, av, IRNET_ACT_NONE, r, IRNET_ACT_HARDTANH);
        } else if (f->acts == 1) {
            irnet_store16_fused(o, dp, dots, mv, av, IRNET_ACT_NONE, 0, IRNET_ACT_HARDTANH);
        } else if (f->acts == 2) {
            irnet_store16_fused(o, dp, dots, mv, av, IRNET_ACT_NONE, r, IRNET_ACT_RELU);
        } else if (f->acts == 3) {
            irnet_store16_fused(o, dp, dots, mv, av, IRNET_ACT_NONE, r, IRNET_ACT_NONE);
        } else {
            irnet_store16_fused(o, dp, dots, mv, av, act, r, residual_act);
        }
        return;
    }
#endif
    {
        int16_t dot[8 * 8];
#pragma GCC unroll 8
        for (j = 0; j < 8; ++j) {
            vst1q_s16(dot + 8 * j, vreinterpretq_s16_u16(dots[j]));
        }
#if defined(__aarch64__)
        /* the few outputs the vectors leave: one copy (more would cost the vector path registers) */
        irnet_fused_scalar(f, out_f32, dp, np, co, dot, act, residual_act);
#else
        if (f->acts == 1) {
            irnet_fused_scalar(f, out_f32, dp, np, co, dot, IRNET_ACT_NONE, IRNET_ACT_HARDTANH);
        } else if (f->acts == 2) {
            irnet_fused_scalar(f, out_f32, dp, np, co, dot, IRNET_ACT_NONE, IRNET_ACT_RELU);
        } else if (f->acts == 3) {
            irnet_fused_scalar(f, out_f32, dp, np, co, dot, IRNET_ACT_NONE, IRNET_ACT_NONE);
        } else {
            irnet_fused_scalar(f, out_f32, dp, np, co, dot, act, residual_act);
        }
#endif
    }
}

/* What irnet_bconv_neon derives from its parameters, and where the pieces of its scratch lie (byte offsets,
 * each piece whole 16-byte units). The table of bounds per border class comes last (classes * ss * 2 bytes):
 * the kernel knows the classes once it has counted them. */
typedef struct {
    int words, rn, paired, n, half, steps, pw, plane, groups, ss, chunk, pixels, blocks, zero_pad;
    size_t padded, ranges, pixel_tables, stream, rows4, wpack, tap_pops, bias, bufs, bound;
    size_t copy; /* where P lies: padded, or pixel_tables when paired */
} irnet_bconv_plan;

static size_t irnet_piece(size_t *at, size_t bytes)
{
    const size_t offset = *at;
    *at += (bytes + 15) / 16 * 16;
    return offset;
}

static irnet_bconv_plan irnet_bconv_plan_of(const irnet_bconv_params *prm, int bits)
{
    irnet_bconv_plan plan;
    irnet_bconv_plan *const q = &plan;
    const int k = prm->k, cin = prm->cin, cout = prm->cout, pad = prm->pad, ho = prm->ho, wo = prm->wo;
    const int out_words = (cout + 31) / 32;
    const int last = cout - 32 * (out_words - 1);
    size_t at = 0;
    q->words = (cin + 31) / 32;
    q->rn = k * k * q->words;
    /* Cin <= 16 leaves half of every word empty: the stream then pairs taps, two 16-bit taps per word, read
     * from images of vertically (V) and horizontally (H) paired pixels of the zero-bordered copy (P): kernel
     * rows 2i and 2i + 1 column by column from V, an odd last row two taps at a time from H and its odd last
     * tap from H's low half. The empty upper halves are zero in both operands, so they XOR to zero. */
    q->paired = cin <= 16 && k > 1;
    q->n = q->paired ? k / 2 * k + k % 2 * (k + 1) / 2 : q->rn;
    /* With an odd k that leaves one tap alone in the last word (n is then odd: its quarter step). A 16-bit
     * lane takes the count of 16 bits outright, so that step holds pixel pairs: the word x of pixel 2j and
     * the word y of 2j + 1 as x | x << 16 twice then y | y << 16 twice, against channels 0 | 1 << 16 and
     * 2 | 3 << 16 twice: VCNT and one VPADAL put each pixel's channel into its own lane. */
    q->half = q->paired && k % 2 == 1;
    q->steps = q->n / 4 + (q->n & 2) / 2 + (q->n & 1);
    q->pw = prm->w + 2 * pad;
    q->plane = (prm->h + 2 * pad) * q->pw * q->words;
    q->groups = bits ? 8 * (out_words - 1) + (last < 29 ? (last + 3) / 4 : 8) : (cout + 3) / 4;
    q->ss = (4 * q->groups + 7) / 8 * 8; /* the length of a row of tables, whole 8-lane vectors */
    /* groups packed at a time, whole output words, about IRNET_PACK_BYTES */
    q->chunk = IRNET_PACK_BYTES / (16 * q->n) / 8 * 8 > 8 ? IRNET_PACK_BYTES / (16 * q->n) / 8 * 8 : 8;
    q->pixels = ho * wo;
    q->blocks = (q->pixels + IRNET_PX - 1) / IRNET_PX;
    q->zero_pad = pad > 0 && !prm->pad_one;
    /* the zero-bordered copy P, or the paired images V and H */
    q->padded = irnet_piece(&at, q->paired ? (size_t)2 * q->plane * 4 : pad > 0 ? (size_t)q->plane * 4 : 0);
    /* rs[ho + 1], cs[wo + 1], ky0[ho], ky1[ho], kx0[wo], kx1[wo] */
    q->ranges = irnet_piece(&at, (size_t)(3 * ho + 3 * wo + 2) * sizeof(int));
    /* first, dest, klass: [blocks * IRNET_PX + 3] each; paired, P lies here until V and H are built from it */
    q->pixel_tables = irnet_piece(&at, (size_t)3 * (q->blocks * IRNET_PX + 3) * sizeof(int) >
        (size_t)(q->paired ? q->plane * 4 : 0) ? (size_t)3 * (q->blocks * IRNET_PX + 3) * sizeof(int) :
        (size_t)q->plane * 4);
    q->copy = q->paired ? q->pixel_tables : q->padded;
    /* off[4 * steps], woff[n], taps[2 * n], absent[k * k] */
    q->stream = irnet_piece(&at, (size_t)(4 * q->steps + 3 * q->n + k * k) * sizeof(int));
    /* irnet_pack's paired rows, [4 * n] */
    q->rows4 = irnet_piece(&at, q->paired ? (size_t)4 * q->n * 4 : 0);
    q->wpack = irnet_piece(&at, (size_t)4 * q->n * (q->chunk < q->groups ? q->chunk : q->groups) * 4);
    q->tap_pops = irnet_piece(&at, q->zero_pad ? (size_t)k * k * q->ss * 2 : 0);
    q->bias = irnet_piece(&at, (size_t)q->ss * 4);
    /* one gather buffer [IRNET_PX * steps] of 16 bytes per thread */
    q->bufs = irnet_piece(&at, (size_t)IRNET_BCONV_NEON_THREADS * IRNET_PX * q->steps * 16);
    q->bound = at;
    return plan;
}

/* the number of distinct ranges irnet_tap_ranges finds */
static int irnet_count_ranges(int n_out, int size, int k, int stride, int pad)
{
    int o, n = 0, first = 0, end = 0;
    for (o = 0; o < n_out; ++o) {
        const int i0 = o * stride - pad;
        const int t0 = i0 < 0 ? -i0 : 0;
        const int t1 = i0 + k > size ? size - i0 : k;
        if (n == 0 || first != t0 || end != t1) {
            first = t0;
            end = t1;
            ++n;
        }
    }
    return n;
}

size_t irnet_bconv_neon_scratch_bytes(const irnet_bconv_params *p)
{
    const irnet_bconv_plan q = irnet_bconv_plan_of(p, p->threshold != 0);
    size_t classes = 1;
    if (p->k * p->k * p->cin > IRNET_MAX_BITS) {
        return 0;
    }
    if (q.zero_pad) {
        classes = (size_t)irnet_count_ranges(p->ho, p->h, p->k, p->stride, p->pad) *
            (size_t)irnet_count_ranges(p->wo, p->w, p->k, p->stride, p->pad);
    }
    /* 16 more for irnet_bconv_neon to align its pieces to 16 bytes wherever the scratch starts */
    return q.bound + (classes * (size_t)q.ss * 2 + 15) / 16 * 16 + 16;
}

/* The 3x3 stride-1 path for Cin <= 16 and 16 output channels (the CIFAR ResNets' first stage), row by row with
 * no gather: the window of output (y, x) is V(y, x..x+2) (kernel rows 0 and 1, column by column), H(y+2, x)
 * (row 2, taps 0 and 1) and the low half of H(y+2, x+2) (row 2, tap 2), in the images irnet_bconv_neon_body
 * builds. 4 pixels of a row at a time: the first three V words of a pixel are one 128-bit load, H's word goes
 * into its lane 3, and the lone taps of the 4 pixels are one load whose words, each tap doubled (t | t << 16),
 * are spread to two pixel pairs. Per group of 4 channels (as irnet_pack lays them out: the full step and the
 * half-word step of irnet_block) each pixel folds to 16 bytes, two pixels fold into one vector to which the
 * lone taps' counts add bytewise, and two pairs fold into one vector: byte 4p + c is pixel p's popcount of
 * slot c, at most 144 (9 taps of 16 bits), so it fits a byte. Bits output: one byte compare per 16
 * outputs against the bounds (clamped to 255: a larger bound is never reached) and the groups' bits shifted
 * in, then each pixel's two bytes of nibbles; float output (aarch64): dot = bound - 2 * popcount, widened and
 * finished lane by lane, the residual added, the sign bits packed from the final values in registers. The
 * per-class bounds of each block of 4 pixels (one class per row range, each pixel its column's class) are laid
 * out per row class once, where the pixel tables would be. */
#define IRNET_C16_FOLD(x) irnet_padd8( \
        irnet_padd8(vcntq_u8(veorq_u8(x, w.val[0])), vcntq_u8(veorq_u8(x, w.val[1]))), \
        irnet_padd8(vcntq_u8(veorq_u8(x, w.val[2])), vcntq_u8(veorq_u8(x, w.val[3]))))

/* popcounts of the 4 pixels against the group packed at wp (64 bytes of full words, 16 of lone taps) */
static inline __attribute__((always_inline)) uint8x16_t irnet_c16_group(uint8x16_t x0, uint8x16_t x1,
    uint8x16_t x2, uint8x16_t x3, uint8x16_t q01, uint8x16_t q23, const uint8x16x4_t w, const uint8x16_t wq)
{
    const uint8x16_t p01 = vaddq_u8(irnet_padd8(IRNET_C16_FOLD(x0), IRNET_C16_FOLD(x1)), vcntq_u8(veorq_u8(q01, wq)));
    const uint8x16_t p23 = vaddq_u8(irnet_padd8(IRNET_C16_FOLD(x2), IRNET_C16_FOLD(x3)), vcntq_u8(veorq_u8(q23, wq)));
    return irnet_padd8(p01, p23);
}

/* the windows of pixels x..x+3 of a row (vr: V at the row, hr: H two rows below) */
#define IRNET_C16_LOAD(vr, hr, x) \
    const uint8x16_t x0 = vreinterpretq_u8_u32(vld1q_lane_u32((hr) + (x), vld1q_u32((vr) + (x)), 3)); \
    const uint8x16_t x1 = vreinterpretq_u8_u32(vld1q_lane_u32((hr) + (x) + 1, vld1q_u32((vr) + (x) + 1), 3)); \
    const uint8x16_t x2 = vreinterpretq_u8_u32(vld1q_lane_u32((hr) + (x) + 2, vld1q_u32((vr) + (x) + 2), 3)); \
    const uint8x16_t x3 = vreinterpretq_u8_u32(vld1q_lane_u32((hr) + (x) + 3, vld1q_u32((vr) + (x) + 3), 3)); \
    const uint32x4_t lone_ = vld1q_u32((hr) + (x) + 2); \
    const uint32x4x2_t pairs_ = vzipq_u32(vsliq_n_u32(lone_, lone_, 16), vsliq_n_u32(lone_, lone_, 16)); \
    const uint8x16_t q01 = vreinterpretq_u8_u32(pairs_.val[0]), q23 = vreinterpretq_u8_u32(pairs_.val[1])

/* the 4 groups of slots as irnet_pack lays them out for the 3x3 paired stream (rows of 9 words): per slot the
 * words taps 0 | 3 << 16, 1 | 4 << 16, 2 | 5 << 16, 6 | 7 << 16, then the lone taps 8 of slots 0 | 1 << 16 and
 * 2 | 3 << 16, twice */
static void irnet_c16_pack(const uint32_t *weight, int cout, int bits, uint32_t *dst)
{
    int g, c;
    for (g = 0; g < 4; ++g, dst += 20) {
        const uint32_t *wr[4];
        irnet_rows(weight, 9, cout, bits, g, wr);
        for (c = 0; c < 4; ++c) {
            const uint32x4_t a = vld1q_lane_u32(wr[c] + 6, vld1q_u32(wr[c]), 3);
            const uint32x4_t b = vld1q_lane_u32(wr[c] + 7, vld1q_u32(wr[c] + 3), 3);
            vst1q_u32(dst + 4 * c, vsliq_n_u32(a, b, 16));
        }
        dst[16] = dst[18] = wr[0][8] | wr[1][8] << 16;
        dst[17] = dst[19] = wr[2][8] | wr[3][8] << 16;
    }
}

/* Lays out the block table: per row class and block of 4 pixels, bits: 4 vectors (group g: byte 4p + c is the
 * bound of pixel p's class and slot 4g + c, at most 255); float: per group 2 vectors of 16-bit bounds (pixels 0
 * and 1, then 2 and 3, 4 slots each). Three kinds of blocks are made (the first of a row, the inner ones, all of
 * one class: irnet_c16_applies, and the last), then copied to their places. The kinds and a 4 x 4 transpose
 * lie past the table (scratch, as the table). */
static void irnet_c16_table(const uint16_t *bound, int ss, int nrc, int ncc, const int *cs, int wo, int bits,
    uint8_t *table)
{
    const int nb = wo / 4, per = bits ? 64 : 128;
    uint8_t *const kinds = table + (size_t)nrc * nb * per;
    uint32_t *const tmp = (uint32_t *)(kinds + 3 * per);
    int rc, kind, p, xb;
    for (rc = 0; rc < nrc; ++rc) {
        uint8_t *const row = table + (size_t)rc * nb * per;
        for (kind = 0; kind < 3; ++kind) {
            uint8_t *const t = kinds + kind * per;
            const int x0 = 4 * (kind == 0 ? 0 : kind == 2 || nb < 3 ? nb - 1 : 1);
            for (p = 0; p < 4; ++p) {
                int cc = 0;
                const uint16_t *b;
                uint16x8_t lo, hi;
                while (cc + 1 < ncc && x0 + p >= cs[cc + 1]) {
                    ++cc;
                }
                b = bound + (size_t)(rc * ncc + cc) * ss;
                lo = vld1q_u16(b);
                hi = vld1q_u16(b + 8);
                if (bits) {
                    vst1q_u32(tmp + 4 * p, vreinterpretq_u32_u8(vcombine_u8(vqmovn_u16(lo), vqmovn_u16(hi))));
                } else {
                    uint16_t *const tf = (uint16_t *)t + 4 * p;
                    vst1_u16(tf, vget_low_u16(lo));
                    vst1_u16(tf + 16, vget_high_u16(lo));
                    vst1_u16(tf + 32, vget_low_u16(hi));
                    vst1_u16(tf + 48, vget_high_u16(hi));
                }
            }
            if (bits) { /* a 4 x 4 transpose of words: group g of pixel p to lane p of vector g */
                const uint32x4x4_t v = vld4q_u32(tmp);
                vst1q_u32((uint32_t *)t, v.val[0]);
                vst1q_u32((uint32_t *)t + 4, v.val[1]);
                vst1q_u32((uint32_t *)t + 8, v.val[2]);
                vst1q_u32((uint32_t *)t + 12, v.val[3]);
            }
        }
        for (xb = 0; xb < nb; ++xb) {
            memcpy(row + (size_t)xb * per, kinds + (xb == 0 ? 0 : xb == nb - 1 ? 2 : 1) * per, (size_t)per);
        }
    }
}

/* Bits output: rows [0, ho) */
static inline __attribute__((always_inline)) void irnet_c16_bits(const uint32_t *v, const uint32_t *hz, int pw,
    int ho, int wo, const int *rs, int nrc, const uint8_t *table, const uint8_t *wpack,
    uint32_t *out_bits)
{
#if defined(__aarch64__)
    /* the weights stay in registers: 20 of the 32 vectors (armv7 has 16, and loads them per block; so does the
     * float output, which wants the registers for its own values) */
    const uint8x16x4_t w0 = irnet_load4(wpack), w1 = irnet_load4(wpack + 80), w2 = irnet_load4(wpack + 160);
    const uint8x16x4_t w3 = irnet_load4(wpack + 240);
    const uint8x16_t wq0 = vld1q_u8(wpack + 64), wq1 = vld1q_u8(wpack + 144), wq2 = vld1q_u8(wpack + 224);
    const uint8x16_t wq3 = vld1q_u8(wpack + 304);
#else
#define w0 irnet_load4(wpack)
#define w1 irnet_load4(wpack + 80)
#define w2 irnet_load4(wpack + 160)
#define w3 irnet_load4(wpack + 240)
#define wq0 vld1q_u8(wpack + 64)
#define wq1 vld1q_u8(wpack + 144)
#define wq2 vld1q_u8(wpack + 224)
#define wq3 vld1q_u8(wpack + 304)
#endif
    int oy;
#if defined(_OPENMP)
    const int threads = omp_get_max_threads() < IRNET_BCONV_NEON_THREADS ? omp_get_max_threads() :
        IRNET_BCONV_NEON_THREADS;
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
    for (oy = 0; oy < ho; ++oy) {
        int rc = 0, x;
        while (rc + 1 < nrc && oy >= rs[rc + 1]) {
            ++rc;
        }
        {
            const uint32_t *const vr = v + (size_t)oy * pw, *const hr = hz + (size_t)(oy + 2) * pw;
            const uint8_t *b = table + (size_t)rc * wo * 16;
            uint32_t *const ob = out_bits + (size_t)oy * wo;
            for (x = 0; x < wo; x += 4, b += 64) {
                IRNET_C16_LOAD(vr, hr, x);
                uint8x16_t m = vcgeq_u8(irnet_c16_group(x0, x1, x2, x3, q01, q23, w0, wq0), vld1q_u8(b));
                uint16x8_t h;
                m = vsriq_n_u8(vcgeq_u8(irnet_c16_group(x0, x1, x2, x3, q01, q23, w1, wq1), vld1q_u8(b + 16)), m, 1);
                m = vsriq_n_u8(vcgeq_u8(irnet_c16_group(x0, x1, x2, x3, q01, q23, w2, wq2), vld1q_u8(b + 32)), m, 1);
                m = vsriq_n_u8(vcgeq_u8(irnet_c16_group(x0, x1, x2, x3, q01, q23, w3, wq3), vld1q_u8(b + 48)), m, 1);
                /* byte 4p + c: bits 4..7 are channels c*4 + 0..3; two bytes of nibbles per pixel */
                h = vreinterpretq_u16_u8(vshrq_n_u8(m, 4));
                vst1q_u32(ob + x, vmovl_u16(vreinterpret_u16_u8(vmovn_u16(vsraq_n_u16(h, h, 4)))));
            }
        }
    }
#if !defined(__aarch64__)
#undef w0
#undef w1
#undef w2
#undef w3
#undef wq0
#undef wq1
#undef wq2
#undef wq3
#endif
}

#if defined(__aarch64__)
/* Float output before the residual add, channels 4g..4g+3 of 4 pixels (r: byte 4p + c): y[p] is pixel p's */
static inline __attribute__((always_inline)) void irnet_c16_float4(uint8x16_t r, const uint16_t *bt,
    const float *mult, const float *add, int act, float32x4_t y[4])
{
    const float32x4_t mv = vld1q_f32(mult), av = vld1q_f32(add);
    const int16x8_t dlo = vreinterpretq_s16_u16(vmlsl_u8(vld1q_u16(bt), vget_low_u8(r), vdup_n_u8(2)));
    const int16x8_t dhi = vreinterpretq_s16_u16(vmlsl_high_u8(vld1q_u16(bt + 8), r, vdupq_n_u8(2)));
    y[0] = irnet_finish4(vcvtq_f32_s32(vmovl_s16(vget_low_s16(dlo))), mv, av, act);
    y[1] = irnet_finish4(vcvtq_f32_s32(vmovl_high_s16(dlo)), mv, av, act);
    y[2] = irnet_finish4(vcvtq_f32_s32(vmovl_s16(vget_low_s16(dhi))), mv, av, act);
    y[3] = irnet_finish4(vcvtq_f32_s32(vmovl_high_s16(dhi)), mv, av, act);
}

/* The compare masks y[p] < 0 of one group, narrowed to byte 4p + c */
static inline __attribute__((always_inline)) uint8x16_t irnet_c16_negative(const float32x4_t y[4])
{
    const uint16x8_t m01 = vuzp1q_u16(vreinterpretq_u16_u32(vcltzq_f32(y[0])), vreinterpretq_u16_u32(vcltzq_f32(y[1])));
    const uint16x8_t m23 = vuzp1q_u16(vreinterpretq_u16_u32(vcltzq_f32(y[2])), vreinterpretq_u16_u32(vcltzq_f32(y[3])));
    return vuzp1q_u8(vreinterpretq_u8_u16(m01), vreinterpretq_u8_u16(m23));
}

/* Float output: rows [0, ho), out_f32 the output, res the residual or null, sign the sign words or null */
static inline __attribute__((always_inline)) void irnet_c16_float(const uint32_t *v, const uint32_t *hz, int pw,
    int ho, int wo, const int *rs, int nrc, const uint8_t *table, const uint8_t *wpack,
    const float *mult,
    const float *add, float *out_f32, const float *res, uint32_t *sign, const int act, const int ract,
    const int has_res, const int has_sign)
{
#define w0 irnet_load4(wpack)
#define w1 irnet_load4(wpack + 80)
#define w2 irnet_load4(wpack + 160)
#define w3 irnet_load4(wpack + 240)
#define wq0 vld1q_u8(wpack + 64)
#define wq1 vld1q_u8(wpack + 144)
#define wq2 vld1q_u8(wpack + 224)
#define wq3 vld1q_u8(wpack + 304)
    static const uint8_t bit_of[16] = {0x11, 0x22, 0x44, 0x88, 0x11, 0x22, 0x44, 0x88, 0x11, 0x22, 0x44, 0x88,
        0x11, 0x22, 0x44, 0x88};
    int oy;
#if defined(_OPENMP)
    const int threads = omp_get_max_threads() < IRNET_BCONV_NEON_THREADS ? omp_get_max_threads() :
        IRNET_BCONV_NEON_THREADS;
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
    for (oy = 0; oy < ho; ++oy) {
        int rc = 0, x;
        while (rc + 1 < nrc && oy >= rs[rc + 1]) {
            ++rc;
        }
        {
            const uint32_t *const vr = v + (size_t)oy * pw, *const hr = hz + (size_t)(oy + 2) * pw;
            const uint16_t *bt = (const uint16_t *)(table + (size_t)rc * wo * 32);
            float *o = out_f32 + (size_t)oy * wo * 16;
            const float *r = has_res ? res + (size_t)oy * wo * 16 : 0;
            for (x = 0; x < wo; x += 4, o += 64, bt += 64) {
                IRNET_C16_LOAD(vr, hr, x);
                /* two groups at a time: a pixel's 8 channels of them are adjacent, so its residual and its
                 * output are one load and one store of a pair of vectors */
                uint8x16_t sg[4];
                int g, p;
#pragma GCC unroll 2
                for (g = 0; g < 4; g += 2) {
                    float32x4_t ya[4], yb[4];
                    irnet_c16_float4(irnet_c16_group(x0, x1, x2, x3, q01, q23, g == 0 ? w0 : w2, g == 0 ? wq0 : wq2),
                        bt + 16 * g, mult + 4 * g, add + 4 * g, act, ya);
                    irnet_c16_float4(irnet_c16_group(x0, x1, x2, x3, q01, q23, g == 0 ? w1 : w3, g == 0 ? wq1 : wq3),
                        bt + 16 * g + 16, mult + 4 * g + 4, add + 4 * g + 4, act, yb);
#pragma GCC unroll 4
                    for (p = 0; p < 4; ++p) {
                        if (has_res) { /* read before o is written: r may be o */
                            ya[p] = irnet_act4(vaddq_f32(ya[p], vld1q_f32(r + 16 * p + 4 * g)), ract);
                            yb[p] = irnet_act4(vaddq_f32(yb[p], vld1q_f32(r + 16 * p + 4 * g + 4)), ract);
                        }
                        vst1q_f32(o + 16 * p + 4 * g, ya[p]);
                        vst1q_f32(o + 16 * p + 4 * g + 4, yb[p]);
                    }
                    if (has_sign) {
                        sg[g] = irnet_c16_negative(ya);
                        sg[g + 1] = irnet_c16_negative(yb);
                    }
                }
                if (has_res) {
                    r += 64;
                }
                if (has_sign) {
                    /* byte 4p + c of group g is channel 4g + c: bit c + 4 (g % 2) of byte g / 2 of the word */
                    const uint8x16_t bits = vld1q_u8(bit_of), high = vdupq_n_u8(0xF0);
                    const uint8x16_t lo = vandq_u8(vbslq_u8(high, sg[1], sg[0]), bits);
                    const uint8x16_t hi = vandq_u8(vbslq_u8(high, sg[3], sg[2]), bits);
                    const uint8x16_t sum = irnet_padd8(irnet_padd8(lo, hi), vdupq_n_u8(0));
                    /* bytes 0-3: the low bytes of pixels 0-3, 4-7 their high bytes */
                    const uint8x8_t s = vget_low_u8(sum);
                    const uint8x8_t word = vzip1_u8(s, vext_u8(s, s, 4));
                    vst1q_u32(sign + (size_t)oy * wo + x, vmovl_u16(vreinterpret_u16_u8(word)));
                }
            }
        }
    }
#undef w0
#undef w1
#undef w2
#undef w3
#undef wq0
#undef wq1
#undef wq2
#undef wq3
}
#endif

/* Cin <= 16 (one word per pixel): the images of vertically (V) and horizontally (H) paired pixels of the
 * zero-bordered copy P of the input (pw words a row, h + 2 pad rows), made straight from the input:
 * V[i] = P[i] | P[i + pw] << 16, H[i] = P[i] | P[i + 1] << 16, the partner past the end of P zero. */
static void irnet_paired_images(const uint32_t *in, int h, int w, int pad, int pw, uint32_t *v)
{
    const int ph = h + 2 * pad;
    uint32_t *const hz = v + (size_t)ph * pw;
    int y, x;
    for (y = 0; y < ph; ++y) {
        const int iy = y - pad;
        /* rows y and y + 1 of the input, or null in the border */
        const uint32_t *const a = iy >= 0 && iy < h ? in + (size_t)iy * w : 0;
        const uint32_t *const b = iy + 1 >= 0 && iy + 1 < h ? in + (size_t)(iy + 1) * w : 0;
        uint32_t *const vr = v + (size_t)y * pw + pad, *const hr = hz + (size_t)y * pw + pad;
        if (pad == 1) { /* (loops here would become calls of memset) */
            vr[-1] = hr[-1] = vr[w] = hr[w] = 0;
        } else {
            for (x = -pad; x < 0; ++x) {
                vr[x] = 0;
                hr[x] = 0;
            }
            for (x = w; x < pw - pad; ++x) {
                vr[x] = 0;
                hr[x] = 0;
            }
        }
        x = 0;
        if (a != 0 && b != 0 && w > 4) {
            /* both images at once, the row of H but its last 4 words */
            for (; x + 4 < w; x += 4) {
                const uint32x4_t ax = vld1q_u32(a + x);
                vst1q_u32(vr + x, vsliq_n_u32(ax, vld1q_u32(b + x), 16));
                vst1q_u32(hr + x, vsliq_n_u32(ax, vld1q_u32(a + x + 1), 16));
            }
            if (x + 4 == w) {
                vst1q_u32(vr + x, vsliq_n_u32(vld1q_u32(a + x), vld1q_u32(b + x), 16));
            } else {
                for (; x < w; ++x) {
                    vr[x] = a[x] | b[x] << 16;
                }
            }
        } else if (a != 0 && b != 0) {
            for (; x + 4 <= w; x += 4) {
                vst1q_u32(vr + x, vsliq_n_u32(vld1q_u32(a + x), vld1q_u32(b + x), 16));
            }
            for (; x < w; ++x) {
                vr[x] = a[x] | b[x] << 16;
            }
        } else if (a != 0) {
            memcpy(vr, a, (size_t)w * sizeof(uint32_t));
        } else if (b != 0) {
            for (; x + 4 <= w; x += 4) {
                vst1q_u32(vr + x, vshlq_n_u32(vld1q_u32(b + x), 16));
            }
            for (; x < w; ++x) {
                vr[x] = b[x] << 16;
            }
        } else {
            memset(vr, 0, (size_t)w * sizeof(uint32_t));
        }
        if (a != 0) {
            /* the last pixel's partner: the border, or without padding the next row's first pixel */
            const uint32_t last = pad == 0 && b != 0 ? b[0] : 0;
            for (x = b != 0 && w > 4 ? (w - 1) / 4 * 4 : 0; x + 4 < w; x += 4) {
                vst1q_u32(hr + x, vsliq_n_u32(vld1q_u32(a + x), vld1q_u32(a + x + 1), 16));
            }
            if (x + 4 == w) {
                const uint32x4_t lo = vld1q_u32(a + x);
                vst1q_u32(hr + x, vsliq_n_u32(lo, vextq_u32(lo, vdupq_n_u32(last), 1), 16));
            } else {
                for (; x + 1 < w; ++x) {
                    hr[x] = a[x] | a[x + 1] << 16;
                }
                hr[w - 1] = a[w - 1] | last << 16;
            }
            if (pad > 0) {
                hr[-1] = a[0] << 16;
            }
        } else {
            memset(hr, 0, (size_t)w * sizeof(uint32_t));
        }
    }
}

/* The path of irnet_c16_applies, out of line (inlined, it would cost the register allocation of the other
 * layers' loops) */
static __attribute__((noinline)) int irnet_c16_run(const irnet_bconv_params *prm, const char *images, int plane,
    int pw, const int *rs, int nrc, const int *cs, int ncc, const uint16_t *bound, int ss, uint8_t *table,
    uint32_t *wpack, uint32_t *out_bits, float *out_f32)
{
    const uint32_t *const v = (const uint32_t *)images;
    const int ho = prm->ho, wo = prm->wo, bits = out_bits != 0;
    irnet_c16_pack(prm->weight, prm->cout, bits, wpack);
    irnet_c16_table(bound, ss, nrc, ncc, cs, wo, bits, table);
    if (bits) {
        irnet_c16_bits(v, v + plane, pw, ho, wo, rs, nrc, table, (const uint8_t *)wpack, out_bits);
        return 0;
    }
#if defined(__aarch64__)
    {
        const float *const mult = prm->mult, *const add = prm->add, *const res = prm->fuse.residual;
        uint32_t *const sign = prm->fuse.sign;
        const int act = prm->act, ract = prm->fuse.residual_act;
        if (res != 0 && act == IRNET_ACT_NONE && ract == IRNET_ACT_HARDTANH) {
            irnet_c16_float(v, v + plane, pw, ho, wo, rs, nrc, table, (const uint8_t *)wpack, mult, add, out_f32,
                res, sign, IRNET_ACT_NONE, IRNET_ACT_HARDTANH, 1, sign != 0);
        } else if (res != 0 && act == IRNET_ACT_NONE && ract == IRNET_ACT_RELU) {
            irnet_c16_float(v, v + plane, pw, ho, wo, rs, nrc, table, (const uint8_t *)wpack, mult, add, out_f32,
                res, sign, IRNET_ACT_NONE, IRNET_ACT_RELU, 1, sign != 0);
        } else if (res != 0 && act == IRNET_ACT_NONE && ract == IRNET_ACT_NONE) {
            irnet_c16_float(v, v + plane, pw, ho, wo, rs, nrc, table, (const uint8_t *)wpack, mult, add, out_f32,
                res, sign, IRNET_ACT_NONE, IRNET_ACT_NONE, 1, sign != 0);
        } else if (res != 0) {
            irnet_c16_float(v, v + plane, pw, ho, wo, rs, nrc, table, (const uint8_t *)wpack, mult, add, out_f32,
                res, sign, act, ract, 1, sign != 0);
        } else if (act == IRNET_ACT_HARDTANH) {
            irnet_c16_float(v, v + plane, pw, ho, wo, rs, nrc, table, (const uint8_t *)wpack, mult, add, out_f32,
                0, sign, IRNET_ACT_HARDTANH, IRNET_ACT_NONE, 0, sign != 0);
        } else if (act == IRNET_ACT_RELU) {
            irnet_c16_float(v, v + plane, pw, ho, wo, rs, nrc, table, (const uint8_t *)wpack, mult, add, out_f32,
                0, sign, IRNET_ACT_RELU, IRNET_ACT_NONE, 0, sign != 0);
        } else if (act == IRNET_ACT_NONE) {
            irnet_c16_float(v, v + plane, pw, ho, wo, rs, nrc, table, (const uint8_t *)wpack, mult, add, out_f32,
                0, sign, IRNET_ACT_NONE, IRNET_ACT_NONE, 0, sign != 0);
        } else {
            irnet_c16_float(v, v + plane, pw, ho, wo, rs, nrc, table, (const uint8_t *)wpack, mult, add, out_f32,
                0, sign, act, IRNET_ACT_NONE, 0, sign != 0);
        }
        return sign != 0; /* the sign words are written */
    }
#else
    (void)out_f32;
    return 0;
#endif
}

/* whether irnet_bconv_neon computes with the portable irnet_bconv (pools: never fused here); the body tests
 * the same on its locals (with the call here GCC allocates the plain body's registers worse: 0.1 to 1%) */
static int irnet_bconv_neon_portable(const irnet_bconv_params *prm)
{
    return prm->k * prm->k * prm->cin > IRNET_MAX_BITS || prm->scratch == 0 || prm->fuse.pool != 0;
}

/* irnet_bconv_neon, compiled once per value of fused (a float output with a fused residual): a test per group
 * would cost the plain layers 2% of their instructions, and GCC allocates registers for a whole function. With
 * two copies GCC would call irnet_block and irnet_pack instead of inlining them (another 2%): always_inline. */
static inline __attribute__((always_inline)) void irnet_bconv_neon_body(const irnet_bconv_params *prm,
    const uint32_t *in, uint32_t *out_bits, float *out_f32, const int fused)
{
    const int h = prm->h, w = prm->w, cin = prm->cin, cout = prm->cout, k = prm->k, stride = prm->stride;
    const int pad = prm->pad, ho = prm->ho, wo = prm->wo, act = prm->act;
    const uint32_t *weight = prm->weight;
    const int32_t *threshold = prm->threshold;
    const float *mult = prm->mult, *add = prm->add;
    const int out_words = (cout + 31) / 32;
    const int bits = out_bits != 0;
    const irnet_bconv_plan q = irnet_bconv_plan_of(prm, bits);
    const irnet_fused_ops fz = fused ? irnet_fused_ops_of(prm) : (irnet_fused_ops){0, 0, 0, 0, 0, 0, 0};
    /* the scratch (irnet_bconv_neon_scratch_bytes) rounded up to 16 bytes, as the vectors kept there want */
    char *const scratch = prm->scratch != 0 ? (char *)prm->scratch + (-(uintptr_t)prm->scratch & 15) : 0;
    const int words = q.words, rn = q.rn, paired = q.paired, n = q.n, half = q.half, steps = q.steps;
    const int pw = q.pw, plane = q.plane, groups = q.groups, ss = q.ss, chunk = q.chunk, pixels = q.pixels;
    const int blocks = q.blocks, zero_pad = q.zero_pad;
    const int slots = 4 * groups;
    /* the scratch (irnet_bconv_neon_scratch_bytes): nothing of the layer's size is on the stack */
    int *const rs = (int *)(scratch + q.ranges), *const cs = rs + ho + 1, *const ky0 = cs + wo + 1;
    int *const ky1 = ky0 + ho, *const kx0 = ky1 + ho, *const kx1 = kx0 + wo;
    /* per pixel in block order: the byte offset of its first input word, its output (bits: the word index;
     * float: the byte offset, which a vector store adds as it is), its border class's bounds */
    int *const first = (int *)(scratch + q.pixel_tables), *const dest = first + blocks * IRNET_PX + 3;
    int *const klass = dest + blocks * IRNET_PX + 3;
    int *const off = (int *)(scratch + q.stream), *const woff = off + 4 * steps, *const taps = woff + n;
    int *const absent = taps + 2 * n;
    uint32_t *const padded = (uint32_t *)(scratch + q.copy);
    uint32_t *const wpack = (uint32_t *)(scratch + q.wpack), *const rows4 = (uint32_t *)(scratch + q.rows4);
    uint8x16_t *const bufs = (uint8x16_t *)(scratch + q.bufs);
#if defined(_OPENMP)
    const int threads = omp_get_max_threads() < IRNET_BCONV_NEON_THREADS ? omp_get_max_threads() :
        IRNET_BCONV_NEON_THREADS;
#endif
    const uint32_t *src = in;
    int nrc = 1, ncc = 1, b, i, g0;
    if (k * k * cin > IRNET_MAX_BITS || scratch == 0 || prm->fuse.pool != 0) { /* irnet_bconv_neon_portable */
        irnet_bconv(prm, in, out_bits, out_f32);
        return;
    }
    if (pad > 0 || paired) {
        memset(padded, 0, (size_t)plane * sizeof(uint32_t));
        for (i = 0; i < h; ++i) {
            memcpy(padded + ((i + pad) * pw + pad) * words, in + i * w * words, (size_t)(w * words) * sizeof(uint32_t));
        }
        src = padded;
    }
    if (paired) {
        /* V[i] = P[i] | P[i + pw] << 16, H[i] = P[i] | P[i + 1] << 16; at the end of the image the missing
         * partner is zero (those words are never read as a pair). P's words are the low halves of H's, so
         * that P is not kept: it lies where the pixel tables go next. */
        uint32_t *v = (uint32_t *)(scratch + q.padded), *hz = v + plane;
        for (i = 0; i + 4 <= plane - pw; i += 4) {
            vst1q_u32(v + i, vsliq_n_u32(vld1q_u32(padded + i), vld1q_u32(padded + i + pw), 16));
        }
        for (; i < plane; ++i) {
            v[i] = padded[i] | (i + pw < plane ? padded[i + pw] << 16 : 0);
        }
        for (i = 0; i + 4 <= plane - 1; i += 4) {
            vst1q_u32(hz + i, vsliq_n_u32(vld1q_u32(padded + i), vld1q_u32(padded + i + 1), 16));
        }
        for (; i < plane; ++i) {
            hz[i] = padded[i] | (i + 1 < plane ? padded[i + 1] << 16 : 0);
        }
        src = v;
    }
    if (zero_pad) {
        nrc = irnet_tap_ranges(ho, h, k, stride, pad, rs, ky0, ky1);
        ncc = irnet_tap_ranges(wo, w, k, stride, pad, cs, kx0, kx1);
    } else {
        rs[0] = cs[0] = 0;
        rs[1] = ho;
        cs[1] = wo;
        ky0[0] = kx0[0] = 0;
        ky1[0] = kx1[0] = k;
    }
    {
        /* pixels sorted by border class, so that most blocks share one class; a last partial block repeats its
         * first pixel, which writes the same results to the same place. A row of a class is written 4 pixels
         * at a time; up to 3 entries past its end are overwritten after. */
        static const int32_t iota[4] = {0, 1, 2, 3};
        const int out_stride = bits ? out_words : cout * (int)sizeof(float);
        const int in_stride = stride * words * (int)sizeof(uint32_t);
        const int32x4_t fstep = vmulq_n_s32(vld1q_s32(iota), in_stride);
        const int32x4_t dstep = vmulq_n_s32(vld1q_s32(iota), out_stride);
        int at = 0, rc, cc, oy, ox;
        for (rc = 0; rc < nrc; ++rc) {
            for (cc = 0; cc < ncc; ++cc) {
                /* read before the stores below, which the compiler cannot tell apart from the scratch's ranges */
                const int32x4_t kv = vdupq_n_s32((rc * ncc + cc) * ss);
                const int oy1 = rs[rc + 1], ox0 = cs[cc], ox1 = cs[cc + 1];
                for (oy = rs[rc]; oy < oy1; ++oy) {
                    int32x4_t fv = vaddq_s32(vdupq_n_s32((oy * pw + ox0) * in_stride), fstep);
                    int32x4_t dv = vaddq_s32(vdupq_n_s32((oy * wo + ox0) * out_stride), dstep);
                    for (ox = ox0; ox < ox1; ox += 4) {
                        vst1q_s32(first + at, fv);
                        vst1q_s32(dest + at, dv);
                        vst1q_s32(klass + at, kv);
                        fv = vaddq_s32(fv, vdupq_n_s32(4 * in_stride));
                        dv = vaddq_s32(dv, vdupq_n_s32(4 * out_stride));
                        at += ox1 - ox < 4 ? ox1 - ox : 4;
                    }
                }
            }
        }
        for (; at < blocks * IRNET_PX; ++at) {
            const int at0 = at / IRNET_PX * IRNET_PX;
            first[at] = first[at0];
            dest[at] = dest[at0];
            klass[at] = klass[at0];
        }
    }
    /* where each stream word j lies relative to its pixel's top-left word, and its taps */
    for (i = 0; i < n; ++i) {
        const int tap = i / words;
        woff[i] = ((tap / k) * pw + tap % k) * words + i % words;
        taps[2 * i] = tap;
        taps[2 * i + 1] = -1;
    }
    if (paired) {
        int ty, tx;
        i = 0;
        for (ty = 0; ty + 1 < k; ty += 2) {
            for (tx = 0; tx < k; ++tx, ++i) {
                woff[i] = ty * pw + tx;
                taps[2 * i] = ty * k + tx;
                taps[2 * i + 1] = (ty + 1) * k + tx;
            }
        }
        for (tx = 0; ty < k && tx < k; tx += 2, ++i) {
            woff[i] = plane + ty * pw + tx;
            taps[2 * i] = ty * k + tx;
            taps[2 * i + 1] = tx + 1 < k ? ty * k + tx + 1 : -1;
        }
    }
    /* the stream's words per step (the half step repeats its two words, the quarter step its one word) */
    for (i = 0; i < 4 * steps; ++i) {
        const int s = i / 4, l = i % 4;
        off[i] = woff[s < n / 4 ? i : (s == n / 4 && (n & 2) ? 4 * s + l % 2 : n - 1)];
    }
    {
        /* per border class and slot: output bits: the least popcount with dot < threshold; float output:
         * dot + 2 * popcount, that is the counted bits plus twice the absent taps' weight bits (at most
         * 2 * k * k * cin, within 16 bits) */
        uint16_t *const bound = (uint16_t *)(scratch + q.bound), *const tap_pops = (uint16_t *)(scratch + q.tap_pops);
        int32_t *const bias = (int32_t *)(scratch + q.bias);
        int g, t;
        if (zero_pad) {
            for (g = 0; g < ss / 4; ++g) {
                const uint32_t *wr[4];
                irnet_rows(weight, rn, cout, bits, g, wr);
                for (t = 0; t < k * k; t += 2) {
                    const uint16x8_t a = irnet_row_pops(wr, t * words, words);
                    const uint16x8_t v = irnet_padd16(a, t + 1 < k * k ? irnet_row_pops(wr, (t + 1) * words, words) : a);
                    vst1_u16(tap_pops + t * ss + 4 * g, vget_low_u16(v));
                    if (t + 1 < k * k) {
                        vst1_u16(tap_pops + (t + 1) * ss + 4 * g, vget_high_u16(v));
                    }
                }
            }
        }
        for (i = 0; bits && i < ss; ++i) {
            /* 2 - threshold; thresholds beyond +-32767 act as +-32768 on dots within +-32766; an empty slot
             * never sets */
            const int ch = i < slots ? irnet_slot_channel(i, cout, bits) : -1;
            const int32_t tv = ch >= 0 ? threshold[ch] : -32768;
            bias[i] = 2 - (tv < -32768 ? -32768 : tv > 32767 ? 32767 : tv);
        }
        for (i = 0; i < nrc * ncc; ++i) {
            const int rc = i / ncc, cc = i % ncc;
            const int y0 = ky0[rc], y1 = ky1[rc], x0 = kx0[cc], x1 = kx1[cc]; /* kept apart from absent[] */
            const uint16x8_t counted = vdupq_n_u16((uint16_t)((y1 - y0) * (x1 - x0) * cin));
            int na = 0, a, s;
            for (t = 0; t < k * k; ++t) {
                const int ty = t / k, tx = t % k;
                if (ty < y0 || ty >= y1 || tx < x0 || tx >= x1) {
                    absent[na++] = t * ss;
                }
            }
            for (s = 0; s < ss; s += 8) {
                uint16x8_t v = vdupq_n_u16(0);
                for (a = 0; a < na; ++a) {
                    v = vaddq_u16(v, vld1q_u16(tap_pops + absent[a] + s));
                }
                v = vmlaq_n_u16(counted, v, 2);
                if (bits) {
                    /* (v - threshold) / 2 + 1 rounded down, within [0, 32767] */
                    const int32x4_t lo = vreinterpretq_s32_u32(
                        vaddw_u16(vreinterpretq_u32_s32(vld1q_s32(bias + s)), vget_low_u16(v)));
                    const int32x4_t hi = vreinterpretq_s32_u32(
                        vaddw_u16(vreinterpretq_u32_s32(vld1q_s32(bias + s + 4)), vget_high_u16(v)));
                    v = vminq_u16(vcombine_u16(vqshrun_n_s32(lo, 1), vqshrun_n_s32(hi, 1)), vdupq_n_u16(32767));
                }
                vst1q_u16(bound + i * ss + s, v);
            }
        }
        for (g0 = 0; g0 < groups; g0 += chunk) {
            const int g1 = g0 + chunk < groups ? g0 + chunk : groups;
            irnet_pack(weight, rn, n, paired ? taps : 0, half, cout, bits, g0, g1, rows4, wpack);
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
            for (b = 0; b < blocks; ++b) {
                /* this thread's gather buffer: at most IRNET_BCONV_NEON_THREADS threads, numbered from 0 */
#if defined(_OPENMP)
                uint8x16_t *const buf = bufs + (size_t)omp_get_thread_num() * IRNET_PX * steps;
#else
                uint8x16_t *const buf = bufs;
#endif
                const int pix0 = b * IRNET_PX;
                const int np = pixels - pix0 < IRNET_PX ? pixels - pix0 : IRNET_PX;
                const int *kp = klass + pix0, *dp = dest + pix0;
                const int uniform = kp[0] == kp[np - 1];
                const uint16_t *pb[IRNET_PX];
                /* bits output: the current output word of each pixel, pixels 4i..4i+3 in m[i], a bit per group
                 * shifted in */
                uint16x8_t pop[8];
                uint8x16_t m[4];
                int p, s, j, g;
                for (s = 0; s < steps; ++s) {
                    const int *o = off + 4 * s;
                    const int *fp = first + pix0;
                    /* a pixel's words lie fp[p] bytes past these */
                    const char *const s0 = (const char *)(src + o[0]), *const s1 = (const char *)(src + o[1]);
                    const char *const s2 = (const char *)(src + o[2]), *const s3 = (const char *)(src + o[3]);
                    uint8x16_t *dst = buf + IRNET_PX * s;
                    if (half && s == steps - 1) {
                        /* the lone tap, read from H: the insert keeps the word's low half, P's word */
#pragma GCC unroll 8
                        for (p = 0; p < IRNET_PX; p += 2) {
                            const uint32x4_t v = vcombine_u32(vld1_dup_u32((const uint32_t *)(s0 + fp[p])),
                                vld1_dup_u32((const uint32_t *)(s0 + fp[p + 1])));
                            dst[p / 2] = vreinterpretq_u8_u32(vsliq_n_u32(v, v, 16));
                        }
                    } else if (o[3] - o[0] == 3) {
#pragma GCC unroll 16
                        for (p = 0; p < IRNET_PX; ++p) {
                            dst[p] = vld1q_u8((const uint8_t *)(s0 + fp[p]));
                        }
                    } else if (o[2] - o[0] == 2 && o[1] - o[0] == 1) {
                        /* a kernel row of 3 words and one more: the fourth word read is within the pixel's
                         * window (offsets increase) or within the paired images */
#pragma GCC unroll 16
                        for (p = 0; p < IRNET_PX; ++p) {
                            dst[p] = vreinterpretq_u8_u32(vld1q_lane_u32((const uint32_t *)(s3 + fp[p]),
                                vld1q_u32((const uint32_t *)(s0 + fp[p])), 3));
                        }
                    } else if (o[0] == o[3]) {
#pragma GCC unroll 16
                        for (p = 0; p < IRNET_PX; ++p) {
                            dst[p] = vreinterpretq_u8_u32(vld1q_dup_u32((const uint32_t *)(s0 + fp[p])));
                        }
                    } else if (o[1] - o[0] == 1 && o[3] - o[2] == 1) {
#pragma GCC unroll 16
                        for (p = 0; p < IRNET_PX; ++p) {
                            dst[p] = vcombine_u8(vld1_u8((const uint8_t *)(s0 + fp[p])),
                                vld1_u8((const uint8_t *)(s2 + fp[p])));
                        }
                    } else {
                        for (p = 0; p < IRNET_PX; ++p) {
                            uint32x4_t v = vld1q_dup_u32((const uint32_t *)(s0 + fp[p]));
                            v = vld1q_lane_u32((const uint32_t *)(s1 + fp[p]), v, 1);
                            v = vld1q_lane_u32((const uint32_t *)(s2 + fp[p]), v, 2);
                            v = vld1q_lane_u32((const uint32_t *)(s3 + fp[p]), v, 3);
                            dst[p] = vreinterpretq_u8_u32(v);
                        }
                    }
                }
                pb[0] = bound + kp[0];
                for (p = 1; !uniform && p < IRNET_PX; ++p) { /* a uniform block reads pb[0] only */
                    pb[p] = bound + kp[p];
                }
                for (j = 0; j < 4; ++j) {
                    m[j] = vdupq_n_u8(0);
                }
                for (g = g0; g < g1; ++g) {
                    const int co = 4 * g;
                    irnet_block((const uint8_t *)buf, (const uint8_t *)(wpack + (g - g0) * 4 * n), n, half, pop);
                    if (bits) {
                        const int ng = g1 - (g & ~7) < 8 ? g1 - (g & ~7) : 8;
                        uint32_t word[IRNET_PX];
                        if (uniform) {
                            const uint16x4_t v = vld1_u16(pb[0] + co);
                            const uint16x8_t bnd = vcombine_u16(v, v);
                            IRNET_SHIFT_IN(IRNET_UNIFORM_BOUND);
                        } else {
                            IRNET_SHIFT_IN(IRNET_CLASS_BOUND);
                        }
                        if ((g & 7) != ng - 1) {
                            continue;
                        }
                        if (ng == 8) {
                            for (j = 0; j < 4; ++j) {
                                vst1q_u32(word + 4 * j, vreinterpretq_u32_u8(m[j]));
                            }
                        } else if (ng == 4) {
                            /* 16 channels: byte c's bits 4-7 go to 4c..4c+3; adding a 16-bit lane's high nibble
                             * shifted down 4 joins two channels' nibbles in its low byte, which narrows into place */
                            for (j = 0; j < 4; ++j) {
                                const uint16x8_t x = vreinterpretq_u16_u8(vshrq_n_u8(m[j], 4));
                                const uint8x8_t nibbles = vmovn_u16(vsraq_n_u16(x, x, 4));
                                vst1q_u32(word + 4 * j, vmovl_u16(vreinterpret_u16_u8(nibbles)));
                            }
                        } else {
                            /* a short last word: byte c's bit of group g, at 8 - ng + g, goes to g + ng * c */
                            static const int32_t lanes[4] = {1, 2, 3, 4};
                            const int32x4_t sh = vsubq_s32(vmulq_n_s32(vld1q_s32(lanes), ng), vdupq_n_s32(8));
                            for (j = 0; j < 4; ++j) {
                                const uint16x8_t lo = vmovl_u8(vget_low_u8(m[j])), hi = vmovl_u8(vget_high_u8(m[j]));
                                vst1q_u32(word + 4 * j, irnet_padd32(
                                    irnet_padd32(vshlq_u32(vmovl_u16(vget_low_u16(lo)), sh),
                                        vshlq_u32(vmovl_u16(vget_high_u16(lo)), sh)),
                                    irnet_padd32(vshlq_u32(vmovl_u16(vget_low_u16(hi)), sh),
                                        vshlq_u32(vmovl_u16(vget_high_u16(hi)), sh))));
                            }
                        }
#pragma GCC unroll 16
                        for (p = 0; p < IRNET_PX; ++p) {
                            out_bits[dp[p] + g / 8] = word[p];
                        }
                        for (j = 0; j < 4; ++j) { /* a short word needs zeros below its bits */
                            m[j] = vdupq_n_u8(0);
                        }
                    } else if (fused) {
                        /* the dot is bound - 2 * pop, within 16 bits (|dot| <= k * k * cin), computed in place
                         * of pop: no vector of bounds stays live into the fused ops, which want registers */
                        if (uniform) {
                            const uint16x4_t v = vld1_u16(pb[0] + co);
                            const uint16x8_t bnd = vcombine_u16(v, v);
#pragma GCC unroll 8
                            for (j = 0; j < 8; ++j) {
                                pop[j] = vmlsq_n_u16(bnd, pop[j], 2);
                            }
                        } else {
#pragma GCC unroll 8
                            for (j = 0; j < 8; ++j) {
                                pop[j] = vmlsq_n_u16(IRNET_CLASS_BOUND(j), pop[j], 2);
                            }
                        }
                        irnet_fused_group(&fz, out_f32, dp, np, co, pop);
                    } else {
                        /* the dot is bound - 2 * pop */
                        uint16x8_t bd[8];
                        if (uniform) {
                            const uint16x4_t v = vld1_u16(pb[0] + co);
                            for (j = 0; j < 8; ++j) {
                                bd[j] = vcombine_u16(v, v);
                            }
                        } else {
#pragma GCC unroll 8
                            for (j = 0; j < 8; ++j) {
                                bd[j] = IRNET_CLASS_BOUND(j);
                            }
                        }
#if defined(__aarch64__)
                        if (co + 4 <= cout) {
                            const float32x4_t mv = vld1q_f32(mult + co), av = vld1q_f32(add + co);
                            char *const o = (char *)(out_f32 + co);
                            if (act == IRNET_ACT_HARDTANH) {
                                irnet_store16(o, dp, pop, bd, mv, av, IRNET_ACT_HARDTANH);
                            } else if (act == IRNET_ACT_RELU) {
                                irnet_store16(o, dp, pop, bd, mv, av, IRNET_ACT_RELU);
                            } else if (act == IRNET_ACT_SIGN) {
                                irnet_store16(o, dp, pop, bd, mv, av, IRNET_ACT_SIGN);
                            } else {
                                irnet_store16(o, dp, pop, bd, mv, av, act);
                            }
                        } else
#endif
                        {
                            int16_t dot[8 * 8];
                            int c;
#pragma GCC unroll 8
                            for (j = 0; j < 8; ++j) {
                                vst1q_s16(dot + 8 * j, vreinterpretq_s16_u16(vmlsq_n_u16(bd[j], pop[j], 2)));
                            }
                            for (p = 0; p < np; ++p) {
                                float *const y_out = (float *)((char *)out_f32 + dp[p]) + co;
                                for (c = 0; c < 4 && co + c < cout; ++c) {
                                    float y = (float)dot[4 * p + c] * mult[co + c];
                                    IRNET_FENCE(y);
                                    y = y + add[co + c];
                                    y_out[c] = irnet_activate(y, act);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/* The path of irnet_c16_run where it applies (else -1; then irnet_bconv_neon_body computes): its own set-up of
 * the scratch as the body lays it out (the paired images, the border ranges and the bounds per class, computed as
 * the body computes them), then the rows. Returns whether the fused sign words are written. */
static __attribute__((noinline)) int irnet_c16(const irnet_bconv_params *prm, const uint32_t *in,
    uint32_t *out_bits, float *out_f32)
{
    const int bits = out_bits != 0;
    if (prm->cin > 16 || prm->k != 3 || prm->stride != 1 || prm->cout != 16 || prm->wo % 4 != 0 || prm->pad > 2 ||
        prm->scratch == 0 || prm->fuse.pool != 0) {
        /* the border pixels (x < pad or x >= wo - pad) must lie in the first and the last block; a pad of k or
         * more leaves windows without taps, which the body's bounds do not take (the body computes those) */
        return -1;
    }
#if !defined(__aarch64__)
    if (!bits) {
        return -1; /* armv7 finishes floats in scalar code: the body */
    }
#endif
    {
        const int k = 3, cin = prm->cin, cout = 16, h = prm->h, w = prm->w, pad = prm->pad, ho = prm->ho;
        const int wo = prm->wo;
        const irnet_bconv_plan q = irnet_bconv_plan_of(prm, bits);
        char *const scratch = (char *)prm->scratch + (-(uintptr_t)prm->scratch & 15);
        const int ss = q.ss, slots = 4 * q.groups;
        int *const rs = (int *)(scratch + q.ranges), *const cs = rs + ho + 1, *const ky0 = cs + wo + 1;
        int *const ky1 = ky0 + ho, *const kx0 = ky1 + ho, *const kx1 = kx0 + wo;
        int *const absent = (int *)(scratch + q.stream) + 4 * q.steps + 3 * q.n;
        uint16_t *const bound = (uint16_t *)(scratch + q.bound), *const tap_pops = (uint16_t *)(scratch + q.tap_pops);
        int32_t *const bias = (int32_t *)(scratch + q.bias);
        uint8_t *const table = (uint8_t *)(scratch + q.pixel_tables);
        int nrc = 1, ncc = 1, g, t, i;
        if (q.zero_pad) {
            nrc = irnet_tap_ranges(ho, h, k, 1, pad, rs, ky0, ky1);
            ncc = irnet_tap_ranges(wo, w, k, 1, pad, cs, kx0, kx1);
        } else {
            rs[0] = cs[0] = 0;
            rs[1] = ho;
            cs[1] = wo;
            ky0[0] = kx0[0] = 0;
            ky1[0] = kx1[0] = k;
        }
        if (((size_t)nrc * (size_t)(wo / 4) + 3) * (bits ? 64u : 128u) + 64 > (size_t)(q.stream - q.pixel_tables)) {
            return -1; /* the block table would not fit where the pixel tables lie */
        }
        irnet_paired_images(in, h, w, pad, q.pw, (uint32_t *)(scratch + q.padded));
        /* the bounds per border class and slot, as irnet_bconv_neon_body computes them */
        if (q.zero_pad) {
            for (g = 0; g < ss / 4; ++g) {
                const uint32_t *wr[4];
                irnet_rows(prm->weight, 9, cout, bits, g, wr);
                for (t = 0; t < 9; t += 2) {
                    const uint16x8_t a = irnet_row_pops(wr, t, 1);
                    const uint16x8_t v = irnet_padd16(a, t + 1 < 9 ? irnet_row_pops(wr, t + 1, 1) : a);
                    vst1_u16(tap_pops + t * ss + 4 * g, vget_low_u16(v));
                    if (t + 1 < 9) {
                        vst1_u16(tap_pops + (t + 1) * ss + 4 * g, vget_high_u16(v));
                    }
                }
            }
        }
        for (i = 0; bits && i < ss; ++i) {
            const int ch = i < slots ? irnet_slot_channel(i, cout, bits) : -1;
            const int32_t tv = ch >= 0 ? prm->threshold[ch] : -32768;
            bias[i] = 2 - (tv < -32768 ? -32768 : tv > 32767 ? 32767 : tv);
        }
        for (i = 0; i < nrc * ncc; ++i) {
            const int rc = i / ncc, cc = i % ncc;
            const int y0 = ky0[rc], y1 = ky1[rc], x0 = kx0[cc], x1 = kx1[cc];
            const uint16x8_t counted = vdupq_n_u16((uint16_t)((y1 - y0) * (x1 - x0) * cin));
            int na = 0, a, s;
            for (t = 0; t < 9; ++t) {
                const int ty = t / 3, tx = t % 3;
                if (ty < y0 || ty >= y1 || tx < x0 || tx >= x1) {
                    absent[na++] = t * ss;
                }
            }
            for (s = 0; s < ss; s += 8) {
                uint16x8_t v = vdupq_n_u16(0);
                for (a = 0; a < na; ++a) {
                    v = vaddq_u16(v, vld1q_u16(tap_pops + absent[a] + s));
                }
                v = vmlaq_n_u16(counted, v, 2);
                if (bits) {
                    const int32x4_t lo = vreinterpretq_s32_u32(
                        vaddw_u16(vreinterpretq_u32_s32(vld1q_s32(bias + s)), vget_low_u16(v)));
                    const int32x4_t hi = vreinterpretq_s32_u32(
                        vaddw_u16(vreinterpretq_u32_s32(vld1q_s32(bias + s + 4)), vget_high_u16(v)));
                    v = vminq_u16(vcombine_u16(vqshrun_n_s32(lo, 1), vqshrun_n_s32(hi, 1)), vdupq_n_u16(32767));
                }
                vst1q_u16(bound + i * ss + s, v);
            }
        }
        return irnet_c16_run(prm, scratch + q.padded, q.plane, q.pw, rs, nrc, cs, ncc, bound, ss, table,
            (uint32_t *)(scratch + q.wpack), out_bits, out_f32);
    }
}

static __attribute__((noinline)) void irnet_bconv_neon_plain(const irnet_bconv_params *prm, const uint32_t *in,
    uint32_t *out_bits, float *out_f32)
{
    irnet_bconv_neon_body(prm, in, out_bits, out_f32, 0);
}

static __attribute__((noinline)) void irnet_bconv_neon_fused(const irnet_bconv_params *prm, const uint32_t *in,
    float *out_f32)
{
    irnet_bconv_neon_body(prm, in, 0, out_f32, 1);
}

void irnet_bconv_neon(const irnet_bconv_params *prm, const uint32_t *in, uint32_t *out_bits, float *out_f32)
{
    int c16;
    if (prm->pad >= prm->k) { /* windows wholly in the padding, which the blocked paths are not written for */
        irnet_bconv(prm, in, out_bits, out_f32);
        return;
    }
    c16 = irnet_c16(prm, in, out_bits, out_f32);
    if (c16 >= 0) {
        if (c16 > 0 || out_bits != 0 || prm->fuse.sign == 0) {
            return;
        }
    } else if (out_bits == 0 && prm->fuse.residual != 0) {
        irnet_bconv_neon_fused(prm, in, out_f32);
    } else {
        irnet_bconv_neon_plain(prm, in, out_bits, out_f32);
    }
    if (out_bits == 0 && prm->fuse.sign != 0 && !irnet_bconv_neon_portable(prm)) {
        /* packing the finished output costs less than gathering each group's bits and scattering the words */
        irnet_sign_pack_fast(out_f32, prm->ho * prm->wo, prm->cout, prm->fuse.sign);
    }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#else
typedef int irnet_kernels_neon_unused; /* ISO C wants at least one declaration */
#endif
