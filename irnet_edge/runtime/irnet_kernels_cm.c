/* irnet-edge runtime, Cortex-M kernels (compiled to nothing elsewhere). Binary convolution: the same
 * arithmetic as irnet_bconv in irnet_kernels.c (its oracle), restructured for speed:
 *  - a window whose taps are whole kernel rows (the interior, top and bottom borders, any +1-padded one) is
 *    gathered once into a stack buffer and matches one contiguous stretch of each channel's weights, so
 *    every channel is one straight run of XORs; other windows run row by row from the input;
 *  - two output channels share every activation load (register blocking);
 *  - on cores with the DSP extension an assembly loop over all channel pairs of a window, three words per
 *    step through a carry-save adder, making the output bits itself (for at most 128 output channels from
 *    accumulators that start at a per-channel value, so that the sign of the count is the bit); windows cut by
 *    the left or right border (zero padding) gather their rows of taps and read the weights across the gaps
 *    (irnet_side_pairs, irnet_rows_pairs, GCC); elsewhere two words at a time in C (SWAR to nibble counts, the
 *    two words' nibbles added, bytes summed with a multiply);
 *  - on Helium (Cortex-M55) four words per vector step, tail-predicated;
 *  - with the DSP extension (Helium cores too), 3x3 kernels over at most 16 input channels take their own
 *    path (irnet_bconv_h3): each tap in both halves of a word, two channels' weights per word, chunks of 16
 *    output channels, border windows read zeros from a strip and are corrected through their thresholds; on
 *    Helium cores the nine taps of a window count against eight pair-words in two vectors (irnet_h3_mve_pops).
 * Never calls libgcc's popcount. */
#include "irnet_internal.h"

#if defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M'

#include <stddef.h>
#include <stdint.h>
#if defined(__ARM_FEATURE_SIMD32)
#include <arm_acle.h>
#endif
#if defined(__ARM_FEATURE_MVE)
#include <arm_mve.h>
#endif

/* popcount(a) + popcount(b) */
static inline int32_t irnet_pop2(uint32_t a, uint32_t b)
{
    a = a - ((a >> 1) & 0x55555555u);
    b = b - ((b >> 1) & 0x55555555u);
    a = (a & 0x33333333u) + ((a >> 2) & 0x33333333u);
    b = (b & 0x33333333u) + ((b >> 2) & 0x33333333u);
    a = a + b; /* nibbles <= 8 */
#if defined(__ARM_FEATURE_SIMD32)
    return (int32_t)__usada8(a & 0x0F0F0F0Fu, 0u, __usada8((a >> 4) & 0x0F0F0F0Fu, 0u, 0u));
#else
    a = (a & 0x0F0F0F0Fu) + ((a >> 4) & 0x0F0F0F0Fu); /* bytes <= 16: the high nibbles masked too */
    return (int32_t)((a * 0x01010101u) >> 24);
#endif
}

static inline int32_t irnet_pop1(uint32_t a)
{
    return irnet_pop2(a, 0u);
}

#if defined(__ARM_FEATURE_MVE)
/* Helium: 128 bits per step, tail-predicated loads (lanes past n read as 0 and XOR to 0), SWAR down to
 * byte counts (at most 8 per byte), and one VADDVA per step and channel adds the 16 bytes. */
static inline uint8x16_t irnet_bytes_mve(uint32x4_t v)
{
    v = vsubq_u32(v, vandq_u32(vshrq_n_u32(v, 1), vdupq_n_u32(0x55555555u)));
    v = vaddq_u32(vandq_u32(v, vdupq_n_u32(0x33333333u)), vandq_u32(vshrq_n_u32(v, 2), vdupq_n_u32(0x33333333u)));
    v = vandq_u32(vaddq_u32(v, vshrq_n_u32(v, 4)), vdupq_n_u32(0x0F0F0F0Fu));
    return vreinterpretq_u8_u32(v);
}

static inline void irnet_run2(const uint32_t *x, const uint32_t *w0, const uint32_t *w1, int n,
    int32_t *pop0, int32_t *pop1)
{
    uint32_t p0 = 0u, p1 = 0u;
    int i;
    for (i = 0; i < n; i += 4) {
        const mve_pred16_t lanes = vctp32q((uint32_t)(n - i));
        const uint32x4_t xv = vldrwq_z_u32(x + i, lanes);
        p0 = vaddvaq_u8(p0, irnet_bytes_mve(veorq_u32(xv, vldrwq_z_u32(w0 + i, lanes))));
        p1 = vaddvaq_u8(p1, irnet_bytes_mve(veorq_u32(xv, vldrwq_z_u32(w1 + i, lanes))));
    }
    *pop0 += (int32_t)p0;
    *pop1 += (int32_t)p1;
}
#endif
#if defined(__ARM_FEATURE_DSP)
/* Thumb-2 with the DSP extension (M4, M7, M33). Written in assembly because GCC 12 spends about 50% more
 * instructions on the same algorithm in C. Three words at a time per channel: a carry-save adder turns
 * them into a "ones" and a "twos" word, both are SWAR-reduced to nibble counts and combined as
 * ones + 2 * twos (<= 12 per nibble); USADA8 then adds |v - 15 * hi| = lo + hi over the four bytes, so
 * no zero register and no second accumulator are needed. The masks are Thumb-2 immediates, the
 * activation words stay in r4-r6 for the second channel, and LDM needs ascending registers, hence the
 * fixed register assignment. The loops use r0-r6, r8-r12 and lr, never r7 (clang's Thumb frame pointer).
 *
 * Loops over channel pairs keep their state in memory. GCC addresses it through "m" operands (sp- or
 * frame-relative); clang (Arm Compiler 6 included) puts the address of every "m" operand in a register of its
 * own, and none is left: there the state arrives in r0 and r3-r9 and the assembly pushes it itself, reads it
 * sp-relative (IRNET_CM_ST: the register's slot in the push, 4 bytes per register in ascending order) and
 * drops it at the end: the loops are the same instructions with both compilers, clang's calls add a push and
 * an add to sp (and irnet_bits_pairs a load of the word). */
#if defined(__clang__)
#define IRNET_CM_ST(NAME, OFFSET) "[sp, #" #OFFSET "]"
#define IRNET_CM_ST_PUSH(REGS) "push {" REGS "}\n\t"
#define IRNET_CM_ST_DROP(BYTES) "add sp, sp, #" #BYTES "\n\t"
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Woverlength-strings" /* an assembly loop is one string */
#else
#define IRNET_CM_ST(NAME, OFFSET) "%[" #NAME "]"
#define IRNET_CM_ST_PUSH(REGS) ""
#define IRNET_CM_ST_DROP(BYTES) ""
#endif
#define IRNET_CM_NIBBLES3(A, B, C, T) \
    "eor " A ", " A ", r4\n\t" "eor " B ", " B ", r5\n\t" "eor " C ", " C ", r6\n\t" \
    "eor " T ", " A ", " B "\n\t" "and " A ", " A ", " B "\n\t" "eor " B ", " T ", " C "\n\t" \
    "and " T ", " T ", " C "\n\t" "orr " A ", " A ", " T "\n\t" \
    IRNET_CM_PAIRS(B, T) IRNET_CM_PAIRS(A, T) \
    IRNET_CM_QUADS(B, T) IRNET_CM_QUADS(A, T) \
    "add " B ", " B ", " A ", lsl #1\n\t"
/* 2-bit counts */
#define IRNET_CM_PAIRS(V, T) "and " T ", " V ", #0xAAAAAAAA\n\t" "sub " V ", " V ", " T ", lsr #1\n\t"
/* 4-bit counts */
#define IRNET_CM_QUADS(V, T) \
    "and " T ", " V ", #0xCCCCCCCC\n\t" "and " V ", " V ", #0x33333333\n\t" "add " V ", " V ", " T ", lsr #2\n\t"
/* acc += sum over the eight nibbles of V */
#define IRNET_CM_ADD_NIBBLES(ACC, V, T) \
    "and " T ", " V ", #0xF0F0F0F0\n\t" "sub " T ", " T ", " T ", lsr #4\n\t" \
    "usada8 " ACC ", " V ", " T ", " ACC "\n\t"

/* The loop over n contiguous words of x against w0 (r1) and w1 (r2): three-word steps two at a time, one
 * more step, then a tail of one or two words. In: r0 = x, r3 = n; ADD(acc, nibbles, temp) adds the counts
 * to r12 and lr. */
#define IRNET_CM_STEP(ADD) \
    "ldm r0!, {r4, r5, r6}\n\t" \
    "ldm r1!, {r8, r9, r10}\n\t" \
    IRNET_CM_NIBBLES3("r8", "r9", "r10", "r11") \
    ADD("r12", "r9", "r11") \
    "ldm r2!, {r8, r9, r10}\n\t" \
    IRNET_CM_NIBBLES3("r8", "r9", "r10", "r11") \
    ADD("lr", "r9", "r11")
#define IRNET_CM_TWO(W, ACC, ADD) \
    "ldm " W "!, {r8, r9}\n\t" \
    "eor r8, r8, r4\n\t" "eor r9, r9, r5\n\t" \
    IRNET_CM_PAIRS("r8", "r11") IRNET_CM_PAIRS("r9", "r11") \
    IRNET_CM_QUADS("r8", "r11") IRNET_CM_QUADS("r9", "r11") \
    "add r8, r8, r9\n\t" \
    ADD(ACC, "r8", "r11")
#define IRNET_CM_ONE(W, ACC, ADD) \
    "ldr r8, [" W "], #4\n\t" \
    "eor r8, r8, r4\n\t" \
    IRNET_CM_PAIRS("r8", "r11") IRNET_CM_QUADS("r8", "r11") \
    ADD(ACC, "r8", "r11")
#define IRNET_CM_RUN(ADD) \
    "subs r3, r3, #6\n\t" \
    "blt 2f\n" \
    "1:\n\t" \
    IRNET_CM_STEP(ADD) IRNET_CM_STEP(ADD) \
    "subs r3, r3, #6\n\t" \
    "bge 1b\n" \
    "2:\n\t" \
    "adds r3, r3, #3\n\t" \
    "blt 3f\n\t" \
    IRNET_CM_STEP(ADD) \
    "subs r3, r3, #3\n" \
    "3:\n\t" \
    "adds r3, r3, #2\n\t" /* words left - 1 */ \
    "blt 5f\n\t" \
    "beq 4f\n\t" \
    "ldm r0!, {r4, r5}\n\t" \
    IRNET_CM_TWO("r1", "r12", ADD) IRNET_CM_TWO("r2", "lr", ADD) \
    "b 5f\n" \
    "4:\n\t" \
    "ldr r4, [r0], #4\n\t" \
    IRNET_CM_ONE("r1", "r12", ADD) IRNET_CM_ONE("r2", "lr", ADD) \
    "5:\n\t"

/* The run over n = 3 * steps words, steps <= IRNET_CM_STEPS: r3 = IRNET_CM_STEPS - steps picks the step to enter
 * from a table of branch offsets (TBH), and the steps follow each other without a loop: a window of a 3x3 kernel
 * over 32, 64 or 128 channels is 3, 6 or 12 steps, and a loop with its tail cost a channel pair 9 to 18
 * instructions where TBH costs one. */
#define IRNET_CM_STEPS 12
#define IRNET_CM_TABLE_RUN(ADD) IRNET_CM_TABLE_RUN_AT("r3", ADD)
#define IRNET_CM_TABLE_RUN_AT(INDEX, ADD) \
    "tbh [pc, " INDEX ", lsl #1]\n" \
    "9:\n\t" \
    ".hword (31f - 9b) / 2\n\t" ".hword (32f - 9b) / 2\n\t" ".hword (33f - 9b) / 2\n\t" \
    ".hword (34f - 9b) / 2\n\t" ".hword (35f - 9b) / 2\n\t" ".hword (36f - 9b) / 2\n\t" \
    ".hword (37f - 9b) / 2\n\t" ".hword (38f - 9b) / 2\n\t" ".hword (39f - 9b) / 2\n\t" \
    ".hword (40f - 9b) / 2\n\t" ".hword (41f - 9b) / 2\n\t" ".hword (42f - 9b) / 2\n" \
    "31:\n\t" IRNET_CM_STEP(ADD) "32:\n\t" IRNET_CM_STEP(ADD) "33:\n\t" IRNET_CM_STEP(ADD) \
    "34:\n\t" IRNET_CM_STEP(ADD) "35:\n\t" IRNET_CM_STEP(ADD) "36:\n\t" IRNET_CM_STEP(ADD) \
    "37:\n\t" IRNET_CM_STEP(ADD) "38:\n\t" IRNET_CM_STEP(ADD) "39:\n\t" IRNET_CM_STEP(ADD) \
    "40:\n\t" IRNET_CM_STEP(ADD) "41:\n\t" IRNET_CM_STEP(ADD) "42:\n\t" IRNET_CM_STEP(ADD)

#if !defined(__ARM_FEATURE_MVE)
/* popcounts of x ^ w0 and x ^ w1 over n contiguous words, added to *pop0 and *pop1 */
static inline void irnet_run2(const uint32_t *x, const uint32_t *w0, const uint32_t *w1, int n,
    int32_t *pop0, int32_t *pop1)
{
    register const uint32_t *rx __asm__("r0") = x;
    register const uint32_t *rw0 __asm__("r1") = w0;
    register const uint32_t *rw1 __asm__("r2") = w1;
    register int32_t rn __asm__("r3") = n;
    register int32_t acc0 __asm__("r12") = *pop0;
    register int32_t acc1 __asm__("lr") = *pop1;
    __asm__ volatile(IRNET_CM_RUN(IRNET_CM_ADD_NIBBLES)
        : "+r"(rx), "+r"(rw0), "+r"(rw1), "+r"(rn), "+r"(acc0), "+r"(acc1)
        :
        : "r4", "r5", "r6", "r8", "r9", "r10", "r11", "cc", "memory");
    *pop0 = acc0;
    *pop1 = acc1;
}

/* The head of a loop over channel pairs: x and the step count from the stack struct (the count into N),
 * both accumulators zero */
#define IRNET_CM_PAIR_HEAD(N) \
        "6:\n\t" \
        "ldr r0, " IRNET_CM_ST(x, 0) "\n\t" \
        "ldr " N ", " IRNET_CM_ST(n, 4) "\n\t" \
        "mov r12, #0\n\t" \
        "mov lr, #0\n\t"

#define IRNET_CM_POPS_PAIRS(RUN) \
        IRNET_CM_ST_PUSH("r0, r3, r4, r5, r6") \
        IRNET_CM_PAIR_HEAD("r3") \
        RUN(IRNET_CM_ADD_NIBBLES) \
        "ldr r3, " IRNET_CM_ST(pops, 12) "\n\t" \
        "strd r12, lr, [r3], #8\n\t" \
        "str r3, " IRNET_CM_ST(pops, 12) "\n\t" \
        "ldr r3, " IRNET_CM_ST(skip, 8) "\n\t" \
        "add r1, r1, r3\n\t" \
        "add r2, r2, r3\n\t" \
        "ldr r3, " IRNET_CM_ST(end, 16) "\n\t" \
        "cmp r1, r3\n\t" \
        "blo 6b\n\t" \
        IRNET_CM_ST_DROP(20)
#if defined(__clang__)
#define IRNET_CM_POPS_OPERANDS \
        : "+r"(rw0), "+r"(rw1), "+r"(rx), "+r"(rn), "+r"(rskip), "+r"(rpops), "+r"(rend) \
        : \
        : "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory"
