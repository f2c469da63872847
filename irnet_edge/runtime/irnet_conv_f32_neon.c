/* irnet-edge runtime, NEON float kernels (aarch64 and armv7 with NEON; compiled to nothing elsewhere): the
 * arithmetic of irnet_conv_f32 and irnet_maxpool2d_f32 in irnet_kernels.c (their oracles), bit for bit.
 *
 * Float convolution (stem, 1x1 downsample, classifier): weights [kh][kw][Cin][Cout]. Every output channel sums
 * x * w over the present taps ky, kx, ci in the order of irnet_conv_f32, starting from +0.0, one multiply and one
 * add per term (no fused multiply-add: irnet_exact.h), then y = acc * mult, y = y + add.
 *  - aarch64, every layer with 16 or more output channels: a register block of 4 output pixels of a row
 *    x 16 output channels (16 accumulator vectors). Per tap and group of 4 input channels one 128-bit load per
 *    pixel; each input channel's weights for the 16 channels are one 4-vector load, and multiply by vector
 *    element (FMUL by element) takes the pixel's input straight from its lane: no broadcast. The pixels of a
 *    block have the same present taps (blocks lie where every column tap is inside the map; the rows' taps are
 *    common to a row of outputs), so each lane still sums its own output's terms in the oracle's order.
 *    The border pixels (some column taps outside the map) take the same path one pixel at a time. A pixel
 *    or block whose last 128-bit load would pass the end of the input map (the last pixels where Cin % 4 != 0)
 *    goes through the per-pixel path below. mult and add are loaded once per block, the activation chosen once.
 *  - aarch64, other layers and the last cout % 16 channels: per pixel, 16 channels in 4 vectors, the input
 *    broadcast per channel; the last 1-3 channels through the scalar loop.
 *  - armv7 NEON float flushes subnormals to zero, so armv7 runs the per-pixel scalar loop in VFP code.
 *  - Fused ops of a float output (irnet_fusion): every store adds its residual (read just before, so in place is
 *    exact) and applies residual_act; the sign words of a row are packed once the row is done, by its thread
 *    (irnet_sign_pack_fast). A pool goes to the portable kernel.
 *  - Built with -fopenmp, output rows are shared among threads; every output is computed by one thread exactly
 *    as without threads.
 *
 * Max-pool on floats (overlapping, padded; docs/arithmetic.md "Overlapping pooling"): per output, best = the
 * window's first pixel inside the map, then for every later pixel in row-major order best = v where v > best
 * (v < best on min channels). On aarch64 16 (then 4) channels per step with a compare and a bitwise select
 * (FCMGT, BSL): exactly "replace on strictly greater", so ties keep the earlier value (+0.0 and -0.0 alike) and
 * a NaN neither replaces nor is replaced (FMAX would do both differently). Min channels compare -v > -best: the
 * sign bit flipped on load and back on store (exact, NaNs included), so one loop serves both. armv7 NEON float
 * compares flush subnormals, so armv7 uses the portable kernel. The tiling max-pool (irnet_maxpool_f32_neon,
 * stride k, no padding) is the same pool; its 2x2 windows over multiples of 16 channels visit their 4 pixels
 * written out, in the same order. */
#include "irnet_internal.h"

#if defined(__ARM_NEON)
#include <arm_neon.h>
#include <stdint.h>
#include <string.h>


/* GCC's first scheduling pass hoists the loads of the 16-accumulator block above its arithmetic and then
 * spills accumulators. armv7 has no such block and keeps the pass (its float conv compiles as it always did). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__aarch64__)
#pragma GCC push_options
#pragma GCC optimize("no-schedule-insns")
#endif

#include "irnet_neon_float.h" /* after the pragmas above: its inline helpers must share them */

#if defined(__aarch64__)

/* acc = acc + w * x[lane], the product fenced as above (the lane must be a constant) */
#define IRNET_MAC_LANE(acc, w, x, lane) do { \
        float32x4_t product_ = vmulq_laneq_f32(w, x, lane); \
        IRNET_FENCE(product_); \
        acc = vaddq_f32(acc, product_); \
    } while (0)

/* the 4 channels' output bits y < 0 (y = acc * m + a), as bits 0-3 */
static inline uint32_t irnet_f32_sign4(float32x4_t acc, float32x4_t m, float32x4_t a)
{
    static const uint32_t bit_values[4] = {1, 2, 4, 8};
    const float32x4_t y = vaddq_f32(irnet_mul4(acc, m), a);
    return vaddvq_u32(vandq_u32(vcltq_f32(y, vdupq_n_f32(0.0f)), vld1q_u32(bit_values)));
}

/* The pointer p, as the compiler sees it, depends on the accumulators (no instruction): a load through p then
 * waits for their computation. Without it GCC hoists the weight loads of every input channel of a tap above
 * their arithmetic and spills accumulators (clang, too). */
#define IRNET_AFTER_PIXEL(p) __asm__("" : "+r"(p) : "w"(a00), "w"(a01), "w"(a02), "w"(a03))
#define IRNET_AFTER_BLOCK(p) __asm__("" : "+r"(p) : "w"(a00), "w"(a01), "w"(a02), "w"(a03), "w"(a10), "w"(a11), \
        "w"(a12), "w"(a13), "w"(a20), "w"(a21), "w"(a22), "w"(a23), "w"(a30), "w"(a31), "w"(a32), "w"(a33))

/* One input channel (lane L of the pixels' input vectors v0..v3) into the 4 pixels x 16 channels: its 16
 * weights are at wc, which then moves to the next input channel's */
