/*
 * The per-chunk work of cardiogate.edge.dsp.rpeaks.RPeakDetector in C99: the three SOS filter
 * cascades with carried state, |slope|, the prominence row, the candidate search and the
 * sequential decisions. It mirrors the pure-Python implementation in rpeaks.py step for step
 * and must give bit-identical peaks and filtered samples:
 *
 * - each cascade runs in scipy's sosfilt order (sample by sample, sections in order, direct
 *   form II transposed), and the build turns off floating-point contraction (no fused
 *   multiply-add), so every sum and product is rounded as numpy/scipy round it;
 * - argmax/argmin return the first extreme (numpy's rule, NaN counting as the extreme);
 * - Python's round() is round-half-even, as rint() in the default rounding mode.
 *
 * All parameters in samples are computed by the Python wrapper and passed in; this file only
 * holds state and arithmetic. It uses the buffer protocol, not numpy's C API, so it builds
 * without numpy headers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { P_HALF, P_LEFT, P_SEARCH, P_REFINE, P_W, P_WARMUP, P_PAD, P_REFRACTORY, P_T_WAVE, P_SB_GAP,
       P_MAX_DELAY, P_RELEARN, P_DEFAULT_RR, P_HISTORY, N_INT_PARAMS };
enum { F_T_SLOPE_RATIO, F_THRESHOLD_RATIO, F_SEARCHBACK_RR, F_SEARCHBACK_RATIO, N_FLOAT_PARAMS };

typedef struct {
    int64_t rpos;   /* absolute index of the R peak */
    int64_t known;  /* absolute index of the sample at which it became decidable */
    double height;  /* QRS feature peak value */
    double slope;   /* largest |derivative| in the QRS window */
} cand_t;

/* A deque(maxlen=cap) of doubles; only its multiset matters (medians). */
typedef struct {
    double *v;
    int64_t cap, len, pos;
} ring_t;

typedef struct {
    PyObject_HEAD
    /* filters: sections of x, then d, then f; 6 coefficients and 2 states each */
    int64_t nx, nd, nf;
    double *sos, *zunit, *z;
    int started;
    /* geometry and decision parameters, in samples */
    int64_t p[N_INT_PARAMS];
    double fp[N_FLOAT_PARAMS];
    /* rows raw, x, |d|, f, prominence; column c is absolute index buf_start + c */
    double *buf;
    int64_t cap, used, buf_start, start, end, next, next_p;
    double last_finite;
    /* decider */
    ring_t qrs, noise, rr;
    int64_t *rec_known;
    double *rec_h;
    int64_t rec_head, rec_len, rec_cap;
    cand_t *pending;
    int64_t npend, pend_cap;
    cand_t last;
    int has_last, has_timer, searching, thr_valid;
    int64_t timer;
    double thr;
    double *scratch;  /* for medians: history doubles */
    int64_t *out;
    int64_t nout, out_cap;
    int oom;
} Kernel;

/* ---- small helpers ------------------------------------------------------------------------ */

static void ring_push(ring_t *r, double v) {
    if (r->cap <= 0) return;
    r->v[r->pos] = v;
    r->pos = (r->pos + 1) % r->cap;
    if (r->len < r->cap) r->len++;
}

static void ring_clear(ring_t *r) { r->len = 0; r->pos = 0; }

/* Python's _median: sorted, middle value or the mean of the two middle values. */
static double ring_median(const ring_t *r, double *tmp) {
    int64_t n = r->len, i, j;
    for (i = 0; i < n; i++) {
        double v = r->v[i];
        for (j = i; j > 0 && tmp[j - 1] > v; j--) tmp[j] = tmp[j - 1];
        tmp[j] = v;
    }
    return (n % 2) ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2.0;
}

static int64_t argmax_d(const double *a, int64_t n) {
    int64_t best = 0, i;
    double b = a[0];
    if (isnan(b)) return 0;
    for (i = 1; i < n; i++) {
        double v = a[i];
        if (v > b) { b = v; best = i; }
        else if (isnan(v)) return i;
    }
    return best;
}

static int64_t argmin_d(const double *a, int64_t n) {
    int64_t best = 0, i;
    double b = a[0];
    if (isnan(b)) return 0;
    for (i = 1; i < n; i++) {
        double v = a[i];
        if (v < b) { b = v; best = i; }
        else if (isnan(v)) return i;
    }
    return best;
}

