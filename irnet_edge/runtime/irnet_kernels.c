/* irnet-edge runtime: the portable C99 kernels, the oracle every optimised kernel is tested against. Their
 * arithmetic is defined op by op in docs/arithmetic.md, in the order written here. */
#include "irnet_internal.h"

#include <string.h>

void irnet_normalize(const irnet_normalize_params *prm, const uint8_t *in, float *out)
{
    const int pixels = prm->pixels, channels = prm->channels;
    const float *mean = prm->mean, *std = prm->std;
    int p, c;
    for (p = 0; p < pixels; ++p) {
        IRNET_SCALAR_LOOP
        for (c = 0; c < channels; ++c) {
            float v = (float)in[p * channels + c];
            float d = 255.0f, s = std[c];
            IRNET_OPAQUE(d); /* divisions stay divisions (irnet_exact.h) */
            IRNET_OPAQUE(s);
            v = v / d;
            v = v - mean[c];
            out[p * channels + c] = v / s;
        }
    }
}

/* Where a convolution's fused ops (irnet_fusion) put output pixel (oy, ox): the pooled pixel and whether this
 * pixel is the first of its window (row-major), else the pixel itself */
static int irnet_fused_pixel(const irnet_fusion *f, int oy, int ox, int wo, int *first)
{
    if (f->pool != 0) {
        const int py = oy / f->pool, px = ox / f->pool;
        *first = oy == py * f->pool && ox == px * f->pool;
        return py * (wo / f->pool) + px;
    }
    *first = 1;
    return oy * wo + ox;
}

/* Value y (after the op's act; a binary conv's dot as a float) of channel co at output pixel 'pixel' (from
 * irnet_fused_pixel) into the pool's running value */
static void irnet_pool_f32(const irnet_fusion *f, int pixel, int first, int co, int cout, float y, float *out)
{
    float *dst = out + pixel * cout + co;
    if (first || (f->pool_min != 0 && f->pool_min[co] ? y < *dst : y > *dst)) {
        *dst = y;
    }
}

void irnet_pool_dots_finish(const irnet_bconv_params *prm, float *out)
{
    irnet_affine_params transform;
    transform.pixels = (prm->ho / prm->fuse.pool) * (prm->wo / prm->fuse.pool);
    transform.channels = prm->cout;
    transform.mult = prm->mult;
    transform.add = prm->add;
    transform.act = prm->act;
    irnet_affine(&transform, out, out); /* in place: each value is read before it is written */
}

/* One finished bits word of output pixel 'pixel': stored, or pooled into the pooled pixel's word */
static void irnet_fused_word(const irnet_fusion *f, int pixel, int first, int index, int out_words, uint32_t word,
                             uint32_t *out)
{
    uint32_t *dst = out + pixel * out_words + index;
    if (f->pool != 0 && !first) {
        const uint32_t or_mask = f->pool_or != 0 ? f->pool_or[index] : 0u;
        word = (*dst & word & ~or_mask) | ((*dst | word) & or_mask);
    }
    *dst = word;
}

