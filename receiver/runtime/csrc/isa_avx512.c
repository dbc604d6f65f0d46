/* AVX-512 kernels: fp32 FMA on 16 lanes, int8 x uint8 dot products with VNNI vpdpbusd. */
#if defined(__x86_64__) || defined(__i386__)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,fma,avx2"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,fma,avx2")
#endif
#include <immintrin.h>
#include <math.h>
#include "lpcnet.h"

static void mv_f32(const float *W, int rows, int cols, const float *x, float *y) {
    for (int b = 0; b < rows / BLK; b++) {
        const float *w = W + (size_t)b * cols * BLK;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int j = 0; j < cols; j++, w += BLK) {
            const __m512 xv = _mm512_set1_ps(x[j]);
            a0 = _mm512_fmadd_ps(_mm512_load_ps(w), xv, a0);
            a1 = _mm512_fmadd_ps(_mm512_load_ps(w + 16), xv, a1);
            a2 = _mm512_fmadd_ps(_mm512_load_ps(w + 32), xv, a2);
            a3 = _mm512_fmadd_ps(_mm512_load_ps(w + 48), xv, a3);
        }
        float *o = y + b * BLK;
        _mm512_storeu_ps(o, a0);
        _mm512_storeu_ps(o + 16, a1);
        _mm512_storeu_ps(o + 32, a2);
        _mm512_storeu_ps(o + 48, a3);
    }
}

static void mv_sparse16(const float *W, const int32_t *idx, int rows, const float *x, float *y) {
    /* one 16-wide FMA per kept column of a 16-row output block; four blocks in lockstep (four independent
     * accumulator chains hide the FMA latency), each still over its own columns in ascending order */
    const int nb = rows / SPB;
    int b = 0;
    for (; b + 4 <= nb; b += 4) {
        const int32_t *p[4];
        const float *w[4];
        int c[4];
        const int m = sparse_next4(&idx, &W, p, w, c);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int k = 0; k < m; k++) {
            a0 = _mm512_fmadd_ps(_mm512_load_ps(w[0] + k * SPB), _mm512_set1_ps(x[p[0][k]]), a0);
            a1 = _mm512_fmadd_ps(_mm512_load_ps(w[1] + k * SPB), _mm512_set1_ps(x[p[1][k]]), a1);
            a2 = _mm512_fmadd_ps(_mm512_load_ps(w[2] + k * SPB), _mm512_set1_ps(x[p[2][k]]), a2);
            a3 = _mm512_fmadd_ps(_mm512_load_ps(w[3] + k * SPB), _mm512_set1_ps(x[p[3][k]]), a3);
        }
        for (int k = m; k < c[0]; k++) a0 = _mm512_fmadd_ps(_mm512_load_ps(w[0] + k * SPB), _mm512_set1_ps(x[p[0][k]]), a0);
        for (int k = m; k < c[1]; k++) a1 = _mm512_fmadd_ps(_mm512_load_ps(w[1] + k * SPB), _mm512_set1_ps(x[p[1][k]]), a1);
        for (int k = m; k < c[2]; k++) a2 = _mm512_fmadd_ps(_mm512_load_ps(w[2] + k * SPB), _mm512_set1_ps(x[p[2][k]]), a2);
        for (int k = m; k < c[3]; k++) a3 = _mm512_fmadd_ps(_mm512_load_ps(w[3] + k * SPB), _mm512_set1_ps(x[p[3][k]]), a3);
        _mm512_storeu_ps(y + b * SPB, a0);
        _mm512_storeu_ps(y + (b + 1) * SPB, a1);
        _mm512_storeu_ps(y + (b + 2) * SPB, a2);
        _mm512_storeu_ps(y + (b + 3) * SPB, a3);
    }
    for (; b < nb; b++) {
        __m512 a = _mm512_setzero_ps();
        const int n = *idx++;
        for (int k = 0; k < n; k++, W += SPB) a = _mm512_fmadd_ps(_mm512_load_ps(W), _mm512_set1_ps(x[*idx++]), a);
        _mm512_storeu_ps(y + b * SPB, a);
    }
}

static void mv_f16(const uint16_t *W, int rows, int cols, const float *x, float *y) {
    for (int b = 0; b < rows / BLK; b++) {
        const uint16_t *w = W + (size_t)b * cols * BLK;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int j = 0; j < cols; j++, w += BLK) {
            const __m512 xv = _mm512_set1_ps(x[j]);
            a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_load_si256((const __m256i *)w)), xv, a0);
            a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(w + 16))), xv, a1);
            a2 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(w + 32))), xv, a2);
            a3 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(w + 48))), xv, a3);
        }
        float *o = y + b * BLK;
        _mm512_storeu_ps(o, a0);
        _mm512_storeu_ps(o + 16, a1);
        _mm512_storeu_ps(o + 32, a2);
        _mm512_storeu_ps(o + 48, a3);
    }
}

