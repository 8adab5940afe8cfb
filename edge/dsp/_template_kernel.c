/* Beat-template correlations in C: the signal-quality index's template match and the VT check's
 * similarity of one beat with the patient's sinus template; and the R wave's width at half height
 * (beats.py), which the VT check measures for every beat too.
 *
 * Both run for every device every second (quality) or every beat (VT), and in numpy each is some
 * twenty small array operations whose per-call overhead is most of their cost. The arithmetic is
 * the same as the numpy versions in quality.py and vt.py (which stay the reference and the
 * fallback where this module is not built); sums are taken in a different order, so results agree
 * to rounding (the tests hold them within 1e-9), not bit for bit.
 *
 * Like _rpeaks_kernel.c it takes arrays through the buffer protocol, not numpy's C API, so it
 * builds without numpy headers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A C-contiguous buffer of 8-byte items: float64 ('d') or int64 ('q', or 'l' where long has 64 bits);
 * ``flags`` adds to that what else is asked of it (PyBUF_WRITABLE for an output). */
static int get_buffer_as(PyObject *obj, Py_buffer *view, char fmt, const char *what, int flags) {
    const char *f;
    int ok;
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | flags) < 0) return -1;
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

static int get_buffer(PyObject *obj, Py_buffer *view, char fmt, const char *what) {
    return get_buffer_as(obj, view, fmt, what, 0);
}

static double mean_of(const double *x, Py_ssize_t n) {
    double s = 0.0;
    Py_ssize_t i;
    for (i = 0; i < n; i++) s += x[i];
    return s / (double)n;
}

/* Mean Pearson correlation of each row (n values, not centred) with a centred template. */
static double mean_corr(const double *rows, Py_ssize_t count, Py_ssize_t n, const double *tmpl) {
    double tt = 0.0, total = 0.0;
    Py_ssize_t b, j;
    for (j = 0; j < n; j++) tt += tmpl[j] * tmpl[j];
    for (b = 0; b < count; b++) {
        const double *r = rows + b * n;
        double m = mean_of(r, n), ss = 0.0, st = 0.0, den;
        for (j = 0; j < n; j++) {
            double c = r[j] - m;
            ss += c * c;
            st += c * tmpl[j];
        }
        den = sqrt(ss * tt);
        if (den > 0.0) total += st / den;
    }
    return total / (double)count;
}

/* The centred sum of ``count`` rows of ``n`` values, each row centred first. */
static void centred_template(const double *rows, Py_ssize_t stride, Py_ssize_t count, Py_ssize_t n,
                             double *out) {
    Py_ssize_t b, j;
    for (j = 0; j < n; j++) out[j] = 0.0;
    for (b = 0; b < count; b++) {
        const double *r = rows + b * stride;
        double m = mean_of(r, n);
        for (j = 0; j < n; j++) out[j] += r[j] - m;
    }
    {
        double m = mean_of(out, n);
        for (j = 0; j < n; j++) out[j] -= m;
    }
}