void irnet_conv_f32(const irnet_conv_f32_params *prm, const float *in, uint32_t *out_bits, float *out_f32)
{
    const int h = prm->h, w = prm->w, cin = prm->cin, cout = prm->cout, k = prm->k, stride = prm->stride;
    const int pad = prm->pad, ho = prm->ho, wo = prm->wo, act = prm->act, top = -prm->rows_above;
    const float *weight = prm->weight, *mult = prm->mult, *add = prm->add;
    const int out_words = (cout + 31) / 32;
    /* The kernel's own copy: read through prm, which the output stores may alias, the fused ops' parameters would
     * be read again for every value. The residual add is written out in the loop and the sign packed from the
     * finished output (irnet_sign_pack), as the unfused sequence would: through a general per-value epilogue they
     * cost resnet20 6% more instructions than that sequence on the host. */
    const irnet_fusion fz = prm->fuse;
    const irnet_fusion *fuse = &fz;
    const int fused = fuse->residual != 0 || fuse->pool != 0;
    int oy, ox, co, ky, kx, ci;
    for (oy = 0; oy < ho; ++oy) {
        /* the window's rows in the map: ky0 <= ky < ky1 (rows above top and from h on are padding) */
        const int iy0 = oy * stride - pad;
        const int ky0 = iy0 < top ? top - iy0 : 0, ky1 = iy0 + k > h ? h - iy0 : k;
        for (ox = 0; ox < wo; ++ox) {
            uint32_t word = 0;
            int first = 1;
            const int pixel = fused ? irnet_fused_pixel(fuse, oy, ox, wo, &first) : 0;
            for (co = 0; co < cout; ++co) {
                float acc = 0.0f;
                float y;
                for (ky = ky0; ky < ky1; ++ky) {
                    const int iy = iy0 + ky;
                    for (kx = 0; kx < k; ++kx) {
                        const int ix = ox * stride - pad + kx;
                        const float *xt;
                        const float *wt;
                        if (ix < 0 || ix >= w) {
                            continue;
                        }
                        xt = in + (iy * w + ix) * cin;
                        wt = weight + ((co * k + ky) * k + kx) * cin;
                        IRNET_SCALAR_LOOP
                        for (ci = 0; ci < cin; ++ci) {
                            float product = xt[ci] * wt[ci];
                            IRNET_FENCE(product);
                            acc = acc + product;
                        }
                    }
                }
                y = acc * mult[co];
                IRNET_FENCE(y);
                y = y + add[co];
                if (out_bits != 0) {
                    if (y < 0.0f) {
                        word |= 1u << (co & 31);
                    }
                    if ((co & 31) == 31 || co == cout - 1) {
                        if (fused) {
                            irnet_fused_word(fuse, pixel, first, co / 32, out_words, word, out_bits);
                        } else {
                            out_bits[(oy * wo + ox) * out_words + co / 32] = word;
                        }
                        word = 0;
                    }
                } else if (!fused) {
                    out_f32[(oy * wo + ox) * cout + co] = irnet_activate(y, act);
                } else if (fuse->residual != 0) {
                    /* read before written: the residual may be out_f32 itself. A residual block's own act is none:
                     * one test instead of irnet_activate's three per value. */
                    const int at = (oy * wo + ox) * cout + co;
                    y = act == IRNET_ACT_NONE ? y : irnet_activate(y, act);
                    out_f32[at] = irnet_activate(y + fuse->residual[at], fuse->residual_act);
                } else {
                    irnet_pool_f32(fuse, pixel, first, co, cout, irnet_activate(y, act), out_f32);
                }
            }
        }
    }
    if (out_bits == 0 && fz.sign != 0) {
        irnet_sign_pack(out_f32, ho * wo, cout, fz.sign);
    }
}

void irnet_conv_f32_u8(const irnet_conv_f32_u8_params *prm, const uint8_t *in, uint32_t *out_bits, float *out_f32)
{
    const irnet_conv_f32_params *conv = &prm->conv;
    const int h = conv->h, w = conv->w, cin = conv->cin, k = conv->k, stride = conv->stride, pad = conv->pad;
    const int ho = conv->ho, wo = conv->wo, cout = conv->cout, rows = prm->rows;
    const int pool = conv->fuse.pool != 0 ? conv->fuse.pool : 1;
    const int out_words = (cout + 31) / 32, row_len = w * cin;
    const float *norm = prm->norm;
    irnet_conv_f32_params part = *conv;
    int oy;
    for (oy = 0; oy < ho; oy += rows) {
        const int n = ho - oy < rows ? ho - oy : rows;
        /* the map's rows the band's windows read: from top (>= 0) to bottom (exclusive, <= h) */
        const int top = oy * stride - pad < 0 ? 0 : oy * stride - pad;
        const int bottom = (oy + n - 1) * stride - pad + k > h ? h : (oy + n - 1) * stride - pad + k;
        const int at = (oy / pool) * (wo / pool); /* the band's first output pixel, pooled where a pool is fused */
        const uint8_t *src = in + top * row_len;
        const int count = (bottom - top) * row_len;
        float *band = prm->band;
        int i, c;
        if (cin == 1) { /* grey and RGB images: no loop over channels */
            for (i = 0; i < count; ++i) {
                band[i] = norm[src[i]];
            }
        } else if (cin == 3) {
            for (i = 0; i < count; i += 3) {
                band[i] = norm[src[i]];
                band[i + 1] = norm[256 + src[i + 1]];
                band[i + 2] = norm[512 + src[i + 2]];
            }
        } else {
            for (i = 0; i < count; i += cin) {
                for (c = 0; c < cin; ++c) {
                    band[i + c] = norm[c * 256 + src[i + c]];
                }
            }
        }
        /* the kernel's row 0 is the map's row oy * stride */
        part.rows_above = oy * stride - top;
        part.h = bottom - oy * stride;
        part.ho = n;
        if (conv->fuse.residual != 0) {
            part.fuse.residual = conv->fuse.residual + oy * wo * cout;
        }
        if (conv->fuse.sign != 0) {
            part.fuse.sign = conv->fuse.sign + oy * wo * out_words;
        }
        prm->kernel(&part, band + part.rows_above * row_len, out_bits != 0 ? out_bits + at * out_words : 0,
                    out_f32 != 0 ? out_f32 + at * cout : 0);
    }
}