static double max_d(const double *a, int64_t n) {
    double m = a[0];
    int64_t i;
    for (i = 1; i < n; i++) {
        double v = a[i];
        if (v > m || isnan(v)) m = v;
        if (isnan(m)) return m;
    }
    return m;
}

static int grow(void **ptr, int64_t *cap, int64_t need, size_t item) {
    int64_t c = *cap > 0 ? *cap : 16;
    void *p;
    if (need <= *cap) return 0;
    while (c < need) c *= 2;
    p = realloc(*ptr, (size_t)c * item);
    if (p == NULL) return -1;
    *ptr = p;
    *cap = c;
    return 0;
}

/* ---- decider (rpeaks._Decider) ------------------------------------------------------------ */

static void forget(Kernel *k, int64_t t) {
    while (k->rec_len > 0 && k->rec_known[k->rec_head] <= t - k->p[P_RELEARN]) {
        k->rec_head = (k->rec_head + 1) % k->rec_cap;
        k->rec_len--;
    }
}

static void observe(Kernel *k, const cand_t *c) {
    if (k->rec_len == k->rec_cap) {  /* grow the circular buffer, unrolling it */
        int64_t nc = k->rec_cap ? 2 * k->rec_cap : 16, i;
        int64_t *nk = malloc((size_t)nc * sizeof(int64_t));
        double *nh = malloc((size_t)nc * sizeof(double));
        if (nk == NULL || nh == NULL) { free(nk); free(nh); k->oom = 1; return; }
        for (i = 0; i < k->rec_len; i++) {
            nk[i] = k->rec_known[(k->rec_head + i) % k->rec_cap];
            nh[i] = k->rec_h[(k->rec_head + i) % k->rec_cap];
        }
        free(k->rec_known); free(k->rec_h);
        k->rec_known = nk; k->rec_h = nh; k->rec_cap = nc; k->rec_head = 0;
    }
    {
        int64_t at = (k->rec_head + k->rec_len) % k->rec_cap;
        k->rec_known[at] = c->known;
        k->rec_h[at] = c->height;
        k->rec_len++;
    }
    forget(k, c->known);
}

static double recent_max(const Kernel *k) {
    double m = k->rec_h[k->rec_head];
    int64_t i;
    for (i = 1; i < k->rec_len; i++) {
        double v = k->rec_h[(k->rec_head + i) % k->rec_cap];
        if (v > m) m = v;
    }
    return m;
}

static double threshold(Kernel *k) {
    if (k->qrs.len == 0)  /* nothing learnt yet: half the largest recent peak */
        return k->rec_len ? 0.5 * recent_max(k) : 0.0;
    if (!k->thr_valid) {
        double q = ring_median(&k->qrs, k->scratch);
        double nz = k->noise.len ? ring_median(&k->noise, k->scratch) : 0.0;
        k->thr = nz + k->fp[F_THRESHOLD_RATIO] * (q - nz);
        k->thr_valid = 1;
    }
    return k->thr;
}

static void accept(Kernel *k, cand_t c, int64_t at) {
    int64_t i, m = 0, md2 = k->p[P_MAX_DELAY] / 2, r;
    if (k->has_last) ring_push(&k->rr, (double)(c.rpos - k->last.rpos));
    ring_push(&k->qrs, c.height);
    k->thr_valid = 0;
    k->last = c;
    k->has_last = 1;
    if (grow((void **)&k->out, &k->out_cap, k->nout + 1, sizeof(int64_t))) { k->oom = 1; return; }
    k->out[k->nout++] = c.rpos;
    for (i = 0; i < k->npend; i++)
        if (k->pending[i].rpos > c.rpos) k->pending[m++] = k->pending[i];
    k->npend = m;
    if (k->rr.len) {
        double rr = ring_median(&k->rr, k->scratch);
        double a = k->fp[F_SEARCHBACK_RR] * rr, b = rr + (double)md2;
        r = (int64_t)rint(b < a ? b : a);
    } else {  /* the default RR is a whole number of samples: rr + max_delay // 2 stays exact */
        double a = k->fp[F_SEARCHBACK_RR] * (double)k->p[P_DEFAULT_RR];
        int64_t b = k->p[P_DEFAULT_RR] + md2;
        r = ((double)b < a) ? b : (int64_t)rint(a);
    }
    k->searching = 0;
    k->timer = c.rpos + r > at + 1 ? c.rpos + r : at + 1;
    k->has_timer = 1;
}