/* aligned_correlation(filtered, peaks, half, shift) -> float: quality.template_correlation. */
static PyObject *aligned_correlation(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer xv, pv;
    const double *x;
    const int64_t *pk;
    Py_ssize_t half, shift, w, n, width, npk, count = 0, b, s, j, len;
    double *region = NULL, *aligned = NULL, *tmpl = NULL, result = 0.0;
    (void)self;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "aligned_correlation(filtered, peaks, half, shift)");
        return NULL;
    }
    half = PyLong_AsSsize_t(args[2]);
    shift = PyLong_AsSsize_t(args[3]);
    if (PyErr_Occurred()) return NULL;
    if (half < 0 || shift < 0) {
        PyErr_SetString(PyExc_ValueError, "half and shift must not be negative");
        return NULL;
    }
    if (get_buffer(args[0], &xv, 'd', "filtered") < 0) return NULL;
    if (get_buffer(args[1], &pv, 'q', "peaks") < 0) {
        PyBuffer_Release(&xv);
        return NULL;
    }
    x = (const double *)xv.buf;
    pk = (const int64_t *)pv.buf;
    len = xv.len / 8;
    npk = pv.len / 8;
    w = half + shift;
    n = 2 * half + 1;
    width = n + 2 * shift;
    region = malloc(sizeof(double) * (size_t)(npk > 0 ? npk : 1) * (size_t)width);
    aligned = malloc(sizeof(double) * (size_t)(npk > 0 ? npk : 1) * (size_t)n);
    tmpl = malloc(sizeof(double) * (size_t)n);
    if (region == NULL || aligned == NULL || tmpl == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (b = 0; b < npk; b++) {  /* the beats whose whole shifted span lies inside the window */
        if (pk[b] >= w && pk[b] < len - w) {
            memcpy(region + count * width, x + pk[b] - w, sizeof(double) * (size_t)width);
            count++;
        }
    }
    if (count < 2) goto done;
    centred_template(region + shift, width, count, n, tmpl);
    if (shift == 0) {
        for (b = 0; b < count; b++) memcpy(aligned + b * n, region + b * width, sizeof(double) * (size_t)n);
    } else {
        for (b = 0; b < count; b++) {  /* each beat slides to the shift that correlates best */
            const double *r = region + b * width;
            double s1 = 0.0, s2 = 0.0, best_score = -INFINITY;
            Py_ssize_t best = 0;
            for (j = 0; j < n; j++) {
                s1 += r[j];
                s2 += r[j] * r[j];
            }
            for (s = 0; s <= 2 * shift; s++) {
                double num = 0.0, var, score;
                if (s > 0) {  /* running sums, as the numpy version's cumulative sums */
                    s1 += r[s + n - 1] - r[s - 1];
                    s2 += r[s + n - 1] * r[s + n - 1] - r[s - 1] * r[s - 1];
                }
                for (j = 0; j < n; j++) num += r[s + j] * tmpl[j];
                var = s2 - s1 * s1 / (double)n;
                if (var < 1e-300) var = 1e-300;
                score = num / sqrt(var);
                if (score > best_score || isnan(score)) {
                    if (isnan(score)) { best = s; break; }
                    best_score = score;
                    best = s;
                }
            }
            memcpy(aligned + b * n, r + best, sizeof(double) * (size_t)n);
        }
        centred_template(aligned, n, count, n, tmpl);
    }
    result = mean_corr(aligned, count, n, tmpl);
done:
    free(region);
    free(aligned);
    free(tmpl);
    PyBuffer_Release(&xv);
    PyBuffer_Release(&pv);
    if (PyErr_Occurred()) return NULL;
    return PyFloat_FromDouble(result);
}

