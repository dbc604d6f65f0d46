/* Python binding of the LPCNet sample loop: _lpcnet.Net(...) holds prepared weights (immutable, shareable
 * between streams and threads); Net.frame(...) runs 160 samples on caller-owned state, GIL released. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "lpcnet.h"

typedef struct {
    PyObject_HEAD
    Net net;
    frame_fn fn;
    cond_fn cfn;
    const char *kernel;
} NetObject;

static int cpu_has_avx512(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

static int cpu_has_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

static PyObject *available(PyObject *self, PyObject *noargs) {
    PyObject *t = PyList_New(0);
    if (!t) return NULL;
    if (cpu_has_avx512()) PyList_Append(t, PyUnicode_FromString("avx512-vnni"));
    if (cpu_has_avx2()) PyList_Append(t, PyUnicode_FromString("avx2"));
    PyList_Append(t, PyUnicode_FromString("generic"));
    return t;
}

/* Copy a C-contiguous buffer of `count` items of `itemsize` bytes into a 64-byte aligned block. */
static void *copy_aligned(PyObject *obj, const char *name, Py_ssize_t count, Py_ssize_t itemsize, char kind) {
    Py_buffer v;
    if (PyObject_GetBuffer(obj, &v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    const char *f = v.format ? v.format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    int ok = v.itemsize == itemsize && (kind == 'f' ? *f == 'f' : kind == 'i' ? (*f == 'i' || *f == 'l') :
                                        kind == 'e' ? *f == 'e' : (*f == 'b'));
    if (!ok || v.len != count * itemsize) {
        PyErr_Format(PyExc_ValueError, "weight %s: expected %zd items of kind %c, got %zd bytes (format %s)",
                     name, count, kind, v.len, v.format ? v.format : "?");
        PyBuffer_Release(&v);
        return NULL;
    }
    size_t bytes = ((size_t)v.len + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p) {
        PyBuffer_Release(&v);
        PyErr_NoMemory();
        return NULL;
    }
    memset(p, 0, bytes ? bytes : 64);
    memcpy(p, v.buf, (size_t)v.len);
    PyBuffer_Release(&v);
    return p;
}

static void net_free_weights(Net *n) {
    void *ps[] = {n->tables, n->wa, n->wa16, n->sp_w, n->sp_idx, n->wq, n->wa_scale, n->wa_rowsum, n->ba_hh, n->wb_in, n->wbq, n->wb_scale,
                  n->wb_rowsum, n->wb_hh, n->bb_hh, n->wd, n->bd, n->fd, n->f_off, n->f_scale, n->pemb, n->c1,
                  n->c1b, n->c2, n->c2b, n->f1, n->f1b, n->f2, n->f2b, n->wac, n->wbc, n->bac, n->bbc};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) free(ps[i]);
    memset(n, 0, sizeof(*n));
}

/* Block-sparse GRU-A recurrent matrix (fp32 only): sp_idx holds, for each of the 3*n_a/16 output blocks in order,
 * the number of kept 16x1 column blocks and then their column indices (ascending, < n_a); sp_w their weights,
 * 16 floats per kept block in the same order.  Checked here, since the kernel trusts every index. */
static int load_sparse(Net *n, PyObject *sp_idx, PyObject *sp_w) {
    if (sp_idx == Py_None || sp_w == Py_None) {
        PyErr_SetString(PyExc_ValueError, "block-sparse GRU-A needs both sp_idx and sp_w");
        return -1;
    }
    if (n->n_a % SPB) {
        PyErr_Format(PyExc_ValueError, "block-sparse GRU-A needs a GRU-A size divisible by %d, got %d", SPB, n->n_a);
        return -1;
    }
    Py_buffer probe;
    if (PyObject_GetBuffer(sp_idx, &probe, PyBUF_C_CONTIGUOUS) < 0) return -1;
    const Py_ssize_t count = probe.itemsize ? probe.len / probe.itemsize : 0;
    PyBuffer_Release(&probe);
    if (!(n->sp_idx = copy_aligned(sp_idx, "sp_idx", count, 4, 'i'))) return -1;
    const int blocks = 3 * n->n_a / SPB;
    Py_ssize_t pos = 0, kept = 0;
    for (int b = 0; b < blocks; b++) {
        if (pos >= count) goto bad;
        const int c = n->sp_idx[pos++];
        if (c < 0 || c > n->n_a || pos + c > count) goto bad;
        for (int k = 0; k < c; k++, pos++)
            if (n->sp_idx[pos] < 0 || n->sp_idx[pos] >= n->n_a || (k && n->sp_idx[pos] <= n->sp_idx[pos - 1])) goto bad;
        kept += c;
    }
    if (pos != count) goto bad;
    if (!(n->sp_w = copy_aligned(sp_w, "sp_w", kept * SPB, 4, 'f'))) return -1;
    return 0;
bad:
    PyErr_Format(PyExc_ValueError, "sp_idx is not a block-sparse index of %d output blocks x %d columns", blocks,
                 n->n_a);
    return -1;
}

static void Net_dealloc(NetObject *self) {
    net_free_weights(&self->net);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Net_init(NetObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"n_a", "n_b", "kernel", "int8", "tables", "wa", "wa_scale", "wa_rowsum", "ba_hh",
                             "wb_in", "wb_scale", "wb_rowsum", "wb_hh", "bb_hh", "wd", "bd", "fd", "taps", "sp_idx",
                             "sp_w", NULL};
    int n_a, n_b, int8, taps = 0;
    const char *kernel;
    PyObject *o[13], *sp_idx = Py_None, *sp_w = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iisp$OOOOOOOOOOOOOiOO", kwlist, &n_a, &n_b, &kernel, &int8, &o[0],
                                     &o[1], &o[2], &o[3], &o[4], &o[5], &o[11], &o[12], &o[6], &o[7], &o[8], &o[9],
                                     &o[10], &taps, &sp_idx, &sp_w))
        return -1;
    net_free_weights(&self->net);
    if (n_a < 1 || n_a > MAX_NA || n_b < 1 || n_b > MAX_NB) {
        PyErr_Format(PyExc_ValueError, "unsupported decoder shape: GRU-A %d (1..%d), GRU-B %d (1..%d)", n_a, MAX_NA,
                     n_b, MAX_NB);
        return -1;
    }
    if (taps < 0 || taps > MAX_TAPS) {
        PyErr_Format(PyExc_ValueError, "unsupported number of LTP taps %d (0..%d)", taps, MAX_TAPS);
        return -1;
    }
    if (int8 && (sp_idx != Py_None || sp_w != Py_None)) {
        PyErr_SetString(PyExc_ValueError, "block-sparse GRU-A (sp_idx, sp_w) is fp32 only; int8 stays dense");
        return -1;
    }
    if (strcmp(kernel, "avx512-vnni") == 0) {
        if (!cpu_has_avx512()) goto nocpu;
        self->fn = pnsc_frame_avx512;
        self->cfn = pnsc_cond_avx512;
        self->kernel = "avx512-vnni";
    } else if (strcmp(kernel, "avx2") == 0) {
        if (!cpu_has_avx2()) goto nocpu;
        self->fn = pnsc_frame_avx2;
        self->cfn = pnsc_cond_avx2;
        self->kernel = "avx2";
    } else if (strcmp(kernel, "generic") == 0) {
        self->fn = pnsc_frame_generic;
        self->cfn = pnsc_cond_generic;
        self->kernel = "generic";
    } else {
        PyErr_Format(PyExc_ValueError, "unknown kernel %s", kernel);
        return -1;
    }
    Net *n = &self->net;
    n->n_a = n_a;
    n->n_b = n_b;
    n->int8 = int8;
    n->taps = taps;
    n->ra = (3 * n_a + BLK - 1) / BLK * BLK;
    n->rb = (3 * n_b + BLK - 1) / BLK * BLK;
    n->cg = (n_a + 3) / 4;
    if (!(n->tables = copy_aligned(o[0], "tables", (Py_ssize_t)(3 + taps) * LEVELS * 3 * n_a, 4, 'f'))) goto fail;
    if (int8) {
        if (!(n->wq = copy_aligned(o[1], "wa (int8)", (Py_ssize_t)n->ra * n->cg * 4, 1, 'b'))) goto fail;
        if (!(n->wa_scale = copy_aligned(o[2], "wa_scale", n->ra, 4, 'f'))) goto fail;
        if (!(n->wa_rowsum = copy_aligned(o[3], "wa_rowsum", n->ra, 4, 'i'))) goto fail;
    } else if (sp_idx != Py_None || sp_w != Py_None) {
        if (load_sparse(n, sp_idx, sp_w) < 0) goto fail;
    } else {
        Py_buffer probe;
        if (PyObject_GetBuffer(o[1], &probe, PyBUF_C_CONTIGUOUS) < 0) goto fail;
        const int half = probe.itemsize == 2;
        PyBuffer_Release(&probe);
        if (half) {
            if (!(n->wa16 = copy_aligned(o[1], "wa (float16)", (Py_ssize_t)n->ra * n_a, 2, 'e'))) goto fail;
        } else if (!(n->wa = copy_aligned(o[1], "wa", (Py_ssize_t)n->ra * n_a, 4, 'f'))) goto fail;
    }
    if (!(n->ba_hh = copy_aligned(o[4], "ba_hh", 3 * n_a, 4, 'f'))) goto fail;
    if (int8) {
        if (!(n->wbq = copy_aligned(o[5], "wb_in (int8)", (Py_ssize_t)n->rb * n->cg * 4, 1, 'b'))) goto fail;
        if (!(n->wb_scale = copy_aligned(o[11], "wb_scale", n->rb, 4, 'f'))) goto fail;
        if (!(n->wb_rowsum = copy_aligned(o[12], "wb_rowsum", n->rb, 4, 'i'))) goto fail;
    } else {
        if (!(n->wb_in = copy_aligned(o[5], "wb_in", (Py_ssize_t)n->rb * n_a, 4, 'f'))) goto fail;
    }
    if (!(n->wb_hh = copy_aligned(o[6], "wb_hh", (Py_ssize_t)n->rb * n_b, 4, 'f'))) goto fail;
    if (!(n->bb_hh = copy_aligned(o[7], "bb_hh", 3 * n_b, 4, 'f'))) goto fail;
    if (!(n->wd = copy_aligned(o[8], "wd", (Py_ssize_t)2 * LEVELS * n_b, 4, 'f'))) goto fail;
    if (!(n->bd = copy_aligned(o[9], "bd", 2 * LEVELS, 4, 'f'))) goto fail;
    if (!(n->fd = copy_aligned(o[10], "fd", 2 * LEVELS, 4, 'f'))) goto fail;
    for (int i = 0; i < LEVELS; i++) { /* the graph's ulaw2lin, float32 */
        float d = (float)i - 128.0f;
        float s = d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : 0.0f);
        float mag = expf(fabsf(d) * (float)(0.04332169878499658 /* ln(256)/128 */)) - 1.0f;
        n->ulaw_tab[i] = (s * (float)(32768.0 / 255.0)) * mag;
    }
    return 0;
