/* pnsc decoder runtime: LPCNet sample-rate network, one 160-sample frame per call.
 * Weights are prepared in Python (ckernel.py) and copied into 64-byte aligned buffers here.
 * The same frame loop (frame_impl.h) is compiled once per instruction set: isa_generic.c,
 * isa_avx2.c (AVX2 + FMA), isa_avx512.c (AVX-512 F/BW/VL + VNNI); module.c picks one at run time. */
#ifndef PNSC_LPCNET_H
#define PNSC_LPCNET_H
#include <stddef.h>
#include <stdint.h>

#define BLK 64          /* rows per weight block */
#define SPB 16          /* rows per block of the block-sparse GRU-A recurrent matrix (16x1 blocks) */

/* The next four output blocks of a packed block-sparse matrix (per block: its kept-column count, the columns,
 * then SPB weights per column): each block's count c[q], columns p[q] and weights w[q]; advances *idx and *W
 * past them and returns the smallest count (the part the kernels run in lockstep). */
static inline int sparse_next4(const int32_t **idx, const float **W, const int32_t *p[4], const float *w[4],
                               int c[4]) {
    for (int q = 0; q < 4; q++) {
        c[q] = *(*idx)++;
        p[q] = *idx;
        w[q] = *W;
        *idx += c[q];
        *W += (size_t)c[q] * SPB;
    }
    int m = c[0] < c[1] ? c[0] : c[1];
    m = m < c[2] ? m : c[2];
    return m < c[3] ? m : c[3];
}
#define FRAME 160
#define ORDER 16
#define LEVELS 256
#define MAX_NA 1024
#define MAX_NB 64
#define MAX_ROWS (3 * MAX_NA)
#define MAX_TAPS 9      /* LTP taps (pnsc.shared.constants.LTP_MAX_TAPS) */
#define LTP_HIST 264    /* excitation history of LTP decoders (LTP_HISTORY): >= 255 + MAX_TAPS / 2 + 1 */
#define LTP_MIN_LAG 32
#define LTP_MAX_LAG 255
#define PDF_FLOOR_MAX (1.0f / LEVELS) /* sampling floors stay below 1/256: the largest probability survives
                                         (the default lives in pnsc.shared.constants.PDF_FLOOR) */

typedef struct {
    int n_a, n_b, int8;
    int taps;                 /* LTP taps: GRU-A also sees e[n - lag + k - taps/2], k < taps (0: none) */
    int ra, rb;               /* 3*n_a, 3*n_b padded to BLK */
    int cg;                   /* ceil(n_a / 4): int8 column groups */
    float *tables;            /* [3 + taps][256][3*n_a] embedding x GRU-A input matrix (sig, pred, exc, taps) */
    float *wa;                /* fp32 GRU-A recurrent, blocked [ra/64][n_a][64] */
    uint16_t *wa16;           /* or the same as IEEE half (the ONNX files store float16: lossless, half the bytes) */
    int8_t *wq;               /* int8 GRU-A recurrent, blocked [ra/64][cg][64][4] */
    float *sp_w;              /* or block-sparse fp32 GRU-A recurrent (NULL: dense): for each 16-row output block in
                                 order, its kept 16x1 column blocks in ascending column order, 16 floats each */
    int32_t *sp_idx;          /* per output block: the count of kept columns, then those column indices */
    float *wa_scale;          /* [ra] row scale / 127 */
    int32_t *wa_rowsum;       /* [ra] sum of a row's int8 weights */
    float *ba_hh;             /* [3*n_a] */
    float *wb_in;             /* fp32: [rb/64][n_a][64] GRU-B input from GRU-A */
    int8_t *wbq;              /* int8: [rb/64][cg][64][4] */
    float *wb_scale;          /* [rb] */
    int32_t *wb_rowsum;       /* [rb] */
    float *wb_hh;             /* [rb/64][n_b][64] */
    float *bb_hh;             /* [3*n_b] */
    float *wd;                /* [512/64][n_b][64] dual FC, row = channel*256 + level */
    float *bd, *fd;           /* [512] */
    float ulaw_tab[LEVELS];   /* mu-law index -> int16-scale value */
    /* frame-rate network (optional: has_frame_net), float32, for one 5-frame window */
    int has_frame_net, cond, pdim, in1;   /* cond 128, pitch embedding 64, conv1 input 20 + 64 */
    float *f_off, *f_scale;   /* [20] feature normalisation */
    float *pemb;              /* [256][pdim] */
    float *c1, *c1b;          /* conv1 as blocked [cond/64][3*in1][64] (column k*in1 + i), bias [cond] */
    float *c2, *c2b;          /* conv2 blocked [cond/64][3*cond][64] */
    float *f1, *f1b, *f2, *f2b; /* fc1, fc2 blocked [cond/64][cond][64] */
    float *wac, *wbc;         /* conditioning -> GRU-A / GRU-B input terms, blocked [ra or rb /64][cond][64] */
    float *bac, *bbc;         /* GRU-A / GRU-B input biases [3*n_a], [3*n_b] */
} Net;

#define MAX_COND 256
#define MAX_IN1 (20 + 256)

/* past (LTP decoders only, else NULL): the last LTP_HIST excitations drawn, oldest first, updated in place;
 * lag: the frame's LTP lag, LTP_MIN_LAG..LTP_MAX_LAG, or LTP_GATED: the voicing gate silences this frame's taps
 * (each reads mu-law zero; the frame's draws still enter past) */
#define LTP_GATED 0
typedef void (*frame_fn)(const Net *net, const float *ga, const float *gb, const float *lpc, float boost,
                         float pfloor, const float *uniforms, const float *force, float *ha, float *hb, float *hist,
                         int32_t *exc, int32_t *past, int lag, float *out);

typedef void (*cond_fn)(const Net *net, const float *window, float *ga, float *gb);
void pnsc_cond_generic(const Net *, const float *, float *, float *);
void pnsc_cond_avx2(const Net *, const float *, float *, float *);
void pnsc_cond_avx512(const Net *, const float *, float *, float *);

void pnsc_frame_generic(const Net *, const float *, const float *, const float *, float, float, const float *,
                        const float *, float *, float *, float *, int32_t *, int32_t *, int, float *);
void pnsc_frame_avx2(const Net *, const float *, const float *, const float *, float, float, const float *,
                     const float *, float *, float *, float *, int32_t *, int32_t *, int, float *);
void pnsc_frame_avx512(const Net *, const float *, const float *, const float *, float, float, const float *,
                       const float *, float *, float *, float *, int32_t *, int32_t *, int, float *);
#endif