/* detrended_similarity(raw, peak, template, shift) -> (corr, amplitude ratio) or None: vt.similarity. */
static PyObject *detrended_similarity(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer rv, tv;
    const double *raw, *tmpl;
    Py_ssize_t peak, shift, half, n, len, first, last, k, j;
    int found = 0;
    double t_norm = 0.0, t_min, t_max, tt = 0.0, best_corr = 0.0, best_ptp = 0.0;
    PyObject *out = NULL;
    (void)self;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "detrended_similarity(raw, peak, template, shift)");
        return NULL;
    }
    peak = PyLong_AsSsize_t(args[1]);
    shift = PyLong_AsSsize_t(args[3]);
    if (PyErr_Occurred()) return NULL;
    if (get_buffer(args[0], &rv, 'd', "raw") < 0) return NULL;
    if (get_buffer(args[2], &tv, 'd', "template") < 0) {
        PyBuffer_Release(&rv);
        return NULL;
    }
    raw = (const double *)rv.buf;
    tmpl = (const double *)tv.buf;
    len = rv.len / 8;
    n = tv.len / 8;
    half = (n - 1) / 2;
    if (n == 0) goto none;
    t_min = t_max = tmpl[0];
    for (j = 0; j < n; j++) {
        t_norm += tmpl[j] * tmpl[j];
        if (tmpl[j] < t_min) t_min = tmpl[j];
        if (tmpl[j] > t_max) t_max = tmpl[j];
        tt += ((double)j - (double)half) * ((double)j - (double)half);
    }
    t_norm = sqrt(t_norm);
    if (t_norm == 0.0 || t_max - t_min == 0.0) goto none;
    first = -shift > half - peak ? -shift : half - peak;  /* shifts whose segment lies inside raw */
    last = shift < len - 1 - half - peak ? shift : len - 1 - half - peak;
    if (last < first) goto none;
    for (k = first; k <= last; k++) {
        const double *r = raw + peak + k - half;
        double m = mean_of(r, n), st = 0.0, slope, norm = 0.0, dot = 0.0, lo = INFINITY, hi = -INFINITY, corr;
        for (j = 0; j < n; j++) st += r[j] * ((double)j - (double)half);
        slope = st / tt;
        for (j = 0; j < n; j++) {
            double v = r[j] - m - slope * ((double)j - (double)half);
            norm += v * v;
            dot += v * tmpl[j];
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        norm = sqrt(norm);
        corr = norm > 0.0 ? dot / (norm * t_norm) : 0.0;
        if (isnan(corr)) {  /* numpy's argmax: the first NaN wins */
            best_corr = corr;
            best_ptp = hi - lo;
            break;
        }
        if (!found || corr > best_corr) {
            found = 1;
            best_corr = corr;
            best_ptp = hi - lo;
        }
    }
    out = Py_BuildValue("(dd)", best_corr, best_ptp / (t_max - t_min));
    PyBuffer_Release(&rv);
    PyBuffer_Release(&tv);
    return out;
none:
    PyBuffer_Release(&rv);
    PyBuffer_Release(&tv);
    Py_RETURN_NONE;
}

/* Quickselect: the k-th smallest of v[0..n-1] (v is reordered). No NaN may be present. */
static double kth_smallest(double *v, Py_ssize_t n, Py_ssize_t k) {
    Py_ssize_t lo = 0, hi = n - 1;
    while (lo < hi) {
        double pivot = v[lo + (hi - lo) / 2], t;
        Py_ssize_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) {
                t = v[i]; v[i] = v[j]; v[j] = t;
                i++;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else break;
    }
    return v[k];
}

/* half_height_width(raw, peak, half_window) -> samples or None: beats.r_width_s before dividing by the rate.
 * The baseline is the median of the 2 * half_window + 1 samples around the peak (an odd count, so the middle
 * value itself, as numpy's median), and the comparisons are the same floating-point operations as the numpy
 * version's, so the width is identical, not merely close. A NaN in the segment gives numpy's NaN median,
 * against which nothing is "above": one sample wide, as there. */
static PyObject *half_height_width(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer rv;
    const double *raw, *seg;
    double *copy = NULL, baseline, height, sign, level;
    Py_ssize_t peak, hw, n, len, j, left, right;
    int has_nan = 0;
    PyObject *out = NULL;
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "half_height_width(raw, peak, half_window)");
        return NULL;
    }
    peak = PyLong_AsSsize_t(args[1]);
    hw = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred()) return NULL;
    if (hw < 0) {
        PyErr_SetString(PyExc_ValueError, "half_window must not be negative");
        return NULL;
    }
    if (get_buffer(args[0], &rv, 'd', "raw") < 0) return NULL;
    raw = (const double *)rv.buf;
    len = rv.len / 8;
    if (peak - hw < 0 || peak + hw + 1 > len) goto none;
    n = 2 * hw + 1;
    seg = raw + peak - hw;
    copy = malloc(sizeof(double) * (size_t)n);
    if (copy == NULL) {
        PyErr_NoMemory();
        PyBuffer_Release(&rv);
        return NULL;
    }
    for (j = 0; j < n; j++) {
        copy[j] = seg[j];
        if (isnan(seg[j])) has_nan = 1;
    }
    baseline = has_nan ? NAN : kth_smallest(copy, n, hw);
    free(copy);
    height = raw[peak] - baseline;
    if (height == 0.0) goto none;
    sign = height > 0.0 ? 1.0 : (height < 0.0 ? -1.0 : height);  /* numpy's sign (NaN stays NaN) */
    level = fabs(height) / 2.0;
    left = right = hw;
    while (left > 0 && (seg[left - 1] - baseline) * sign >= level) left--;
    while (right < n - 1 && (seg[right + 1] - baseline) * sign >= level) right++;
    out = PyLong_FromSsize_t(right - left + 1);
    PyBuffer_Release(&rv);
    return out;