#define IRNET_BLOCK_STEP(L) do { \
        float32x4x4_t wv; \
        IRNET_AFTER_BLOCK(wc); \
        wv = vld1q_f32_x4(wc); \
        wc += cout; \
        IRNET_MAC_LANE(a00, wv.val[0], v0, L); \
        IRNET_MAC_LANE(a01, wv.val[1], v0, L); \
        IRNET_MAC_LANE(a02, wv.val[2], v0, L); \
        IRNET_MAC_LANE(a03, wv.val[3], v0, L); \
        IRNET_MAC_LANE(a10, wv.val[0], v1, L); \
        IRNET_MAC_LANE(a11, wv.val[1], v1, L); \
        IRNET_MAC_LANE(a12, wv.val[2], v1, L); \
        IRNET_MAC_LANE(a13, wv.val[3], v1, L); \
        IRNET_MAC_LANE(a20, wv.val[0], v2, L); \
        IRNET_MAC_LANE(a21, wv.val[1], v2, L); \
        IRNET_MAC_LANE(a22, wv.val[2], v2, L); \
        IRNET_MAC_LANE(a23, wv.val[3], v2, L); \
        IRNET_MAC_LANE(a30, wv.val[0], v3, L); \
        IRNET_MAC_LANE(a31, wv.val[1], v3, L); \
        IRNET_MAC_LANE(a32, wv.val[2], v3, L); \
        IRNET_MAC_LANE(a33, wv.val[3], v3, L); \
    } while (0)

/* the same for one pixel (input vector v0) */
#define IRNET_PIXEL_STEP(L) do { \
        float32x4x4_t wv; \
        IRNET_AFTER_PIXEL(wc); \
        wv = vld1q_f32_x4(wc); \
        wc += cout; \
        IRNET_MAC_LANE(a00, wv.val[0], v0, L); \
        IRNET_MAC_LANE(a01, wv.val[1], v0, L); \
        IRNET_MAC_LANE(a02, wv.val[2], v0, L); \
        IRNET_MAC_LANE(a03, wv.val[3], v0, L); \
    } while (0)

/* The sums of 4 output pixels (columns ix0, ix0 + stride, ...: every column tap inside the map) x 16 channels
 * co..co + 15 over the rows ky0..ky1 - 1, into acc[4 * p + j] (pixel p, channels co + 4j..). Inlined with a
 * constant cin, so the loop over groups of 4 input channels and the lanes unroll. */
static inline __attribute__((always_inline)) void irnet_conv_block4(const float *in, const float *weight, int w,
    int cin, int cout, int k, int stride, int iy0, int ky0, int ky1, int ix0, int co, float32x4_t acc[16])
{
    const float32x4_t zero = vdupq_n_f32(0.0f);
    float32x4_t a00 = zero, a01 = zero, a02 = zero, a03 = zero, a10 = zero, a11 = zero, a12 = zero, a13 = zero;
    float32x4_t a20 = zero, a21 = zero, a22 = zero, a23 = zero, a30 = zero, a31 = zero, a32 = zero, a33 = zero;
    const long step = (long)stride * cin;
    int ky, kx, c0;
    for (ky = ky0; ky < ky1; ++ky) {
        const float *x0 = in + ((long)(iy0 + ky) * w + ix0) * cin;
        const float *wc0 = weight + (long)ky * k * cin * cout + co;
        for (kx = 0; kx < k; ++kx) {
            for (c0 = 0; c0 < cin; c0 += 4) {
                const float *wc = wc0 + (long)c0 * cout; /* input channel c0's 16 weights, then the next's */
                const float32x4_t v0 = vld1q_f32(x0 + c0), v1 = vld1q_f32(x0 + step + c0);
                const float32x4_t v2 = vld1q_f32(x0 + 2 * step + c0), v3 = vld1q_f32(x0 + 3 * step + c0);
                IRNET_BLOCK_STEP(0);
                if (cin - c0 > 1) {
                    IRNET_BLOCK_STEP(1);
                }
                if (cin - c0 > 2) {
                    IRNET_BLOCK_STEP(2);
                }
                if (cin - c0 > 3) {
                    IRNET_BLOCK_STEP(3);
                }
            }
            x0 += cin;
            wc0 += (long)cin * cout;
        }
    }
    acc[0] = a00, acc[1] = a01, acc[2] = a02, acc[3] = a03, acc[4] = a10, acc[5] = a11, acc[6] = a12;
    acc[7] = a13, acc[8] = a20, acc[9] = a21, acc[10] = a22, acc[11] = a23, acc[12] = a30, acc[13] = a31;
    acc[14] = a32, acc[15] = a33;
}

/* The sums of one output pixel (its column taps kx0..kx1 - 1 inside the map) x 16 channels co..co + 15 over the
 * rows ky0..ky1 - 1, into acc[j] (channels co + 4j..): the border pixels of a blocked layer */
static inline __attribute__((always_inline)) void irnet_conv_block1(const float *in, const float *weight, int w,
    int cin, int cout, int k, int iy0, int ky0, int ky1, int ix0, int kx0, int kx1, int co, float32x4_t acc[4])
{
    const float32x4_t zero = vdupq_n_f32(0.0f);
    float32x4_t a00 = zero, a01 = zero, a02 = zero, a03 = zero;
    int ky, kx, c0;
    for (ky = ky0; ky < ky1; ++ky) {
        const float *x0 = in + ((long)(iy0 + ky) * w + ix0 + kx0) * cin;
        const float *wc0 = weight + (long)(ky * k + kx0) * cin * cout + co;
        for (kx = kx0; kx < kx1; ++kx) {
            for (c0 = 0; c0 < cin; c0 += 4) {
                const float *wc = wc0 + (long)c0 * cout;
                const float32x4_t v0 = vld1q_f32(x0 + c0);
                IRNET_PIXEL_STEP(0);
                if (cin - c0 > 1) {
                    IRNET_PIXEL_STEP(1);
                }
                if (cin - c0 > 2) {
                    IRNET_PIXEL_STEP(2);
                }
                if (cin - c0 > 3) {
                    IRNET_PIXEL_STEP(3);
                }
            }
            x0 += cin;
            wc0 += (long)cin * cout;
        }
    }
    acc[0] = a00, acc[1] = a01, acc[2] = a02, acc[3] = a03;
}

