/* Branch-free exp, expm1, tanh and log1p(exp(-a)) for float and double, as static inline
 * functions that GCC can vectorise: loops calling them become SIMD loops, where
 * calls to libm's scalar expf/tanhf/log1pf would not.
 *
 * Method: x = k ln2 + r with |r| <= ln2/2 (k rounded by the 1.5*2^23 shifter, ln2
 * split in two so k*ln2_hi is exact), a polynomial for expm1(r), and 2^k built in
 * the exponent bits. Inputs are clamped instead of tested, so there are no branches;
 * clamping keeps NaN (a NaN fails both comparisons) and saturates +-inf.
 * Polynomial coefficients: Chebyshev fits (mpmath.chebyfit) rounded to the type.
 * tests/test_fastmath.py measures them through the kernels against float64 NumPy.
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

/* FBP_ALWAYS_INLINE, on a static helper of a cloned kernel: a helper the compiler
 * chose not to inline would be compiled once, for the baseline ISA, and both clones
 * would call that copy. */
#if defined(_MSC_VER)
#define FBP_ALWAYS_INLINE __forceinline
#else
#define FBP_ALWAYS_INLINE __attribute__((always_inline))
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

/* exp(x) on the whole float range, denormal results included; max error 1.05 ulp
 * (all 2^32 floats against double exp). */
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

/* expm1(x) = exp(x) - 1 with relative accuracy near 0; max error 1.75 ulp.
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
 * saturates to +-1 for large |x|; max error 2.5 ulp. */
static inline float fbp_tanhf(float x)
{
    float a = x < 0 ? -x : x;
    float m = fbp_expm1f(-2.0f * a);
    float t = -m / (2.0f + m);
    return fbp_from_bits_f((fbp_bits_f(t) & 0x7FFFFFFFu) | (fbp_bits_f(x) & 0x80000000u));
}

/* log1p(exp(-a)) for a >= 0 (softplus and the BCE loss); max error 3.3 ulp, most of it
 * exp's error carried into a result about half the size.
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

/* ---- double: the same methods with 64-bit fields and longer polynomials ---- */

static inline uint64_t fbp_bits_d(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
static inline double fbp_from_bits_d(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }

/* 2^k for an integer-valued kf in [-1022, 1023]. The shifter puts k in the low bits;
 * the shift left drops the shifter's own exponent bits. Only unsigned 64-bit adds and
 * shifts, which SSE2 and AVX2 have (an arithmetic 64-bit shift they lack). */
static inline double fbp_pow2_d(double kf)
{
    return fbp_from_bits_d((fbp_bits_d(kf + 0x1.8p52) + 1023u) << 52);
}

/* Sets *q = expm1(r), r = x - k ln2, and returns k (integer-valued double). */
static inline double fbp_exp_reduce_d(double x, double *q)
{
    const double shifter = 0x1.8p52;
    double kf = (x * 1.4426950408889634 + shifter) - shifter;
    double r = x - kf * 0x1.62e42fefa3800p-1;   /* ln2_hi has 42 bits: exact */
    r = r - kf * 5.497923018708371e-14;         /* ln2_lo */
    /* expm1(r) = r + r^2 P(r) on |r| <= ln2/2, P degree 9: |error| < 1e-17 */
    double p = 2.510038549551031908e-8;
    p = p * r + 2.762008844540974816e-7;
    p = p * r + 2.755726845999706477e-6;
    p = p * r + 2.480152129595437513e-5;
    p = p * r + 1.984126986305361687e-4;
    p = p * r + 1.388888891721371690e-3;
    p = p * r + 8.333333333330061833e-3;
    p = p * r + 4.166666666662412787e-2;
    p = p * r + 1.666666666666666745e-1;
    p = p * r + 5.000000000000001022e-1;
    *q = r + (r * r) * p;
    return kf;
}

/* exp(x), whole double range; 2^k split in two halves as for float. Max errors of the
 * double functions (2e7 random x against long double libm): exp 1.03, expm1 2.35,
 * tanh 2.57, log1p(exp(-a)) 3.26 ulp. */
static inline double fbp_exp(double x)
{
    x = x < -760.0 ? -760.0 : x;     /* exp(-760) rounds to 0 */
    x = x > 720.0 ? 720.0 : x;       /* exp(720) rounds to inf */
    double q;
    double kf = fbp_exp_reduce_d(x, &q);
    double k1 = (kf * 0.5 + 0x1.8p52) - 0x1.8p52;   /* about half of k */
    return ((1.0 + q) * fbp_pow2_d(k1)) * fbp_pow2_d(kf - k1);
}

/* expm1(x), as fbp_expm1f: 2 (t q + (t - 1/2)), t = 2^(k-1). */
static inline double fbp_expm1(double x)
{
    x = x < -60.0 ? -60.0 : x;       /* expm1(-60) rounds to -1 */
    x = x > 710.0 ? 710.0 : x;       /* expm1(710) rounds to inf; k - 1 <= 1023 */
    double q;
    double kf = fbp_exp_reduce_d(x, &q);
    double t = fbp_pow2_d(kf - 1.0);
    return 2.0 * (t * q + (t - 0.5));
}

/* tanh(x) = sign(x) (-m / (2 + m)), m = expm1(-2|x|). */
static inline double fbp_tanh(double x)
{
    double a = x < 0 ? -x : x;
    double m = fbp_expm1(-2.0 * a);
    double t = -m / (2.0 + m);
    return fbp_from_bits_d((fbp_bits_d(t) & 0x7FFFFFFFFFFFFFFFull)
                           | (fbp_bits_d(x) & 0x8000000000000000ull));
}

/* log1p(exp(-a)) for a >= 0, as fbp_log1p_expneg_f; R of degree 6. */
static inline double fbp_log1p_expneg(double a)
{
    double e = fbp_exp(-a);
    double u = 1.0 + e;
    double c = e - (u - 1.0);
    int big = u > 1.4142135623730951;
    double base = big ? 2.0 : 1.0;
    double s = (u - base) / (u + base);
    double w = s * s;
    /* 2 atanh(s) = 2s + s^3 R(s^2), R degree 6: relative error < 1e-17 */
    double rp = 0.1461672117986181575;
    rp = rp * w + 0.1533169963354385872;
    rp = rp * w + 0.1818288978619104248;
    rp = rp * w + 0.2222221112572280894;
    rp = rp * w + 0.2857142862603106677;
    rp = rp * w + 0.3999999999989938194;
    rp = rp * w + 0.6666666666666669690;
    double l = 2.0 * s + (s * w) * rp;
    return (big ? 0.6931471805599453 : 0.0) + (l + c / u);
}

#endif