#else
#define IRNET_CM_POPS_OPERANDS \
        : "+r"(rw0), "+r"(rw1), [pops] "+m"(s.pops) \
        : [x] "m"(s.x), [n] "m"(s.n), [skip] "m"(s.skip), [end] "m"(s.end) \
        : "r0", "r3", "r4", "r5", "r6", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory"
#endif

/* pops[i] = popcount over n words of x ^ (weights of channel i), for the channels pairs (0, 1), (2, 3), ...
 * up to 'pairs' pairs; channel i's words start at w + i * tap_words. The loop over channel pairs is in the
 * assembly too, as every register is taken: its state lives in a stack struct (sp-relative operands). */
static inline void irnet_pops_pairs(const uint32_t *x, int n, const uint32_t *w, int tap_words, int pairs,
    int32_t *pops)
{
    const int table = n % 3 == 0 && n <= 3 * IRNET_CM_STEPS;
    register const uint32_t *rw0 __asm__("r1") = w;
    register const uint32_t *rw1 __asm__("r2") = w + tap_words;
#if defined(__clang__)
    register const uint32_t *rx __asm__("r0") = x;
    register int32_t rn __asm__("r3") = table ? IRNET_CM_STEPS - n / 3 : n;
    register int32_t rskip __asm__("r4") = (2 * tap_words - n) * 4;
    register int32_t *rpops __asm__("r5") = pops;
    register const uint32_t *rend __asm__("r6") = w + 2 * pairs * tap_words;
#else
    struct {
        const uint32_t *x;
        int32_t n, skip, *pops;
        const uint32_t *end;
    } s;
    s.x = x;
    s.n = table ? IRNET_CM_STEPS - n / 3 : n;
    s.skip = (2 * tap_words - n) * 4; /* both weight pointers, from the end of one pair to the next */
    s.pops = pops;
    s.end = w + 2 * pairs * tap_words;
#endif
    if (table) {
        __asm__ volatile(IRNET_CM_POPS_PAIRS(IRNET_CM_TABLE_RUN) IRNET_CM_POPS_OPERANDS);
    } else {
        __asm__ volatile(IRNET_CM_POPS_PAIRS(IRNET_CM_RUN) IRNET_CM_POPS_OPERANDS);
    }
}

#define IRNET_CM_BITS_PAIRS(RUN) \
        IRNET_CM_ST_PUSH("r0, r3, r4, r5, r6, r8, r9") \
        IRNET_CM_PAIR_HEAD("r3") \
        RUN(IRNET_CM_ADD_NIBBLES) \
        "ldr r3, " IRNET_CM_ST(thr, 16) "\n\t" \
        "ldrd r4, r5, [r3], #8\n\t" \
        "str r3, " IRNET_CM_ST(thr, 16) "\n\t" \
        "ldr r6, " IRNET_CM_ST(bits, 12) "\n\t" \
        "sub r12, r6, r12, lsl #1\n\t" \
        "qsub r4, r12, r4\n\t" /* saturating: any threshold keeps the sign right */ \
        "sub lr, r6, lr, lsl #1\n\t" \
        "qsub r5, lr, r5\n\t" \
        "ldr r3, " IRNET_CM_ST(word, 24) "\n\t" \
        "and r4, r4, #0x80000000\n\t" \
        "orr r3, r4, r3, lsr #1\n\t" \
        "and r5, r5, #0x80000000\n\t" \
        "orr r3, r5, r3, lsr #1\n\t" \
        "str r3, " IRNET_CM_ST(word, 24) "\n\t" \
        "ldr r3, " IRNET_CM_ST(skip, 8) "\n\t" \
        "add r1, r1, r3\n\t" \
        "add r2, r2, r3\n\t" \
        "ldr r3, " IRNET_CM_ST(end, 20) "\n\t" \
        "cmp r1, r3\n\t" \
        "blo 6b\n\t"
#if defined(__clang__)
#define IRNET_CM_BITS_END "ldr r3, [sp, #24]\n\t" IRNET_CM_ST_DROP(28)
#define IRNET_CM_BITS_OPERANDS \
        : "+r"(rw0), "+r"(rw1), "+r"(rx), "+r"(rn), "+r"(rskip), "+r"(rbits), "+r"(rthr), "+r"(rend), "+r"(rword) \
        : \
        : "r10", "r11", "r12", "lr", "cc", "memory"
#else
#define IRNET_CM_BITS_END
#define IRNET_CM_BITS_OPERANDS \
        : "+r"(rw0), "+r"(rw1), [thr] "+m"(s.threshold), [word] "+m"(s.word) \
        : [x] "m"(s.x), [n] "m"(s.n), [skip] "m"(s.skip), [bits] "m"(s.bits), [end] "m"(s.end) \
        : "r0", "r3", "r4", "r5", "r6", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory"
#endif

/* IRNET_CM_BITS_PAIRS through the table, with the word in r3 (which the steps leave alone) instead of memory */
#define IRNET_CM_BITS_TABLE \
        IRNET_CM_BITS_START \
        IRNET_CM_PAIR_HEAD("r11") \
        IRNET_CM_TABLE_RUN_AT("r11", IRNET_CM_ADD_NIBBLES) \
        "ldr r8, " IRNET_CM_ST(thr, 16) "\n\t" \
        "ldrd r4, r5, [r8], #8\n\t" \
        "str r8, " IRNET_CM_ST(thr, 16) "\n\t" \
        "ldr r6, " IRNET_CM_ST(bits, 12) "\n\t" \
        "sub r12, r6, r12, lsl #1\n\t" \
        "qsub r4, r12, r4\n\t" \
        "sub lr, r6, lr, lsl #1\n\t" \
        "qsub r5, lr, r5\n\t" \
        "and r4, r4, #0x80000000\n\t" \
        "orr r3, r4, r3, lsr #1\n\t" \
        "and r5, r5, #0x80000000\n\t" \
        "orr r3, r5, r3, lsr #1\n\t" \
        "ldr r8, " IRNET_CM_ST(skip, 8) "\n\t" \
        "add r1, r1, r8\n\t" \
        "add r2, r2, r8\n\t" \
        "ldr r8, " IRNET_CM_ST(end, 20) "\n\t" \
        "cmp r1, r8\n\t" \
        "blo 6b\n\t" \
        IRNET_CM_ST_DROP(28)
#if defined(__clang__)
/* r3 brings the table index, which the push keeps */
#define IRNET_CM_BITS_START IRNET_CM_ST_PUSH("r0, r3, r4, r5, r6, r8, r9") "mov r3, #0\n"
#define IRNET_CM_BITS_TABLE_OPERANDS IRNET_CM_BITS_OPERANDS
#else
#define IRNET_CM_BITS_START
#define IRNET_CM_BITS_TABLE_OPERANDS \
        : "+r"(rw0), "+r"(rw1), "+r"(rword), [thr] "+m"(s.threshold) \
        : [x] "m"(s.x), [n] "m"(s.n), [skip] "m"(s.skip), [bits] "m"(s.bits), [end] "m"(s.end) \
        : "r0", "r4", "r5", "r6", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory"
#endif

/* The same loop with the output bits made in the assembly: channel c's bit is the sign of
 * bits_counted - 2 * pop - threshold[c], shifted in from the top, two channels per pair. Returns the bits of
 * the 2 * pairs channels in bits 0 .. 2 * pairs - 1. */
static inline uint32_t irnet_bits_pairs(const uint32_t *x, int n, const uint32_t *w, int tap_words, int pairs,
    const int32_t *threshold, int32_t bits_counted)
{
    const int table = n % 3 == 0 && n <= 3 * IRNET_CM_STEPS;
    register const uint32_t *rw0 __asm__("r1") = w;
    register const uint32_t *rw1 __asm__("r2") = w + tap_words;
#if defined(__clang__)
    register const uint32_t *rx __asm__("r0") = x;
    register uint32_t rn __asm__("r3") = (uint32_t)(table ? IRNET_CM_STEPS - n / 3 : n); /* the word at the end */
    register int32_t rskip __asm__("r4") = (2 * tap_words - n) * 4;
    register int32_t rbits __asm__("r5") = bits_counted;
    register const int32_t *rthr __asm__("r6") = threshold;
    register const uint32_t *rend __asm__("r8") = w + 2 * pairs * tap_words;
    register uint32_t rword __asm__("r9") = 0;
#else
    struct {
        const uint32_t *x;
        int32_t n, skip, bits;
        const int32_t *threshold;
        const uint32_t *end;
        uint32_t word;
    } s;
    s.x = x;
    s.n = table ? IRNET_CM_STEPS - n / 3 : n;
    s.skip = (2 * tap_words - n) * 4;
    s.bits = bits_counted;
    s.threshold = threshold;
    s.end = w + 2 * pairs * tap_words;
    s.word = 0;
#endif
    if (table) {
#if !defined(__clang__)
        register uint32_t rword __asm__("r3") = 0;
#endif
        __asm__ volatile(IRNET_CM_BITS_TABLE IRNET_CM_BITS_TABLE_OPERANDS);
#if !defined(__clang__)
        return rword >> (32 - 2 * pairs);
#endif
    } else {
        __asm__ volatile(IRNET_CM_BITS_PAIRS(IRNET_CM_RUN) IRNET_CM_BITS_END IRNET_CM_BITS_OPERANDS);
    }
#if defined(__clang__)
    return rn >> (32 - 2 * pairs);
#else
    return s.word >> (32 - 2 * pairs);
#endif
}

/* irnet_bits_pairs through the table with each accumulator starting at init[c] = -(1 + the largest popcount whose
 * output bit is 0) (irnet_cm_inits): the bit is 1 where the accumulator ends >= 0, so the loop shifts in the
 * sign bits and the caller inverts them, with no threshold arithmetic per channel. The word starts with a marker
 * bit at 2 * pairs - 1, which the last channel's shift moves out into the carry: the end of the loop. */
#define IRNET_CM_INIT_TABLE \
        IRNET_CM_INIT_START \
        "ldr r8, " IRNET_CM_ST(init, 8) "\n\t" \
        "ldrd r12, lr, [r8], #8\n\t" \
        "str r8, " IRNET_CM_ST(init, 8) "\n" \
        "6:\n\t" \
        "ldrd r0, r11, " IRNET_CM_ST(x, 0) "\n\t" /* x and the table index */ \
        IRNET_CM_TABLE_RUN_AT("r11", IRNET_CM_ADD_NIBBLES) \
        "and r4, r12, #0x80000000\n\t" \
        "orr r3, r4, r3, lsr #1\n\t" \
        "and r5, lr, #0x80000000\n\t" \
        "orrs r3, r5, r3, lsr #1\n\t" /* the marker bit leaves through the carry after the last pair */ \
        "ldrd r8, r11, " IRNET_CM_ST(init, 8) "\n\t" /* the next pair's start values (past the last too), skip */ \
        "add r1, r1, r11\n\t" \
        "add r2, r2, r11\n\t" \
        "ldrd r12, lr, [r8], #8\n\t" \
        "str r8, " IRNET_CM_ST(init, 8) "\n\t" \
        "bcc 6b\n\t" \
        IRNET_CM_ST_DROP(20)
#if defined(__clang__)
/* r3 brings the table index and r6 the marker */
#define IRNET_CM_INIT_START IRNET_CM_ST_PUSH("r0, r3, r4, r5, r6") "mov r3, r6\n\t"
#else
#define IRNET_CM_INIT_START
#endif