nocpu:
    PyErr_Format(PyExc_ValueError, "kernel %s needs CPU instructions this machine lacks", kernel);
    return -1;
fail:
    net_free_weights(&self->net);
    return -1;
}

typedef struct {
    Py_buffer v;
    int held;
} Buf;

static int get_buf(PyObject *obj, Buf *b, Py_ssize_t count, int writable, char kind, const char *name) {
    b->held = 0;
    if (PyObject_GetBuffer(obj, &b->v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    b->held = 1;
    const char *f = b->v.format ? b->v.format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    if (b->v.itemsize != 4 || (kind == 'f' ? *f != 'f' : (*f != 'i' && *f != 'l')) || b->v.len != count * 4) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd contiguous %s values", name, count,
                     kind == 'f' ? "float32" : "int32");
        return -1;
    }
    return 0;
}

static PyObject *Net_frame(NetObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"ga", "gb", "lpc", "boost", "uniforms", "ha", "hb", "hist", "exc", "out", "force",
                             "pdf_floor", "past", "lag", NULL};
    PyObject *o[10], *force = Py_None, *past = Py_None;
    float boost, pfloor = NAN;
    int lag = -1;
    if (!self->fn) {
        PyErr_SetString(PyExc_RuntimeError, "Net not initialised");
        return NULL;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOfOOOOOO|OfOi", kwlist, &o[0], &o[1], &o[2], &boost, &o[3], &o[4],
                                     &o[5], &o[6], &o[7], &o[8], &force, &pfloor, &past, &lag))
        return NULL;
    if (isnan(pfloor) && (!kw || !PyDict_GetItemString(kw, "pdf_floor"))) {
        PyErr_SetString(PyExc_TypeError, "frame() needs pdf_floor (pnsc.shared.constants.PDF_FLOOR is the default)");
        return NULL;
    }
    if (!(pfloor >= 0.0f && pfloor < PDF_FLOOR_MAX)) {
        char got[48];
        snprintf(got, sizeof(got), "%g", (double)pfloor);
        PyErr_Format(PyExc_ValueError, "pdf_floor must be in [0, 1/256), got %s", got);
        return NULL;
    }
    const Net *n = &self->net;
    if (n->taps && (past == Py_None || (lag != LTP_GATED && (lag < LTP_MIN_LAG || lag > LTP_MAX_LAG)))) {
        PyErr_Format(PyExc_ValueError, "this decoder has %d LTP taps: frame() needs past (%d int32 excitations) and "
                     "lag (%d..%d, or %d: taps gated), got lag %d", n->taps, LTP_HIST, LTP_MIN_LAG, LTP_MAX_LAG,
                     LTP_GATED, lag);
        return NULL;
    }
    Buf b[11];
    memset(b, 0, sizeof(b));
    PyObject *ret = NULL;
    if (get_buf(o[0], &b[0], 3 * n->n_a, 0, 'f', "ga") || get_buf(o[1], &b[1], 3 * n->n_b, 0, 'f', "gb") ||
        get_buf(o[2], &b[2], ORDER, 0, 'f', "lpc") || get_buf(o[3], &b[3], FRAME, 0, 'f', "uniforms") ||
        get_buf(o[4], &b[4], n->n_a, 1, 'f', "ha") || get_buf(o[5], &b[5], n->n_b, 1, 'f', "hb") ||
        get_buf(o[6], &b[6], ORDER, 1, 'f', "hist") || get_buf(o[7], &b[7], 1, 1, 'i', "exc") ||
        get_buf(o[8], &b[8], FRAME, 1, 'f', "out") ||
        (force != Py_None && get_buf(force, &b[9], FRAME, 0, 'f', "force")) ||
        (n->taps && get_buf(past, &b[10], LTP_HIST, 1, 'i', "past")))
        goto done;
    int32_t *exc = (int32_t *)b[7].v.buf;
    if (*exc < 0 || *exc > 255) {
        PyErr_SetString(PyExc_ValueError, "exc must be a mu-law index 0..255");
        goto done;
    }
    int32_t *hp = n->taps ? (int32_t *)b[10].v.buf : NULL;
    for (int i = 0; hp && i < LTP_HIST; i++)
        if (hp[i] < 0 || hp[i] > 255) {
            PyErr_SetString(PyExc_ValueError, "past must hold mu-law indices 0..255");
            goto done;
        }
    Py_BEGIN_ALLOW_THREADS
    self->fn(n, b[0].v.buf, b[1].v.buf, b[2].v.buf, boost, pfloor, b[3].v.buf, force != Py_None ? b[9].v.buf : NULL,
             b[4].v.buf, b[5].v.buf, b[6].v.buf, exc, hp, lag, b[8].v.buf);
    Py_END_ALLOW_THREADS
    ret = Py_None;
    Py_INCREF(ret);
