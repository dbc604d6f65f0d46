/* The 160-sample frame loop, included by each isa_*.c after it defines:
 *   mv_f32(W, rows, cols, x, y)   y[0..rows) = blocked W . x
 *   mv_f16(W, rows, cols, x, y)   the same with half-precision stored weights (float32 arithmetic)
 *   mv_q8(W, rows, cg, xu, acc)   acc[0..rows) = blocked int8 W . uint8 xu (int32)
 *   mv_sparse16(W, idx, rows, x, y)  y[0..rows) = block-sparse W . x (rows a multiple of 16; Net.sp_w / sp_idx),
 *     accumulating each row over its kept columns in ascending order with the same per-row accumulator and
 *     multiply-add as mv_f32 / mv_f16, so on the same weights it gives the dense result bit for bit
 *     (a skipped block adds exact zeros)
 *   v_sigmoid(x, n), v_tanh(x, n) in place (n rounded up to 16 may be touched)
 *   softmax_floor(l, boost, pfloor) -> total: l := max(softmax(boost*l) - pfloor, 0), returns the sum
 *     (one pass for max, one for exp and its sum, one that normalizes, subtracts the floor, clamps and
 *     sums: the floor costs no pass of its own; floor 0 leaves softmax(boost*l) as it is)
 *   FRAME_FN: the function name.
 * With force (160 samples), the loop follows the given samples (LPC history and excitation index from
 * them) while out[] still receives the sample this kernel would have chosen at each step.
 * LTP taps (net->taps > 0): the history past[] of drawn excitations (the fed-back ones under force) is
 * extended by this frame's draws in a local buffer, so a tap one lag back may reach into the same frame;
 * tap k of sample n is table 3 + k at e[n - lag + k - taps/2]. Without taps nothing of this runs.
 * A gated frame (lag LTP_GATED: the voicing gate) has every tap at mu-law zero, the same rows at every step:
 * they are added to the conditioning term once per frame and the loop runs as without taps (draws still
 * recorded), so a gated frame costs less than an ungated one and an ungated frame pays nothing for the gate.
 * Arithmetic order follows the exported ONNX loop graph (training/lpcnet/export.py). */
#include <math.h>
#include <string.h>

#define ALIGNED __attribute__((aligned(64)))

static inline int ulaw_index(float v) {
    float a = fabsf(v);
    float l = logf(1.0f + a * (255.0f / 32768.0f));
    float s = v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : 0.0f);
    float u = 128.0f + s * (l * 23.083120654223414f);
    float f = floorf(u + 0.5f);
    if (!(f >= 0.0f)) f = 0.0f;
    if (f > 255.0f) f = 255.0f;
    return (int)f;
}

static inline int sample_cdf(const float *p, float thr) {
    /* number of cumulative sums below thr (the graph's count of cdf < thr), at most 255 */
    float c = 0.0f;
    int i = 0;
    for (; i < LEVELS; i++) {
        c += p[i];
        if (!(c < thr)) break;
    }
    return i > 255 ? 255 : i;
}

static inline void quantize_state(uint8_t *xq, const float *h, int n) {
    /* h in (-1, 1) -> round(127 h) + 127 in 0..254 (unsigned operand of the int8 products) */
    for (int j = 0; j < n; j++) xq[j] = (uint8_t)(int)(h[j] * 127.0f + 127.5f);
}

static void gru_gates(float *restrict h, const float *restrict gi, const float *restrict gh, float *restrict tmp,
                      float *restrict nn, int n) {
    /* r = s(ir + hr), z = s(iz + hz), n = tanh(in + r * hn), h' = n + z * (h - n) */
    for (int j = 0; j < 2 * n; j++) tmp[j] = gi[j] + gh[j];
    v_sigmoid(tmp, 2 * n);
    for (int j = 0; j < n; j++) nn[j] = gi[2 * n + j] + tmp[j] * gh[2 * n + j];
    v_tanh(nn, n);
    for (int j = 0; j < n; j++) h[j] = nn[j] + tmp[n + j] * (h[j] - nn[j]);
}

