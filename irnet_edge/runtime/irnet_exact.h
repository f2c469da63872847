/* irnet-edge runtime: what keeps the float arithmetic bit-exact whatever compiler and flags build it.
 * Written down in docs/arithmetic.md ("Exact in your build"). Included first by every runtime file and every
 * generated model file; not by the model's public header, so nothing here reaches the user's own code.
 *
 * The reference executor defines every float operation and its order. Three things could change them:
 *  - flags that let the compiler reorder or approximate (fast-math and its parts): refused below by name;
 *  - float expressions evaluated in wider precision (x87): refused below;
 *  - contraction of a multiply and the add that follows into one fused multiply-add (GCC's GNU modes and
 *    clang contract by default on aarch64, x86 with FMA and the Cortex-M4/M7/M33/M55 FPUs): switched off
 *    by pragma, and for clang, whose -ffp-contract=fast disregards pragmas, every such product also passes
 *    through IRNET_FENCE, an empty asm statement the optimizer cannot see through. */
#ifndef IRNET_EXACT_H
#define IRNET_EXACT_H

#if defined(__FAST_MATH__)
#error "irnet-edge: -ffast-math or -Ofast is on (__FAST_MATH__ is defined). It reorders and approximates float arithmetic, so the model would no longer compute the reference's bits. Build irnet-edge's files without it."
#endif
#if defined(__FINITE_MATH_ONLY__) && __FINITE_MATH_ONLY__
#error "irnet-edge: -ffinite-math-only is on (__FINITE_MATH_ONLY__ is 1). It lets the compiler assume no infinities or NaNs, so the model would no longer compute the reference's bits. Build irnet-edge's files without it."
#endif
#if defined(__ASSOCIATIVE_MATH__)
#error "irnet-edge: -fassociative-math (or -funsafe-math-optimizations) is on. It reorders float sums, so the model would no longer compute the reference's bits. Build irnet-edge's files without it."
#endif
#if defined(__RECIPROCAL_MATH__)
#error "irnet-edge: -freciprocal-math (or -funsafe-math-optimizations) is on. It replaces divisions by multiplications with a reciprocal, so the model would no longer compute the reference's bits. Build irnet-edge's files without it."
#endif
#if defined(__NO_SIGNED_ZEROS__)
#error "irnet-edge: -fno-signed-zeros (or -funsafe-math-optimizations) is on. It may turn -0.0 into +0.0, so the model would no longer compute the reference's bits. Build irnet-edge's files without it."
#endif
/* 16 and 32 (ISO/IEC TS 18661-3: GCC's GNU modes where _Float16 arithmetic is native, e.g. Cortex-M55 or aarch64
 * +fp16) still evaluate float operations in float */
#if defined(__FLT_EVAL_METHOD__) && __FLT_EVAL_METHOD__ != 0 && __FLT_EVAL_METHOD__ != -1 && \
    __FLT_EVAL_METHOD__ != 16 && __FLT_EVAL_METHOD__ != 32
#error "irnet-edge: float expressions are evaluated in a wider type here (FLT_EVAL_METHOD != 0, e.g. x87 code on 32-bit x86). Build with SSE float arithmetic (e.g. -msse2 -mfpmath=sse)."
#endif

/* Clang predefines no macro for -fassociative-math, -freciprocal-math, -fno-signed-zeros, -fno-honor-nans,
 * -fapprox-func or -funsafe-math-optimizations (GCC does: refused above). Where clang has precise mode (x86; clang
 * ignores the pragma, with a warning, on Arm) it takes them all back for the rest of the file; it also sets
 * contraction to "on", so contract(off) comes after it. On Arm, IRNET_OPAQUE keeps each division a division
 * (-freciprocal-math would turn x / 255.0f into x * (1 / 255.0f), and a loop-invariant divisor into one
 * reciprocal): a volatile empty asm statement, so the divisor is a new unknown value at every use. */
#if defined(__clang__)
#if __clang_major__ >= 12
#if defined(__x86_64__) || defined(__i386__)
#pragma float_control(precise, on)
#endif
#pragma clang fp reassociate(off)
#endif
#pragma clang fp contract(off)
#if defined(__aarch64__) || (defined(__arm__) && defined(__ARM_FP) && !defined(__SOFTFP__))
#define IRNET_FENCE(x) __asm__("" : "+w"(x))
#define IRNET_OPAQUE(x) __asm__ __volatile__("" : "+w"(x))
#elif defined(__SSE__)
#define IRNET_FENCE(x) __asm__("" : "+x"(x))
#define IRNET_OPAQUE(x) __asm__ __volatile__("" : "+x"(x))
#else
#define IRNET_FENCE(x) __asm__("" : "+r"(x))
#define IRNET_OPAQUE(x) __asm__ __volatile__("" : "+r"(x))
#endif
#elif defined(__GNUC__)
/* GCC honours this whatever -ffp-contract says (checked by disassembly in irnet-edge's tests) */
#pragma GCC optimize("fp-contract=off")
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2)
/* Helium's floating-point instructions flush subnormals to zero (the Standard FPSCR Value, as Armv7 Neon's do),
 * yet GCC auto-vectorizes float loops with them (from -O3, e.g. irnet_add, irnet_conv_f32): not here. */
#pragma GCC optimize("no-tree-vectorize")
#endif
#define IRNET_FENCE(x) ((void)0)
#define IRNET_OPAQUE(x) ((void)0)
#else
#pragma STDC FP_CONTRACT OFF
#define IRNET_FENCE(x) ((void)0)
#define IRNET_OPAQUE(x) ((void)0)
#endif


/* Clang too vectorizes float loops with Helium's float instructions (which flush subnormals to zero), and has
 * no file-wide switch: every loop of float arithmetic in the runtime starts with IRNET_SCALAR_LOOP. */
#if defined(__clang__) && defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2)
#define IRNET_SCALAR_LOOP _Pragma("clang loop vectorize(disable) interleave(disable)")
#else
#define IRNET_SCALAR_LOOP
#endif

#endif
