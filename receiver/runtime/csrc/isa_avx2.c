/* AVX2 + FMA kernels: fp32 FMA on 8 lanes; int8 weights widened to int16 and multiplied with vpmaddwd
 * (exact int32 sums, identical to the VNNI path). */
#if defined(__x86_64__) || defined(__i386__)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC target("avx2,fma,f16c")
#endif
#include <immintrin.h>
#include <math.h>
#include "lpcnet.h"

static void mv_f32(const float *W, int rows, int cols, const float *x, float *y) {
    for (int b = 0; b < rows / BLK; b++) {
        const float *w = W + (size_t)b * cols * BLK;
        __m256 a[8];
        for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
        for (int j = 0; j < cols; j++, w += BLK) {
            const __m256 xv = _mm256_set1_ps(x[j]);
            for (int k = 0; k < 8; k++) a[k] = _mm256_fmadd_ps(_mm256_load_ps(w + 8 * k), xv, a[k]);
        }
        for (int k = 0; k < 8; k++) _mm256_storeu_ps(y + b * BLK + 8 * k, a[k]);
    }
}

#define SP_FMA2(q, k)                                                                                        \
    do {                                                                                                         \
        const __m256 xv = _mm256_set1_ps(x[p[q][k]]);                                                            \
        lo[q] = _mm256_fmadd_ps(_mm256_load_ps(w[q] + (k) * SPB), xv, lo[q]);                                    \
        hi[q] = _mm256_fmadd_ps(_mm256_load_ps(w[q] + (k) * SPB + 8), xv, hi[q]);                                \
    } while (0)

static void mv_sparse16(const float *W, const int32_t *idx, int rows, const float *x, float *y) {
    /* two 8-wide FMAs per kept column of a 16-row output block; four blocks in lockstep (eight independent
     * accumulator chains), each still over its own columns in ascending order */
    const int nb = rows / SPB;
    int b = 0;
    for (; b + 4 <= nb; b += 4) {
        const int32_t *p[4];
        const float *w[4];
        int c[4];
        __m256 lo[4], hi[4];
        const int m = sparse_next4(&idx, &W, p, w, c);
        for (int q = 0; q < 4; q++) lo[q] = hi[q] = _mm256_setzero_ps();
        for (int k = 0; k < m; k++) {
            SP_FMA2(0, k);
            SP_FMA2(1, k);
            SP_FMA2(2, k);
            SP_FMA2(3, k);
        }
        for (int q = 0; q < 4; q++) {
            for (int k = m; k < c[q]; k++) SP_FMA2(q, k);
            _mm256_storeu_ps(y + (b + q) * SPB, lo[q]);
            _mm256_storeu_ps(y + (b + q) * SPB + 8, hi[q]);
        }
    }
    for (; b < nb; b++) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        const int n = *idx++;
        for (int k = 0; k < n; k++, W += SPB) {
            const __m256 xv = _mm256_set1_ps(x[*idx++]);
            a0 = _mm256_fmadd_ps(_mm256_load_ps(W), xv, a0);
            a1 = _mm256_fmadd_ps(_mm256_load_ps(W + 8), xv, a1);
        }
        _mm256_storeu_ps(y + b * SPB, a0);
        _mm256_storeu_ps(y + b * SPB + 8, a1);
    }
}

static void mv_f16(const uint16_t *W, int rows, int cols, const float *x, float *y) {
    for (int b = 0; b < rows / BLK; b++) {
        const uint16_t *w = W + (size_t)b * cols * BLK;
        __m256 a[8];
        for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
        for (int j = 0; j < cols; j++, w += BLK) {
            const __m256 xv = _mm256_set1_ps(x[j]);
            for (int k = 0; k < 8; k++)
                a[k] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_load_si128((const __m128i *)(w + 8 * k))), xv, a[k]);
        }
        for (int k = 0; k < 8; k++) _mm256_storeu_ps(y + b * BLK + 8 * k, a[k]);
    }
}

