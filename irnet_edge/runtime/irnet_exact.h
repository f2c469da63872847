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
#if defined(__FLT_EVAL_METHOD__) && __FLT_EVAL_METHOD__ != 0 && __FLT_EVAL_METHOD__ != -1
#error "irnet-edge: float expressions are evaluated in a wider type here (FLT_EVAL_METHOD != 0, e.g. x87 code on 32-bit x86). Build with SSE float arithmetic (e.g. -msse2 -mfpmath=sse)."
#endif

#if defined(__clang__)
#pragma clang fp contract(off)
#if __clang_major__ >= 12
#pragma clang fp reassociate(off)
#endif
#if defined(__aarch64__) || (defined(__arm__) && defined(__ARM_FP) && !defined(__SOFTFP__))
#define IRNET_FENCE(x) __asm__("" : "+w"(x))
#elif defined(__SSE__)
#define IRNET_FENCE(x) __asm__("" : "+x"(x))
#else
#define IRNET_FENCE(x) __asm__("" : "+r"(x))
#endif
#elif defined(__GNUC__)
/* GCC honours this whatever -ffp-contract says (checked by disassembly in irnet-edge's tests) */
#pragma GCC optimize("fp-contract=off")
#define IRNET_FENCE(x) ((void)0)
#else
#pragma STDC FP_CONTRACT OFF
#define IRNET_FENCE(x) ((void)0)
#endif

#endif