done:
    for (int i = 0; i < 11; i++)
        if (b[i].held) PyBuffer_Release(&b[i].v);
    return ret;
}


static PyObject *Net_set_frame_net(NetObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"cond", "pdim", "off", "scale", "pemb", "c1", "c1b", "c2", "c2b", "f1", "f1b", "f2", "f2b",
                             "wac", "bac", "wbc", "bbc", NULL};
    int C, P;
    PyObject *o[15];
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ii$OOOOOOOOOOOOOOO", kwlist, &C, &P, &o[0], &o[1], &o[2], &o[3], &o[4],
                                     &o[5], &o[6], &o[7], &o[8], &o[9], &o[10], &o[11], &o[12], &o[13], &o[14]))
        return NULL;
    Net *n = &self->net;
    if (!self->fn || n->has_frame_net) {
        PyErr_SetString(PyExc_RuntimeError, "set_frame_net: Net not initialised or frame net already set");
        return NULL;
    }
    if (C < BLK || C > MAX_COND || C % BLK || P < 1 || 20 + P > MAX_IN1) {
        PyErr_Format(PyExc_ValueError, "unsupported frame-rate network shape: conditioning %d, pitch embedding %d", C, P);
        return NULL;
    }
    const int I = 20 + P;
    n->cond = C;
    n->pdim = P;
    n->in1 = I;
    if (!(n->f_off = copy_aligned(o[0], "off", 20, 4, 'f')) || !(n->f_scale = copy_aligned(o[1], "scale", 20, 4, 'f')) ||
        !(n->pemb = copy_aligned(o[2], "pemb", (Py_ssize_t)256 * P, 4, 'f')) ||
        !(n->c1 = copy_aligned(o[3], "c1", (Py_ssize_t)C * 3 * I, 4, 'f')) ||
        !(n->c1b = copy_aligned(o[4], "c1b", C, 4, 'f')) ||
        !(n->c2 = copy_aligned(o[5], "c2", (Py_ssize_t)C * 3 * C, 4, 'f')) ||
        !(n->c2b = copy_aligned(o[6], "c2b", C, 4, 'f')) || !(n->f1 = copy_aligned(o[7], "f1", (Py_ssize_t)C * C, 4, 'f')) ||
        !(n->f1b = copy_aligned(o[8], "f1b", C, 4, 'f')) || !(n->f2 = copy_aligned(o[9], "f2", (Py_ssize_t)C * C, 4, 'f')) ||
        !(n->f2b = copy_aligned(o[10], "f2b", C, 4, 'f')) ||
        !(n->wac = copy_aligned(o[11], "wac", (Py_ssize_t)n->ra * C, 4, 'f')) ||
        !(n->bac = copy_aligned(o[12], "bac", 3 * n->n_a, 4, 'f')) ||
        !(n->wbc = copy_aligned(o[13], "wbc", (Py_ssize_t)n->rb * C, 4, 'f')) ||
        !(n->bbc = copy_aligned(o[14], "bbc", 3 * n->n_b, 4, 'f')))
        return NULL; /* partial copies are freed with the Net */
    n->has_frame_net = 1;
    Py_RETURN_NONE;
}