static void searchback(Kernel *k, int64_t t) {
    int64_t i, m = 0, oldest = t - k->p[P_MAX_DELAY], best = -1;
    double floor_;
    for (i = 0; i < k->npend; i++)
        if (k->pending[i].rpos >= oldest) k->pending[m++] = k->pending[i];
    k->npend = m;
    floor_ = k->fp[F_SEARCHBACK_RATIO] * threshold(k);
    for (i = 0; i < k->npend; i++) {
        const cand_t *p = &k->pending[i];
        if (p->height > floor_ && p->rpos - k->last.rpos >= k->p[P_SB_GAP]
            && (best < 0 || p->height > k->pending[best].height))
            best = i;
    }
    if (best >= 0) accept(k, k->pending[best], t);
}

static void relearn(Kernel *k, int64_t t) {
    forget(k, t);
    if (k->rec_len) {
        ring_clear(&k->qrs);
        ring_push(&k->qrs, recent_max(k));
        k->thr_valid = 0;
    }
}

static void run_timers(Kernel *k, int64_t until) {
    while (k->has_last && k->has_timer && k->timer <= until) {
        int64_t t = k->timer;
        if (k->searching) {  /* a long silence: the QRS level was probably learnt on a bigger signal */
            relearn(k, t);
            k->timer = t + k->p[P_RELEARN];
        } else {
            int64_t later = k->last.rpos + k->p[P_RELEARN];
            k->searching = 1;
            k->timer = t + 1 > later ? t + 1 : later;
        }
        searchback(k, t);
    }
}

static void candidate(Kernel *k, const cand_t *c) {
    int t_wave;
    run_timers(k, c->known - 1);
    observe(k, c);
    if (k->has_last && c->rpos - k->last.rpos < k->p[P_REFRACTORY]) return;
    t_wave = k->has_last && c->rpos - k->last.rpos < k->p[P_T_WAVE]
             && c->slope < k->fp[F_T_SLOPE_RATIO] * k->last.slope;
    if (!t_wave && c->height > threshold(k)) {
        accept(k, *c, c->known);
        return;
    }
    ring_push(&k->noise, c->height);
    k->thr_valid = 0;
    if (!t_wave) {
        if (grow((void **)&k->pending, &k->pend_cap, k->npend + 1, sizeof(cand_t))) { k->oom = 1; return; }
        k->pending[k->npend++] = *c;
        if (k->searching) searchback(k, c->known);
    }
}

/* ---- detector (rpeaks.RPeakDetector) ------------------------------------------------------ */

#define ROW(k, r) ((k)->buf + (r) * (k)->cap)

static void reset_state(Kernel *k, int64_t start_index) {
    int64_t pad = k->p[P_PAD], c;
    memset(k->buf, 0, (size_t)(5 * k->cap) * sizeof(double));
    for (c = 0; c < pad; c++) ROW(k, 3)[c] = -INFINITY;
    k->used = pad;
    k->buf_start = start_index - pad;
    k->start = k->end = k->next = k->next_p = start_index;
    k->last_finite = 0.0;
    k->started = 0;
    ring_clear(&k->qrs); ring_clear(&k->noise); ring_clear(&k->rr);
    k->rec_head = k->rec_len = 0;
    k->npend = 0;
    k->has_last = k->has_timer = k->searching = k->thr_valid = 0;
    k->nout = 0;
}

static int make_room(Kernel *k, int64_t n) {
    int64_t keep_from, cut, kept, cap, r;
    if (k->used + n <= k->cap) return 0;
    keep_from = (k->next < k->next_p ? k->next : k->next_p) - k->p[P_PAD];
    if (keep_from < k->buf_start) keep_from = k->buf_start;
    cut = keep_from - k->buf_start;
    kept = k->used - cut;
    cap = 2 * (kept + n) > k->cap ? 2 * (kept + n) : k->cap;
    if (cap > k->cap) {
        double *nb = malloc((size_t)(5 * cap) * sizeof(double));
        if (nb == NULL) return -1;
        for (r = 0; r < 5; r++) memcpy(nb + r * cap, ROW(k, r) + cut, (size_t)kept * sizeof(double));
        free(k->buf);
        k->buf = nb;
        k->cap = cap;
    } else {
        for (r = 0; r < 5; r++) memmove(ROW(k, r), ROW(k, r) + cut, (size_t)kept * sizeof(double));
    }
    k->used = kept;
    k->buf_start = keep_from;
    return 0;
}