/* Output bits of the 2 * pairs channels in bits 0 .. 2 * pairs - 1, for n = 3 * steps words (the table) */
static inline uint32_t irnet_bits_pairs_init(const uint32_t *x, int n, const uint32_t *w, int tap_words, int pairs,
    const int32_t *init)
{
    register const uint32_t *rw0 __asm__("r1") = w;
    register const uint32_t *rw1 __asm__("r2") = w + tap_words;
#if defined(__clang__)
    register const uint32_t *rx __asm__("r0") = x;
    register uint32_t rword __asm__("r3") = (uint32_t)(IRNET_CM_STEPS - n / 3);
    register const int32_t *rinit __asm__("r4") = init;
    register int32_t rskip __asm__("r5") = (2 * tap_words - n) * 4;
    register uint32_t rmark __asm__("r6") = 1u << (2 * pairs - 1);
    __asm__ volatile(IRNET_CM_INIT_TABLE
        : "+r"(rw0), "+r"(rw1), "+r"(rx), "+r"(rword), "+r"(rinit), "+r"(rskip), "+r"(rmark)
        :
        : "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory");
#else
    register uint32_t rword __asm__("r3") = 1u << (2 * pairs - 1);
    struct {
        const uint32_t *x;
        int32_t n;
        const int32_t *init;
        int32_t skip;
    } s;
    s.x = x;
    s.n = IRNET_CM_STEPS - n / 3;
    s.init = init;
    s.skip = (2 * tap_words - n) * 4;
    __asm__ volatile(IRNET_CM_INIT_TABLE
        : "+r"(rw0), "+r"(rw1), "+r"(rword), [init] "+m"(s.init)
        : [x] "m"(s.x), [n] "m"(s.n), [skip] "m"(s.skip)
        : "r0", "r4", "r5", "r6", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory");
#endif
    return ~rword >> (32 - 2 * pairs);
}
#define IRNET_CM_INITS 128 /* channels of the stack array of irnet_bits_pairs_init's start values */

#if !defined(__clang__)
/* Windows cut by the left or right border (zero padding): the taps present are 'rows' runs of n words in the
 * weights, row_words apart, gathered into x one after the other. The loop over channel pairs runs the rows in the
 * assembly too (GCC only: its state lives in a stack struct, "m" operands). */
#define IRNET_CM_ROWS_HEAD \
        "6:\n\t" \
        "ldr r0, %[x]\n\t" \
        "mov r12, #0\n\t" \
        "mov lr, #0\n\t" \
        "ldr r3, %[rows]\n\t" \
        "str r3, %[left]\n" \
        "7:\n\t" \
        "ldr r3, %[n]\n\t" \
        IRNET_CM_RUN(IRNET_CM_ADD_NIBBLES) \
        "ldr r3, %[gap]\n\t" \
        "add r1, r1, r3\n\t" \
        "add r2, r2, r3\n\t" \
        "ldr r3, %[left]\n\t" \
        "subs r3, r3, #1\n\t" \
        "str r3, %[left]\n\t" \
        "bne 7b\n\t"
#define IRNET_CM_ROWS_TAIL \
        "ldr r3, %[skip]\n\t" \
        "add r1, r1, r3\n\t" \
        "add r2, r2, r3\n\t" \
        "ldr r3, %[end]\n\t" \
        "cmp r1, r3\n\t" \
        "blo 6b\n\t"
struct irnet_cm_rows {
    const uint32_t *x;
    int32_t n, rows, left, gap, skip;
    const uint32_t *end;
    int32_t *pops;
    const int32_t *threshold;
    int32_t bits;
    uint32_t word;
};

/* pops of 'pairs' channel pairs (as irnet_pops_pairs), or with pops null their output bits (as irnet_bits_pairs,
 * returned in bits 0 .. 2 * pairs - 1) against thresholds counting bits_counted bits */
static __attribute__((noinline)) uint32_t irnet_rows_pairs(const uint32_t *x, int n, int rows, int row_words,
    const uint32_t *w, int tap_words, int pairs, int32_t *pops, const int32_t *threshold, int32_t bits_counted)
{
    register const uint32_t *rw0 __asm__("r1") = w;
    register const uint32_t *rw1 __asm__("r2") = w + tap_words;
    struct irnet_cm_rows s;
    s.x = x;
    s.n = n;
    s.rows = rows;
    s.gap = (row_words - n) * 4;
    s.skip = (2 * tap_words - rows * row_words) * 4;
    s.end = w + 2 * pairs * tap_words;
    s.pops = pops;
    s.threshold = threshold;
    s.bits = bits_counted;
    s.word = 0;
    if (pops != 0) {
        __asm__ volatile(
            IRNET_CM_ROWS_HEAD
            "ldr r3, %[pops]\n\t"
            "strd r12, lr, [r3], #8\n\t"
            "str r3, %[pops]\n\t"
            IRNET_CM_ROWS_TAIL
            : "+r"(rw0), "+r"(rw1), [pops] "+m"(s.pops), [left] "+m"(s.left)
            : [x] "m"(s.x), [n] "m"(s.n), [rows] "m"(s.rows), [gap] "m"(s.gap), [skip] "m"(s.skip),
              [end] "m"(s.end)
            : "r0", "r3", "r4", "r5", "r6", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory");
        return 0u;
    }
    __asm__ volatile(
        IRNET_CM_ROWS_HEAD
        "ldr r3, %[thr]\n\t"
        "ldrd r4, r5, [r3], #8\n\t"
        "str r3, %[thr]\n\t"
        "ldr r6, %[bits]\n\t"
        "sub r12, r6, r12, lsl #1\n\t"
        "qsub r4, r12, r4\n\t"
        "sub lr, r6, lr, lsl #1\n\t"
        "qsub r5, lr, r5\n\t"
        "ldr r3, %[word]\n\t"
        "and r4, r4, #0x80000000\n\t"
        "orr r3, r4, r3, lsr #1\n\t"
        "and r5, r5, #0x80000000\n\t"
        "orr r3, r5, r3, lsr #1\n\t"
        "str r3, %[word]\n\t"
        IRNET_CM_ROWS_TAIL
        : "+r"(rw0), "+r"(rw1), [thr] "+m"(s.threshold), [word] "+m"(s.word), [left] "+m"(s.left)
        : [x] "m"(s.x), [n] "m"(s.n), [rows] "m"(s.rows), [gap] "m"(s.gap), [skip] "m"(s.skip),
          [end] "m"(s.end), [bits] "m"(s.bits)
        : "r0", "r3", "r4", "r5", "r6", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory");
    return s.word >> (32 - 2 * pairs);
}

/* A step of three words from weights with gaps: L1 and L2 load r8-r10 from r1 and r2 */
#define IRNET_CM_STEP_L(L1, L2) \
    "ldm r0!, {r4, r5, r6}\n\t" \
    L1 \
    IRNET_CM_NIBBLES3("r8", "r9", "r10", "r11") \
    IRNET_CM_ADD_NIBBLES("r12", "r9", "r11") \
    L2 \
    IRNET_CM_NIBBLES3("r8", "r9", "r10", "r11") \
    IRNET_CM_ADD_NIBBLES("lr", "r9", "r11")
#define IRNET_CM_L3(W) "ldm " W "!, {r8, r9, r10}\n\t"
#define IRNET_CM_L12(W, A) "ldr r8, [" W "], #" #A "\n\t" "ldrd r9, r10, [" W "], #8\n\t"
#define IRNET_CM_L21(W, B) "ldrd r8, r9, [" W "], #" #B "\n\t" "ldr r10, [" W "], #4\n\t"
#define IRNET_CM_S3 IRNET_CM_STEP_L(IRNET_CM_L3("r1"), IRNET_CM_L3("r2"))
#define IRNET_CM_S12(A) IRNET_CM_STEP_L(IRNET_CM_L12("r1", A), IRNET_CM_L12("r2", A))
#define IRNET_CM_S21(B) IRNET_CM_STEP_L(IRNET_CM_L21("r1", B), IRNET_CM_L21("r2", B))
/* The loop over channel pairs of a 3x3 window cut by the left or right border, all three rows present, two taps
 * of 'words' words each per row (gathered one after the other in x): the steps read the weights across the gap of
 * one tap between the rows. Then the pops (pops not null) or the output bits (as in irnet_rows_pairs). */
#define IRNET_CM_SIDE_HEAD(STEPS) \
        "6:\n\t" \
        "ldr r0, %[x]\n\t" \
        "mov r12, #0\n\t" \
        "mov lr, #0\n\t" \
        STEPS
#define IRNET_CM_SIDE_POPS(STEPS) \
        IRNET_CM_SIDE_HEAD(STEPS) \
        "ldr r3, %[pops]\n\t" \
        "strd r12, lr, [r3], #8\n\t" \
        "str r3, %[pops]\n\t" \
        IRNET_CM_ROWS_TAIL
/* the bits: the word in r3 starts with a marker bit at 2 * pairs - 1, which leaves through the carry at the end */
#define IRNET_CM_SIDE_BITS(STEPS) \
        IRNET_CM_SIDE_HEAD(STEPS) \
        "ldr r8, %[thr]\n\t" \
        "ldrd r4, r5, [r8], #8\n\t" \
        "str r8, %[thr]\n\t" \
        "ldr r6, %[bits]\n\t" \
        "sub r12, r6, r12, lsl #1\n\t" \
        "qsub r4, r12, r4\n\t" \
        "sub lr, r6, lr, lsl #1\n\t" \
        "qsub r5, lr, r5\n\t" \
        "ldr r8, %[skip]\n\t" \
        "add r1, r1, r8\n\t" \
        "add r2, r2, r8\n\t" \
        "and r4, r4, #0x80000000\n\t" \
        "orr r3, r4, r3, lsr #1\n\t" \
        "and r5, r5, #0x80000000\n\t" \
        "orrs r3, r5, r3, lsr #1\n\t" \
        "bcc 6b\n\t"
#define IRNET_CM_SIDE_POPS_OPERANDS \
        : "+r"(rw0), "+r"(rw1), [pops] "+m"(s.pops) \
        : [x] "m"(s.x), [skip] "m"(s.skip), [end] "m"(s.end) \
        : "r0", "r3", "r4", "r5", "r6", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory"
#define IRNET_CM_SIDE_BITS_OPERANDS \
        : "+r"(rw0), "+r"(rw1), "+r"(rword), [thr] "+m"(s.threshold) \
        : [x] "m"(s.x), [skip] "m"(s.skip), [bits] "m"(s.bits) \
        : "r0", "r4", "r5", "r6", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory"

/* irnet_rows_pairs for three rows of two taps of one (words 1) or two words (words 2) */
static __attribute__((noinline)) uint32_t irnet_side_pairs(const uint32_t *x, int words, const uint32_t *w,
    int tap_words, int pairs, int32_t *pops, const int32_t *threshold, int32_t bits_counted)
{
    register const uint32_t *rw0 __asm__("r1") = w;
    register const uint32_t *rw1 __asm__("r2") = w + tap_words;
    struct irnet_cm_rows s;
    s.x = x;
    s.skip = (2 * tap_words - 9 * words + words) * 4; /* the pointers end a tap before the third row's end */
    s.end = w + 2 * pairs * tap_words;
    s.pops = pops;
    s.threshold = threshold;
    s.bits = bits_counted;
    /* rows of two words, one apart: steps (r0 0, r0 1, r1 0), (r1 1, r2 0, r2 1); of four words, two apart */
#define IRNET_CM_SIDE1 IRNET_CM_S21(12) IRNET_CM_S12(8)
#define IRNET_CM_SIDE2 IRNET_CM_S3 IRNET_CM_S12(12) IRNET_CM_S21(16) IRNET_CM_S3
    if (pops != 0) {
        if (words == 1) {
            __asm__ volatile(IRNET_CM_SIDE_POPS(IRNET_CM_SIDE1) IRNET_CM_SIDE_POPS_OPERANDS);
        } else {
            __asm__ volatile(IRNET_CM_SIDE_POPS(IRNET_CM_SIDE2) IRNET_CM_SIDE_POPS_OPERANDS);
        }
        return 0u;
    } else {
        register uint32_t rword __asm__("r3") = 1u << (2 * pairs - 1);
        if (words == 1) {
            __asm__ volatile(IRNET_CM_SIDE_BITS(IRNET_CM_SIDE1) IRNET_CM_SIDE_BITS_OPERANDS);
        } else {
            __asm__ volatile(IRNET_CM_SIDE_BITS(IRNET_CM_SIDE2) IRNET_CM_SIDE_BITS_OPERANDS);
        }
        return rword >> (32 - 2 * pairs);
    }
}
#define IRNET_CM_ROWS 1
#endif
#endif
/* acc += the eight nibbles of V as four byte sums (a byte stays below 256 over up to 31 words) */
#define IRNET_CM_ADD_BYTES(ACC, V, T) \
    "and " T ", " V ", #0xF0F0F0F0\n\t" "and " V ", " V ", #0x0F0F0F0F\n\t" "add " V ", " V ", " T ", lsr #4\n\t" \
    "add " ACC ", " ACC ", " V "\n\t"

#if !defined(__ARM_FEATURE_MVE)
/* Inputs of at most 16 channels, where one tap fills half a word: x holds every tap twice (both halves) and
 * each weight word two channels' taps (low half: even channel), so one popcount step serves two channels and
 * the byte sums keep them apart. For the pair-words 0, 1, 2, ... (2 * quads of them, word i's run at
 * w + i * tap_words): halves[c] = popcount over n words of channel c's half of x ^ w. */
static inline void irnet_pops_halves(const uint32_t *x, int n, const uint32_t *w, int tap_words, int quads,
    uint32_t *halves)
{
    register const uint32_t *rw0 __asm__("r1") = w;
    register const uint32_t *rw1 __asm__("r2") = w + tap_words;
#if defined(__clang__)
    register const uint32_t *rx __asm__("r0") = x;
    register int32_t rn __asm__("r3") = n;
    register int32_t rskip __asm__("r4") = (2 * tap_words - n) * 4;
    register uint32_t *rhalves __asm__("r5") = halves;
    register const uint32_t *rend __asm__("r6") = w + 2 * quads * tap_words;
#else
    struct {
        const uint32_t *x;
        int32_t n, skip;
        uint32_t *halves;
        const uint32_t *end;
    } s;
    s.x = x;
    s.n = n;
    s.skip = (2 * tap_words - n) * 4;
    s.halves = halves;
    s.end = w + 2 * quads * tap_words;
#endif
    __asm__ volatile(
        IRNET_CM_ST_PUSH("r0, r3, r4, r5, r6")
        IRNET_CM_PAIR_HEAD("r3")
        IRNET_CM_RUN(IRNET_CM_ADD_BYTES)
        "uxtb16 r4, r12\n\t"
        "uxtab16 r4, r4, r12, ror #8\n\t"
        "uxtb16 r5, lr\n\t"
        "uxtab16 r5, r5, lr, ror #8\n\t"
        "ldr r3, " IRNET_CM_ST(halves, 12) "\n\t"
        "strd r4, r5, [r3], #8\n\t"
        "str r3, " IRNET_CM_ST(halves, 12) "\n\t"
        "ldr r3, " IRNET_CM_ST(skip, 8) "\n\t"
        "add r1, r1, r3\n\t"
        "add r2, r2, r3\n\t"
        "ldr r3, " IRNET_CM_ST(end, 16) "\n\t"
        "cmp r1, r3\n\t"
        "blo 6b\n\t"
        IRNET_CM_ST_DROP(20)
#if defined(__clang__)
        : "+r"(rw0), "+r"(rw1), "+r"(rx), "+r"(rn), "+r"(rskip), "+r"(rhalves), "+r"(rend)
        :
        : "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory");
#else
        : "+r"(rw0), "+r"(rw1), [halves] "+m"(s.halves)
        : [x] "m"(s.x), [n] "m"(s.n), [skip] "m"(s.skip), [end] "m"(s.end)
        : "r0", "r3", "r4", "r5", "r6", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory");
#endif
}

#endif

/* The 3x3 form of the half-word scheme (irnet_bconv_h3): a window is 9 contiguous words and the weights of
 * all pair-words follow each other in the order read, so one pointer walks them and the loop over pair-words
 * needs no bookkeeping. Per iteration two pair-words (r12, lr) against the same three-word activation loads;
 * the first step sets the byte sums, the two others add to them (bytes <= 72). Ends with r4, r5 = the
 * popcounts of the two pair-words, one per 16-bit half. */
#define IRNET_CM_SET_BYTES(ACC, V, T) \
    "and " T ", " V ", #0xF0F0F0F0\n\t" "and " V ", " V ", #0x0F0F0F0F\n\t" "add " ACC ", " V ", " T ", lsr #4\n\t"
#define IRNET_CM_H3_STEP(ADD) \
    "ldm r0!, {r4, r5, r6}\n\t" \
    "ldm r1!, {r8, r9, r10}\n\t" \
    IRNET_CM_NIBBLES3("r8", "r9", "r10", "r11") \
    ADD("r12", "r9", "r11") \
    "ldm r1!, {r8, r9, r10}\n\t" \
    IRNET_CM_NIBBLES3("r8", "r9", "r10", "r11") \
    ADD("lr", "r9", "r11")
#define IRNET_CM_H3_PAIR \
    IRNET_CM_H3_STEP(IRNET_CM_SET_BYTES) \
    IRNET_CM_H3_STEP(IRNET_CM_ADD_BYTES) \
    IRNET_CM_H3_STEP(IRNET_CM_ADD_BYTES) \
    "sub r0, r0, #36\n\t" \
    "uxtb16 r4, r12\n\t" "uxtab16 r4, r4, r12, ror #8\n\t" \
    "uxtb16 r5, lr\n\t" "uxtab16 r5, r5, lr, ror #8\n\t"

#if !defined(__ARM_FEATURE_MVE) /* Helium cores count with irnet_h3_mve_pops */
/* Output bits of one window: for pair-word i, v[i] holds per half the largest popcount whose output bit is 0;
 * the sign bits of v[i] - popcount (SSUB16) are shifted in from the top of the word, lows in bits 0-15, highs
 * in 16-31. A marker bit starting at bit pairs - 1 leaves through the carry at the last pair-word (pairs even,
 * at most 16). Returns the word: the low half of pair-word i in bit 16 - pairs + i, the high one in
 * 32 - pairs + i. */
static inline uint32_t irnet_h3_bits(const uint32_t *x, const uint32_t *w, const uint32_t *v, int pairs)
{
    register const uint32_t *rx __asm__("r0") = x;
    register const uint32_t *rw __asm__("r1") = w;
    register const uint32_t *rv __asm__("r2") = v;
    register uint32_t word __asm__("r3") = 1u << (pairs - 1);
    __asm__ volatile(
        "1:\n\t"
        IRNET_CM_H3_PAIR
        "ldrd r8, r9, [r2], #8\n\t"
        "ssub16 r8, r8, r4\n\t"
        "ssub16 r9, r9, r5\n\t"
        "and r8, r8, #0x80008000\n\t"
        "and r9, r9, #0x80008000\n\t"
        "orr r3, r8, r3, lsr #1\n\t"
        "orrs r3, r9, r3, lsr #1\n\t"
        "bcc 1b\n\t"
        : "+r"(rx), "+r"(rw), "+r"(rv), "+r"(word)
        :
        : "r4", "r5", "r6", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory");
    return word;
}

/* Sums of one window: v[i] - 2 * popcount per half of pair-word i; sums[i] holds the low half's sum in its
 * low 16 bits (the high ones are garbage), sums[8 + i] the high half's, sign-extended. */
static inline void irnet_h3_sums(const uint32_t *x, const uint32_t *w, const uint32_t *v, int pairs,
    uint32_t *sums)
{
    register const uint32_t *rx __asm__("r0") = x;
    register const uint32_t *rw __asm__("r1") = w;
    register const uint32_t *rv __asm__("r2") = v;
    register uint32_t *rs __asm__("r3") = sums;
#if defined(__clang__)
    register const uint32_t *end __asm__("r4") = w + 9 * pairs;
#else
    const uint32_t *const end = w + 9 * pairs;
#endif
    __asm__ volatile(
        IRNET_CM_ST_PUSH("r4")
        "1:\n\t"
        IRNET_CM_H3_PAIR
        "ldrd r8, r9, [r2], #8\n\t"
        "ssub16 r8, r8, r4\n\t"
        "ssub16 r8, r8, r4\n\t"
        "ssub16 r9, r9, r5\n\t"
        "ssub16 r9, r9, r5\n\t"
        "asr r10, r8, #16\n\t"
        "asr r11, r9, #16\n\t"
        "strd r10, r11, [r3, #32]\n\t"
        "strd r8, r9, [r3], #8\n\t"
        "ldr r11, " IRNET_CM_ST(end, 0) "\n\t"
        "cmp r1, r11\n\t"
        "blo 1b\n\t"
        IRNET_CM_ST_DROP(4)
#if defined(__clang__)
        : "+r"(rx), "+r"(rw), "+r"(rv), "+r"(rs), "+r"(end)
        :
        : "r5", "r6", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory");
#else
        : "+r"(rx), "+r"(rw), "+r"(rv), "+r"(rs)
        : [end] "m"(end)
        : "r4", "r5", "r6", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory");
#endif
}
#endif
#if defined(__clang__)
#pragma clang diagnostic pop
#endif
#define IRNET_CM_H3 1
#if !defined(__ARM_FEATURE_MVE)
#define IRNET_CM_HALVES 1
#endif
#elif !defined(__ARM_FEATURE_MVE)
/* popcounts of x ^ w0 and x ^ w1 over n contiguous words */
static inline void irnet_run2(const uint32_t *x, const uint32_t *w0, const uint32_t *w1, int n,
    int32_t *pop0, int32_t *pop1)
{
    int32_t p0 = 0, p1 = 0;
    int i = 0;
    for (; i + 1 < n; i += 2) {
        const uint32_t xa = x[i], xb = x[i + 1];
        p0 += irnet_pop2(xa ^ w0[i], xb ^ w0[i + 1]);
        p1 += irnet_pop2(xa ^ w1[i], xb ^ w1[i + 1]);
    }
    if (i < n) {
        p0 += irnet_pop1(x[i] ^ w0[i]);
        p1 += irnet_pop1(x[i] ^ w1[i]);
    }
    *pop0 += p0;
    *pop1 += p1;
}
#endif

#if !defined(__ARM_FEATURE_DSP) || defined(__ARM_FEATURE_MVE)
/* pops[i] = popcount over n words of x ^ (weights of channel i, which start at w + i * tap_words), for the
 * channel pairs (0, 1), (2, 3), ... up to 'pairs' pairs */
static inline void irnet_pops_pairs(const uint32_t *x, int n, const uint32_t *w, int tap_words, int pairs,
    int32_t *pops)
{
    int i;
    for (i = 0; i < pairs; ++i) {
        pops[2 * i] = 0;
        pops[2 * i + 1] = 0;
        irnet_run2(x, w + 2 * i * tap_words, w + (2 * i + 1) * tap_words, n, &pops[2 * i], &pops[2 * i + 1]);
    }
}

/* bit c set when bits_counted - 2 * popcount < threshold[c], for the channels of 'pairs' pairs */
static inline uint32_t irnet_bits_pairs(const uint32_t *x, int n, const uint32_t *w, int tap_words, int pairs,
    const int32_t *threshold, int32_t bits_counted)
{
    int32_t pops[32];
    uint32_t word = 0;
    int i;
    irnet_pops_pairs(x, n, w, tap_words, pairs, pops);
    for (i = 0; i < 2 * pairs; ++i) {
        word |= (uint32_t)(bits_counted - 2 * pops[i] < threshold[i]) << i;
    }
    return word;
}
#endif

/* Fused ops (irnet_fusion, docs/arithmetic.md "Fused ops"): the kernels below finish a chunk of channels of one
 * output pixel (oy, ox) at a time and hand it to these, in ascending channel order per pixel. Out of line and
 * called only when something is fused, so that the unfused loops stay as they were. irnet_cm_pixel gives where
 * the pixel goes: the pooled pixel, and whether it is the first of its window (row-major). */
static inline int irnet_cm_pixel(const irnet_fusion *f, int oy, int ox, int wo, int *first)
{
    if (f->pool != 0) {
        const int py = oy / f->pool, px = ox / f->pool;
        *first = oy == py * f->pool && ox == px * f->pool;
        return py * (wo / f->pool) + px;
    }
    *first = 1;
    return oy * wo + ox;
}

/* dst = act(vals + r) (r read before dst is written: they may be the same), and its sign bits when SIGN; called
 * with constants for the usual activations, so that their loops test nothing else */
static inline __attribute__((always_inline)) uint32_t irnet_cm_residual(const float *vals, const float *r,
    float *dst, int m, int act, int sign)
{
    uint32_t bits = 0u;
    int j;
    IRNET_SCALAR_LOOP
    for (j = 0; j < m; ++j) {
        const float z = irnet_activate(vals[j] + r[j], act);
        dst[j] = z;
        if (sign) {
            bits |= (uint32_t)(z < 0.0f) << j;
        }
    }
    return bits;
}

/* Value j of irnet_cm_pool: vals[j], or without vals the dot product bits - 2 * pops[j] as a float (exact: |dot| <
 * 2^24) */
static inline __attribute__((always_inline)) float irnet_cm_pool_value(const float *vals, const int32_t *pops,
    int32_t bits, int j)
{
    return vals != 0 ? vals[j] : (float)(bits - 2 * pops[j]);
}

/* m values (irnet_cm_pool_value) into the pool's running values at dst: the window's first pixel sets them, the
 * others replace those they exceed (are below, where min_mask is set); always inlined, so that each caller's
 * loops read their values directly */
static inline __attribute__((always_inline)) void irnet_cm_pool(float *dst, int first, const uint8_t *min_mask,
    int m, const float *vals, const int32_t *pops, int32_t bits)
{
    int j;
    if (first) {
        IRNET_SCALAR_LOOP
        for (j = 0; j < m; ++j) {
            dst[j] = irnet_cm_pool_value(vals, pops, bits, j);
        }
    } else if (min_mask == 0) {
        IRNET_SCALAR_LOOP
        for (j = 0; j < m; ++j) {
            const float v = irnet_cm_pool_value(vals, pops, bits, j);
            if (v > dst[j]) {
                dst[j] = v;
            }
        }
    } else {
        IRNET_SCALAR_LOOP
        for (j = 0; j < m; ++j) {
            const float v = irnet_cm_pool_value(vals, pops, bits, j);
            if (min_mask[j] ? v < dst[j] : v > dst[j]) {
                dst[j] = v;
            }
        }
    }
}

/* Float values (after the op's act) of channels c0 .. c0 + m - 1, which lie in one word of the sign output:
 * pooled, or added to the residual and signed */
static __attribute__((noinline)) void irnet_cm_fused_f32(const irnet_fusion *f, int oy, int ox, int wo, int c0,
    int m, int cout, const float *vals, float *out)
{
    int first;
    const int pixel = irnet_cm_pixel(f, oy, ox, wo, &first);
    float *dst = out + pixel * cout + c0;
    uint32_t bits = 0u;
    int j;
    if (f->pool != 0) {
        irnet_cm_pool(dst, first, f->pool_min != 0 ? f->pool_min + c0 : 0, m, vals, 0, 0);
        return;
    }
    if (f->residual != 0) {
        const float *r = f->residual + pixel * cout + c0;
        const int sign = f->sign != 0;
        switch (f->residual_act) {
        case IRNET_ACT_NONE:
            bits = sign ? irnet_cm_residual(vals, r, dst, m, IRNET_ACT_NONE, 1)
                        : irnet_cm_residual(vals, r, dst, m, IRNET_ACT_NONE, 0);
            break;
        case IRNET_ACT_HARDTANH:
            bits = sign ? irnet_cm_residual(vals, r, dst, m, IRNET_ACT_HARDTANH, 1)
                        : irnet_cm_residual(vals, r, dst, m, IRNET_ACT_HARDTANH, 0);
            break;
        case IRNET_ACT_RELU:
            bits = sign ? irnet_cm_residual(vals, r, dst, m, IRNET_ACT_RELU, 1)
                        : irnet_cm_residual(vals, r, dst, m, IRNET_ACT_RELU, 0);
            break;
        default:
            bits = irnet_cm_residual(vals, r, dst, m, f->residual_act, sign);
            break;
        }
    } else {
        IRNET_SCALAR_LOOP
        for (j = 0; j < m; ++j) {
            dst[j] = vals[j];
            bits |= (uint32_t)(vals[j] < 0.0f) << j;
        }
    }
    if (f->sign != 0) {
        uint32_t *word = f->sign + pixel * ((cout + 31) / 32) + c0 / 32;
        *word = (c0 & 31) != 0 ? *word | bits << (c0 & 31) : bits;
    }
}

/* The dot products of channels c0 .. c0 + m - 1, dot[j] = bits - 2 * pops[j], into the pooled pixel's running
 * dots, which the float output holds as floats (exact: |dot| < 2^24) until irnet_pool_dots_finish (a fused pool
 * of a float output, irnet_fusion), pooled as irnet_cm_fused_f32 pools values */
static __attribute__((noinline)) void irnet_cm_pool_dots(const irnet_fusion *f, int oy, int ox, int wo, int c0,
    int m, int cout, const int32_t *pops, int32_t bits, float *out)
{
    int first;
    float *dst = out + irnet_cm_pixel(f, oy, ox, wo, &first) * cout + c0;
    irnet_cm_pool(dst, first, f->pool_min != 0 ? f->pool_min + c0 : 0, m, 0, pops, bits);
}

/* Output bits of channels c0 .. c0 + m - 1 (bit j: channel c0 + j; one word) pooled into the pooled pixel's word:
 * the window's first pixel sets them (and clears the word when c0 starts it), the others AND (OR in pool_or) */
static __attribute__((noinline)) void irnet_cm_fused_bits(const irnet_fusion *f, int oy, int ox, int wo, int c0,
    int m, int out_words, uint32_t bits, uint32_t *out)
{
    int first;
    const int pixel = irnet_cm_pixel(f, oy, ox, wo, &first);
    const int shift = c0 & 31;
    const uint32_t mask = (m >= 32 ? 0xFFFFFFFFu : (1u << m) - 1u) << shift;
    uint32_t *dst = out + pixel * out_words + c0 / 32;
    const uint32_t cur = *dst;
    bits <<= shift;
    if (first) {
        *dst = shift == 0 ? bits : (cur & ~mask) | bits;
    } else {
        const uint32_t or_mask = (f->pool_or != 0 ? f->pool_or[c0 / 32] : 0u) & mask;
        *dst = (cur & ~mask) | (cur & bits & mask & ~or_mask) | ((cur | bits) & or_mask);
    }
}

/* All out_words words of output pixel (oy, ox) pooled into the pooled pixel's (irnet_cm_fused_bits) */
static __attribute__((noinline)) void irnet_cm_pool_words(const irnet_fusion *f, int oy, int ox, int wo,
    int out_words, const uint32_t *bits, uint32_t *out)
{
    int first, i;
    uint32_t *dst = out + irnet_cm_pixel(f, oy, ox, wo, &first) * out_words;
    for (i = 0; i < out_words; ++i) {
        const uint32_t or_mask = f->pool_or != 0 ? f->pool_or[i] : 0u;
        dst[i] = first ? bits[i] : (dst[i] & bits[i] & ~or_mask) | ((dst[i] | bits[i]) & or_mask);
    }
}

/* The sign output alone, after the whole output is stored: bit = v < 0, as irnet_sign_pack */
static __attribute__((noinline)) void irnet_cm_sign(const float *v, int pixels, int channels, uint32_t *out)
{
    int p, c0, j;
    for (p = 0; p < pixels; ++p) {
        for (c0 = 0; c0 < channels; c0 += 32) {
            const int m = channels - c0 < 32 ? channels - c0 : 32;
            uint32_t bits = 0u;
            IRNET_SCALAR_LOOP
            for (j = 0; j < m; ++j) {
                if (v[j] < 0.0f) {
                    bits |= 1u << j;
                }
            }
            v += m;
            *out++ = bits;
        }
    }
}

/* popcount of the weight words of the taps outside the input rectangle [ky0, ky1) x [kx0, kx1) */
static int32_t irnet_outside(const uint32_t *wc, int k, int words, int ky0, int ky1, int kx0, int kx1)
{
    int32_t pop = 0;
    int ky, kx, i;
    for (ky = 0; ky < k; ++ky) {
        for (kx = 0; kx < k; ++kx) {
            if (ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1) {
                continue;
            }
            for (i = 0; i < words; ++i) {
                pop += irnet_pop1(wc[(ky * k + kx) * words + i]);
            }
        }
    }
    return pop;
}

#if defined(__thumb2__)
/* dst[0 .. n) = src[0 .. n): GCC would call memcpy for the loop, which costs a row of a window twice as much */
static inline void irnet_cm_copy(uint32_t *dst, const uint32_t *src, int n)
{
    uint32_t a, b;
    __asm__ volatile(
        "subs %[n], %[n], #2\n\t"
        "blt 2f\n"
        "1:\n\t"
        "ldrd %[a], %[b], [%[s]], #8\n\t"
        "strd %[a], %[b], [%[d]], #8\n\t"
        "subs %[n], %[n], #2\n\t"
        "bge 1b\n"
        "2:\n\t"
        "adds %[n], %[n], #2\n\t"
        "beq 3f\n\t"
        "ldr %[a], [%[s]]\n\t"
        "str %[a], [%[d]]\n"
        "3:\n\t"
        : [s] "+r"(src), [d] "+r"(dst), [n] "+r"(n), [a] "=&r"(a), [b] "=&r"(b)
        :
        : "cc", "memory");
}
#endif

/* words of the stack buffer that holds one gathered window */
#define IRNET_CM_WINDOW 128

#if defined(IRNET_CM_H3)
/* columns of the three-row strip of irnet_bconv_h3, after its 72 weight words in the window buffer */
#define IRNET_CM_H3_COLS 18

/* where pair-word p of kernel tap (ky, kx) lies in the weight buffer: the order irnet_h3_bits reads (pair-word
 * pairs, then the kernel columns, then the two pair-words, then the kernel rows), or with Helium (irnet_h3_mve_pops)
 * tap-major in strip order (3 * kx + ky), eight pair-words per tap */
#if defined(__ARM_FEATURE_MVE)
#define IRNET_CM_H3_AT(p, ky, kx) (((kx) * 3 + (ky)) * 8 + (p))
#else
#define IRNET_CM_H3_AT(p, ky, kx) (((((p) >> 1) * 3 + (kx)) * 2 + ((p) & 1)) * 3 + (ky))
#endif

#if defined(__ARM_FEATURE_MVE)
/* Helium: the popcounts of one window against four pair-words (wm: the first of them at tap 0; the taps eight words
 * apart), one per 16-bit lane (lane 2i: the low half of pair-word i, 2i + 1: its high half). Each tap's activation
 * word is broadcast and XORed with the four weight words; three taps at a time go through a carry-save adder (ones,
 * twos), both are reduced to nibble counts (c - 3 * ((c >> 2) & 0x33) is (c & 0x33) + ((c >> 2) & 0x33), as a
 * multiply-accumulate modulo 256), combined as ones + 2 * twos (<= 12 per nibble) and reduced to byte counts
 * (n - 15 * (n >> 4), <= 24), summed over the nine taps (<= 72 per byte); the two bytes of a lane added give its
 * popcount. Integer operations only (exact). */
static inline uint16x8_t irnet_h3_mve_pops(const uint32_t *x, const uint32_t *wm)
{
    const uint8x16_t m55 = vdupq_n_u8(0x55), m33 = vdupq_n_u8(0x33);
    uint8x16_t acc = vdupq_n_u8(0);
    int g;
    for (g = 0; g < 3; ++g) { /* a loop: unrolled, GCC 12 spills */
        uint8x16_t a = vreinterpretq_u8_u32(veorq_u32(vdupq_n_u32(x[3 * g]), vldrwq_u32(wm + 24 * g)));
        uint8x16_t b = vreinterpretq_u8_u32(veorq_u32(vdupq_n_u32(x[3 * g + 1]), vldrwq_u32(wm + 24 * g + 8)));
        const uint8x16_t c = vreinterpretq_u8_u32(veorq_u32(vdupq_n_u32(x[3 * g + 2]), vldrwq_u32(wm + 24 * g + 16)));
        uint8x16_t t = veorq_u8(a, b);
        a = vandq_u8(a, b);
        b = veorq_u8(t, c); /* ones */
        t = vandq_u8(t, c);
        a = vorrq_u8(a, t); /* twos */
        b = vsubq_u8(b, vandq_u8(vshrq_n_u8(b, 1), m55));
        a = vsubq_u8(a, vandq_u8(vshrq_n_u8(a, 1), m55));
        b = vmlaq_n_u8(b, vandq_u8(vshrq_n_u8(b, 2), m33), (uint8_t)253);
        a = vmlaq_n_u8(a, vandq_u8(vshrq_n_u8(a, 2), m33), (uint8_t)253);
        b = vmlaq_n_u8(b, a, (uint8_t)2);
        b = vmlaq_n_u8(b, vshrq_n_u8(b, 4), (uint8_t)241);
        acc = vaddq_u8(acc, b);
    }
    return vaddq_u16(vmovlbq_u8(acc), vmovltq_u8(acc));
}

/* irnet_h3_bits with Helium: the output bits themselves (channel j of the chunk in bit j); lanes[k] gives each lane
 * of pair-words 4k .. 4k + 3 its bit (0 for the lanes of no channel) */
static inline uint32_t irnet_h3_mve_bits(const uint32_t *x, const uint32_t *wm, const uint32_t *v, int pairs,
    const uint16_t *lanes)
{
    uint32_t bits = 0u;
    int k;
    for (k = 0; k < (pairs + 3) / 4; ++k) {
        const int16x8_t d = vsubq_s16(vreinterpretq_s16_u32(vldrwq_u32(v + 4 * k)),
            vreinterpretq_s16_u16(irnet_h3_mve_pops(x, wm + 4 * k)));
        bits = vaddvaq_u16(bits, vmulq_u16(vshrq_n_u16(vreinterpretq_u16_s16(d), 15), vld1q_u16(lanes + 8 * k)));
    }
    return bits;
}

/* irnet_h3_sums with Helium: sums[i] and sums[8 + i], sign-extended */
static inline void irnet_h3_mve_sums(const uint32_t *x, const uint32_t *wm, const uint32_t *v, int pairs,
    uint32_t *sums)
{
    int k;
    for (k = 0; k < (pairs + 3) / 4; ++k) {
        const int16x8_t pop = vreinterpretq_s16_u16(irnet_h3_mve_pops(x, wm + 4 * k));
        const int16x8_t d = vsubq_s16(vsubq_s16(vreinterpretq_s16_u32(vldrwq_u32(v + 4 * k)), pop), pop);
        vstrwq_s32((int32_t *)sums + 4 * k, vmovlbq_s16(d));
        vstrwq_s32((int32_t *)sums + 8 + 4 * k, vmovltq_s16(d));
    }
}
#endif

/* per 16-bit half, the popcount of each half of a */
static inline uint32_t irnet_pop_halves(uint32_t a)
{
    a = a - ((a >> 1) & 0x55555555u);
    a = (a & 0x33333333u) + ((a >> 2) & 0x33333333u);
    a = (a + (a >> 4)) & 0x0F0F0F0Fu;
    return (a & 0x00FF00FFu) + ((a >> 8) & 0x00FF00FFu);
}

/* The per-half values of irnet_h3_bits / _h3_sums for windows whose taps present are kernel rows
 * [ky0, ky1) x columns [kx0, kx1) (all nine with +1 padding). Zero padding reads zero activation words for the
 * taps outside, so the weight bits there (pw) are counted too and cancelled here. Channel j of the chunk is
 * the low half of pair-word j (j < pairs) or the high half of pair-word j - pairs; missing channels get a
 * value their popcount never exceeds. */
static void irnet_h3_values(uint32_t *v, const uint32_t *wb, int pairs, int m, const int32_t *threshold,
    int cin, int pad_one, int ky0, int ky1, int kx0, int kx1)
{
    const int32_t bits_counted = (pad_one ? 9 : (ky1 - ky0) * (kx1 - kx0)) * cin;
    int p, half, ky, kx;
    for (p = 0; p < pairs; ++p) {
        uint32_t pw = 0u, packed = 0u;
        for (ky = 0; ky < 3 && !pad_one; ++ky) {
            for (kx = 0; kx < 3; ++kx) {
                if (ky < ky0 || ky >= ky1 || kx < kx0 || kx >= kx1) {
                    pw += irnet_pop_halves(wb[IRNET_CM_H3_AT(p, ky, kx)]);
                }
            }
        }
        for (half = 0; half < 2; ++half) {
            const int j = p + half * pairs;
            const int32_t pw_j = (int32_t)((pw >> 16 * half) & 0xFFFFu);
            int32_t val = 0x7FFF;
            if (j < m && threshold != 0) {
                /* bits_counted - 2 * (pop - pw_j) < t  <=>  pop > floor((bits_counted - t) / 2) + pw_j,
                 * t clamped to the range where the comparison can change */
                int32_t t = threshold[j];
                t = t < -bits_counted ? -bits_counted : t > bits_counted + 1 ? bits_counted + 1 : t;
                val = (bits_counted - t + 2) / 2 - 1 + pw_j;
            } else if (j < m) {
                val = bits_counted + 2 * pw_j;
            }
            packed |= ((uint32_t)val & 0xFFFFu) << 16 * half;
        }
        v[p] = packed;
    }
}

#if defined(__ARM_FP) && (__ARM_FP & 4)
/* out[j] = s[j] * mult[j] + add[j] for eight channels, s[j] converted from the low 16 bits of the word (TYPE
 * s16 as fixed point without fraction bits, FBITS ", #0") or from all of it (s32, ""): the portable kernel's
 * (float) of the same integer, then its two roundings */
#define IRNET_CM_H3_FLOATS8(TYPE, FBITS, s, mult, add, out) \
    __asm__ volatile( \
        "vldmia %0, {s0-s7}\n\t" \
        "vcvt.f32." TYPE " s0, s0" FBITS "\n\t" "vcvt.f32." TYPE " s1, s1" FBITS "\n\t" \
        "vcvt.f32." TYPE " s2, s2" FBITS "\n\t" "vcvt.f32." TYPE " s3, s3" FBITS "\n\t" \
        "vcvt.f32." TYPE " s4, s4" FBITS "\n\t" "vcvt.f32." TYPE " s5, s5" FBITS "\n\t" \
        "vcvt.f32." TYPE " s6, s6" FBITS "\n\t" "vcvt.f32." TYPE " s7, s7" FBITS "\n\t" \
        "vldmia %1, {s8-s15}\n\t" \
        "vmul.f32 s0, s0, s8\n\t" "vmul.f32 s1, s1, s9\n\t" "vmul.f32 s2, s2, s10\n\t" \
        "vmul.f32 s3, s3, s11\n\t" "vmul.f32 s4, s4, s12\n\t" "vmul.f32 s5, s5, s13\n\t" \
        "vmul.f32 s6, s6, s14\n\t" "vmul.f32 s7, s7, s15\n\t" \
        "vldmia %2, {s8-s15}\n\t" \
        "vadd.f32 s0, s0, s8\n\t" "vadd.f32 s1, s1, s9\n\t" "vadd.f32 s2, s2, s10\n\t" \
        "vadd.f32 s3, s3, s11\n\t" "vadd.f32 s4, s4, s12\n\t" "vadd.f32 s5, s5, s13\n\t" \
        "vadd.f32 s6, s6, s14\n\t" "vadd.f32 s7, s7, s15\n\t" \
        "vstmia %3, {s0-s7}\n\t" \
        : \
        : "r"(s), "r"(mult), "r"(add), "r"(out) \
        : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", \
          "memory")
#endif

/* The float outputs of one window's m channels from irnet_h3_sums */
static inline void irnet_h3_floats(const uint32_t *sums, int m, int pairs, const float *mult,
    const float *add, int act, float *out)
{
    int j;
#if defined(__ARM_FP) && (__ARM_FP & 4)
    if (act == IRNET_ACT_NONE && m == 16) {
        IRNET_CM_H3_FLOATS8("s16", ", #0", sums, mult, add, out);
        IRNET_CM_H3_FLOATS8("s32", "", sums + 8, mult + 8, add + 8, out + 8);
        return;
    }
#endif
    for (j = 0; j < m; ++j) {
        const int32_t s = j < pairs ? (int16_t)(sums[j] & 0xFFFFu) : (int32_t)sums[8 + j - pairs];
        float y = (float)s * mult[j];
        IRNET_FENCE(y);
        out[j] = irnet_activate(y + add[j], act);
    }
}

/* 3x3 convolutions of at most 16 input channels on DSP cores (Helium ones too, counting with vectors: for half a
 * word per tap this beats four words per vector step), in chunks of up to 16 output channels (8 pair-words, 72 weight words,
 * which fit the window buffer with a strip of 18 input columns). Per output row the three input rows are
 * copied, each tap into both halves of a word, column by column into a strip with zeros outside the input, so
 * that every window, borders included, is 9 contiguous words. Windows differ only by the values compared with
 * (four kinds per output row: left or right border or not); fvals holds a chunk's values for the fused ops. */
static __attribute__((noinline)) void irnet_bconv_h3(const irnet_bconv_params *prm, const uint32_t *in,
    uint32_t *out_bits, float *out_f32)
{
    const int h = prm->h, w = prm->w, cin = prm->cin, cout = prm->cout, stride = prm->stride, pad = prm->pad;
    const int pad_one = prm->pad_one, ho = prm->ho, wo = prm->wo, act = prm->act;
    const uint32_t *weight = prm->weight;
    const int32_t *threshold = prm->threshold;
    const float *mult = prm->mult, *add = prm->add;
    const irnet_fusion *fuse = &prm->fuse;
    uint32_t window[IRNET_CM_WINDOW], values[32];
    float fvals[16];
    const int out_words = (cout + 31) / 32;
    const int fused = fuse->residual != 0 || fuse->sign != 0 || fuse->pool != 0;
    const int span = (IRNET_CM_H3_COLS - 3) / stride + 1; /* output columns per strip */
    uint32_t *const wb = window;
    uint32_t *const strip = window + 72;
    uint32_t sums[16];
#if defined(__ARM_FEATURE_MVE)
    uint16_t lanes[16];
#endif
    int c0, oy, ox0, i, r, c;
    for (c0 = 0; c0 < cout; c0 += 16) {
        const int m = cout - c0 < 16 ? cout - c0 : 16;
        const int pairs = 2 * ((m + 3) / 4);
        /* float output: pixel p's values go to obase + p * ostride (fvals for the fused ops) */
        float *const obase = fused || out_f32 == 0 ? fvals : out_f32 + c0;
        const int ostride = fused ? 0 : cout;
        int kind_ky0 = -1, kind_ky1 = -1;
        /* the order read by irnet_h3_bits: pair-word pairs, then the kernel columns (one load of three
         * activation words each), then the two pair-words, then the kernel rows */
#if defined(__ARM_FEATURE_MVE)
        for (i = 0; i < 72; ++i) {
            const int p = i % 8, ky = (i / 8) % 3, kx = i / 24;
            const int lo = c0 + p, hi = c0 + p + pairs;
            wb[i] = (p < pairs && p < m ? weight[lo * 9 + ky * 3 + kx] : 0u)
                | (p < pairs && p + pairs < m ? weight[hi * 9 + ky * 3 + kx] : 0u) << 16;
        }
        for (i = 0; i < 16; ++i) { /* lane i: pair-word i / 2, its low half (even i) or high half */
            const int p = i / 2, j = p + (i & 1) * pairs;
            lanes[i] = (uint16_t)(p < pairs && j < m ? 1u << j : 0u);
        }
#else
        for (i = 0; i < 9 * pairs; ++i) {
            const int ky = i % 3, p = (i / 18) * 2 + (i / 3) % 2, kx = (i / 6) % 3;
            const int lo = c0 + p, hi = c0 + p + pairs;
            wb[i] = (p < m ? weight[lo * 9 + ky * 3 + kx] : 0u)
                | (p + pairs < m ? weight[hi * 9 + ky * 3 + kx] : 0u) << 16;
        }
#endif
        for (oy = 0; oy < ho; ++oy) {
            const int iy0 = oy * stride - pad;
            const int ky0 = iy0 < 0 ? -iy0 : 0;
            const int ky1 = iy0 + 3 > h ? h - iy0 : 3;
            if (ky0 != kind_ky0 || ky1 != kind_ky1) {
                for (i = 0; i < 4; ++i) { /* bit 1: left border, bit 0: right border */
                    irnet_h3_values(values + 8 * i, wb, pairs, m, threshold != 0 && out_bits != 0 ?
                        threshold + c0 : 0, cin, pad_one, ky0, ky1, i >> 1, i & 1 ? 2 : 3);
                }
                kind_ky0 = ky0;
                kind_ky1 = ky1;
            }
            for (ox0 = 0; ox0 < wo; ox0 += span) {
                const int n_out = wo - ox0 < span ? wo - ox0 : span;
                const int ix_first = ox0 * stride - pad;
                const int cols = (n_out - 1) * stride + 3;
                const int c_lo = ix_first < 0 ? -ix_first : 0;
                const int c_hi = w - ix_first < cols ? w - ix_first : cols;
                if (iy0 >= 0 && iy0 + 3 <= h) {
                    const uint32_t *src = in + iy0 * w + ix_first + c_lo;
                    uint32_t *dst = strip + 3 * c_lo;
                    for (c = 0; c < 3 * c_lo; ++c) {
                        strip[c] = 0u;
                    }
                    for (c = 3 * c_hi; c < 3 * cols; ++c) {
                        strip[c] = 0u;
                    }
                    for (c = c_lo; c < c_hi; ++c) {
                        const uint32_t a = src[0], b = src[w], d = src[2 * w];
                        dst[0] = a | a << 16;
                        dst[1] = b | b << 16;
                        dst[2] = d | d << 16;
                        src += 1;
                        dst += 3;
                    }
                } else {
                    for (c = 0; c < 3 * cols; ++c) {
                        strip[c] = 0u;
                    }
                    for (r = 0; r < 3; ++r) {
                        if (iy0 + r >= 0 && iy0 + r < h) {
                            for (c = c_lo; c < c_hi; ++c) {
                                const uint32_t v = in[(iy0 + r) * w + ix_first + c];
                                strip[3 * c + r] = v | v << 16;
                            }
                        }
                    }
                }
                for (i = 0; i < n_out; ++i) {
                    const int ix0 = ix_first + i * stride;
                    const uint32_t *v = values + 8 * ((ix0 < 0) * 2 + (ix0 + 3 > w));
                    const uint32_t *x = strip + 3 * stride * i;
                    const int pixel = oy * wo + ox0 + i;
                    if (out_bits != 0) {
#if defined(__ARM_FEATURE_MVE)
                        const uint32_t bits = irnet_h3_mve_bits(x, wb, v, pairs, lanes);
#else
                        const uint32_t word = irnet_h3_bits(x, wb, v, pairs);
                        const uint32_t bits = (word >> (16 - pairs) & ((1u << pairs) - 1u))
                            | (word >> (32 - pairs)) << pairs;
#endif
                        if (fused) {
                            irnet_cm_fused_bits(fuse, oy, ox0 + i, wo, c0, m, out_words, bits, out_bits);
                        } else {
                            uint32_t *o = out_bits + pixel * out_words + c0 / 32;
                            *o = c0 & 16 ? *o | bits << 16 : bits;
                        }
                    } else {
#if defined(__ARM_FEATURE_MVE)
                        irnet_h3_mve_sums(x, wb, v, pairs, sums);
#else
                        irnet_h3_sums(x, wb, v, pairs, sums);
#endif
                        irnet_h3_floats(sums, m, pairs, mult + c0, add + c0, act, obase + pixel * ostride);
                        if (fused) {
                            irnet_cm_fused_f32(fuse, oy, ox0 + i, wo, c0, m, cout, fvals, out_f32);
                        }
                    }
                }
            }
        }
    }
}
#endif

#if defined(IRNET_CM_INITS)
/* the start values of irnet_bits_pairs_init for all channels, for windows counting 'bits' bits */
struct irnet_cm_init_cache {
    int32_t bits;
    int32_t init[IRNET_CM_INITS + 2]; /* irnet_bits_pairs_init reads a pair past the last channel */
};

/* The start values of irnet_bits_pairs_init for windows counting 'bits' bits: bits - 2 * pop < t  <=>
 * pop > floor((bits - t) / 2)  <=>  pop + init >= 0 with init = -(floor((bits - t) / 2) + 1), t clamped to
 * [-bits, bits + 1], where the bit is constant already */
static __attribute__((noinline)) void irnet_cm_inits(const int32_t *threshold, int cout, int32_t bits,
    struct irnet_cm_init_cache *cache)
{
    int c;
    for (c = 0; c < cout; ++c) {
        int32_t t = threshold[c];
        t = t < -bits ? -bits : t > bits + 1 ? bits + 1 : t;
        cache->init[c] = -((bits - t + 2) / 2);
    }
    cache->bits = bits;
}
#endif

/* vals[j] = act(fl(fl(float(bits - 2 * pops[j]) * mult[j]) + add[j])) for the m channels of a chunk, with the
 * activation a constant of the loop */
static inline __attribute__((always_inline)) void irnet_cm_floats_act(const int32_t *pops, int m, int32_t bits,
    const float *mult, const float *add, int act, float *vals)
{
    int j;
    IRNET_SCALAR_LOOP
    for (j = 0; j < m; ++j) {
        float y = (float)(bits - 2 * pops[j]) * mult[j];
        IRNET_FENCE(y);
        vals[j] = irnet_activate(y + add[j], act);
    }
}

/* irnet_cm_floats_act, one loop per usual activation; out of line, so that irnet_bconv_rows keeps its registers */
static __attribute__((noinline)) void irnet_cm_floats(const int32_t *pops, int m, int32_t bits, const float *mult,
    const float *add, int act, float *vals)
{
    switch (act) {
    case IRNET_ACT_NONE:
        irnet_cm_floats_act(pops, m, bits, mult, add, IRNET_ACT_NONE, vals);
        break;
    case IRNET_ACT_HARDTANH:
        irnet_cm_floats_act(pops, m, bits, mult, add, IRNET_ACT_HARDTANH, vals);
        break;
    case IRNET_ACT_RELU:
        irnet_cm_floats_act(pops, m, bits, mult, add, IRNET_ACT_RELU, vals);
        break;
    default:
        irnet_cm_floats_act(pops, m, bits, mult, add, act, vals);
        break;
    }
}

/* The other binary convolutions (irnet_bconv_cm): a function of its own, as is irnet_bconv_h3, so that neither
 * path's registers or stack depend on the other's */
static inline __attribute__((always_inline)) void irnet_bconv_rows_body(const irnet_bconv_params *prm,
    const uint32_t *in, uint32_t *out_bits, float *out_f32, const int bits_out)
{
    const int h = prm->h, w = prm->w, cin = prm->cin, cout = prm->cout, k = prm->k, stride = prm->stride;
    const int pad = prm->pad, pad_one = prm->pad_one, ho = prm->ho, wo = prm->wo, act = prm->act;
    const uint32_t *weight = prm->weight;
    const int32_t *threshold = prm->threshold;
    const float *mult = prm->mult, *add = prm->add;
    const int words = (cin + 31) / 32;
    const int out_words = (cout + 31) / 32;
    const int row_words = k * words;
    const int tap_words = k * row_words;
    const irnet_fusion *fuse = &prm->fuse;
    const int fused = fuse->residual != 0 || fuse->sign != 0 || fuse->pool != 0;
    /* a bits pool over at most 256 channels: each pixel's words go to pooled, then into the pooled pixel */
    const int pool_words = bits_out && fuse->pool != 0 && out_words <= 8;
    uint32_t pooled[8];
    uint32_t *const bits_base = pool_words ? pooled : out_bits;
    const int bits_step = pool_words ? 0 : out_words;
    uint32_t window[IRNET_CM_WINDOW];
    int32_t pops[32];
    float fvals[32];
    int oy, ox, c0, ky, i;
#if defined(IRNET_CM_INITS)
    struct irnet_cm_init_cache inits;
    inits.bits = -1;
#endif
#if defined(IRNET_CM_HALVES)
    /* half-word taps (see irnet_pops_halves): the pair-words of the weights after the window in the buffer */
    const int half = cin <= 16 && tap_words <= 25 && tap_words * (1 + 2 * ((cout + 3) / 4)) <= IRNET_CM_WINDOW;
    uint32_t *const wpairs = window + tap_words;
    if (half) {
        int t;
        for (i = 0; i < 2 * ((cout + 3) / 4); ++i) {
            for (t = 0; t < tap_words; ++t) {
                const uint32_t lo = 2 * i < cout ? weight[2 * i * tap_words + t] : 0u;
                const uint32_t hi = 2 * i + 1 < cout ? weight[(2 * i + 1) * tap_words + t] : 0u;
                wpairs[i * tap_words + t] = lo | hi << 16;
            }
        }
    }
#else
    const int half = 0;
#endif
    for (oy = 0; oy < ho; ++oy) {
        const int iy0 = oy * stride - pad;
        const int ky0 = iy0 < 0 ? -iy0 : 0;
        const int ky1 = iy0 + k > h ? h - iy0 : k;
        for (ox = 0; ox < wo; ++ox) {
            const int ix0 = ox * stride - pad;
            const int kx0 = ix0 < 0 ? -ix0 : 0;
            const int kx1 = ix0 + k > w ? w - ix0 : k;
            /* Windows whose taps form whole kernel rows match one contiguous stretch of weights: gather them
             * once for all output channels. +1 padding gathers zeros for the outside taps, whose weight bits
             * then count by themselves. Other windows run row by row straight from the input. */
            const int flat = (pad_one || (kx0 == 0 && kx1 == k)) && tap_words <= IRNET_CM_WINDOW;
            const int first = flat && pad_one ? 0 : (ky0 * k + kx0) * words;
            const int n = flat ? (pad_one ? k : ky1 - ky0) * row_words : (kx1 - kx0) * words;
            /* zero padding: only the taps inside count; +1 padding: all k*k, their activation bits 0 */
            const int32_t bits_counted = (pad_one ? k * k : (ky1 - ky0) * (kx1 - kx0)) * cin;
            if (flat && half) {
                uint32_t *dst = window;
                for (ky = pad_one ? 0 : ky0; ky < (pad_one ? k : ky1); ++ky) {
                    const uint32_t *src = in + (iy0 + ky) * w + ix0;
                    for (i = 0; i < k; ++i) {
                        const uint32_t v = ky >= ky0 && ky < ky1 && i >= kx0 && i < kx1 ? src[i] : 0u;
                        dst[i] = v | v << 16;
                    }
                    dst += k;
                }
            } else if (flat) {
                uint32_t *dst = window;
                for (ky = pad_one ? 0 : ky0; ky < (pad_one ? k : ky1); ++ky) {
                    const uint32_t *src = in + ((iy0 + ky) * w + ix0) * words;
                    if (ky < ky0 || ky >= ky1) {
                        for (i = 0; i < row_words; ++i) {
                            dst[i] = 0u;
                        }
                    } else {
#if defined(__thumb2__)
                        irnet_cm_copy(dst + kx0 * words, src + kx0 * words, (kx1 - kx0) * words);
#else
                        for (i = kx0 * words; i < kx1 * words; ++i) {
                            dst[i] = src[i];
                        }
#endif
                        for (i = 0; i < kx0 * words; ++i) {
                            dst[i] = 0u;
                        }
                        for (i = kx1 * words; i < row_words; ++i) {
                            dst[i] = 0u;
                        }
                    }
                    dst += row_words;
                }
            }
            for (c0 = 0; c0 < cout; c0 += 32) {
                const int m = cout - c0 < 32 ? cout - c0 : 32;
                const uint32_t *wc = weight + c0 * tap_words + first;
                int co;
                uint32_t word = 0;
                int done = 0; /* channels whose output bits are already in word */
                if (flat && half) {
#if defined(IRNET_CM_HALVES)
                    irnet_pops_halves(window, n, wpairs + c0 / 2 * tap_words + first, tap_words, (m + 3) / 4,
                        (uint32_t *)pops);
                    if (bits_out) {
                        const uint32_t *halves = (const uint32_t *)pops;
                        for (co = 0; co < m; co += 2) {
                            const int32_t lo = (int32_t)(halves[co >> 1] & 0xFFFFu);
                            const int32_t hi = (int32_t)(halves[co >> 1] >> 16);
                            word |= (uint32_t)(bits_counted - 2 * lo < threshold[c0 + co]) << co;
                            if (co + 1 < m) {
                                word |= (uint32_t)(bits_counted - 2 * hi < threshold[c0 + co + 1]) << (co + 1);
                            }
                        }
                        done = m;
                    } else {
                        for (co = m - 1; co >= 0; --co) { /* downwards: word co / 2 is read before it is written */
                            pops[co] = (int32_t)((((uint32_t *)pops)[co >> 1] >> (co & 1) * 16) & 0xFFFFu);
                        }
                    }
#endif
                } else if (flat) {
                    if (m > 1 && bits_out) {
#if defined(IRNET_CM_INITS)
                        if (n % 3 == 0 && n <= 3 * IRNET_CM_STEPS && cout <= IRNET_CM_INITS) {
                            if (bits_counted != inits.bits) {
                                irnet_cm_inits(threshold, cout, bits_counted, &inits);
                            }
                            word = irnet_bits_pairs_init(window, n, wc, tap_words, m / 2, inits.init + c0);
                        } else {
                            word = irnet_bits_pairs(window, n, wc, tap_words, m / 2, threshold + c0, bits_counted);
                        }
#else
                        word = irnet_bits_pairs(window, n, wc, tap_words, m / 2, threshold + c0, bits_counted);
#endif
                        done = m & ~1;
                    } else if (m > 1) {
                        irnet_pops_pairs(window, n, wc, tap_words, m / 2, pops);
                    }
                    if (m & 1) { /* the last channel alone: counted twice, once kept */
                        int32_t twice = 0;
                        pops[m - 1] = 0;
                        irnet_run2(window, wc + (m - 1) * tap_words, wc + (m - 1) * tap_words, n, &pops[m - 1],
                            &twice);
                    }
                } else {
                    const uint32_t *x = in + ((iy0 + ky0) * w + ix0 + kx0) * words;
#if defined(IRNET_CM_ROWS)
                    if (!pad_one && m > 1 && (ky1 - ky0) * n <= IRNET_CM_WINDOW) {
                        if (c0 == 0) { /* the rows present, one after the other */
                            uint32_t *dst = window;
                            for (ky = ky0; ky < ky1; ++ky) {
                                irnet_cm_copy(dst, x + (ky - ky0) * w * words, n);
                                dst += n;
                            }
                        }
                        if (k == 3 && ky1 - ky0 == 3 && words <= 2 && n == 2 * words) {
                            word = irnet_side_pairs(window, words, wc, tap_words, m / 2, bits_out ? 0 : pops,
                                bits_out ? threshold + c0 : 0, bits_counted);
                        } else {
                            word = irnet_rows_pairs(window, n, ky1 - ky0, row_words, wc, tap_words, m / 2,
                                bits_out ? 0 : pops, bits_out ? threshold + c0 : 0, bits_counted);
                        }
                        done = bits_out ? m & ~1 : 0;
                        co = m & ~1;
                    } else {
                        co = 0;
                    }
                    for (; co < m; co += 2) {
#else
                    for (co = 0; co < m; co += 2) {
#endif
                        const uint32_t *w0 = wc + co * tap_words;
                        const uint32_t *w1 = co + 1 < m ? w0 + tap_words : w0;
                        int32_t pop0 = 0, pop1 = 0;
                        for (ky = ky0; ky < ky1; ++ky) {
                            irnet_run2(x + (ky - ky0) * w * words, w0 + (ky - ky0) * row_words,
                                w1 + (ky - ky0) * row_words, n, &pop0, &pop1);
                        }
                        if (pad_one) { /* outside taps: activation bits 0, so their weight bits count */
                            pop0 += irnet_outside(w0 - first, k, words, ky0, ky1, kx0, kx1);
                            pop1 += irnet_outside(w1 - first, k, words, ky0, ky1, kx0, kx1);
                        }
                        pops[co] = pop0;
                        if (co + 1 < m) {
                            pops[co + 1] = pop1;
                        }
                    }
                }
                if (bits_out) {
                    for (co = done; co < m; ++co) {
                        word |= (uint32_t)(bits_counted - 2 * pops[co] < threshold[c0 + co]) << co;
                    }
                    if (fused && !pool_words) {
                        irnet_cm_fused_bits(fuse, oy, ox, wo, c0, m, out_words, word, out_bits);
                    } else {
                        bits_base[(oy * wo + ox) * bits_step + c0 / 32] = word;
                    }
                } else if (fuse->pool != 0) {
                    irnet_cm_pool_dots(fuse, oy, ox, wo, c0, m, cout, pops, bits_counted, out_f32);
                } else {
                    float *vals = fused ? fvals : out_f32 + (oy * wo + ox) * cout + c0;
                    irnet_cm_floats(pops, m, bits_counted, mult + c0, add + c0, act, vals);
                    if (fused) {
                        irnet_cm_fused_f32(fuse, oy, ox, wo, c0, m, cout, fvals, out_f32);
                    }
                }
            }
            if (pool_words) {
                irnet_cm_pool_words(fuse, oy, ox, wo, out_words, pooled, out_bits);
            }
        }
    }
}

#if defined(__ARM_FEATURE_DSP)
/* The body twice on DSP cores, for bits and for float output, so that each keeps its registers (on the others the
 * v6-M and v7-M code keeps one body: there one costs fewer instructions) */
static __attribute__((noinline)) void irnet_bconv_rows_bits(const irnet_bconv_params *prm, const uint32_t *in,
    uint32_t *out_bits)
{
    irnet_bconv_rows_body(prm, in, out_bits, 0, 1);
}

static __attribute__((noinline)) void irnet_bconv_rows_f32(const irnet_bconv_params *prm, const uint32_t *in,
    float *out_f32)
{
    irnet_bconv_rows_body(prm, in, 0, out_f32, 0);
}
#else
static __attribute__((noinline)) void irnet_bconv_rows(const irnet_bconv_params *prm, const uint32_t *in,
    uint32_t *out_bits, float *out_f32)
{
    irnet_bconv_rows_body(prm, in, out_bits, out_f32, out_bits != 0);
}
#endif

void irnet_bconv_cm(const irnet_bconv_params *prm, const uint32_t *in, uint32_t *out_bits, float *out_f32)
{
    if (prm->pad >= prm->k) { /* windows wholly in the padding, which the assembly is not written for */
        irnet_bconv(prm, in, out_bits, out_f32);
        return;
    }
#if defined(IRNET_CM_H3)
    /* (a float output with a fused pool, which pools dot products, runs the loop below) */
    if (prm->cin <= 16 && prm->k == 3 && prm->pad <= 1 && (out_bits != 0 || prm->fuse.pool == 0)) {
        irnet_bconv_h3(prm, in, out_bits, out_f32);
        return;
    }
#endif
#if defined(__ARM_FEATURE_DSP)
    if (out_bits != 0) {
        irnet_bconv_rows_bits(prm, in, out_bits);
    } else {
        irnet_bconv_rows_f32(prm, in, out_f32);
    }
#else
    irnet_bconv_rows(prm, in, out_bits, out_f32);
#endif
    if (out_bits == 0 && prm->fuse.pool != 0) {
        irnet_pool_dots_finish(prm, out_f32);
    }
}

#if defined(__ARM_FP) && (__ARM_FP & 4) && defined(__thumb2__)
/* Single-precision FPU (M4F, M7, M33, M55): blocks of 16 output channels whose accumulators stay in s16-s31
 * for a whole window, in assembly because GCC keeps float accumulator arrays in memory. Per input value: two
 * VLDMs of 8 weights, then VMUL and VADD per channel (no fused multiply-add, as the portable kernel rounds the
 * product); the values themselves three to a load where a row of taps holds a multiple of three (the 3x3 stems
 * over 1 and 3 channels). The output transform follows in the same statement, as nothing guarantees that
 * s16-s31 survive between two asm statements, and so does the next window of a row where the C between two
 * windows would cost more than a stem's window of one channel. */
#define IRNET_CM_FMAC8(X, A, B, C, D, E, F, G, H) \
    "vmul.f32 s0, " X ", s0\n\t" "vmul.f32 s1, " X ", s1\n\t" "vmul.f32 s2, " X ", s2\n\t" \
    "vmul.f32 s3, " X ", s3\n\t" "vmul.f32 s4, " X ", s4\n\t" "vmul.f32 s5, " X ", s5\n\t" \
    "vmul.f32 s6, " X ", s6\n\t" "vmul.f32 s7, " X ", s7\n\t" \
    "vadd.f32 " A ", " A ", s0\n\t" "vadd.f32 " B ", " B ", s1\n\t" "vadd.f32 " C ", " C ", s2\n\t" \
    "vadd.f32 " D ", " D ", s3\n\t" "vadd.f32 " E ", " E ", s4\n\t" "vadd.f32 " F ", " F ", s5\n\t" \
    "vadd.f32 " G ", " G ", s6\n\t" "vadd.f32 " H ", " H ", s7\n\t"
/* y = p + b < 0 exactly when b < -p (the sum's rounding keeps its sign and gives zero only for an exact zero;
 * infinities and NaNs compare alike), so the bits output takes -p from VNMUL (the rounded product, negated) and
 * compares b with it: the carry is set unless b < -p (also for NaN), and RRX shifts it in from the top */
#define IRNET_CM_FBIT(B, Q) "vcmp.f32 " B ", " Q "\n\t" "vmrs APSR_nzcv, fpscr\n\t" "rrx %[word], %[word]\n\t"
#define IRNET_CM_FOP16(OP) \
    OP " s16, s16, s0\n\t" OP " s17, s17, s1\n\t" OP " s18, s18, s2\n\t" OP " s19, s19, s3\n\t" \
    OP " s20, s20, s4\n\t" OP " s21, s21, s5\n\t" OP " s22, s22, s6\n\t" OP " s23, s23, s7\n\t" \
    OP " s24, s24, s8\n\t" OP " s25, s25, s9\n\t" OP " s26, s26, s10\n\t" OP " s27, s27, s11\n\t" \
    OP " s28, s28, s12\n\t" OP " s29, s29, s13\n\t" OP " s30, s30, s14\n\t" OP " s31, s31, s15\n\t"

/* the 16 products of the input value X and the weights at %[w], added to s16-s31; %[w] moves to the next value's */
#define IRNET_CM_FVALUE(X) \
    "vldmia %[w]!, {s0-s7}\n\t" \
    IRNET_CM_FMAC8(X, "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23") \
    "vldmia %[w]!, {s0-s7}\n\t" \
    IRNET_CM_FMAC8(X, "s24", "s25", "s26", "s27", "s28", "s29", "s30", "s31") \
    "add %[w], %[w], %[step]\n\t"

/* hardtanh as irnet_activate: y < -1 (MI: not for NaN) gives s0 = -1, y > 1 (GT: not for NaN) s1 = 1 */
#define IRNET_CM_CLAMP(S) \
    "vcmp.f32 " S ", s0\n\t" "vmrs APSR_nzcv, fpscr\n\t" "it mi\n\t" "vmovmi.f32 " S ", s0\n\t" \
    "vcmp.f32 " S ", s1\n\t" "vmrs APSR_nzcv, fpscr\n\t" "it gt\n\t" "vmovgt.f32 " S ", s1\n\t"
/* from the end of a row of taps to the start of the next, and the flags of the rows left */
#define IRNET_CM_FROW \
    "add %[x], %[x], %[xs]\n\t" "add %[w], %[w], %[ws]\n\t" "subs %[rows], %[rows], #1\n\t"

struct irnet_fwin {
    const float *x; /* the window's first tap present */
    int32_t rows; /* rows of taps present */
    int32_t len3; /* input values of a row of taps / 3 when a whole number, else 0 */
    const float *w; /* the next block's weights of that tap */
    int32_t x_skip, w_skip; /* bytes from the end of one row of taps to the start of the next */
    const float *zeros, *mult, *add; /* mult and add of the next block */
    float *out; /* float output of the next block, or 0: bits */
    uint32_t *bits; /* the next output word */
    int32_t blocks, done;
    int32_t pixels; /* windows in a row to run, x_step bytes apart; the blocks restart at w_base, mult_base and
                     * add_base, out and bits run on */
    int32_t x_step;
    const float *w_base, *mult_base, *add_base;
    int32_t clamp; /* float output: hardtanh in the assembly */
};

/* The fields of s in the assembly below: s is one register and the fields are at offsets given as "i" operands
 * (with "m" operands clang would give each field a register of its own, and GCC allows only 30 operands) */
#define IRNET_CM_FW(NAME) "[%[s], %[" #NAME "]]"

#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Woverlength-strings" /* an assembly loop is one string */
#endif
/* All 'blocks' blocks of 16 channels of one window: rows x len input values from x (rows x_skip bytes
 * apart), for each value 16 weights and w_step bytes further to the next value's. y = acc * mult + add goes to
 * out or, with out == 0, (y < 0) inverted is shifted into word from the top, one channel after the other, and
 * every second block stores the inverted word. Returns the word, whose top 16 bits are unstored after an odd
 * number of blocks. */
static inline __attribute__((always_inline)) uint32_t irnet_fblocks16(int len, int32_t w_step,
    struct irnet_fwin *s)
{
    const float *x, *w;
    int32_t rows, n, t;
    uint32_t word = 0;
    __asm__ volatile(
        "6:\n\t"
        "ldr %[x], " IRNET_CM_FW(x0) "\n\t"
        "ldr %[rows], " IRNET_CM_FW(rows0) "\n\t"
        "ldr %[w], " IRNET_CM_FW(w0) "\n\t"
        "add %[t], %[w], #64\n\t"
        "str %[t], " IRNET_CM_FW(w0) "\n\t"
        "ldr %[t], " IRNET_CM_FW(zeros) "\n\t"
        "vldmia %[t], {s16-s31}\n\t"
        "ldr %[n], " IRNET_CM_FW(len3) "\n\t"
        "cmp %[n], #1\n\t"
        "bne 7f\n"
        "1:\n\t" /* rows of three values (the stem over one channel) */
        "vldmia %[x]!, {s8-s10}\n\t"
        IRNET_CM_FVALUE("s8") IRNET_CM_FVALUE("s9") IRNET_CM_FVALUE("s10")
        IRNET_CM_FROW
        "bne 1b\n"
        "5:\n\t"
        "ldr %[t], " IRNET_CM_FW(mult) "\n\t"
        "vldmia %[t]!, {s0-s15}\n\t"
        "str %[t], " IRNET_CM_FW(mult) "\n\t"
        "ldr %[n], " IRNET_CM_FW(out) "\n\t"
        "cmp %[n], #0\n\t"
        "beq 3f\n\t"
        IRNET_CM_FOP16("vmul.f32")
        "ldr %[t], " IRNET_CM_FW(add) "\n\t"
        "vldmia %[t]!, {s0-s15}\n\t"
        "str %[t], " IRNET_CM_FW(add) "\n\t"
        IRNET_CM_FOP16("vadd.f32")
        "ldr %[t], " IRNET_CM_FW(clamp) "\n\t"
        "cmp %[t], #0\n\t"
        "beq 12f\n\t"
        "vmov.f32 s0, #-1.0\n\t"
        "vmov.f32 s1, #1.0\n\t"
        IRNET_CM_CLAMP("s16") IRNET_CM_CLAMP("s17") IRNET_CM_CLAMP("s18") IRNET_CM_CLAMP("s19")
        IRNET_CM_CLAMP("s20") IRNET_CM_CLAMP("s21") IRNET_CM_CLAMP("s22") IRNET_CM_CLAMP("s23")
        IRNET_CM_CLAMP("s24") IRNET_CM_CLAMP("s25") IRNET_CM_CLAMP("s26") IRNET_CM_CLAMP("s27")
        IRNET_CM_CLAMP("s28") IRNET_CM_CLAMP("s29") IRNET_CM_CLAMP("s30") IRNET_CM_CLAMP("s31")
        "12:\n\t"
        "vstmia %[n]!, {s16-s31}\n\t"
        "str %[n], " IRNET_CM_FW(out) "\n\t"
        "b 4f\n"
        "7:\n\t"
        "blo 8f\n"
        "2:\n\t" /* rows of 3 * len3 values */
        "ldr %[n], " IRNET_CM_FW(len3) "\n"
        "10:\n\t"
        "vldmia %[x]!, {s8-s10}\n\t"
        IRNET_CM_FVALUE("s8") IRNET_CM_FVALUE("s9") IRNET_CM_FVALUE("s10")
        "subs %[n], %[n], #1\n\t"
        "bne 10b\n\t"
        IRNET_CM_FROW
        "bne 2b\n\t"
        "b 5b\n"
        "8:\n\t" /* rows whose values are not a multiple of three: one at a time */
        "mov %[n], %[len]\n"
        "11:\n\t"
        "vldmia %[x]!, {s8}\n\t"
        IRNET_CM_FVALUE("s8")
        "subs %[n], %[n], #1\n\t"
        "bne 11b\n\t"
        IRNET_CM_FROW
        "bne 8b\n\t"
        "b 5b\n"
        "3:\n\t"
        IRNET_CM_FOP16("vnmul.f32")
        "ldr %[t], " IRNET_CM_FW(add) "\n\t"
        "vldmia %[t]!, {s0-s15}\n\t"
        "str %[t], " IRNET_CM_FW(add) "\n\t"
        IRNET_CM_FBIT("s0", "s16") IRNET_CM_FBIT("s1", "s17") IRNET_CM_FBIT("s2", "s18")
        IRNET_CM_FBIT("s3", "s19") IRNET_CM_FBIT("s4", "s20") IRNET_CM_FBIT("s5", "s21")
        IRNET_CM_FBIT("s6", "s22") IRNET_CM_FBIT("s7", "s23") IRNET_CM_FBIT("s8", "s24")
        IRNET_CM_FBIT("s9", "s25") IRNET_CM_FBIT("s10", "s26") IRNET_CM_FBIT("s11", "s27")
        IRNET_CM_FBIT("s12", "s28") IRNET_CM_FBIT("s13", "s29") IRNET_CM_FBIT("s14", "s30")
        IRNET_CM_FBIT("s15", "s31")
        "ldr %[n], " IRNET_CM_FW(done) "\n\t"
        "tst %[n], #1\n\t"
        "beq 4f\n\t"
        "mvn %[word], %[word]\n\t"
        "ldr %[t], " IRNET_CM_FW(bits) "\n\t"
        "str %[word], [%[t]], #4\n\t"
        "str %[t], " IRNET_CM_FW(bits) "\n"
        "4:\n\t"
        "ldr %[n], " IRNET_CM_FW(done) "\n\t"
        "adds %[n], %[n], #1\n\t"
        "str %[n], " IRNET_CM_FW(done) "\n\t"
        "ldr %[t], " IRNET_CM_FW(blocks) "\n\t"
        "cmp %[n], %[t]\n\t"
        "blo 6b\n\t"
        "ldr %[t], " IRNET_CM_FW(pixels) "\n\t"
        "subs %[t], %[t], #1\n\t"
        "beq 9f\n\t"
        "str %[t], " IRNET_CM_FW(pixels) "\n\t"
        "movs %[n], #0\n\t"
        "str %[n], " IRNET_CM_FW(done) "\n\t"
        "ldr %[t], " IRNET_CM_FW(x0) "\n\t"
        "ldr %[n], " IRNET_CM_FW(x_step) "\n\t"
        "add %[t], %[t], %[n]\n\t"
        "str %[t], " IRNET_CM_FW(x0) "\n\t"
        "ldr %[t], " IRNET_CM_FW(w_base) "\n\t"
        "str %[t], " IRNET_CM_FW(w0) "\n\t"
        "ldr %[t], " IRNET_CM_FW(mult_base) "\n\t"
        "str %[t], " IRNET_CM_FW(mult) "\n\t"
        "ldr %[t], " IRNET_CM_FW(add_base) "\n\t"
        "str %[t], " IRNET_CM_FW(add) "\n\t"
        "b 6b\n"
        "9:\n\t"
        : [x] "=&r"(x), [w] "=&r"(w), [rows] "=&r"(rows), [word] "+r"(word), [n] "=&r"(n), [t] "=&r"(t)
        : [len] "r"(len), [step] "r"(w_step), [xs] "r"(s->x_skip), [ws] "r"(s->w_skip), [s] "r"(s),
          [x0] "i"(offsetof(struct irnet_fwin, x)),
          [rows0] "i"(offsetof(struct irnet_fwin, rows)), [len3] "i"(offsetof(struct irnet_fwin, len3)),
          [w0] "i"(offsetof(struct irnet_fwin, w)),
          [zeros] "i"(offsetof(struct irnet_fwin, zeros)), [mult] "i"(offsetof(struct irnet_fwin, mult)),
          [add] "i"(offsetof(struct irnet_fwin, add)), [out] "i"(offsetof(struct irnet_fwin, out)),
          [bits] "i"(offsetof(struct irnet_fwin, bits)), [done] "i"(offsetof(struct irnet_fwin, done)),
          [blocks] "i"(offsetof(struct irnet_fwin, blocks)), [pixels] "i"(offsetof(struct irnet_fwin, pixels)),
          [x_step] "i"(offsetof(struct irnet_fwin, x_step)), [w_base] "i"(offsetof(struct irnet_fwin, w_base)),
          [mult_base] "i"(offsetof(struct irnet_fwin, mult_base)),
          [add_base] "i"(offsetof(struct irnet_fwin, add_base)), [clamp] "i"(offsetof(struct irnet_fwin, clamp))
        : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15",
          "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "s29", "s30",
          "s31", "cc", "memory");
    return word;
}
#if defined(__clang__)
#pragma clang diagnostic pop
#endif

static const float irnet_fzeros[16] = {0.0f};

/* acc[0..n) += the products of len values from x and the weights of n channels (8, 4, 2 or 1), the next value's
 * w_step bytes further: a row of taps of the channels that no block of 16 takes (a classifier of 10 classes), where
 * C keeps the accumulators in memory */
#define IRNET_CM_FROW_N(ACC, W, MACS, ...) \
    __asm__ volatile( \
        "vldmia %[acc], {" ACC "}\n" \
        "1:\n\t" \
        "vldmia %[x]!, {s8}\n\t" \
        "vldmia %[w], {" W "}\n\t" \
        "add %[w], %[w], %[step]\n\t" \
        MACS \
        "subs %[len], %[len], #1\n\t" \
        "bne 1b\n\t" \
        "vstmia %[acc], {" ACC "}\n\t" \
        : [x] "+r"(x), [w] "+r"(w), [len] "+r"(len) \
        : [step] "r"(w_step), [acc] "r"(acc) \
        : __VA_ARGS__, "s8", "cc", "memory")
#define IRNET_CM_FMUL_ADD(W, A) "vmul.f32 " W ", s8, " W "\n\t" "vadd.f32 " A ", " A ", " W "\n\t"
static __attribute__((noinline)) void irnet_frow_n(const float *x, const float *w, int len, int32_t w_step,
    float *acc, int n)
{
    if (n == 8) {
        IRNET_CM_FROW_N("s16-s23", "s0-s7", IRNET_CM_FMAC8("s8", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23"),
            "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23");
    } else if (n == 4) {
        IRNET_CM_FROW_N("s16-s19", "s0-s3", IRNET_CM_FMUL_ADD("s0", "s16") IRNET_CM_FMUL_ADD("s1", "s17")
            IRNET_CM_FMUL_ADD("s2", "s18") IRNET_CM_FMUL_ADD("s3", "s19"),
            "s0", "s1", "s2", "s3", "s16", "s17", "s18", "s19");
    } else if (n == 2) {
        IRNET_CM_FROW_N("s16-s17", "s0-s1", IRNET_CM_FMUL_ADD("s0", "s16") IRNET_CM_FMUL_ADD("s1", "s17"),
            "s0", "s1", "s16", "s17");
    } else {
        IRNET_CM_FROW_N("s16", "s0", IRNET_CM_FMUL_ADD("s0", "s16"), "s0", "s16");
    }
}

/* irnet_fblocks16 out of line: the calls with fused ops share this copy (the unfused loop keeps its own) */
static __attribute__((noinline)) uint32_t irnet_fblocks16_call(int len, int32_t w_step, struct irnet_fwin *s)
{
    return irnet_fblocks16(len, w_step, s);
}

/* irnet_fblocks16 for the pool and residual: bits up to 16 blocks at a time into a buffer of words (an odd last
 * block's: the returned word's top half, inverted), floats one block at a time, then the shared epilogue. A
 * function of its own, so that the unfused loop keeps its registers. */
static __attribute__((noinline)) void irnet_fblocks16_fused(int len, int cout, int act, const irnet_fusion *fuse,
    int oy, int ox, int wo, struct irnet_fwin *s, uint32_t *out_bits, float *out_f32)
{
    const int blocks = s->blocks, out_words = (cout + 31) / 32;
    float vals[16];
    uint32_t words[8];
    int co0, j;
    for (co0 = 0; co0 < 16 * blocks; co0 += out_bits != 0 ? 256 : 16) {
        const int n = out_bits == 0 ? 1 : blocks - co0 / 16 < 16 ? blocks - co0 / 16 : 16;
        uint32_t word;
        s->blocks = n;
        s->out = out_bits != 0 ? 0 : vals;
        s->bits = words;
        s->done = 0;
        word = irnet_fblocks16_call(len, (cout - 16) * 4, s);
        if (out_bits != 0) {
            for (j = 0; j < n / 2; ++j) {
                irnet_cm_fused_bits(fuse, oy, ox, wo, co0 + 32 * j, 32, out_words, words[j], out_bits);
            }
            if (n & 1) {
                irnet_cm_fused_bits(fuse, oy, ox, wo, co0 + 32 * j, 16, out_words, ~word >> 16, out_bits);
            }
        } else {
            IRNET_SCALAR_LOOP
            for (j = 0; j < 16 && act != IRNET_ACT_NONE; ++j) {
                vals[j] = irnet_activate(vals[j], act);
            }
            irnet_cm_fused_f32(fuse, oy, ox, wo, co0, 16, cout, vals, out_f32);
        }
    }
    s->blocks = blocks;
}

#endif

/* Float convolution with weights stored [kh][kw][Cin][Cout] (output channels innermost). Each accumulator
 * sums its taps in the order of irnet_conv_f32 (ky, kx, ci), skipping the taps outside the input, so
 * the results are the same bits. */
static inline __attribute__((always_inline)) void irnet_conv_f32_cm_body(const irnet_conv_f32_params *prm,
    const float *in, uint32_t *out_bits, float *out_f32, const int any)
{
    const int h = prm->h, w = prm->w, cin = prm->cin, cout = prm->cout, k = prm->k, stride = prm->stride;
    const int pad = prm->pad, ho = prm->ho, wo = prm->wo, act = prm->act, top = -prm->rows_above;
    const float *weight = prm->weight, *mult = prm->mult, *add = prm->add;
    const int out_words = (cout + 31) / 32;
    const irnet_fusion *fuse = &prm->fuse;
    /* any: a residual or a pool. A bits pool over at most 256 channels: each pixel's words go to pooled, then into
     * the pooled pixel; otherwise each chunk's values go through a buffer */
    const int pool_words = any && out_bits != 0 && fuse->pool != 0 && out_words <= 8;
    uint32_t pooled[8];
    uint32_t *const bits_base = pool_words ? pooled : out_bits;
    const int bits_step = pool_words ? 0 : out_words;
    const int fused = any && !pool_words;
    float fvals[16];
    int oy, ox, co0, ky, j, n;
#if defined(__ARM_FP) && (__ARM_FP & 4) && defined(__thumb2__)
    const int blocks = cout / 16;
    struct irnet_fwin s;
    s.zeros = irnet_fzeros;
    s.blocks = blocks;
    s.x_step = stride * cin * 4;
    s.mult_base = mult;
    s.clamp = act == IRNET_ACT_HARDTANH && !fused; /* the fused ops activate their floats in C */
    s.add_base = add;
#endif
    for (oy = 0; oy < ho; ++oy) {
        const int iy0 = oy * stride - pad;
        const int ky0 = iy0 < top ? top - iy0 : 0;
        const int ky1 = iy0 + k > h ? h - iy0 : k;
        for (ox = 0; ox < wo; ++ox) {
            const int ix0 = ox * stride - pad;
            const int kx0 = ix0 < 0 ? -ix0 : 0;
            const int kx1 = ix0 + k > w ? w - ix0 : k;
            const int pixel = oy * wo + ox;
            uint32_t word = 0;
            co0 = 0;
#if defined(__ARM_FP) && (__ARM_FP & 4) && defined(__thumb2__)
            if (blocks > 0) {
                /* a window wholly in the padding sums one product 0 * w = +-0 to acc = +0, which stays +0 */
                const int empty = ky1 <= ky0 || kx1 <= kx0;
                const int len = empty ? 1 : (kx1 - kx0) * cin;
                /* unfused, with every channel in a block and whole words of bits: the windows of this row that
                 * lie inside the input's columns as well go through the assembly in one call */
                const int last = (w + pad - k) / stride < wo - 1 ? (w + pad - k) / stride : wo - 1;
                const int run = !any && !empty && kx0 == 0 && kx1 == k && 16 * blocks == cout &&
                    (out_bits == 0 || (blocks & 1) == 0) ? last - ox + 1 : 1;
                s.x = empty ? irnet_fzeros : in + ((iy0 + ky0) * w + ix0 + kx0) * cin;
                s.rows = empty ? 1 : ky1 - ky0;
                s.len3 = len % 3 == 0 ? len / 3 : 0;
                s.pixels = run;
                s.w = empty ? weight : weight + (ky0 * k + kx0) * cin * cout;
                s.w_base = s.w;
                s.x_skip = (w * cin - len) * 4;
                s.w_skip = (k * cin - len) * cout * 4;
                s.mult = mult;
                s.add = add;
                s.out = out_bits != 0 ? 0 : out_f32 + pixel * cout;
                s.bits = out_bits != 0 ? bits_base + pixel * bits_step : 0;
                s.done = 0;
                if (fused) {
                    irnet_fblocks16_fused(len, cout, act, fuse, oy, ox, wo, &s, out_bits, out_f32);
                    co0 = 16 * blocks;
                } else {
                    word = any ? irnet_fblocks16_call(len, (cout - 16) * 4, &s)
                               : irnet_fblocks16(len, (cout - 16) * 4, &s);
                    co0 = 16 * blocks;
                    ox += run - 1;
                    word = (blocks & 1) ? ~word >> 16 : 0u;
                    if (out_bits != 0 && co0 == cout && (blocks & 1)) {
                        bits_base[pixel * bits_step + blocks / 2] = word;
                    }
                    if (act != IRNET_ACT_NONE && act != IRNET_ACT_HARDTANH && out_bits == 0) {
                        IRNET_SCALAR_LOOP
                        for (j = 0; j < co0 * run; ++j) {
                            out_f32[pixel * cout + j] = irnet_activate(out_f32[pixel * cout + j], act);
                        }
                    }
                }
            }
#endif
            /* the channels left: eight at a time, then (with the assembly) 4, 2 and 1 */
            for (; co0 < cout; co0 += n) {
                float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
#if defined(__ARM_FP) && (__ARM_FP & 4) && defined(__thumb2__)
                const int left = cout - co0;
                n = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
                for (ky = ky0; ky < ky1 && kx1 > kx0; ++ky) {
                    const float *xr = in + ((iy0 + ky) * w + ix0 + kx0) * cin;
                    const float *wr = weight + ((ky * k + kx0) * cin) * cout + co0;
                    irnet_frow_n(xr, wr, (kx1 - kx0) * cin, cout * 4, acc, n);
                }
#else
                int kx, ci;
                n = cout - co0 < 8 ? cout - co0 : 8;
                for (ky = ky0; ky < ky1; ++ky) {
                    for (kx = kx0; kx < kx1; ++kx) {
                        const float *xt = in + ((iy0 + ky) * w + ix0 + kx) * cin;
                        const float *wt = weight + ((ky * k + kx) * cin) * cout + co0;
                        for (ci = 0; ci < cin; ++ci) {
                            const float xv = xt[ci];
                            const float *wr = wt + ci * cout;
                            IRNET_SCALAR_LOOP
                            for (j = 0; j < n; ++j) {
                                float product = xv * wr[j];
                                IRNET_FENCE(product);
                                acc[j] = acc[j] + product;
                            }
                        }
                    }
                }
#endif
                if (fused) {
                    uint32_t bits = 0u;
                    IRNET_SCALAR_LOOP
                    for (j = 0; j < n; ++j) {
                        float y = acc[j] * mult[co0 + j];
                        IRNET_FENCE(y);
                        y = y + add[co0 + j];
                        bits |= (uint32_t)(y < 0.0f) << j;
                        fvals[j] = irnet_activate(y, act);
                    }
                    if (out_bits != 0) {
                        irnet_cm_fused_bits(fuse, oy, ox, wo, co0, n, out_words, bits, out_bits);
                    } else {
                        irnet_cm_fused_f32(fuse, oy, ox, wo, co0, n, cout, fvals, out_f32);
                    }
                    continue;
                }
                IRNET_SCALAR_LOOP
                for (j = 0; j < n; ++j) {
                    const int co = co0 + j;
                    float y = acc[j] * mult[co];
                    IRNET_FENCE(y);
                    y = y + add[co];
                    if (out_bits != 0) {
                        word |= (uint32_t)(y < 0.0f) << (co & 31);
                        if ((co & 31) == 31 || co == cout - 1) {
                            bits_base[pixel * bits_step + co / 32] = word;
                            word = 0;
                        }
                    } else {
                        out_f32[pixel * cout + co] = irnet_activate(y, act);
                    }
                }
            }
            if (pool_words) {
                irnet_cm_pool_words(fuse, oy, ox, wo, out_words, pooled, out_bits);
            }
        }
    }
}

/* The body twice: without a residual or a pool (any = 0) it compiles to the loops it had before fused ops
 * existed; the sign output alone is made from the stored output afterwards */
void irnet_conv_f32_cm(const irnet_conv_f32_params *prm, const float *in, uint32_t *out_bits, float *out_f32)
{
    const irnet_fusion *fuse = &prm->fuse;
    if (fuse->residual != 0 || fuse->pool != 0) {
        irnet_conv_f32_cm_body(prm, in, out_bits, out_f32, 1);
    } else {
        irnet_conv_f32_cm_body(prm, in, out_bits, out_f32, 0);
        if (fuse->sign != 0) {
            irnet_cm_sign(out_f32, prm->ho * prm->wo, prm->cout, fuse->sign);
        }
    }
}

#else
typedef int irnet_kernels_cm_unused; /* ISO C wants at least one declaration */
#endif