/* irnet_bconv but a fused pool's transform: out of line, so that its loops need not keep prm for the end */
static IRNET_NOINLINE void irnet_bconv_loops(const irnet_bconv_params *prm, const uint32_t *in, uint32_t *out_bits,
                                             float *out_f32)
{
    const int h = prm->h, w = prm->w, cin = prm->cin, cout = prm->cout, k = prm->k, stride = prm->stride;
    const int pad = prm->pad, pad_one = prm->pad_one, ho = prm->ho, wo = prm->wo, act = prm->act;
    const uint32_t *weight = prm->weight;
    const int32_t *threshold = prm->threshold;
    const float *mult = prm->mult, *add = prm->add;
    const int words = (cin + 31) / 32;
    const int out_words = (cout + 31) / 32;
    /* The kernel's own copy: read through prm, which the output stores may alias, the fused ops' parameters would
     * be read again for every value. The residual add is written out in the loop and the sign packed from the
     * finished output (irnet_sign_pack), as the unfused sequence would: through a general per-value epilogue they
     * cost resnet20 6% more instructions than that sequence on the host. */
    const irnet_fusion fz = prm->fuse;
    const irnet_fusion *fuse = &fz;
    const int fused = fuse->residual != 0 || fuse->pool != 0;
    int oy, ox, co, ky, kx, i;
    for (oy = 0; oy < ho; ++oy) {
        for (ox = 0; ox < wo; ++ox) {
            uint32_t word = 0;
            int first = 1;
            const int pixel = fused ? irnet_fused_pixel(fuse, oy, ox, wo, &first) : 0;
            for (co = 0; co < cout; ++co) {
                int32_t dot, pop = 0, taps = 0; /* dot = the taps' cin - 2 * popcount, summed */
                for (ky = 0; ky < k; ++ky) {
                    const int iy = oy * stride - pad + ky;
                    for (kx = 0; kx < k; ++kx) {
                        const int ix = ox * stride - pad + kx;
                        const uint32_t *wt = weight + ((co * k + ky) * k + kx) * words;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w) {
                            /* zero padding: the tap is absent; +1 padding: activation bits are all 0 */
                            if (!pad_one) {
                                continue;
                            }
                            for (i = 0; i < words; ++i) {
                                pop += irnet_popcount(wt[i]);
                            }
                        } else {
                            const uint32_t *xt = in + (iy * w + ix) * words;
                            for (i = 0; i < words; ++i) {
                                pop += irnet_popcount(xt[i] ^ wt[i]);
                            }
                        }
                        ++taps;
                    }
                }
                dot = taps * cin - 2 * pop;
                if (out_bits != 0) {
                    if (dot < threshold[co]) {
                        word |= 1u << (co & 31);
                    }
                    if ((co & 31) == 31 || co == cout - 1) {
                        if (fused) {
                            irnet_fused_word(fuse, pixel, first, co / 32, out_words, word, out_bits);
                        } else {
                            out_bits[(oy * wo + ox) * out_words + co / 32] = word;
                        }
                        word = 0;
                    }
                } else {
                    const float d = (float)dot;
                    float y = d * mult[co];
                    IRNET_FENCE(y);
                    y = y + add[co];
                    if (!fused) {
                        out_f32[(oy * wo + ox) * cout + co] = irnet_activate(y, act);
                    } else if (fuse->residual != 0) {
                        /* read before written: the residual may be out_f32 itself. A residual block's own act is
                         * none: one test instead of irnet_activate's three per value. */
                        const int at = (oy * wo + ox) * cout + co;
                        y = act == IRNET_ACT_NONE ? y : irnet_activate(y, act);
                        out_f32[at] = irnet_activate(y + fuse->residual[at], fuse->residual_act);
                    } else { /* the pool's running best dot, as a float (exact: |dot| < 2^24) */
                        irnet_pool_f32(fuse, pixel, first, co, cout, d, out_f32);
                    }
                }
            }
        }
    }
    if (out_bits == 0 && fz.sign != 0) {
        irnet_sign_pack(out_f32, ho * wo, cout, fz.sign);
    }
}

