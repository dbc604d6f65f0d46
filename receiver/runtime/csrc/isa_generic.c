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

static void mv_q8(const int8_t *W, int rows, int cg, const uint8_t *x, int32_t *y) {
    for (int b = 0; b < rows / BLK; b++) {
        const int8_t *w = W + (size_t)b * cg * 4 * BLK;
        int32_t acc[BLK] = {0};
        for (int g = 0; g < cg; g++, w += 4 * BLK) {
            const int32_t x0 = x[4 * g], x1 = x[4 * g + 1], x2 = x[4 * g + 2], x3 = x[4 * g + 3];
            for (int r = 0; r < BLK; r++)
                acc[r] += w[4 * r] * x0 + w[4 * r + 1] * x1 + w[4 * r + 2] * x2 + w[4 * r + 3] * x3;
        }
        for (int r = 0; r < BLK; r++) y[b * BLK + r] = acc[r];
    }
}

static void v_sigmoid(float *x, int n) {
    for (int i = 0; i < n; i++) x[i] = 1.0f / (1.0f + expf(-x[i]));
}

static void v_tanh(float *x, int n) {
    for (int i = 0; i < n; i++) x[i] = tanhf(x[i]);
}

static float softmax_floor(float *l, float boost) {
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
        float p = l[i] * inv - PDF_FLOOR;
        l[i] = p > 0.0f ? p : 0.0f;
        total += l[i];
    }
    return total;
}

#define FRAME_FN pnsc_frame_generic
#include "frame_impl.h"