static void mv_q8(const int8_t *W, int rows, int cg, const uint8_t *x, int32_t *y) {
    /* two independent accumulator sets (even / odd column groups) hide the vpdpbusd latency */
    for (int b = 0; b < rows / BLK; b++) {
        const int8_t *w = W + (size_t)b * cg * 4 * BLK;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
        int g = 0;
        for (; g + 1 < cg; g += 2, w += 8 * BLK) {
            int32_t xs[2];
            __builtin_memcpy(xs, x + 4 * g, 8);
            const __m512i xa = _mm512_set1_epi32(xs[0]), xb = _mm512_set1_epi32(xs[1]);
            a0 = _mm512_dpbusd_epi32(a0, xa, _mm512_load_si512((const void *)w));
            a1 = _mm512_dpbusd_epi32(a1, xa, _mm512_load_si512((const void *)(w + 64)));
            a2 = _mm512_dpbusd_epi32(a2, xa, _mm512_load_si512((const void *)(w + 128)));
            a3 = _mm512_dpbusd_epi32(a3, xa, _mm512_load_si512((const void *)(w + 192)));
            c0 = _mm512_dpbusd_epi32(c0, xb, _mm512_load_si512((const void *)(w + 256)));
            c1 = _mm512_dpbusd_epi32(c1, xb, _mm512_load_si512((const void *)(w + 320)));
            c2 = _mm512_dpbusd_epi32(c2, xb, _mm512_load_si512((const void *)(w + 384)));
            c3 = _mm512_dpbusd_epi32(c3, xb, _mm512_load_si512((const void *)(w + 448)));
        }
        if (g < cg) {
            int32_t xs;
            __builtin_memcpy(&xs, x + 4 * g, 4);
            const __m512i xa = _mm512_set1_epi32(xs);
            a0 = _mm512_dpbusd_epi32(a0, xa, _mm512_load_si512((const void *)w));
            a1 = _mm512_dpbusd_epi32(a1, xa, _mm512_load_si512((const void *)(w + 64)));
            a2 = _mm512_dpbusd_epi32(a2, xa, _mm512_load_si512((const void *)(w + 128)));
            a3 = _mm512_dpbusd_epi32(a3, xa, _mm512_load_si512((const void *)(w + 192)));
        }
        int32_t *o = y + b * BLK;
        _mm512_storeu_si512((void *)o, _mm512_add_epi32(a0, c0));
        _mm512_storeu_si512((void *)(o + 16), _mm512_add_epi32(a1, c1));
        _mm512_storeu_si512((void *)(o + 32), _mm512_add_epi32(a2, c2));
        _mm512_storeu_si512((void *)(o + 48), _mm512_add_epi32(a3, c3));
    }
}

/* Cephes-style expf: x = n ln2 + r, polynomial in r, scaled by 2^n (about 1 ulp). */
static inline __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.33654f)), _mm512_set1_ps(88.0f));
    const __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, fx);
}

/* 1/d: rcp14 (14 bits) refined by one Newton step (about 1 ulp), cheaper than vdivps */
static inline __m512 recip16(__m512 d) {
    const __m512 r = _mm512_rcp14_ps(d);
    return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0f)), r);
}

static void v_sigmoid(float *x, int n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int i = 0; i < n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        _mm512_storeu_ps(x + i, recip16(_mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), v)))));
    }
}

static void v_tanh(float *x, int n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    for (int i = 0; i < n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        const __m512 a = _mm512_min_ps(_mm512_abs_ps(v), _mm512_set1_ps(9.0f));
        const __m512 t = exp16(_mm512_mul_ps(a, _mm512_set1_ps(-2.0f)));
        const __m512 th = _mm512_mul_ps(_mm512_sub_ps(one, t), recip16(_mm512_add_ps(one, t)));
        const __m512i s = _mm512_and_si512(_mm512_castps_si512(v), sign);
        _mm512_storeu_ps(x + i, _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(th), s)));
    }
}

static float softmax_floor(float *l, float boost, float pfloor) {
    const __m512 b = _mm512_set1_ps(boost);
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < LEVELS; i += 16) {
        const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(l + i), b);
        _mm512_storeu_ps(l + i, v);
        m = _mm512_max_ps(m, v);
    }
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(m));
    __m512 s = _mm512_setzero_ps();
    for (int i = 0; i < LEVELS; i += 16) {
        const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(l + i), mx));
        _mm512_storeu_ps(l + i, e);
        s = _mm512_add_ps(s, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(s));
    const __m512 fl = _mm512_set1_ps(pfloor);
    __m512 t = _mm512_setzero_ps();
    for (int i = 0; i < LEVELS; i += 16) {
        const __m512 p = _mm512_max_ps(_mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(l + i), inv), fl),
                                       _mm512_setzero_ps());
        _mm512_storeu_ps(l + i, p);
        t = _mm512_add_ps(t, p);
    }
    return _mm512_reduce_add_ps(t);
}

#define FRAME_FN pnsc_frame_avx512
#define COND_FN pnsc_cond_avx512
#include "frame_impl.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif

#else /* not x86: never selected (module.c reports only the generic path) */
#include "lpcnet.h"
void pnsc_frame_avx512(const Net *net, const float *ga, const float *gb, const float *lpc, float boost, float pfloor,
          const float *uniforms,
          const float *force, float *ha, float *hb, float *hist, int32_t *exc, float *out) {
    (void)net, (void)ga, (void)gb, (void)lpc, (void)boost, (void)pfloor, (void)uniforms, (void)force, (void)ha, (void)hb, (void)hist,
        (void)exc, (void)out;
}
void pnsc_cond_avx512(const Net *net, const float *window, float *ga, float *gb) {
    (void)net, (void)window, (void)ga, (void)gb;
}
#endif