static void irnet_conv_block1_any(const float *in, const float *weight, int w, int cin, int cout, int k, int iy0,
    int ky0, int ky1, int ix0, int kx0, int kx1, int co, float32x4_t acc[4])
{
    switch (cin) {
    case 1: irnet_conv_block1(in, weight, w, 1, cout, k, iy0, ky0, ky1, ix0, kx0, kx1, co, acc); break;
    case 2: irnet_conv_block1(in, weight, w, 2, cout, k, iy0, ky0, ky1, ix0, kx0, kx1, co, acc); break;
    case 3: irnet_conv_block1(in, weight, w, 3, cout, k, iy0, ky0, ky1, ix0, kx0, kx1, co, acc); break;
    case 4: irnet_conv_block1(in, weight, w, 4, cout, k, iy0, ky0, ky1, ix0, kx0, kx1, co, acc); break;
    default: irnet_conv_block1(in, weight, w, cin, cout, k, iy0, ky0, ky1, ix0, kx0, kx1, co, acc); break;
    }
}

static void irnet_conv_block4_any(const float *in, const float *weight, int w, int cin, int cout, int k,
    int stride, int iy0, int ky0, int ky1, int ix0, int co, float32x4_t acc[16])
{
    switch (cin) { /* a constant Cin for the stem's 3 channels and the other small counts */
    case 1: irnet_conv_block4(in, weight, w, 1, cout, k, stride, iy0, ky0, ky1, ix0, co, acc); break;
    case 2: irnet_conv_block4(in, weight, w, 2, cout, k, stride, iy0, ky0, ky1, ix0, co, acc); break;
    case 3: irnet_conv_block4(in, weight, w, 3, cout, k, stride, iy0, ky0, ky1, ix0, co, acc); break;
    case 4: irnet_conv_block4(in, weight, w, 4, cout, k, stride, iy0, ky0, ky1, ix0, co, acc); break;
    default: irnet_conv_block4(in, weight, w, cin, cout, k, stride, iy0, ky0, ky1, ix0, co, acc); break;
    }
}
#endif

#if defined(__aarch64__)
/* Output pixel (oy, ox), channels co_first..cout - 1, one pixel at a time (its bits word(s) already cleared) */
static inline __attribute__((always_inline)) void irnet_conv_f32_pixel(const irnet_conv_f32_params *prm,
    const float *in, uint32_t *bits, float *outs, const float *res,
    int oy, int ox, int co_first)
{
    const int residual_act = prm->fuse.residual_act;
    const int h = prm->h, w = prm->w, cin = prm->cin, cout = prm->cout, k = prm->k, stride = prm->stride;
    const int pad = prm->pad, act = prm->act;
    const float *weight = prm->weight, *mult = prm->mult, *add = prm->add;
    const int iy0 = oy * stride - pad;
    const int ky0 = iy0 < -prm->rows_above ? -prm->rows_above - iy0 : 0;
    const int ky1 = iy0 + k > h ? h - iy0 : k;
    const int ix0 = ox * stride - pad;
    const int kx0 = ix0 < 0 ? -ix0 : 0;
    const int kx1 = ix0 + k > w ? w - ix0 : k;
    int co = co_first, ky, kx, ci;
#if defined(__aarch64__)
    while (co + 4 <= cout) {
        const int nv = cout - co >= 16 ? 4 : (cout - co) / 4;
        float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
        int j;
        for (ky = ky0; ky < ky1; ++ky) {
            for (kx = kx0; kx < kx1; ++kx) {
                const float *xt = in + ((iy0 + ky) * w + ix0 + kx) * cin;
                const float *wt = weight + ((ky * k + kx) * cin) * cout + co;
                if (nv == 4) {
                    for (ci = 0; ci < cin; ++ci) {
                        const float32x4_t x = vld1q_dup_f32(xt + ci);
                        const float32x4x4_t wv = vld1q_f32_x4(wt + ci * cout);
                        acc[0] = vaddq_f32(acc[0], irnet_mul4(x, wv.val[0]));
                        acc[1] = vaddq_f32(acc[1], irnet_mul4(x, wv.val[1]));
                        acc[2] = vaddq_f32(acc[2], irnet_mul4(x, wv.val[2]));
                        acc[3] = vaddq_f32(acc[3], irnet_mul4(x, wv.val[3]));
                    }
                } else {
                    for (ci = 0; ci < cin; ++ci) {
                        const float32x4_t x = vld1q_dup_f32(xt + ci);
                        for (j = 0; j < nv; ++j) {
                            acc[j] = vaddq_f32(acc[j], irnet_mul4(x, vld1q_f32(wt + ci * cout + 4 * j)));
                        }
                    }
                }
            }
        }
        for (j = 0; j < nv; ++j) {
            const int c = co + 4 * j;
            if (bits != 0) {
                bits[c / 32] |= irnet_f32_sign4(acc[j], vld1q_f32(mult + c), vld1q_f32(add + c)) << (c & 31);
            } else {
                float32x4_t z = irnet_finish4(acc[j], vld1q_f32(mult + c), vld1q_f32(add + c), act);
                if (res != 0) {
                    z = irnet_act4(vaddq_f32(z, vld1q_f32(res + c)), residual_act);
                }
                vst1q_f32(outs + c, z);
            }
        }
        co += 4 * nv;
    }
#endif
    for (; co < cout; ++co) {
        float acc = 0.0f;
        float y;
        for (ky = ky0; ky < ky1; ++ky) {
            for (kx = kx0; kx < kx1; ++kx) {
                const float *xt = in + ((iy0 + ky) * w + ix0 + kx) * cin;
                const float *wt = weight + ((ky * k + kx) * cin) * cout + co;
                for (ci = 0; ci < cin; ++ci) {
                    float product = xt[ci] * wt[ci * cout];
                    IRNET_FENCE(product);
                    acc = acc + product;
                }
            }
        }
        y = acc * mult[co];
        IRNET_FENCE(y);
        y = y + add[co];
        if (bits != 0) {
            bits[co / 32] |= (uint32_t)(y < 0.0f) << (co & 31);
        } else {
            y = irnet_activate(y, act);
            outs[co] = res != 0 ? irnet_activate(y + res[co], residual_act) : y;
        }
    }
}
#endif