/* One sample through a cascade, exactly as scipy's sosfilt: y = b0 x + z0; z0 = b1 x - a1 y + z1;
 * z1 = b2 x - a2 y (a0 is 1). */
static inline double cascade(const double *sos, double *z, int64_t ns, double x) {
    int64_t s;
    for (s = 0; s < ns; s++) {
        const double *c = sos + 6 * s;
        double y = c[0] * x + z[2 * s];
        z[2 * s] = c[1] * x - c[4] * y + z[2 * s + 1];
        z[2 * s + 1] = c[2] * x - c[5] * y;
        x = y;
    }
    return x;
}

static void init_state(double *z, const double *unit, int64_t ns, double v) {
    int64_t i;
    for (i = 0; i < 2 * ns; i++) z[i] = unit[i] * v;
}

/* The gateway's cascades (3 or 2 x sections: band-pass and notch or band-pass alone; 4 d sections;
 * 1 f section) unrolled with coefficients and states in locals, so they stay in registers: the
 * same operations in the same order as cascade(), only without reloading state from memory. */
#define SEC(s, x) { \
        const double y_ = c[6 * (s)] * (x) + z0[s]; \
        z0[s] = c[6 * (s) + 1] * (x) - c[6 * (s) + 4] * y_ + z1[s]; \
        z1[s] = c[6 * (s) + 2] * (x) - c[6 * (s) + 5] * y_; \
        (x) = y_; \
    }

#define UNROLLED_LOOP(X_SECTIONS, D_SECTIONS, F_SECTIONS) do { \
        double c[6 * 8], z0[8], z1[8], last = k->last_finite; \
        int64_t s_, i_; \
        for (s_ = 0; s_ < 6 * ns; s_++) c[s_] = k->sos[s_]; \
        for (s_ = 0; s_ < ns; s_++) { z0[s_] = k->z[2 * s_]; z1[s_] = k->z[2 * s_ + 1]; } \
        for (i_ = i0; i_ < n; i_++) { \
            double v = in[i_], x, d, f; \
            if (!isfinite(v)) v = last; \
            last = v; \
            x = v; \
            X_SECTIONS \
            d = x; \
            D_SECTIONS \
            d = fabs(d); \
            f = d; \
            F_SECTIONS \
            raw[i_] = v; xr[i_] = x; dr[i_] = d; fr[i_] = f; filtered[i_] = x; \
        } \
        for (s_ = 0; s_ < ns; s_++) { k->z[2 * s_] = z0[s_]; k->z[2 * s_ + 1] = z1[s_]; } \
        k->last_finite = last; \
    } while (0)

static void filter_chunk(Kernel *k, const double *in, double *filtered, int64_t n) {
    const int64_t nx = k->nx, nd = k->nd, nf = k->nf, ns = nx + nd + nf, u = k->used;
    const double *sx = k->sos, *sd = k->sos + 6 * nx, *sf = k->sos + 6 * (nx + nd);
    double *zx = k->z, *zd = k->z + 2 * nx, *zf = k->z + 2 * (nx + nd);
    double *raw = ROW(k, 0) + u, *xr = ROW(k, 1) + u, *dr = ROW(k, 2) + u, *fr = ROW(k, 3) + u;
    int64_t i0 = 0;
    if (!k->started || (nd != 4 || nf != 1 || (nx != 2 && nx != 3))) {
        /* generic: the first sample after a (re)start sets each cascade's state from its own first input */
        double last = k->last_finite;
        for (; i0 < n; i0++) {
            double v = in[i0], x, d;
            if (k->started && nd == 4 && nf == 1 && (nx == 2 || nx == 3)) break;
            if (!isfinite(v)) v = last;  /* hold the previous finite sample */
            last = v;
            if (!k->started) init_state(zx, k->zunit, nx, v);
            x = cascade(sx, zx, nx, v);
            if (!k->started) init_state(zd, k->zunit + 2 * nx, nd, x);
            d = fabs(cascade(sd, zd, nd, x));
            if (!k->started) {
                init_state(zf, k->zunit + 2 * (nx + nd), nf, d);
                k->started = 1;
            }
            raw[i0] = v;
            xr[i0] = x;
            dr[i0] = d;
            fr[i0] = cascade(sf, zf, nf, d);
            filtered[i0] = x;
        }
        k->last_finite = last;
    }
    if (i0 >= n) return;
    if (nx == 3)
        UNROLLED_LOOP(SEC(0, x) SEC(1, x) SEC(2, x), SEC(3, d) SEC(4, d) SEC(5, d) SEC(6, d), SEC(7, f));
    else
        UNROLLED_LOOP(SEC(0, x) SEC(1, x), SEC(2, d) SEC(3, d) SEC(4, d) SEC(5, d), SEC(6, f));
}