void irnet_bconv(const irnet_bconv_params *prm, const uint32_t *in, uint32_t *out_bits, float *out_f32)
{
    irnet_bconv_loops(prm, in, out_bits, out_f32);
    if (out_bits == 0 && prm->fuse.pool != 0) {
        irnet_pool_dots_finish(prm, out_f32);
    }
}

void irnet_sign_pack(const float *in, int pixels, int channels, uint32_t *out)
{
    const int words = (channels + 31) / 32;
    int p, c;
    memset(out, 0, (size_t)pixels * (size_t)words * sizeof(uint32_t));
    for (p = 0; p < pixels; ++p) {
        IRNET_SCALAR_LOOP
        for (c = 0; c < channels; ++c) {
            if (in[p * channels + c] < 0.0f) {
                out[p * words + c / 32] |= 1u << (c & 31);
            }
        }
    }
}

/* irnet_maxpool_bits for 2x2 windows, the usual pool: out of line, so that its loops keep everything in
 * registers */
static IRNET_NOINLINE void irnet_maxpool2_bits(int w, int words, int ho, int wo, const uint32_t *or_mask,
                                               const uint32_t *in, uint32_t *out)
{
    const int row = w * words;
    int oy, ox, i;
    for (oy = 0; oy < ho; ++oy) {
        const uint32_t *p = in + 2 * oy * row;
        for (ox = 0; ox < wo; ++ox, p += 2 * words) {
            for (i = 0; i < words; ++i) {
                const uint32_t a = p[i], b = p[words + i], c = p[row + i], d = p[row + words + i];
                *out++ = (a & b & c & d & ~or_mask[i]) | ((a | b | c | d) & or_mask[i]);
            }
        }
    }
}

void irnet_maxpool_bits(const irnet_maxpool_bits_params *prm, const uint32_t *in, uint32_t *out)
{
    const int w = prm->w, channels = prm->channels, k = prm->k, ho = prm->ho, wo = prm->wo;
    const uint32_t *or_mask = prm->or_mask;
    const int words = (channels + 31) / 32;
    int oy, ox, wy, wx, i;
    if (k == 2) {
        irnet_maxpool2_bits(w, words, ho, wo, or_mask, in, out);
        return;
    }
    for (oy = 0; oy < ho; ++oy) {
        for (ox = 0; ox < wo; ++ox) {
            for (i = 0; i < words; ++i) {
                uint32_t all = 0xFFFFFFFFu;
                uint32_t any = 0;
                for (wy = 0; wy < k; ++wy) {
                    for (wx = 0; wx < k; ++wx) {
                        const uint32_t v = in[((oy * k + wy) * w + ox * k + wx) * words + i];
                        all &= v;
                        any |= v;
                    }
                }
                out[(oy * wo + ox) * words + i] = (all & ~or_mask[i]) | (any & or_mask[i]);
            }
        }
    }
}