#if defined(__aarch64__)
/* Output transform of 16 channels co.. of np output pixels pixel0.. from their sums acc[4 * p + j]; mult and add
 * loaded once. Called with a constant act (with act known only at run time, each vector would branch on it). */
static inline __attribute__((always_inline)) void irnet_conv_f32_store(const irnet_conv_f32_params *prm,
    const float32x4_t *acc, int np, long pixel0, int co, uint32_t *out_bits, float *out_f32, int act,
    const float *res, int residual_act)
{
    const int out_words = (prm->cout + 31) / 32;
    const float32x4_t m0 = vld1q_f32(prm->mult + co), m1 = vld1q_f32(prm->mult + co + 4);
    const float32x4_t m2 = vld1q_f32(prm->mult + co + 8), m3 = vld1q_f32(prm->mult + co + 12);
    const float32x4_t a0 = vld1q_f32(prm->add + co), a1 = vld1q_f32(prm->add + co + 4);
    const float32x4_t a2 = vld1q_f32(prm->add + co + 8), a3 = vld1q_f32(prm->add + co + 12);
    int p;
    for (p = 0; p < np; ++p) {
        const float32x4_t *y = acc + 4 * p;
        if (out_bits != 0) { /* bits 0-15 of the channels' word: co is a multiple of 16 */
            const uint32_t b = irnet_f32_sign4(y[0], m0, a0) | irnet_f32_sign4(y[1], m1, a1) << 4 |
                               irnet_f32_sign4(y[2], m2, a2) << 8 | irnet_f32_sign4(y[3], m3, a3) << 12;
            out_bits[(pixel0 + p) * out_words + co / 32] |= b << (co & 31);
        } else {
            float *o = out_f32 + (pixel0 + p) * prm->cout + co;
            float32x4_t z0 = irnet_finish4(y[0], m0, a0, act), z1 = irnet_finish4(y[1], m1, a1, act);
            float32x4_t z2 = irnet_finish4(y[2], m2, a2, act), z3 = irnet_finish4(y[3], m3, a3, act);
            if (res != 0) { /* read before written: res may be out_f32 */
                const float32x4x4_t r = vld1q_f32_x4(res + (pixel0 + p) * prm->cout + co);
                z0 = irnet_act4(vaddq_f32(z0, r.val[0]), residual_act);
                z1 = irnet_act4(vaddq_f32(z1, r.val[1]), residual_act);
                z2 = irnet_act4(vaddq_f32(z2, r.val[2]), residual_act);
                z3 = irnet_act4(vaddq_f32(z3, r.val[3]), residual_act);
            }
            vst1q_f32(o, z0);
            vst1q_f32(o + 4, z1);
            vst1q_f32(o + 8, z2);
            vst1q_f32(o + 12, z3);
        }
    }
}

static inline __attribute__((always_inline)) void irnet_conv_f32_store_any(const irnet_conv_f32_params *prm,
    const float32x4_t *acc, int np, long pixel0, int co, uint32_t *out_bits, float *out_f32, const int fused)
{
    if (fused && prm->fuse.residual != 0) {
        irnet_conv_f32_store(prm, acc, np, pixel0, co, 0, out_f32, prm->act, prm->fuse.residual,
                             prm->fuse.residual_act);
    } else if (out_bits != 0 || prm->act == IRNET_ACT_NONE) {
        irnet_conv_f32_store(prm, acc, np, pixel0, co, out_bits, out_f32, IRNET_ACT_NONE, 0, 0);
    } else if (prm->act == IRNET_ACT_HARDTANH) {
        irnet_conv_f32_store(prm, acc, np, pixel0, co, out_bits, out_f32, IRNET_ACT_HARDTANH, 0, 0);
    } else if (prm->act == IRNET_ACT_RELU) {
        irnet_conv_f32_store(prm, acc, np, pixel0, co, out_bits, out_f32, IRNET_ACT_RELU, 0, 0);
    } else {
        irnet_conv_f32_store(prm, acc, np, pixel0, co, out_bits, out_f32, prm->act, 0, 0);
    }
}
#endif

#if defined(__aarch64__)
/* Output pixel (oy, ox), all channels, one pixel at a time: a blocked layer (blocked > 0) on aarch64 by
 * multiply by element, 16 channels at a time, where its last 128-bit load stays inside the input */
static inline __attribute__((always_inline)) void irnet_conv_f32_one_body(const irnet_conv_f32_params *prm,
    const float *in, uint32_t *out_bits, float *out_f32, int oy, int ox, int blocked, const int fused)
{
    const int out_words = (prm->cout + 31) / 32;
    const long pixel = (long)oy * prm->wo + ox;
    const int h = prm->h, w = prm->w, cin = prm->cin, k = prm->k, stride = prm->stride, pad = prm->pad;
    const int iy0 = oy * stride - pad, ix0 = ox * stride - pad;
    const int ky0 = iy0 < -prm->rows_above ? -prm->rows_above - iy0 : 0, ky1 = iy0 + k > h ? h - iy0 : k;
    const int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = ix0 + k > w ? w - ix0 : k;
    const long last = ((long)(iy0 + ky1 - 1) * w + ix0 + kx1 - 1) * cin; /* its last tap */
    int co = 0;
    if (blocked > 0 && last + (cin - 1) / 4 * 4 + 4 <= (long)h * w * cin) {
        for (; co < blocked; co += 16) {
            float32x4_t acc[4];
            irnet_conv_block1_any(in, prm->weight, w, cin, prm->cout, k, iy0, ky0, ky1, ix0, kx0, kx1, co, acc);
            irnet_conv_f32_store_any(prm, acc, 1, pixel, co, out_bits, out_f32, fused);
        }
    }
    if (co < prm->cout) {
        irnet_conv_f32_pixel(prm, in, out_bits != 0 ? out_bits + pixel * out_words : 0,
                             out_f32 != 0 ? out_f32 + pixel * prm->cout : 0,
                             fused && prm->fuse.residual != 0 ? prm->fuse.residual + pixel * prm->cout : 0,
                             oy, ox, co);
    }
}