static void prominence(Kernel *k) {
    const int64_t w = k->p[P_W], b0 = k->buf_start, lo = k->next_p, hi = k->end - w;
    const int64_t first = k->start - b0;
    const double *x = ROW(k, 1);
    double *pr = ROW(k, 4);
    int64_t i;
    if (hi <= lo) return;
    k->next_p = hi;
    for (i = lo - b0; i < hi - b0; i++) {
        double s = (x[i - w] + x[i + w]) * -0.5;
        /* samples whose left reference lies before the (re)start have no prominence */
        pr[i] = (i - w < first) ? 0.0 : s + x[i];
    }
}

static void find_candidates(Kernel *k) {
    const int64_t h = k->p[P_HALF], left = k->p[P_LEFT], search = k->p[P_SEARCH], refine = k->p[P_REFINE];
    const int64_t lo = k->next, hi = k->end - h, b0 = k->buf_start;
    const int64_t first = k->start - b0, settled = first + k->p[P_WARMUP];
    const double *raw = ROW(k, 0), *slope = ROW(k, 2), *f = ROW(k, 3), *prom = ROW(k, 4);
    int64_t j, m;
    if (hi <= lo) return;
    k->next = hi;
    for (j = lo - b0; j < hi - b0; j++) {
        double fj = f[j];
        int64_t s0, i_max, i_min, rx, r0, r;
        int positive, ok = 1;
        cand_t c;
        if (!(fj > f[j - 1] && fj >= f[j + 1])) continue;  /* local maxima, few: f is smooth */
        /* larger than the left_s before it, not exceeded in the peak_halfwidth_s after it */
        if (fj <= 0.0) continue;
        for (m = j - left; m < j && ok; m++) ok = f[m] < fj;
        for (m = j + 1; m <= j + h && ok; m++) ok = f[m] <= fj;
        if (!ok) continue;
        /* the most prominent deflection in the search_s before it, then the raw extremum of that polarity */
        s0 = j - search > first ? j - search : first;
        i_max = argmax_d(prom + s0, j + 1 - s0);
        i_min = argmin_d(prom + s0, j + 1 - s0);
        positive = prom[s0 + i_max] >= -prom[s0 + i_min];
        rx = s0 + (positive ? i_max : i_min);
        r0 = rx - refine > first ? rx - refine : first;
        r = r0 + (positive ? argmax_d(raw + r0, rx + 1 - r0) : argmin_d(raw + r0, rx + 1 - r0));
        c.rpos = b0 + r;
        c.height = fj;
        c.slope = max_d(slope + s0, j + 1 - s0);
        c.known = b0 + j + h;
        if (r < settled)  /* too early to trust as a beat, but it tells the start-up threshold the scale */
            observe(k, &c);
        else
            candidate(k, &c);
    }
}

/* ---- Python type -------------------------------------------------------------------------- */

/* A C-contiguous buffer of 8-byte items: float64 (fmt 'd') or int64 (fmt 'q'; numpy says 'l' where long
 * has 64 bits), native byte order. */
static int get_buffer(PyObject *obj, Py_buffer *view, int writable, char fmt, const char *what) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    const char *f;
    int ok;
    if (PyObject_GetBuffer(obj, view, flags) < 0) return -1;
    f = view->format != NULL ? view->format : "B";
    if (*f == '@' || *f == '=' || (*f == '<' && PY_LITTLE_ENDIAN) || (*f == '>' && !PY_LITTLE_ENDIAN)) f++;
    ok = view->itemsize == 8 && f[0] != '\0' && f[1] == '\0'
         && (f[0] == fmt || (fmt == 'q' && f[0] == 'l' && sizeof(long) == 8));
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s: expected a contiguous %s array", what,
                     fmt == 'd' ? "float64" : "int64");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static void Kernel_dealloc(Kernel *k) {
    free(k->sos); free(k->zunit); free(k->z); free(k->buf);
    free(k->qrs.v); free(k->noise.v); free(k->rr.v); free(k->scratch);
    free(k->rec_known); free(k->rec_h); free(k->pending); free(k->out);
    Py_TYPE(k)->tp_free((PyObject *)k);
}