void FRAME_FN(const Net *net, const float *ga, const float *gb, const float *lpc, float boost, float pfloor,
              const float *uniforms, const float *force, float *ha, float *hb, float *hist, int32_t *excp,
              int32_t *past, int lag, float *out) {
    const int N = net->n_a, NB = net->n_b, N3 = 3 * N, NB3 = 3 * NB;
    float gi[MAX_ROWS + 64] ALIGNED, gh[MAX_ROWS + 64] ALIGNED, tmp[2 * MAX_NA + 64] ALIGNED;
    float nn[MAX_NA + 64] ALIGNED, h_a[MAX_NA + 64] ALIGNED;
    float gib[3 * MAX_NB + 64] ALIGNED, ghb[3 * MAX_NB + 64] ALIGNED, h_b[MAX_NB + 64] ALIGNED;
    float y[2 * LEVELS] ALIGNED, logits[LEVELS] ALIGNED;
    int32_t acc[MAX_ROWS + 64] ALIGNED;
    uint8_t xq[MAX_NA + 64] ALIGNED;
    int32_t eh[LTP_HIST + FRAME]; /* LTP: excitation history, then this frame's draws */
    const int K = net->taps, d0 = LTP_HIST - lag - K / 2; /* eh index of sample n's first tap: n + d0 */
    const int gated = K && lag == LTP_GATED;
    float gz[MAX_ROWS + 64] ALIGNED; /* gated: ga plus the taps' mu-law-zero rows */
    const float *gc = ga;            /* the conditioning term the tap-less step adds */
    if (K) memcpy(eh, past, sizeof(int32_t) * LTP_HIST);
    if (gated) {
        memset(gz, 0, sizeof(float) * N3);
        for (int k = 0; k < K; k++) {
            const float *restrict z = net->tables + (size_t)((3 + k) * LEVELS + 128) * N3;
            for (int j = 0; j < N3; j++) gz[j] += z[j];
        }
        for (int j = 0; j < N3; j++) gz[j] += ga[j];
        gc = gz;
    }
    int exc = *excp;
    memset(tmp, 0, sizeof(tmp));
    memset(nn, 0, sizeof(nn));
    memset(h_a, 0, sizeof(h_a));
    memset(h_b, 0, sizeof(h_b));
    memcpy(h_a, ha, sizeof(float) * N);
    memcpy(h_b, hb, sizeof(float) * NB);
    for (int j = N; j < 4 * net->cg; j++) xq[j] = 127; /* padding columns: value 0 */
    if (net->int8) quantize_state(xq, h_a, N);
    for (int n = 0; n < FRAME; n++) {
        float u = 0.0f;
        for (int m = 0; m < ORDER; m++) u += lpc[m] * hist[m];
        const int si = ulaw_index(hist[0]), pi = ulaw_index(u);
        const float *t0 = net->tables + (size_t)si * N3;
        const float *t1 = net->tables + (size_t)(LEVELS + pi) * N3;
        const float *t2 = net->tables + (size_t)(2 * LEVELS + exc) * N3;
        if (!K || gated) {
            for (int j = 0; j < N3; j++) gi[j] = (t0[j] + t1[j] + t2[j]) + gc[j];
        } else { /* the tap rows two at a time (one pass over gi per pair), then the conditioning */
            const float *tp[MAX_TAPS + 1];
            for (int k = 0; k < K; k++) tp[k] = net->tables + (size_t)((3 + k) * LEVELS + eh[n + d0 + k]) * N3;
            for (int j = 0; j < N3; j++) gi[j] = t0[j] + t1[j] + t2[j];
            int k = 0;
            for (; k + 1 < K; k += 2) {
                const float *restrict p = tp[k], *restrict q = tp[k + 1];
                for (int j = 0; j < N3; j++) gi[j] += p[j] + q[j];
            }
            if (k < K)
                for (int j = 0; j < N3; j++) gi[j] += tp[k][j] + ga[j];
            else
                for (int j = 0; j < N3; j++) gi[j] += ga[j];
        }
        /* GRU-A recurrent product */
        if (net->int8) {
            mv_q8(net->wq, net->ra, net->cg, xq, acc);
            for (int j = 0; j < N3; j++)
                gh[j] = (float)(acc[j] - 127 * net->wa_rowsum[j]) * net->wa_scale[j] + net->ba_hh[j];
        } else {
            if (net->sp_w)
                mv_sparse16(net->sp_w, net->sp_idx, N3, h_a, gh);
            else if (net->wa16)
                mv_f16(net->wa16, net->ra, N, h_a, gh);
            else
                mv_f32(net->wa, net->ra, N, h_a, gh);
            for (int j = 0; j < N3; j++) gh[j] += net->ba_hh[j];
        }
        gru_gates(h_a, gi, gh, tmp, nn, N);
        /* GRU-B (int8: its input product reuses the quantized GRU-A state, also next step's input) */
        if (net->int8) {
            quantize_state(xq, h_a, N);
            mv_q8(net->wbq, net->rb, net->cg, xq, acc);
            for (int j = 0; j < NB3; j++)
                gib[j] = (float)(acc[j] - 127 * net->wb_rowsum[j]) * net->wb_scale[j] + gb[j];
        } else {
            mv_f32(net->wb_in, net->rb, N, h_a, gib);
            for (int j = 0; j < NB3; j++) gib[j] += gb[j];
        }
        mv_f32(net->wb_hh, net->rb, NB, h_b, ghb);
        for (int j = 0; j < NB3; j++) ghb[j] += net->bb_hh[j];
        gru_gates(h_b, gib, ghb, tmp, nn, NB);
        /* dual FC */
        mv_f32(net->wd, 2 * LEVELS, NB, h_b, y);
        for (int j = 0; j < 2 * LEVELS; j++) y[j] += net->bd[j];
        v_tanh(y, 2 * LEVELS);
        for (int j = 0; j < LEVELS; j++) logits[j] = y[j] * net->fd[j] + y[LEVELS + j] * net->fd[LEVELS + j];
        const float total = softmax_floor(logits, boost, pfloor);
        int idx = sample_cdf(logits, uniforms[n] * total);
        float x = u + net->ulaw_tab[idx];
        if (x > 32767.0f) x = 32767.0f;
        if (!(x >= -32768.0f)) x = x != x ? 0.0f : -32768.0f;
        out[n] = x;
        if (force) { /* teacher forcing: continue from the given sample (out keeps this kernel's own choice) */
            x = force[n];
            idx = ulaw_index(x - u);
        }
        memmove(hist + 1, hist, sizeof(float) * (ORDER - 1));
        hist[0] = x;
        exc = idx;
        if (K) eh[LTP_HIST + n] = idx;
    }
    if (K) memcpy(past, eh + FRAME, sizeof(int32_t) * LTP_HIST);
    memcpy(ha, h_a, sizeof(float) * N);
    memcpy(hb, h_b, sizeof(float) * NB);
    *excp = exc;
}