static void irnet_conv_f32_one(const irnet_conv_f32_params *prm, const float *in, uint32_t *out_bits, float *out_f32,
    int oy, int ox, int blocked)
{
    irnet_conv_f32_one_body(prm, in, out_bits, out_f32, oy, ox, blocked, 0);
}

static void irnet_conv_f32_one_fused(const irnet_conv_f32_params *prm, const float *in, float *out_f32, int oy, int ox,
    int blocked)
{
    irnet_conv_f32_one_body(prm, in, 0, out_f32, oy, ox, blocked, 1);
}
#endif

#if defined(__aarch64__)
/* Output row oy of a blocked layer (its bits already cleared): blocks of 4 pixels where every column tap is
 * inside the map, the other pixels one at a time; output channels blocked.. per pixel */
static inline __attribute__((always_inline)) void irnet_conv_f32_row_blocked(const irnet_conv_f32_params *prm,
    const float *in, uint32_t *out_bits, float *out_f32, int oy, int blocked, const int fused)
{
    const int h = prm->h, w = prm->w, cin = prm->cin, cout = prm->cout, k = prm->k, stride = prm->stride;
    const int pad = prm->pad, wo = prm->wo, out_words = (cout + 31) / 32;
    /* the columns ox_lo..ox_hi - 1 have every column tap inside the map */
    const int ox_lo = pad <= 0 ? 0 : (pad + stride - 1) / stride;
    const int ox_hi = w + pad - k < 0 ? 0 : (w + pad - k) / stride + 1 < wo ? (w + pad - k) / stride + 1 : wo;
    /* the input's size in floats, and how far past a tap's first float its last 128-bit load ends */
    const long in_floats = (long)h * w * cin;
    const int reach = (cin - 1) / 4 * 4 + 4;
    const int iy0 = oy * stride - pad;
    const int ky0 = iy0 < -prm->rows_above ? -prm->rows_above - iy0 : 0;
    const int ky1 = iy0 + k > h ? h - iy0 : k;
    int ox = 0;
    for (; ox < ox_lo && ox < wo; ++ox) {
        if (fused) {
            irnet_conv_f32_one_fused(prm, in, out_f32, oy, ox, blocked);
        } else {
            irnet_conv_f32_one(prm, in, out_bits, out_f32, oy, ox, blocked);
        }
    }
    for (; ox + 4 <= ox_hi; ox += 4) {
        /* the last pixel's last tap: its last 128-bit load must stay inside the input */
        const long last = ((long)(iy0 + ky1 - 1) * w + (ox + 3) * stride - pad + k - 1) * cin;
        int co, p;
        if (last + reach > in_floats) {
            break;
        }
        for (co = 0; co < blocked; co += 16) {
            float32x4_t acc[16];
            irnet_conv_block4_any(in, prm->weight, w, cin, cout, k, stride, iy0, ky0, ky1, ox * stride - pad, co,
                                  acc);
            irnet_conv_f32_store_any(prm, acc, 4, (long)oy * wo + ox, co, out_bits, out_f32, fused);
        }
        if (blocked < cout) {
            for (p = 0; p < 4; ++p) {
                const long pixel = (long)oy * wo + ox + p;
                irnet_conv_f32_pixel(prm, in, out_bits != 0 ? out_bits + pixel * out_words : 0,
                                     out_f32 != 0 ? out_f32 + pixel * cout : 0,
                                     fused && prm->fuse.residual != 0 ? prm->fuse.residual + pixel * cout : 0,
                                     oy, ox + p, blocked);
            }
        }
    }
    for (; ox < wo; ++ox) {
        if (fused) {
            irnet_conv_f32_one_fused(prm, in, out_f32, oy, ox, blocked);
        } else {
            irnet_conv_f32_one(prm, in, out_bits, out_f32, oy, ox, blocked);
        }
    }
}
#endif

/* The fused sign of a finished output row (its thread's). armv7 keeps it out of line: inlined, it costs the
 * convolution's registers (the stem 2.5% more instructions); on aarch64 GCC's own choice is the better one. */
#if defined(__aarch64__)
static void irnet_row_signs(const float *x, int pixels, int cout, uint32_t *out)
#else
static __attribute__((noinline)) void irnet_row_signs(const float *x, int pixels, int cout, uint32_t *out)
#endif
{
    irnet_sign_pack_fast(x, pixels, cout, out);
}

/* irnet_conv_f32_neon, compiled once per value of fused: 0 none, 1 the sign alone, 2 the residual (and maybe the
 * sign) of a float output. A copy without the residual has no residual pointer or test in its stores (the tests
 * cost the armv7 scalar loop 1% of the stem's instructions). */