/* Kernel(sos_x, zi_x, sos_d, zi_d, sos_f, zi_f, int_params, float_params, start_index):
 * sos_* are (n, 6) float64, zi_* the matching sosfilt_zi (n, 2), the parameters as in rpeaks.py. */
static int Kernel_init(Kernel *k, PyObject *args, PyObject *kwds) {
    PyObject *objs[8];
    Py_buffer views[8];
    long long start_index;
    int64_t ns[3], i, got = 0, hist;
    int rc = -1;
    (void)kwds;
    if (k->sos != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Kernel is already initialised");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "OOOOOOOOL", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &objs[5],
                          &objs[6], &objs[7], &start_index))
        return -1;
    for (got = 0; got < 8; got++)
        if (get_buffer(objs[got], &views[got], 0, got == 6 ? 'q' : 'd', "Kernel") < 0) goto done;
    for (i = 0; i < 3; i++) {
        Py_ssize_t sb = views[2 * i].len, zb = views[2 * i + 1].len;
        ns[i] = (int64_t)(sb / (6 * 8));
        if (ns[i] < 1 || sb != ns[i] * 6 * 8 || zb != ns[i] * 2 * 8) {
            PyErr_SetString(PyExc_ValueError, "Kernel: sos must be (n, 6) and zi (n, 2), n >= 1");
            goto done;
        }
    }
    if (views[6].len != N_INT_PARAMS * 8 || views[7].len != N_FLOAT_PARAMS * 8) {
        PyErr_SetString(PyExc_ValueError, "Kernel: wrong number of parameters");
        goto done;
    }
    memcpy(k->p, views[6].buf, sizeof(k->p));
    memcpy(k->fp, views[7].buf, sizeof(k->fp));
    if (k->p[P_HALF] < 1 || k->p[P_LEFT] < 1 || k->p[P_SEARCH] < 1 || k->p[P_W] < 1 || k->p[P_REFINE] < 0
        || k->p[P_HISTORY] < 0 || k->p[P_PAD] < k->p[P_HALF] + k->p[P_SEARCH] + k->p[P_REFINE] + k->p[P_W] + 1) {
        PyErr_SetString(PyExc_ValueError, "Kernel: inconsistent parameters");
        goto done;
    }
    k->nx = ns[0]; k->nd = ns[1]; k->nf = ns[2];
    {
        int64_t total = ns[0] + ns[1] + ns[2], off = 0;
        k->sos = malloc((size_t)(6 * total) * sizeof(double));
        k->zunit = malloc((size_t)(2 * total) * sizeof(double));
        k->z = calloc((size_t)(2 * total), sizeof(double));
        if (k->sos == NULL || k->zunit == NULL || k->z == NULL) { PyErr_NoMemory(); goto done; }
        for (i = 0; i < 3; i++) {
            memcpy(k->sos + 6 * off, views[2 * i].buf, (size_t)views[2 * i].len);
            memcpy(k->zunit + 2 * off, views[2 * i + 1].buf, (size_t)views[2 * i + 1].len);
            off += ns[i];
        }
    }
    hist = k->p[P_HISTORY];
    k->qrs.cap = k->noise.cap = k->rr.cap = hist;
    k->qrs.v = malloc((size_t)(hist + 1) * sizeof(double));
    k->noise.v = malloc((size_t)(hist + 1) * sizeof(double));
    k->rr.v = malloc((size_t)(hist + 1) * sizeof(double));
    k->scratch = malloc((size_t)(hist + 1) * sizeof(double));
    k->cap = 8 * k->p[P_PAD];
    k->buf = malloc((size_t)(5 * k->cap) * sizeof(double));
    if (k->qrs.v == NULL || k->noise.v == NULL || k->rr.v == NULL || k->scratch == NULL || k->buf == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    reset_state(k, (int64_t)start_index);
    rc = 0;
done:
    for (i = 0; i < got; i++) PyBuffer_Release(&views[i]);
    return rc;
}

