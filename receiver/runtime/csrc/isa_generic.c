/* Plain C kernels (any CPU; the compiler may vectorize with the baseline instruction set). */
#include <math.h>
#include "lpcnet.h"

static void mv_f32(const float *W, int rows, int cols, const float *x, float *y) {
    for (int b = 0; b < rows / BLK; b++) {
        const float *w = W + (size_t)b * cols * BLK;
        float acc[BLK] = {0};
        for (int j = 0; j < cols; j++, w += BLK) {
            const float xv = x[j];
            for (int r = 0; r < BLK; r++) acc[r] += w[r] * xv;
        }
        for (int r = 0; r < BLK; r++) y[b * BLK + r] = acc[r];
    }
}

static void mv_sparse16(const float *W, const int32_t *idx, int rows, const float *x, float *y) {
    /* per 16-row output block: its kept columns, 16 weights each (a 16-wide multiply-add the compiler vectorizes);
     * four blocks in lockstep (independent accumulators), each still over its own columns in ascending order */
    const int nb = rows / SPB;
    int b = 0;
    for (; b + 4 <= nb; b += 4) {
        const int32_t *p[4];
        const float *w[4];
        int c[4];
        float acc[4][SPB] = {{0}};
        const int m = sparse_next4(&idx, &W, p, w, c);
        for (int k = 0; k < m; k++)
            for (int q = 0; q < 4; q++) {
                const float xv = x[p[q][k]], *wq = w[q] + (size_t)k * SPB;
                for (int r = 0; r < SPB; r++) acc[q][r] += wq[r] * xv;
            }
        for (int q = 0; q < 4; q++) {
            for (int k = m; k < c[q]; k++) {
                const float xv = x[p[q][k]], *wq = w[q] + (size_t)k * SPB;
                for (int r = 0; r < SPB; r++) acc[q][r] += wq[r] * xv;
            }
            for (int r = 0; r < SPB; r++) y[(b + q) * SPB + r] = acc[q][r];
        }
    }
    for (; b < nb; b++) {
        float acc[SPB] = {0};
        const int n = *idx++;
        for (int k = 0; k < n; k++, W += SPB) {
            const float xv = x[*idx++];
            for (int r = 0; r < SPB; r++) acc[r] += W[r] * xv;
        }
        for (int r = 0; r < SPB; r++) y[b * SPB + r] = acc[r];
    }
}

static float half_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
    float v;
    if (exp == 0) v = ldexpf((float)man, -24);                     /* zero / subnormal */
    else if (exp == 31) v = man ? NAN : INFINITY;
    else v = ldexpf((float)(man | 0x400u), (int)exp - 25);
    return sign ? -v : v;
}

static void mv_f16(const uint16_t *W, int rows, int cols, const float *x, float *y) {
    for (int b = 0; b < rows / BLK; b++) {
        const uint16_t *w = W + (size_t)b * cols * BLK;
        float acc[BLK] = {0};
        for (int j = 0; j < cols; j++, w += BLK) {
            const float xv = x[j];
            for (int r = 0; r < BLK; r++) acc[r] += half_to_float(w[r]) * xv;
        }
        for (int r = 0; r < BLK; r++) y[b * BLK + r] = acc[r];
    }
}

static void mv_q8(const int8_t *W, int rows, int cg, const uint8_t *x, int32_t *y) {
    /* generic int8 weights are row-major (ckernel.py passes that layout for this path): an integer dot
     * product per row, which compilers vectorize on any SIMD set (SSE2 pmaddwd, NEON smlal) */
    const int cols = 4 * cg;
    int16_t xs[MAX_NA + 64];
    for (int j = 0; j < cols; j++) xs[j] = x[j];
    for (int r = 0; r < rows; r++) {
        const int8_t *w = W + (size_t)r * cols;
        int32_t acc = 0;
        for (int j = 0; j < cols; j++) acc += (int16_t)w[j] * xs[j];
        y[r] = acc;
    }
}

static void v_sigmoid(float *x, int n) {
    for (int i = 0; i < n; i++) x[i] = 1.0f / (1.0f + expf(-x[i]));
}

static void v_tanh(float *x, int n) {
    for (int i = 0; i < n; i++) x[i] = tanhf(x[i]);
}

static float softmax_floor(float *l, float boost, float pfloor) {
    float m = -INFINITY, s = 0.0f, total = 0.0f;
    for (int i = 0; i < LEVELS; i++) {
        l[i] *= boost;
        m = l[i] > m ? l[i] : m;
    }
    for (int i = 0; i < LEVELS; i++) {
        l[i] = expf(l[i] - m);
        s += l[i];
    }
    const float inv = 1.0f / s;
    for (int i = 0; i < LEVELS; i++) {
        float p = l[i] * inv - pfloor;
        l[i] = p > 0.0f ? p : 0.0f;
        total += l[i];
    }
    return total;
}

#define FRAME_FN pnsc_frame_generic
#define COND_FN pnsc_cond_generic
#include "frame_impl.h"