static inline __attribute__((always_inline)) void irnet_conv_f32_rows(const irnet_conv_f32_params *prm,
    const float *in, uint32_t *out_bits, float *out_f32, const int fused)
{
    const int h = prm->h, w = prm->w, cin = prm->cin, cout = prm->cout, k = prm->k, stride = prm->stride;
    const int pad = prm->pad, ho = prm->ho, wo = prm->wo, act = prm->act;
    const float *weight = prm->weight, *mult = prm->mult, *add = prm->add;
    const int out_words = (cout + 31) / 32;
    const float *const residual = fused == 2 ? prm->fuse.residual : 0;
    uint32_t *const sign = fused ? prm->fuse.sign : 0;
    const int residual_act = fused ? prm->fuse.residual_act : IRNET_ACT_NONE;
#if defined(__aarch64__)
    const int blocked = cout >= 16 ? cout / 16 * 16 : 0;
#endif
    int oy;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (oy = 0; oy < ho; ++oy) {
        const int iy0 = oy * stride - pad;
        const int ky0 = iy0 < -prm->rows_above ? -prm->rows_above - iy0 : 0;
        const int ky1 = iy0 + k > h ? h - iy0 : k;
        int ox, co, ky, kx, ci;
#if defined(__aarch64__)
        if (blocked > 0) {
            if (out_bits != 0) {
                memset(out_bits + (long)oy * wo * out_words, 0, (size_t)wo * (size_t)out_words * sizeof(uint32_t));
            }
            irnet_conv_f32_row_blocked(prm, in, out_bits, out_f32, oy, blocked, fused);
            if (sign != 0) {
                irnet_row_signs(out_f32 + (long)oy * wo * cout, wo, cout, sign + (long)oy * wo * out_words);
            }
            continue;
        }
#endif
        /* other layers: one pixel at a time (the per-pixel path above, written out with its row's constants) */
        for (ox = 0; ox < wo; ++ox) {
            const int ix0 = ox * stride - pad;
            const int kx0 = ix0 < 0 ? -ix0 : 0;
            const int kx1 = ix0 + k > w ? w - ix0 : k;
            uint32_t *bits = out_bits != 0 ? out_bits + (oy * wo + ox) * out_words : 0;
            float *outs = out_f32 != 0 ? out_f32 + (oy * wo + ox) * cout : 0;
            const float *res = residual != 0 ? residual + (oy * wo + ox) * cout : 0;
            co = 0;
            if (bits != 0) {
                memset(bits, 0, (size_t)out_words * sizeof(uint32_t));
            }
#if defined(__aarch64__)
            while (co + 4 <= cout) {
                const int nv = cout - co >= 16 ? 4 : (cout - co) / 4;
                float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
                int j;
                for (ky = ky0; ky < ky1; ++ky) {
                    for (kx = kx0; kx < kx1; ++kx) {
                        const float *xt = in + ((iy0 + ky) * w + ix0 + kx) * cin;
                        const float *wt = weight + ((ky * k + kx) * cin) * cout + co;
                        if (nv == 4) {
                            for (ci = 0; ci < cin; ++ci) {
                                const float32x4_t x = vld1q_dup_f32(xt + ci);
                                const float32x4x4_t wv = vld1q_f32_x4(wt + ci * cout);
                                acc[0] = vaddq_f32(acc[0], irnet_mul4(x, wv.val[0]));
                                acc[1] = vaddq_f32(acc[1], irnet_mul4(x, wv.val[1]));
                                acc[2] = vaddq_f32(acc[2], irnet_mul4(x, wv.val[2]));
                                acc[3] = vaddq_f32(acc[3], irnet_mul4(x, wv.val[3]));
                            }
                        } else {
                            for (ci = 0; ci < cin; ++ci) {
                                const float32x4_t x = vld1q_dup_f32(xt + ci);
                                for (j = 0; j < nv; ++j) {
                                    acc[j] = vaddq_f32(acc[j], irnet_mul4(x, vld1q_f32(wt + ci * cout + 4 * j)));
                                }
                            }
                        }
                    }
                }
                for (j = 0; j < nv; ++j) {
                    const int c = co + 4 * j;
                    if (bits != 0) {
                        bits[c / 32] |= irnet_f32_sign4(acc[j], vld1q_f32(mult + c), vld1q_f32(add + c)) << (c & 31);
                    } else {
                        float32x4_t z = irnet_finish4(acc[j], vld1q_f32(mult + c), vld1q_f32(add + c), act);
                        if (res != 0) {
                            z = irnet_act4(vaddq_f32(z, vld1q_f32(res + c)), residual_act);
                        }
                        vst1q_f32(outs + c, z);
                    }
                }
                co += 4 * nv;
            }
#endif
            for (; co < cout; ++co) {
                float acc = 0.0f;
                float y;
                for (ky = ky0; ky < ky1; ++ky) {
                    for (kx = kx0; kx < kx1; ++kx) {
                        const float *xt = in + ((iy0 + ky) * w + ix0 + kx) * cin;
                        const float *wt = weight + ((ky * k + kx) * cin) * cout + co;
                        for (ci = 0; ci < cin; ++ci) {
                            float product = xt[ci] * wt[ci * cout];
                            IRNET_FENCE(product);
                            acc = acc + product;
                        }
                    }
                }
                y = acc * mult[co];
                IRNET_FENCE(y);
                y = y + add[co];
                if (bits != 0) {
                    bits[co / 32] |= (uint32_t)(y < 0.0f) << (co & 31);
                } else {
                    y = irnet_activate(y, act);
                    outs[co] = res != 0 ? irnet_activate(y + res[co], residual_act) : y;
                }
            }
        }
        if (sign != 0) {
            irnet_row_signs(out_f32 + (long)oy * wo * cout, wo, cout, sign + (long)oy * wo * out_words);
        }
    }
}

static __attribute__((noinline)) void irnet_conv_f32_neon_signs(const irnet_conv_f32_params *prm, const float *in,
    float *out_f32)
{
    irnet_conv_f32_rows(prm, in, 0, out_f32, 1);
}

static __attribute__((noinline)) void irnet_conv_f32_neon_residual(const irnet_conv_f32_params *prm,
    const float *in, float *out_f32)
{
    irnet_conv_f32_rows(prm, in, 0, out_f32, 2);
}

void irnet_conv_f32_neon(const irnet_conv_f32_params *prm, const float *in, uint32_t *out_bits, float *out_f32)
{
    if (prm->fuse.pool != 0) {
        irnet_conv_f32(prm, in, out_bits, out_f32); /* the fused pool: the portable kernel */
    } else if (out_bits == 0 && prm->fuse.residual != 0) {
        irnet_conv_f32_neon_residual(prm, in, out_f32);
    } else if (out_bits == 0 && prm->fuse.sign != 0) {
        irnet_conv_f32_neon_signs(prm, in, out_f32);
    } else {
        irnet_conv_f32_rows(prm, in, out_bits, out_f32, 0);
    }
}

