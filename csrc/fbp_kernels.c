/* Instantiates the element-wise kernels of fbp_kernels.h for float and double. */
#include <math.h>
#include <string.h>
#include "fbp_kernels.h"
#include "fbp_math.h"   /* EXP, EXPM1, TANH, LOG1P_EXPNEG: vectorisable */

/* A switch on a code must name every member of its enum, even with a default: a
 * code added to fbp_kernels.h without its case does not compile. */
#if defined(__GNUC__)
#pragma GCC diagnostic error "-Wswitch-enum"
#endif

#define T float
#define FN(name) name##_f
#define EXP fbp_expf
#define LOG logf
#define LOG1P log1pf
#define EXPM1 fbp_expm1f
#define SQRT sqrtf
#define TANH fbp_tanhf
#define LOG1P_EXPNEG fbp_log1p_expneg_f
#include "fbp_kernels_impl.h"
#include "fbp_layers_impl.h"
#include "fbp_small_gemm_impl.h"
#undef T
#undef FN
#undef EXP
#undef LOG
#undef LOG1P
#undef EXPM1
#undef SQRT
#undef TANH
#undef LOG1P_EXPNEG

#define T double
#define FN(name) name##_d
#define EXP fbp_exp
#define LOG log
#define LOG1P log1p
#define EXPM1 fbp_expm1
#define SQRT sqrt
#define TANH fbp_tanh
#define LOG1P_EXPNEG fbp_log1p_expneg
#include "fbp_kernels_impl.h"
#include "fbp_layers_impl.h"
#include "fbp_small_gemm_impl.h"

void fbp_gather_labels(int64_t n_idx, const int64_t *y, const int64_t *idx, int64_t *out)
{
    for (int64_t i = 0; i < n_idx; ++i) out[i] = y[idx[i]];
}