static void mv_q8(const int8_t *W, int rows, int cg, const uint8_t *x, int32_t *y) {
    int16_t x16[MAX_NA + 64] __attribute__((aligned(32)));
    for (int j = 0; j < 4 * cg; j++) x16[j] = x[j];
    for (int b = 0; b < rows / BLK; b++) {
        for (int half = 0; half < 2; half++) {
            const int8_t *w = W + (size_t)b * cg * 4 * BLK + half * 128;
            __m256i a[8];
            for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_si256();
            for (int g = 0; g < cg; g++, w += 4 * BLK) {
                int64_t xs;
                __builtin_memcpy(&xs, x16 + 4 * g, 8);
                const __m256i xv = _mm256_set1_epi64x(xs);
                for (int k = 0; k < 8; k++) {
                    const __m256i wv = _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)(w + 16 * k)));
                    a[k] = _mm256_add_epi32(a[k], _mm256_madd_epi16(wv, xv));
                }
            }
            /* a[k] lanes: rows 4k..4k+3, two partial sums each -> 8 rows per pair of registers */
            int32_t *o = y + b * BLK + half * 32;
            for (int k = 0; k < 8; k += 2) {
                const __m256i h = _mm256_hadd_epi32(a[k], a[k + 1]);
                _mm256_storeu_si256((__m256i *)(o + 4 * k), _mm256_permute4x64_epi64(h, 0xD8));
            }
        }
    }
}

static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.33654f)), _mm256_set1_ps(88.0f));
    const __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* 1/d: rcp (12 bits) refined by one Newton step (about 1 ulp), cheaper than vdivps */
static inline __m256 recip8(__m256 d) {
    const __m256 r = _mm256_rcp_ps(d);
    return _mm256_fmadd_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(1.0f)), r);
}

static void v_sigmoid(float *x, int n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int i = 0; i < n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        _mm256_storeu_ps(x + i, recip8(_mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), v)))));
    }
}

static void v_tanh(float *x, int n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int i = 0; i < n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 a = _mm256_min_ps(_mm256_andnot_ps(sign, v), _mm256_set1_ps(9.0f));
        const __m256 t = exp8(_mm256_mul_ps(a, _mm256_set1_ps(-2.0f)));
        const __m256 th = _mm256_mul_ps(_mm256_sub_ps(one, t), recip8(_mm256_add_ps(one, t)));
        _mm256_storeu_ps(x + i, _mm256_or_ps(th, _mm256_and_ps(v, sign)));
    }
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float softmax_floor(float *l, float boost, float pfloor) {
    const __m256 b = _mm256_set1_ps(boost);
    __m256 m = _mm256_set1_ps(-INFINITY);
    for (int i = 0; i < LEVELS; i += 8) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(l + i), b);
        _mm256_storeu_ps(l + i, v);
        m = _mm256_max_ps(m, v);
    }
    const __m256 mx = _mm256_set1_ps(hmax8(m));
    __m256 s = _mm256_setzero_ps();
    for (int i = 0; i < LEVELS; i += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(l + i), mx));
        _mm256_storeu_ps(l + i, e);
        s = _mm256_add_ps(s, e);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / hsum8(s));
    const __m256 fl = _mm256_set1_ps(pfloor);
    __m256 t = _mm256_setzero_ps();
    for (int i = 0; i < LEVELS; i += 8) {
        const __m256 p = _mm256_max_ps(_mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(l + i), inv), fl),
                                       _mm256_setzero_ps());
        _mm256_storeu_ps(l + i, p);
        t = _mm256_add_ps(t, p);
    }
    return hsum8(t);
}

#define FRAME_FN pnsc_frame_avx2
#define COND_FN pnsc_cond_avx2
#include "frame_impl.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif

#else /* not x86: never selected (module.c reports only the generic path) */
#include "lpcnet.h"
void pnsc_frame_avx2(const Net *net, const float *ga, const float *gb, const float *lpc, float boost, float pfloor,
          const float *uniforms,
          const float *force, float *ha, float *hb, float *hist, int32_t *exc, float *out) {
    (void)net, (void)ga, (void)gb, (void)lpc, (void)boost, (void)pfloor, (void)uniforms, (void)force, (void)ha, (void)hb, (void)hist,
        (void)exc, (void)out;
}
void pnsc_cond_avx2(const Net *net, const float *window, float *ga, float *gb) {
    (void)net, (void)window, (void)ga, (void)gb;
}
#endif