void irnet_maxpool_f32(const irnet_maxpool_f32_params *prm, const float *in, float *out)
{
    const int w = prm->w, channels = prm->channels, k = prm->k, ho = prm->ho, wo = prm->wo;
    const uint8_t *min_mask = prm->min_mask;
    int oy, ox, c, wy, wx;
    for (oy = 0; oy < ho; ++oy) {
        for (ox = 0; ox < wo; ++ox) {
            IRNET_SCALAR_LOOP
            for (c = 0; c < channels; ++c) {
                float best = in[((oy * k) * w + ox * k) * channels + c];
                for (wy = 0; wy < k; ++wy) {
                    IRNET_SCALAR_LOOP
                    for (wx = 0; wx < k; ++wx) {
                        const float v = in[((oy * k + wy) * w + ox * k + wx) * channels + c];
                        if (wy == 0 && wx == 0) {
                            continue;
                        }
                        if (min_mask[c] ? v < best : v > best) {
                            best = v;
                        }
                    }
                }
                out[(oy * wo + ox) * channels + c] = best;
            }
        }
    }
}

/* The pixels of pooling window (oy, ox) inside the map: rows [*y0, *y1), columns [*x0, *x1) */
static void irnet_pool_window(int h, int w, int k, int stride, int pad, int oy, int ox, int *y0, int *y1, int *x0,
                              int *x1)
{
    const int top = oy * stride - pad;
    const int left = ox * stride - pad;
    *y0 = top < 0 ? 0 : top;
    *y1 = top + k > h ? h : top + k;
    *x0 = left < 0 ? 0 : left;
    *x1 = left + k > w ? w : left + k;
}

void irnet_maxpool2d_bits(const irnet_maxpool2d_bits_params *prm, const uint32_t *in, uint32_t *out)
{
    const int h = prm->h, w = prm->w, k = prm->k, stride = prm->stride, pad = prm->pad, ho = prm->ho, wo = prm->wo;
    const uint32_t *or_mask = prm->or_mask;
    const int words = (prm->channels + 31) / 32;
    int oy, ox, iy, ix, i, y0, y1, x0, x1;
    for (oy = 0; oy < ho; ++oy) {
        for (ox = 0; ox < wo; ++ox) {
            uint32_t *dst = out + (oy * wo + ox) * words;
            irnet_pool_window(h, w, k, stride, pad, oy, ox, &y0, &y1, &x0, &x1);
            for (i = 0; i < words; ++i) {
                uint32_t all = 0xFFFFFFFFu;
                uint32_t any = 0;
                for (iy = y0; iy < y1; ++iy) {
                    for (ix = x0; ix < x1; ++ix) {
                        const uint32_t v = in[(iy * w + ix) * words + i];
                        all &= v;
                        any |= v;
                    }
                }
                dst[i] = (all & ~or_mask[i]) | (any & or_mask[i]);
            }
        }
    }
}

void irnet_maxpool2d_f32(const irnet_maxpool2d_f32_params *prm, const float *in, float *out)
{
    const int h = prm->h, w = prm->w, channels = prm->channels, k = prm->k, stride = prm->stride, pad = prm->pad;
    const int ho = prm->ho, wo = prm->wo;
    const uint8_t *min_mask = prm->min_mask;
    int oy, ox, iy, ix, c, y0, y1, x0, x1;
    for (oy = 0; oy < ho; ++oy) {
        for (ox = 0; ox < wo; ++ox) {
            float *dst = out + (oy * wo + ox) * channels;
            irnet_pool_window(h, w, k, stride, pad, oy, ox, &y0, &y1, &x0, &x1);
            for (iy = y0; iy < y1; ++iy) {
                for (ix = x0; ix < x1; ++ix) {
                    const float *src = in + (iy * w + ix) * channels;
                    if (iy == y0 && ix == x0) {
                        IRNET_SCALAR_LOOP
                        for (c = 0; c < channels; ++c) {
                            dst[c] = src[c];
                        }
                        continue;
                    }
                    IRNET_SCALAR_LOOP
                    for (c = 0; c < channels; ++c) {
                        const float v = src[c];
                        if (min_mask[c] ? v < dst[c] : v > dst[c]) {
                            dst[c] = v;
                        }
                    }
                }
            }
        }
    }
}