none:
    PyBuffer_Release(&rv);
    Py_RETURN_NONE;
}

/* column_median_into(rows, count, out): out[j] = the median of rows[0..count-1][j], as numpy's
 * median(rows[:count], axis=0): the middle value of an odd count, the mean of the two middle values of
 * an even one ((a + b) / 2, the same operations), NaN where a column holds a NaN. The VT check's sinus
 * template is this median, recomputed for nearly every beat. */
static PyObject *column_median_into(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer rv, ov;
    const double *rows;
    double *out, *col = NULL;
    Py_ssize_t count, n, total, b, j;
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "column_median_into(rows, count, out)");
        return NULL;
    }
    count = PyLong_AsSsize_t(args[1]);
    if (PyErr_Occurred()) return NULL;
    if (get_buffer(args[0], &rv, 'd', "rows") < 0) return NULL;
    if (get_buffer_as(args[2], &ov, 'd', "out", PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&rv);
        return NULL;
    }
    rows = (const double *)rv.buf;
    out = (double *)ov.buf;
    n = ov.len / 8;
    total = rv.len / 8;
    if (rv.ndim != 2 || rv.shape[1] != n) {
        PyErr_SetString(PyExc_ValueError, "rows must be a 2-D array with len(out) columns");
        goto fail;
    }
    if (count < 1 || n < 1 || count * n > total) {
        PyErr_SetString(PyExc_ValueError, "count must be at least 1 and at most the rows there are");
        goto fail;
    }
    col = malloc(sizeof(double) * (size_t)count);
    if (col == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (j = 0; j < n; j++) {
        int has_nan = 0;
        for (b = 0; b < count; b++) {
            col[b] = rows[b * n + j];
            if (isnan(col[b])) has_nan = 1;
        }
        if (has_nan) {
            out[j] = NAN;
        } else if (count % 2) {
            out[j] = kth_smallest(col, count, count / 2);
        } else {
            double hi = kth_smallest(col, count, count / 2), lo = col[0];
            for (b = 1; b < count / 2; b++)  /* after the selection, the lower half lies before count / 2 */
                if (col[b] > lo) lo = col[b];
            out[j] = (lo + hi) / 2.0;
        }
    }
    free(col);
    PyBuffer_Release(&rv);
    PyBuffer_Release(&ov);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&rv);
    PyBuffer_Release(&ov);
    return NULL;
}

static PyMethodDef methods[] = {
    {"aligned_correlation", (PyCFunction)(void (*)(void))aligned_correlation, METH_FASTCALL,
     "aligned_correlation(filtered, peaks, half, shift) -> mean correlation of the beats with their template"},
    {"detrended_similarity", (PyCFunction)(void (*)(void))detrended_similarity, METH_FASTCALL,
     "detrended_similarity(raw, peak, template, shift) -> (best correlation, amplitude ratio) or None"},
    {"column_median_into", (PyCFunction)(void (*)(void))column_median_into, METH_FASTCALL,
     "column_median_into(rows, count, out) -> None: out = numpy.median(rows[:count], axis=0)"},
    {"half_height_width", (PyCFunction)(void (*)(void))half_height_width, METH_FASTCALL,
     "half_height_width(raw, peak, half_window) -> width in samples of the wave at peak at half height, or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_template_kernel", "Beat-template correlations of the quality index and the VT check; the R wave's half-height width.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__template_kernel(void) { return PyModule_Create(&module); }