#if defined(__aarch64__)
#define IRNET_FLIP(v, s) vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(v), s))
#define IRNET_KEEP_GREATER(best, v) best = vbslq_f32(vcgtq_f32(v, best), v, best)

/* The pool of channels c..c + 15 over the window rows y0..y1 - 1, columns x0..x1 - 1 (inside the map). flip
 * (a constant after inlining) applies the sign masks s0..s3 of the min channels on load and on store. */
static inline __attribute__((always_inline)) void irnet_pool16(const float *in, float *dst, int w, int channels,
    int y0, int y1, int x0, int x1, int flip, uint32x4_t s0, uint32x4_t s1, uint32x4_t s2, uint32x4_t s3)
{
    float32x4x4_t best = vld1q_f32_x4(in + ((long)y0 * w + x0) * channels);
    int iy, ix;
    if (flip) {
        best.val[0] = IRNET_FLIP(best.val[0], s0);
        best.val[1] = IRNET_FLIP(best.val[1], s1);
        best.val[2] = IRNET_FLIP(best.val[2], s2);
        best.val[3] = IRNET_FLIP(best.val[3], s3);
    }
    for (iy = y0; iy < y1; ++iy) {
        const int first = iy == y0 ? x0 + 1 : x0;
        const float *src = in + ((long)iy * w + first) * channels;
        for (ix = first; ix < x1; ++ix, src += channels) {
            float32x4x4_t v = vld1q_f32_x4(src);
            if (flip) {
                v.val[0] = IRNET_FLIP(v.val[0], s0);
                v.val[1] = IRNET_FLIP(v.val[1], s1);
                v.val[2] = IRNET_FLIP(v.val[2], s2);
                v.val[3] = IRNET_FLIP(v.val[3], s3);
            }
            IRNET_KEEP_GREATER(best.val[0], v.val[0]);
            IRNET_KEEP_GREATER(best.val[1], v.val[1]);
            IRNET_KEEP_GREATER(best.val[2], v.val[2]);
            IRNET_KEEP_GREATER(best.val[3], v.val[3]);
        }
    }
    if (flip) {
        best.val[0] = IRNET_FLIP(best.val[0], s0);
        best.val[1] = IRNET_FLIP(best.val[1], s1);
        best.val[2] = IRNET_FLIP(best.val[2], s2);
        best.val[3] = IRNET_FLIP(best.val[3], s3);
    }
    vst1q_f32_x4(dst, best);
}

/* the same for channels c..c + 3 */
static inline void irnet_pool4(const float *in, float *dst, int w, int channels, int y0, int y1, int x0, int x1,
    uint32x4_t s)
{
    float32x4_t best = IRNET_FLIP(vld1q_f32(in + ((long)y0 * w + x0) * channels), s);
    int iy, ix;
    for (iy = y0; iy < y1; ++iy) {
        const int first = iy == y0 ? x0 + 1 : x0;
        const float *src = in + ((long)iy * w + first) * channels;
        for (ix = first; ix < x1; ++ix, src += channels) {
            const float32x4_t v = IRNET_FLIP(vld1q_f32(src), s);
            IRNET_KEEP_GREATER(best, v);
        }
    }
    vst1q_f32(dst, IRNET_FLIP(best, s));
}

/* the sign bit in the lanes of min channels */
static inline uint32x4_t irnet_min_signs(const uint8_t *min_mask, int c)
{
    const uint32_t s[4] = {min_mask[c] ? 0x80000000u : 0u, min_mask[c + 1] ? 0x80000000u : 0u,
                           min_mask[c + 2] ? 0x80000000u : 0u, min_mask[c + 3] ? 0x80000000u : 0u};
    return vld1q_u32(s);
}
#endif

void irnet_maxpool2d_f32_neon(const irnet_maxpool2d_f32_params *prm, const float *in, float *out)
{
#if defined(__aarch64__)
    const int h = prm->h, w = prm->w, channels = prm->channels, k = prm->k, stride = prm->stride, pad = prm->pad;
    const int ho = prm->ho, wo = prm->wo;
    const uint8_t *min_mask = prm->min_mask;
    int oy;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (oy = 0; oy < ho; ++oy) {
        const int top = oy * stride - pad;
        const int y0 = top < 0 ? 0 : top, y1 = top + k > h ? h : top + k;
        float *row = out + (long)oy * wo * channels;
        int ox, c = 0, iy, ix;
        for (; c + 16 <= channels; c += 16) {
            const uint32x4_t s0 = irnet_min_signs(min_mask, c), s1 = irnet_min_signs(min_mask, c + 4);
            const uint32x4_t s2 = irnet_min_signs(min_mask, c + 8), s3 = irnet_min_signs(min_mask, c + 12);
            const int flip = vmaxvq_u32(vorrq_u32(vorrq_u32(s0, s1), vorrq_u32(s2, s3))) != 0;
            for (ox = 0; ox < wo; ++ox) {
                const int left = ox * stride - pad;
                const int x0 = left < 0 ? 0 : left, x1 = left + k > w ? w : left + k;
                if (flip) {
                    irnet_pool16(in + c, row + (long)ox * channels + c, w, channels, y0, y1, x0, x1, 1, s0, s1, s2,
                                 s3);
                } else {
                    irnet_pool16(in + c, row + (long)ox * channels + c, w, channels, y0, y1, x0, x1, 0, s0, s1, s2,
                                 s3);
                }
            }
        }
        for (; c + 4 <= channels; c += 4) {
            const uint32x4_t s = irnet_min_signs(min_mask, c);
            for (ox = 0; ox < wo; ++ox) {
                const int left = ox * stride - pad;
                const int x0 = left < 0 ? 0 : left, x1 = left + k > w ? w : left + k;
                irnet_pool4(in + c, row + (long)ox * channels + c, w, channels, y0, y1, x0, x1, s);
            }
        }
        for (; c < channels; ++c) {
            const int min = min_mask[c] != 0;
            for (ox = 0; ox < wo; ++ox) {
                const int left = ox * stride - pad;
                const int x0 = left < 0 ? 0 : left, x1 = left + k > w ? w : left + k;
                float best = in[((long)y0 * w + x0) * channels + c];
                for (iy = y0; iy < y1; ++iy) {
                    for (ix = x0; ix < x1; ++ix) {
                        const float v = in[((long)iy * w + ix) * channels + c];
                        if (min ? v < best : v > best) {
                            best = v;
                        }
                    }
                }
                row[(long)ox * channels + c] = best;
            }
        }
    }
#else
    irnet_maxpool2d_f32(prm, in, out); /* armv7 NEON float compares flush subnormals to zero */
#endif
}