void irnet_avgpool2d(const irnet_avgpool2d_params *prm, const float *in, float *out)
{
    const int h = prm->h, w = prm->w, channels = prm->channels, k = prm->k, stride = prm->stride, pad = prm->pad;
    const int ho = prm->ho, wo = prm->wo, divisor = prm->divisor;
    int oy, ox, iy, ix, c, y0, y1, x0, x1;
    for (oy = 0; oy < ho; ++oy) {
        for (ox = 0; ox < wo; ++ox) {
            float *dst = out + (oy * wo + ox) * channels;
            int n;
            irnet_pool_window(h, w, k, stride, pad, oy, ox, &y0, &y1, &x0, &x1);
            n = divisor > 0 ? divisor : (y1 - y0) * (x1 - x0);
            IRNET_SCALAR_LOOP
            for (c = 0; c < channels; ++c) {
                dst[c] = 0.0f;
            }
            for (iy = y0; iy < y1; ++iy) {
                for (ix = x0; ix < x1; ++ix) {
                    const float *src = in + (iy * w + ix) * channels;
                    IRNET_SCALAR_LOOP
                    for (c = 0; c < channels; ++c) {
                        dst[c] = dst[c] + src[c];
                    }
                }
            }
            IRNET_SCALAR_LOOP
            for (c = 0; c < channels; ++c) {
                float d = (float)n;
                IRNET_OPAQUE(d); /* a division stays a division (irnet_exact.h) */
                dst[c] = dst[c] / d;
            }
        }
    }
}

void irnet_avgpool(const float *in, int pixels, int channels, float *out)
{
    irnet_avgpool_from(in, pixels, channels, 0, out);
}

void irnet_avgpool_from(const float *in, int pixels, int channels, int c, float *out)
{
    int p;
    for (; c < channels; ++c) {
        float sum = 0.0f, n = (float)pixels;
        IRNET_SCALAR_LOOP
        for (p = 0; p < pixels; ++p) {
            sum = sum + in[p * channels + c];
        }
        IRNET_OPAQUE(n); /* a division stays a division (irnet_exact.h) */
        out[c] = sum / n;
    }
}

void irnet_add(const float *a, const float *b, int n, int act, float *out)
{
    int i;
    IRNET_SCALAR_LOOP
    for (i = 0; i < n; ++i) {
        out[i] = irnet_activate(a[i] + b[i], act);
    }
}

void irnet_affine(const irnet_affine_params *prm, const float *in, float *out)
{
    const int pixels = prm->pixels, channels = prm->channels, act = prm->act;
    const float *mult = prm->mult, *add = prm->add;
    int p, c;
    for (p = 0; p < pixels; ++p) {
        IRNET_SCALAR_LOOP
        for (c = 0; c < channels; ++c) {
            float y = in[p * channels + c] * mult[c];
            IRNET_FENCE(y);
            y = y + add[c];
            out[p * channels + c] = irnet_activate(y, act);
        }
    }
}

void irnet_clamp(const float *in, int n, int act, float *out)
{
    int i;
    IRNET_SCALAR_LOOP
    for (i = 0; i < n; ++i) {
        out[i] = irnet_activate(in[i], act);
    }
}

void irnet_shortcut_a(const float *in, int h, int w, int channels, int pad, float *out)
{
    const int ho = (h + 1) / 2;
    const int wo = (w + 1) / 2;
    const int cout = channels + 2 * pad;
    int oy, ox, c;
    for (oy = 0; oy < ho; ++oy) {
        for (ox = 0; ox < wo; ++ox) {
            float *dst = out + (oy * wo + ox) * cout;
            /* memmove: in place, the output pixel may overlap its own input pixel */
            memmove(dst + pad, in + ((2 * oy) * w + 2 * ox) * channels, (size_t)channels * sizeof(float));
            IRNET_SCALAR_LOOP
            for (c = 0; c < pad; ++c) {
                dst[c] = 0.0f;
                dst[pad + channels + c] = 0.0f;
            }
        }
    }
}