static PyObject *Net_cond(NetObject *self, PyObject *args) {
    PyObject *o[3];
    if (!PyArg_ParseTuple(args, "OOO", &o[0], &o[1], &o[2])) return NULL;
    const Net *n = &self->net;
    if (!n->has_frame_net) {
        PyErr_SetString(PyExc_RuntimeError, "Net has no frame-rate network");
        return NULL;
    }
    Buf b[3];
    memset(b, 0, sizeof(b));
    PyObject *ret = NULL;
    if (get_buf(o[0], &b[0], 5 * 20, 0, 'f', "window") || get_buf(o[1], &b[1], 3 * n->n_a, 1, 'f', "ga") ||
        get_buf(o[2], &b[2], 3 * n->n_b, 1, 'f', "gb"))
        goto done;
    self->cfn(n, b[0].v.buf, b[1].v.buf, b[2].v.buf);
    ret = Py_None;
    Py_INCREF(ret);
done:
    for (int i = 0; i < 3; i++)
        if (b[i].held) PyBuffer_Release(&b[i].v);
    return ret;
}

static PyObject *Net_get_kernel(NetObject *self, void *c) { return PyUnicode_FromString(self->kernel ? self->kernel : ""); }
static PyObject *Net_get_sparse(NetObject *self, void *c) { return PyBool_FromLong(self->net.sp_w != NULL); }