/* process(raw, filtered, peaks) -> count: filter raw (float64, n) into filtered (float64, n), run
 * the detection; the peaks confirmed in this chunk are copied into peaks (int64) as far as they
 * fit; the count is returned either way (take_peaks copies them all into a big enough array). */
static PyObject *Kernel_process(Kernel *k, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer in, outv, pk;
    int64_t n, fit;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "process(raw, filtered, peaks)");
        return NULL;
    }
    if (k->buf == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Kernel is not initialised");
        return NULL;
    }
    if (get_buffer(args[0], &in, 0, 'd', "raw") < 0) return NULL;
    if (get_buffer(args[1], &outv, 1, 'd', "filtered") < 0) { PyBuffer_Release(&in); return NULL; }
    if (get_buffer(args[2], &pk, 1, 'q', "peaks") < 0) {
        PyBuffer_Release(&in); PyBuffer_Release(&outv);
        return NULL;
    }
    n = (int64_t)(in.len / 8);
    k->nout = 0;
    if (outv.len < in.len) {
        PyErr_SetString(PyExc_ValueError, "filtered is shorter than raw");
    } else if (n > 0 && make_room(k, n) < 0) {
        PyErr_NoMemory();
    } else if (n > 0) {
        filter_chunk(k, (const double *)in.buf, (double *)outv.buf, n);
        k->used += n;
        k->end += n;
        prominence(k);
        find_candidates(k);
        run_timers(k, k->end - 1);
        if (k->oom) PyErr_NoMemory();
    }
    fit = k->nout < (int64_t)(pk.len / 8) ? k->nout : (int64_t)(pk.len / 8);
    if (fit > 0) memcpy(pk.buf, k->out, (size_t)fit * sizeof(int64_t));
    PyBuffer_Release(&in); PyBuffer_Release(&outv); PyBuffer_Release(&pk);
    if (PyErr_Occurred()) return NULL;
    return PyLong_FromLongLong((long long)k->nout);
}

/* take_peaks(peaks): copy every peak of the last process() call into peaks (int64, big enough). */
static PyObject *Kernel_take_peaks(Kernel *k, PyObject *arg) {
    Py_buffer pk;
    if (get_buffer(arg, &pk, 1, 'q', "peaks") < 0) return NULL;
    if (pk.len / 8 < k->nout) {
        PyBuffer_Release(&pk);
        PyErr_SetString(PyExc_ValueError, "peaks is too short");
        return NULL;
    }
    if (k->nout > 0) memcpy(pk.buf, k->out, (size_t)k->nout * sizeof(int64_t));
    PyBuffer_Release(&pk);
    Py_RETURN_NONE;
}

static PyObject *Kernel_reset(Kernel *k, PyObject *arg) {
    long long start = PyLong_AsLongLong(arg);
    if (start == -1 && PyErr_Occurred()) return NULL;
    if (k->buf == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Kernel is not initialised");
        return NULL;
    }
    k->oom = 0;
    reset_state(k, (int64_t)start);
    Py_RETURN_NONE;
}

static PyMethodDef Kernel_methods[] = {
    {"process", (PyCFunction)(void (*)(void))Kernel_process, METH_FASTCALL,
     "process(raw, filtered, peaks) -> number of peaks confirmed by this chunk"},
    {"take_peaks", (PyCFunction)Kernel_take_peaks, METH_O, "take_peaks(peaks): every peak of the last chunk"},
    {"reset", (PyCFunction)Kernel_reset, METH_O, "reset(start_index): forget everything"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject KernelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cardiogate.edge.dsp._rpeaks_kernel.Kernel",
    .tp_basicsize = sizeof(Kernel),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "State and per-chunk work of one streaming R-peak detector.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Kernel_init,
    .tp_dealloc = (destructor)Kernel_dealloc,
    .tp_methods = Kernel_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rpeaks_kernel", "Compiled per-chunk work of the streaming R-peak detector.", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rpeaks_kernel(void) {
    PyObject *m;
    if (PyType_Ready(&KernelType) < 0) return NULL;
    m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&KernelType);
    if (PyModule_AddObject(m, "Kernel", (PyObject *)&KernelType) < 0) {
        Py_DECREF(&KernelType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "N_INT_PARAMS", N_INT_PARAMS) < 0
        || PyModule_AddIntConstant(m, "N_FLOAT_PARAMS", N_FLOAT_PARAMS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