#if defined(__aarch64__)
/* 16 floats at src, the sign bits of the min channels flipped when flip (a constant after inlining) */
static inline __attribute__((always_inline)) float32x4x4_t irnet_load16_flipped(const float *src, int flip,
    const uint32x4_t s[4])
{
    float32x4x4_t v = vld1q_f32_x4(src);
    if (flip) {
        v.val[0] = IRNET_FLIP(v.val[0], s[0]);
        v.val[1] = IRNET_FLIP(v.val[1], s[1]);
        v.val[2] = IRNET_FLIP(v.val[2], s[2]);
        v.val[3] = IRNET_FLIP(v.val[3], s[3]);
    }
    return v;
}

static inline __attribute__((always_inline)) float32x4x4_t irnet_keep_greater16(float32x4x4_t best,
    const float *src, int flip, const uint32x4_t s[4])
{
    const float32x4x4_t v = irnet_load16_flipped(src, flip, s);
    IRNET_KEEP_GREATER(best.val[0], v.val[0]);
    IRNET_KEEP_GREATER(best.val[1], v.val[1]);
    IRNET_KEEP_GREATER(best.val[2], v.val[2]);
    IRNET_KEEP_GREATER(best.val[3], v.val[3]);
    return best;
}

/* The 2x2 window at src of channels c..c + 15 (right: the next pixel, down: the next row), in row-major order */
static inline __attribute__((always_inline)) void irnet_pool16_2x2(const float *src, float *dst, long right,
    long down, int flip, const uint32x4_t s[4])
{
    float32x4x4_t best = irnet_load16_flipped(src, flip, s);
    best = irnet_keep_greater16(best, src + right, flip, s);
    best = irnet_keep_greater16(best, src + down, flip, s);
    best = irnet_keep_greater16(best, src + down + right, flip, s);
    if (flip) {
        best.val[0] = IRNET_FLIP(best.val[0], s[0]);
        best.val[1] = IRNET_FLIP(best.val[1], s[1]);
        best.val[2] = IRNET_FLIP(best.val[2], s[2]);
        best.val[3] = IRNET_FLIP(best.val[3], s[3]);
    }
    vst1q_f32_x4(dst, best);
}

/* irnet_min_signs of channels c..c + 15 at once */
static inline void irnet_min_signs16(const uint8_t *min_mask, int c, uint32x4_t s[4])
{
    const uint8x16_t bytes = vld1q_u8(min_mask + c), ones = vtstq_u8(bytes, bytes);
    const uint16x8_t lo = vmovl_u8(vget_low_u8(ones)), hi = vmovl_high_u8(ones);
    s[0] = vshlq_n_u32(vmovl_u16(vget_low_u16(lo)), 31);
    s[1] = vshlq_n_u32(vmovl_high_u16(lo), 31);
    s[2] = vshlq_n_u32(vmovl_u16(vget_low_u16(hi)), 31);
    s[3] = vshlq_n_u32(vmovl_high_u16(hi), 31);
}
#endif

void irnet_maxpool_f32_neon(const irnet_maxpool_f32_params *prm, const float *in, float *out)
{
#if defined(__aarch64__)
    /* tiling windows are the overlapping pool's case stride k, no padding: the same pixels in the same order */
    const irnet_maxpool2d_f32_params p = {prm->ho * prm->k, prm->w, prm->channels, prm->k, prm->k, 0, prm->ho,
                                          prm->wo, prm->min_mask};
    const int w = prm->w, channels = prm->channels, ho = prm->ho, wo = prm->wo;
    int oy;
    if (prm->k != 2 || channels % 16 != 0) {
        irnet_maxpool2d_f32_neon(&p, in, out);
        return;
    }
#if defined(_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (oy = 0; oy < ho; ++oy) {
        const float *row = in + (long)(2 * oy) * w * channels;
        float *dst = out + (long)oy * wo * channels;
        int ox, c;
        for (c = 0; c < channels; c += 16) {
            uint32x4_t s[4];
            int flip;
            irnet_min_signs16(prm->min_mask, c, s);
            flip = vmaxvq_u32(vorrq_u32(vorrq_u32(s[0], s[1]), vorrq_u32(s[2], s[3]))) != 0;
            if (flip) {
                for (ox = 0; ox < wo; ++ox) {
                    irnet_pool16_2x2(row + 2L * ox * channels + c, dst + (long)ox * channels + c, channels,
                                     (long)w * channels, 1, s);
                }
            } else {
                for (ox = 0; ox < wo; ++ox) {
                    irnet_pool16_2x2(row + 2L * ox * channels + c, dst + (long)ox * channels + c, channels,
                                     (long)w * channels, 0, s);
                }
            }
        }
    }
#else
    irnet_maxpool_f32(prm, in, out); /* armv7 NEON float compares flush subnormals to zero */
#endif
}


#if defined(__GNUC__) && !defined(__clang__) && defined(__aarch64__)
#pragma GCC pop_options
#endif

#else
typedef int irnet_conv_f32_neon_unused; /* ISO C wants at least one declaration */
#endif