static PyMethodDef Net_methods[] = {
    {"frame", (PyCFunction)(void (*)(void))Net_frame, METH_VARARGS | METH_KEYWORDS,
     "frame(ga, gb, lpc, boost, uniforms, ha, hb, hist, exc, out, force=None, *, pdf_floor, past=None, lag=-1): 160 "
     "samples into out; ha/hb/hist/exc (and past) updated in place. With force (160 samples) the samples are given "
     "(teacher forcing). LTP decoders (Net(taps=K)) need past (264 int32: the excitations drawn so far, oldest "
     "first) and the frame's lag (32..255; 0: the voicing gate silences the frame's taps, each reads mu-law zero). "
     "Each sample is drawn from max(softmax(boost * logits) - pdf_floor, 0) renormalised; 0 <= pdf_floor < 1/256."},
    {"set_frame_net", (PyCFunction)(void (*)(void))Net_set_frame_net, METH_VARARGS | METH_KEYWORDS,
     "set_frame_net(cond, pdim, *, off, scale, pemb, c1, c1b, c2, c2b, f1, f1b, f2, f2b, wac, bac, wbc, bbc)"},
    {"cond", (PyCFunction)Net_cond, METH_VARARGS,
     "cond(window (5, 20), ga out (3*n_a), gb out (3*n_b)): frame-rate network + conditioning input terms"},
    {NULL}};