/* Frame-rate network on a 5-frame window (20 features each; two frames of context each side of the
 * centre) and the conditioning's GRU input terms: ga = Wa_c cond + b_ih_a, gb = Wb_c cond + b_ih_b. */
void COND_FN(const Net *net, const float *window, float *ga, float *gb) {
    const int C = net->cond, P = net->pdim, I = net->in1;
    float x[5 * MAX_IN1] ALIGNED, h1[3 * MAX_COND + 64] ALIGNED, h2[MAX_COND + 64] ALIGNED,
        h3[MAX_COND + 64] ALIGNED, gat[MAX_ROWS + 64] ALIGNED, gbt[3 * MAX_NB + 64] ALIGNED;
    for (int t = 0; t < 5; t++) {
        const float *f = window + 20 * t;
        float *xt = x + I * t;
        for (int i = 0; i < 20; i++) xt[i] = (f[i] - net->f_off[i]) * net->f_scale[i];
        float pf = floorf(f[18] + 0.5f);
        int pi = !(pf >= 0.0f) ? 0 : (pf > 255.0f ? 255 : (int)pf);
        memcpy(xt + 20, net->pemb + (size_t)pi * P, sizeof(float) * P);
    }
    /* conv1 (k=3, valid) at the three positions conv2 needs; input columns of position q: x[q..q+2] */
    for (int q = 0; q < 3; q++) {
        mv_f32(net->c1, C, 3 * I, x + I * q, h1 + C * q);
        for (int o = 0; o < C; o++) h1[C * q + o] += net->c1b[o];
    }
    v_tanh(h1, 3 * C);
    mv_f32(net->c2, C, 3 * C, h1, h2);
    for (int o = 0; o < C; o++) h2[o] += net->c2b[o];
    v_tanh(h2, C);
    mv_f32(net->f1, C, C, h2, h3);
    for (int o = 0; o < C; o++) h3[o] += net->f1b[o];
    v_tanh(h3, C);
    mv_f32(net->f2, C, C, h3, h2);
    for (int o = 0; o < C; o++) h2[o] += net->f2b[o];
    v_tanh(h2, C);
    mv_f32(net->wac, net->ra, C, h2, gat);
    for (int j = 0; j < 3 * net->n_a; j++) ga[j] = gat[j] + net->bac[j];
    mv_f32(net->wbc, net->rb, C, h2, gbt);
    for (int j = 0; j < 3 * net->n_b; j++) gb[j] = gbt[j] + net->bbc[j];
}
