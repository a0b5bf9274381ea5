/* Branch-free exp, expm1, tanh and log1p(exp(-a)) for float, as static inline
 * functions that GCC can vectorise: loops calling them become SIMD loops, where
 * calls to libm's scalar expf/tanhf/log1pf would not.
 *
 * Method: x = k ln2 + r with |r| <= ln2/2 (k rounded by the 1.5*2^23 shifter, ln2
 * split in two so k*ln2_hi is exact), a polynomial for expm1(r), and 2^k built in
 * the exponent bits. Inputs are clamped instead of tested, so there are no branches;
 * clamping keeps NaN (a NaN fails both comparisons) and saturates +-inf.
 * Polynomial coefficients: Chebyshev fits (mpmath.chebyfit) rounded to the type.
 * Max errors are measured by tests/test_fastmath.py against float64 references.
 */
#ifndef FBP_MATH_H
#define FBP_MATH_H

#include <stdint.h>
#include <string.h>

/* FBP_SIMD_CLONES, put on a hot element-wise kernel, compiles it twice: for the
 * baseline ISA and for x86-64-v3 (AVX2 + FMA), picked once at load time through an
 * ifunc. Empty where ifuncs are missing (non-x86, non-glibc, other compilers) or
 * when FBP_NO_CLONES is defined. The FMA clone rounds a*b+c once, so its results
 * can differ from the baseline's in the last bit. */
#if !defined(FBP_NO_CLONES) && defined(__GNUC__) && defined(__GLIBC__) && defined(__ELF__) \
    && (defined(__x86_64__) || defined(__i386__)) && defined(__has_attribute)
#if __has_attribute(target_clones)
#if defined(__clang__) || __GNUC__ < 12
#define FBP_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FBP_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
#endif
#endif
#ifndef FBP_SIMD_CLONES
#define FBP_SIMD_CLONES
#endif

static inline uint32_t fbp_bits_f(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float fbp_from_bits_f(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

/* 2^k for a k in [-126, 127], written straight into the exponent field. */
static inline float fbp_pow2i_f(int32_t k) { return fbp_from_bits_f((uint32_t)(k + 127) << 23); }

/* Range reduction shared by exp and expm1: returns k (as an int) and sets
 * *r = x - k ln2 and *q = expm1(r), for x already clamped to a finite range. */
static inline int32_t fbp_exp_reduce_f(float x, float *q)
{
    const float shifter = 0x1.8p23f;           /* adding it rounds to an integer */
    float kf = x * 1.44269504088896341f + shifter;
    int32_t k = (int32_t)(fbp_bits_f(kf) - 0x4B400000u);   /* the integer, in the low bits */
    kf -= shifter;
    float r = x - kf * 0.693359375f;            /* ln2_hi has 9 bits: exact */
    r = r - kf * -2.12194440054690583e-4f;      /* ln2_lo */
    /* expm1(r) = r + r^2 P(r) on |r| <= ln2/2, P degree 4: |error| < 1e-8 */
    float p = 0.00139261836f;
    p = p * r + 0.00836317905f;
    p = p * r + 0.0416665546f;
    p = p * r + 0.166665770f;
    p = p * r + 0.5f;
    *q = r + (r * r) * p;
    return k;
}

/* exp(x) on the whole float range, denormal results included; max error 1 ulp. */
static inline float fbp_expf(float x)
{
    x = x < -110.0f ? -110.0f : x;   /* exp(-110) rounds to 0 */
    x = x > 89.0f ? 89.0f : x;       /* exp(89) rounds to inf */
    float q;
    int32_t k = fbp_exp_reduce_f(x, &q);
    /* 2^k as 2^k1 2^k2 with both halves normal, for k in [-159, 129] */
    int32_t k1 = k >> 1, k2 = k - k1;
    return ((1.0f + q) * fbp_pow2i_f(k1)) * fbp_pow2i_f(k2);
}

/* expm1(x) = exp(x) - 1 with relative accuracy near 0; max error 1 ulp.
 * 2^k expm1(r) + 2^k - 1 is evaluated as 2 (t q + (t - 1/2)) with t = 2^(k-1), so
 * that k = 128 (x up to 89) still has a representable t. */
static inline float fbp_expm1f(float x)
{
    x = x < -30.0f ? -30.0f : x;     /* expm1(-30) rounds to -1 */
    x = x > 89.0f ? 89.0f : x;
    float q;
    int32_t k = fbp_exp_reduce_f(x, &q);
    float t = fbp_pow2i_f(k - 1);
    return 2.0f * (t * q + (t - 0.5f));
}

/* tanh(x) = sign(x) (-m / (2 + m)) with m = expm1(-2|x|): no cancellation anywhere,
 * saturates to +-1 for large |x|; max error 2 ulp. */
static inline float fbp_tanhf(float x)
{
    float a = x < 0 ? -x : x;
    float m = fbp_expm1f(-2.0f * a);
    float t = -m / (2.0f + m);
    return fbp_from_bits_f((fbp_bits_f(t) & 0x7FFFFFFFu) | (fbp_bits_f(x) & 0x80000000u));
}

/* log1p(exp(-a)) for a >= 0 (softplus and the BCE loss); max error 1 ulp.
 * With u = 1 + e rounded and c = e - (u - 1) its rounding error (exact),
 * log1p(e) = log(u) + c/u. log(u) = j ln2 + 2 atanh(s), s = (u - 2^j) / (u + 2^j),
 * j = [u > sqrt 2], so |s| <= 0.172. */
static inline float fbp_log1p_expneg_f(float a)
{
    float e = fbp_expf(-a);
    float u = 1.0f + e;
    float c = e - (u - 1.0f);
    int big = u > 1.41421356f;
    float base = big ? 2.0f : 1.0f;
    float s = (u - base) / (u + base);
    float w = s * s;
    /* 2 atanh(s) = 2s + s^3 R(s^2), R degree 2: relative error < 3e-9 */
    float rp = 0.295801567f;
    rp = rp * w + 0.399887760f;
    rp = rp * w + 0.666666851f;
    float l = 2.0f * s + (s * w) * rp;
    return (big ? 0.693147181f : 0.0f) + (l + c / u);
}

#endif