static PyGetSetDef Net_getset[] = {{"kernel", (getter)Net_get_kernel, NULL, "kernel path", NULL},
                                   {"sparse", (getter)Net_get_sparse, NULL,
                                    "True when GRU-A's recurrent product runs the block-sparse kernel", NULL},
                                   {NULL}};

static PyTypeObject NetType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pnsc.receiver.runtime._lpcnet.Net",
    .tp_basicsize = sizeof(NetObject),
    .tp_dealloc = (destructor)Net_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "LPCNet sample-rate network with prepared weights",
    .tp_methods = Net_methods,
    .tp_getset = Net_getset,
    .tp_init = (initproc)Net_init,
    .tp_new = PyType_GenericNew,
};


/* ---- per-frame helpers that were Python overhead ---- */

/* lpc(ceps[18] f32, idct[18*18] f64 (row i: band i), m[17*18] f64 (band energies -> lag-windowed
 * autocorrelation), c0_offset, out[16] f32): the codec's LPC from the cepstrum (shared/lpc.py), float64. */
static PyObject *py_lpc(PyObject *self, PyObject *args) {
    PyObject *o[4];
    double c0_offset;
    if (!PyArg_ParseTuple(args, "OOOdO", &o[0], &o[1], &o[2], &c0_offset, &o[3])) return NULL;
    Py_buffer v[4];
    int held = 0;
    PyObject *ret = NULL;
    const Py_ssize_t want[4] = {18 * 4, 18 * 18 * 8, 17 * 18 * 8, 16 * 4};
    for (; held < 4; held++) {
        if (PyObject_GetBuffer(o[held], &v[held], PyBUF_C_CONTIGUOUS | (held == 3 ? PyBUF_WRITABLE : 0)) < 0) goto done;
        if (v[held].len != want[held]) {
            held++;
            PyErr_SetString(PyExc_ValueError, "lpc: wrong buffer sizes");
            goto done;
        }
    }
    {
        const float *ceps = v[0].buf;
        const double *idct = v[1].buf, *m = v[2].buf;
        float *out = v[3].buf;
        double c[18], e[18], ac[17], a[16] = {0}, prev[16];
        for (int k = 0; k < 18; k++) c[k] = (double)ceps[k];
        c[0] += c0_offset;
        for (int i = 0; i < 18; i++) {
            double lb = 0.0;
            for (int k = 0; k < 18; k++) lb += idct[i * 18 + k] * c[k];
            double x = pow(10.0, lb) - 1e-2;
            e[i] = x > 0.0 ? x : 0.0;
        }
        for (int t = 0; t < 17; t++) {
            double s = 0.0;
            for (int i = 0; i < 18; i++) s += m[t * 18 + i] * e[i];
            ac[t] = s;
        }
        ac[0] += 1e-3;
        double err = ac[0];
        for (int i = 0; i < 16; i++) {
            double acc = ac[i + 1];
            for (int j = 0; j < i; j++) acc -= a[j] * ac[i - j];
            double k = acc / (err > 1e-9 ? err : 1e-9);
            if (k > 0.9999) k = 0.9999;
            if (k < -0.9999) k = -0.9999;
            for (int j = 0; j < i; j++) prev[j] = a[j];
            a[i] = k;
            for (int j = 0; j < i; j++) a[j] = prev[j] - k * prev[i - 1 - j];
            err *= 1.0 - k * k;
        }
        for (int j = 0; j < 16; j++) out[j] = (float)a[j];
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    for (int i = 0; i < held; i++) PyBuffer_Release(&v[i]);
    return ret;
}

/* deemphasis(y f32[n], out int16[n], mem, coef) -> mem: x = y + coef * x_prev in float64, then rounded
 * half to even after a float32 cast (as the reference decoder) and clipped to int16 (non-finite y as numpy.nan_to_num: nan 0, +-inf to the int16 range). */
static PyObject *py_deemphasis(PyObject *self, PyObject *args) {
    PyObject *oy, *oo;
    double mem, coef;
    if (!PyArg_ParseTuple(args, "OOdd", &oy, &oo, &mem, &coef)) return NULL;
    Py_buffer y, o;
    if (PyObject_GetBuffer(oy, &y, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (PyObject_GetBuffer(oo, &o, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&y);
        return NULL;
    }
    if (y.len / 4 != o.len / 2 || y.len % 4) {
        PyBuffer_Release(&y);
        PyBuffer_Release(&o);
        PyErr_SetString(PyExc_ValueError, "deemphasis: y (float32) and out (int16) lengths differ");
        return NULL;
    }
    const float *yy = y.buf;
    int16_t *oo16 = o.buf;
    for (Py_ssize_t i = 0; i < y.len / 4; i++) {
        double v = yy[i];
        if (v != v) v = 0.0;
        else if (v > 32767.0) v = v == INFINITY ? 32767.0 : v;
        else if (v < -32768.0) v = v == -INFINITY ? -32768.0 : v;
        mem = v + coef * mem;
        double r = nearbyintf((float)mem); /* the reference rounds the float32 output */
        oo16[i] = (int16_t)(r > 32767.0 ? 32767.0 : (r < -32768.0 ? -32768.0 : r));
    }
    PyBuffer_Release(&y);
    PyBuffer_Release(&o);
    return PyFloat_FromDouble(mem);
}

static PyMethodDef module_methods[] = {
    {"lpc", py_lpc, METH_VARARGS, "lpc(ceps, idct, m, c0_offset, out): LPC from the cepstrum (float64)"},
    {"deemphasis", py_deemphasis, METH_VARARGS, "deemphasis(y, out_int16, mem, coef) -> mem"},
    {"available", available, METH_NOARGS, "kernel paths this CPU runs, best first"}, {NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_lpcnet",
                                       "Compiled LPCNet sample loop (AVX-512 VNNI / AVX2 / generic)", -1,
                                       module_methods};

PyMODINIT_FUNC PyInit__lpcnet(void) {
    if (PyType_Ready(&NetType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&NetType);
    if (PyModule_AddObject(m, "Net", (PyObject *)&NetType) < 0) {
        Py_DECREF(&NetType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
