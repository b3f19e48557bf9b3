/* aco._native: the two hot loops of routing one request, in C.
 *
 * Optional: aco.features and aco.scoring fall back to their numpy code when this module is
 * not built (or ACO_PURE_PYTHON=1), and tests keep both paths equal. Nothing here is new
 * arithmetic; each function restates a numpy routine exactly:
 *
 *   window_features  aco.features._window_signals_py + _hash_ngrams: words, digit runs, "?",
 *                    option lines, backticks, braces, keyword groups of the final-question
 *                    window, and its l2-normalised hashed word/byte n-gram counts.
 *   linear_scores    aco.router.TaskTypePredictor: a folded linear model on one row.
 *   nearest_similarity  aco.router.TaskTypePredictor: the novelty check's similarity of a
 *                    request to its nearest centroid.
 *   Trees.sweep      aco.scoring.predict_lgbm_raw_sweep: LightGBM raw scores of one row with
 *                    one column set to each of a few values (a request at its five tiers),
 *                    deciding missing values as LightGBM's NumericalDecision does.
 *
 * Inputs come from integrity-checked bundles, yet every index is checked when a Trees is
 * built and every descent is bounded, so a malformed table raises instead of looping or
 * reading out of bounds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* -- request window: words, signals, hashed n-grams ------------------------------------- */

#define FIB_INT 0x9E3779B97F4A7C15ULL
#define CRC_BIGRAM_SEED 0x5BD1E995UL
#define MAX_KEYWORDS 256
#define N_GROUPS 3

static uint32_t crc_table[256];
static unsigned char is_word[256];

typedef struct {
    uint32_t crc;
    Py_ssize_t len;
    char *bytes;
    int group;
} keyword_t;

static keyword_t keywords[MAX_KEYWORDS];
static int n_keywords = 0;

static void init_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320UL ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
        is_word[i] = (i >= '0' && i <= '9') || (i >= 'a' && i <= 'z') || i == '_' || i >= 128;
    }
}

/* zlib.crc32(data, crc): the same CRC-32 (IEEE), continued from crc. */
static uint32_t crc32_update(uint32_t crc, const unsigned char *p, Py_ssize_t n)
{
    crc = ~crc;
    while (n-- > 0)
        crc = crc_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static int option_letter(unsigned char c) { return c >= 'a' && c <= 'h'; }

/* set_keywords([(word: bytes, group: int 0..2), ...]): the code/urgency/risk word lists. */
static PyObject *set_keywords(PyObject *self, PyObject *arg)
{
    PyObject *seq = PySequence_Fast(arg, "set_keywords: expected a sequence of (bytes, group)");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > MAX_KEYWORDS) {
        Py_DECREF(seq);
        return PyErr_Format(PyExc_ValueError, "set_keywords: at most %d words", MAX_KEYWORDS);
    }
    keyword_t fresh[MAX_KEYWORDS];
    int made = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        const char *word;
        Py_ssize_t len;
        int group;
        if (!PyArg_ParseTuple(item, "y#i", &word, &len, &group))
            goto fail;
        if (group < 0 || group >= N_GROUPS) {
            PyErr_Format(PyExc_ValueError, "set_keywords: group must be 0..%d", N_GROUPS - 1);
            goto fail;
        }
        fresh[made].bytes = PyMem_RawMalloc(len > 0 ? len : 1);
        if (fresh[made].bytes == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        memcpy(fresh[made].bytes, word, len);
        fresh[made].len = len;
        fresh[made].group = group;
        fresh[made].crc = crc32_update(0, (const unsigned char *)word, len);
        made++;
    }
    Py_DECREF(seq);
    for (int i = 0; i < n_keywords; i++)
        PyMem_RawFree(keywords[i].bytes);
    memcpy(keywords, fresh, sizeof(keyword_t) * made);
    n_keywords = made;
    Py_RETURN_NONE;
fail:
    for (int i = 0; i < made; i++)
        PyMem_RawFree(fresh[i].bytes);
    Py_DECREF(seq);
    return NULL;
}

static void bump(int64_t *counts, uint64_t bucket, int64_t n_buckets)
{
    if ((int64_t)bucket < n_buckets)
        counts[bucket]++;
}

/* window_features(window: bytes, out: float64 buffer, offset, bits, word_lo, word_hi,
 *                 char_lo, char_hi)
 * -> (words, numbers, question_marks, mc_options, backticks, braces, code, urgency, risk)
 * and out[offset : offset + 2**bits] = the l2-normalised n-gram counts. */
static PyObject *window_features(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8)
        return PyErr_Format(PyExc_TypeError, "window_features: expected 8 arguments");
    if (!PyBytes_Check(args[0]))
        return PyErr_Format(PyExc_TypeError, "window_features: window must be bytes");
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]);
    long opts[6];
    for (int i = 0; i < 6; i++) {
        opts[i] = PyLong_AsLong(args[2 + i]);
        if (opts[i] == -1 && PyErr_Occurred())
            return NULL;
    }
    long offset = opts[0], bits = opts[1];
    long word_lo = opts[2], word_hi = opts[3], char_lo = opts[4], char_hi = opts[5];
    if (bits < 1 || bits > 20 || word_lo < 1 || word_hi > 2 || word_lo > word_hi ||
        char_lo < 1 || char_hi > 8 || char_lo > char_hi || offset < 0)
        return PyErr_Format(PyExc_ValueError, "window_features: settings out of range");
    int64_t n_buckets = (int64_t)1 << bits;
    Py_buffer out;
    if (PyObject_GetBuffer(args[1], &out, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    if (out.itemsize != 8 || out.len < (Py_ssize_t)((offset + n_buckets) * 8)) {
        PyBuffer_Release(&out);
        return PyErr_Format(PyExc_ValueError, "window_features: out is too short or not float64");
    }
    int64_t stack_counts[1024];
    int64_t *counts = n_buckets <= 1024 ? stack_counts : PyMem_Calloc(n_buckets, 8);
    unsigned char *buf = PyMem_Malloc(n + 9);
    if (counts == NULL || buf == NULL) {
        if (counts != stack_counts)
            PyMem_Free(counts);
        PyMem_Free(buf);
        PyBuffer_Release(&out);
        return PyErr_NoMemory();
    }
    if (counts == stack_counts)
        memset(counts, 0, sizeof(int64_t) * n_buckets);

    long n_words = 0, numbers = 0, qmarks = 0, options = 0, backticks = 0, braces = 0;
    long groups[N_GROUPS] = {0, 0, 0};
    int word_shift = 32 - (int)bits;
    uint32_t prev_crc = 0;
    int have_prev = 0;
    for (Py_ssize_t i = 0; i < n;) {
        unsigned char c = data[i];
        if (!is_word[c]) {
            if (c == '?')
                qmarks++;
            else if (c == '`')
                backticks++;
            else if (c == '{' || c == '}' || c == '[' || c == ']' || c == ';')
                braces++;
            else if (c == '\n' && i + 2 < n) {
                unsigned char a = data[i + 1], b = data[i + 2];
                if (option_letter(a) && (b == ')' || b == '.'))
                    options++;
                else if (a == '(' && option_letter(b) && i + 3 < n && data[i + 3] == ')')
                    options++;
            }
            i++;
            continue;
        }
        Py_ssize_t start = i;
        while (i < n && is_word[data[i]])
            i++;
        Py_ssize_t len = i - start;
        uint32_t crc = crc32_update(0, data + start, len);
        n_words++;
        if (word_lo == 1)
            bump(counts, crc >> word_shift, n_buckets);
        if (word_hi == 2 && have_prev) {
            uint32_t bigram = crc32_update(prev_crc ^ CRC_BIGRAM_SEED, data + start, len);
            bump(counts, bigram >> word_shift, n_buckets);
        }
        prev_crc = crc;
        have_prev = 1;
        for (int k = 0; k < n_keywords; k++) {
            if (keywords[k].crc == crc && keywords[k].len == len &&
                memcmp(keywords[k].bytes, data + start, len) == 0) {
                groups[keywords[k].group]++;
                break;
            }
        }
    }
    for (Py_ssize_t i = 0; i < n;) { /* digit runs (inside words or not) */
        if (data[i] >= '0' && data[i] <= '9') {
            numbers++;
            while (i < n && data[i] >= '0' && data[i] <= '9')
                i++;
        } else {
            i++;
        }
    }
    /* Byte n-grams: every position of "\0" + window, its next 8 bytes read little-endian,
     * the low n bytes kept by a left shift, times an odd multiplier per size, top bits. */
    buf[0] = 0;
    memcpy(buf + 1, data, n);
    memset(buf + 1 + n, 0, 8);
    int gram_shift = 64 - (int)bits;
    for (long size = char_lo; size <= char_hi; size++) {
        uint64_t mult = (FIB_INT * (uint64_t)(2 * size + 1)) | 1ULL;
        int shift = 64 - 8 * (int)size;
        for (Py_ssize_t i = 0; i <= n; i++) {
            uint64_t g = (load_le64(buf + i) << shift) * mult;
            counts[g >> gram_shift]++;
        }
    }
    int64_t sumsq = 0;
    for (int64_t b = 0; b < n_buckets; b++)
        sumsq += counts[b] * counts[b];
    double norm = sqrt((double)sumsq);
    if (norm == 0.0)
        norm = 1.0;
    double *dst = (double *)out.buf + offset;
    for (int64_t b = 0; b < n_buckets; b++)
        dst[b] = (double)counts[b] / norm;
    if (counts != stack_counts)
        PyMem_Free(counts);
    PyMem_Free(buf);
    PyBuffer_Release(&out);
    return Py_BuildValue("(lllllllll)", n_words, numbers, qmarks, options, backticks, braces,
                         groups[0], groups[1], groups[2]);
}

/* -- linear scores ------------------------------------------------------------------------ */

/* linear_scores(weights: bytes <f8 (k x n), x: float64 buffer (n), fill: bytes <f8 (n),
 *               constant: bytes <f8 (k)) -> [constant[i] + sum_j weights[i, j] * x'[j]]
 * where x'[j] = fill[j] when x[j] is NaN: a folded linear model on one row. */
static PyObject *linear_scores(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[2]) ||
        !PyBytes_Check(args[3]))
        return PyErr_Format(PyExc_TypeError,
                            "linear_scores: expected weights, x, fill, constant (bytes, buffer, "
                            "bytes, bytes)");
    Py_ssize_t k = PyBytes_GET_SIZE(args[3]) / 8, n = PyBytes_GET_SIZE(args[2]) / 8;
    if (PyBytes_GET_SIZE(args[0]) != k * n * 8)
        return PyErr_Format(PyExc_ValueError, "linear_scores: weights are not k x n");
    Py_buffer xb;
    if (PyObject_GetBuffer(args[1], &xb, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    if (xb.itemsize != 8 || xb.len != n * 8) {
        PyBuffer_Release(&xb);
        return PyErr_Format(PyExc_ValueError, "linear_scores: x must hold %zd float64", n);
    }
    const double *w = (const double *)PyBytes_AS_STRING(args[0]);
    const double *fill = (const double *)PyBytes_AS_STRING(args[2]);
    const double *constant = (const double *)PyBytes_AS_STRING(args[3]);
    const double *x = xb.buf;
    /* x' once, then four independent sums per row: the additions no longer wait on each
     * other, which made the row's sum latency-bound (~4 cycles per feature). */
    double *filled = PyMem_Malloc((n > 0 ? n : 1) * sizeof(double));
    if (filled == NULL) {
        PyBuffer_Release(&xb);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t j = 0; j < n; j++)
        filled[j] = isnan(x[j]) ? fill[j] : x[j];
    PyObject *result = PyList_New(k);
    for (Py_ssize_t i = 0; result != NULL && i < k; i++) {
        const double *row = w + i * n;
        double acc[4] = {0.0, 0.0, 0.0, 0.0};
        Py_ssize_t j = 0;
        for (; j + 4 <= n; j += 4) {
            acc[0] += row[j] * filled[j];
            acc[1] += row[j + 1] * filled[j + 1];
            acc[2] += row[j + 2] * filled[j + 2];
            acc[3] += row[j + 3] * filled[j + 3];
        }
        for (; j < n; j++)
            acc[0] += row[j] * filled[j];
        PyObject *f = PyFloat_FromDouble(constant[i] + ((acc[0] + acc[1]) + (acc[2] + acc[3])));
        if (f == NULL)
            Py_CLEAR(result);
        else
            PyList_SET_ITEM(result, i, f);
    }
    PyMem_Free(filled);
    PyBuffer_Release(&xb);
    return result;
}

/* nearest_similarity(centroids: bytes <f4 (k x n), x: float64 buffer (n)) -> max_i dot(row i, x):
 * the novelty check's similarity of one request's n-gram vector to its nearest centroid
 * (float32 rows: half the memory a decision streams through). -inf when k is 0. */
static PyObject *nearest_similarity(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_Check(args[0]))
        return PyErr_Format(PyExc_TypeError,
                            "nearest_similarity: expected centroids, x (bytes, buffer)");
    Py_buffer xb;
    if (PyObject_GetBuffer(args[1], &xb, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    Py_ssize_t n = xb.len / 8;
    if (xb.itemsize != 8 || n == 0 || PyBytes_GET_SIZE(args[0]) % (n * 4) != 0) {
        PyBuffer_Release(&xb);
        return PyErr_Format(PyExc_ValueError,
                            "nearest_similarity: centroids are not k x %zd float32", n);
    }
    Py_ssize_t k = PyBytes_GET_SIZE(args[0]) / (n * 4);
    float *xf = PyMem_Malloc(n * sizeof(float));
    if (xf == NULL) {
        PyBuffer_Release(&xb);
        return PyErr_NoMemory();
    }
    const double *x = xb.buf;
    for (Py_ssize_t j = 0; j < n; j++)
        xf[j] = (float)x[j];
    const float *c = (const float *)PyBytes_AS_STRING(args[0]);
    double best = -INFINITY;
    for (Py_ssize_t i = 0; i < k; i++) {
        const float *row = c + i * n;
        float acc[8] = {0};
        Py_ssize_t j = 0;
        for (; j + 8 <= n; j += 8)
            for (int u = 0; u < 8; u++)
                acc[u] += row[j + u] * xf[j + u];
        for (; j < n; j++)
            acc[0] += row[j] * xf[j];
        double sum = ((double)acc[0] + acc[1]) + ((double)acc[2] + acc[3]) +
                     ((double)acc[4] + acc[5]) + ((double)acc[6] + acc[7]);
        if (sum > best)
            best = sum;
    }
    PyMem_Free(xf);
    PyBuffer_Release(&xb);
    return PyFloat_FromDouble(best);
}

/* -- LightGBM trees ------------------------------------------------------------------------ */

enum { MISSING_NONE, MISSING_NAN_LEFT, MISSING_NAN_RIGHT, MISSING_ZERO_LEFT, MISSING_ZERO_RIGHT };
#define ZERO_THRESHOLD ((double)1e-35f) /* LightGBM's kZeroThreshold */

/* One entry, packed so a descent touches one cache line per node: the threshold of an
 * internal node or the value of a leaf (left == its own index). */
typedef struct {
    double number;
    int32_t feature, left;
    unsigned char missing;
} node_t;

typedef struct {
    PyObject_HEAD
    Py_ssize_t n_entries, n_trees, num_features;
    int num_class;
    int32_t *feature, *left, *roots;
    unsigned char *missing;
    double *threshold, *value;
    node_t *nodes;
} TreesObject;

static void Trees_dealloc(TreesObject *self)
{
    PyMem_Free(self->feature);
    PyMem_Free(self->left);
    PyMem_Free(self->roots);
    PyMem_Free(self->missing);
    PyMem_Free(self->threshold);
    PyMem_Free(self->value);
    PyMem_Free(self->nodes);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static void *copy_bytes(PyObject *obj, Py_ssize_t itemsize, Py_ssize_t *count, const char *name)
{
    if (!PyBytes_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "Trees: %s must be bytes", name);
        return NULL;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(obj);
    if (size % itemsize) {
        PyErr_Format(PyExc_ValueError, "Trees: %s is not a whole number of items", name);
        return NULL;
    }
    void *dst = PyMem_Malloc(size > 0 ? size : 1);
    if (dst == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(dst, PyBytes_AS_STRING(obj), size);
    *count = size / itemsize;
    return dst;
}

/* Trees(feature <i4, threshold <f8, left <i4, missing u1, value <f8, roots <i4, num_class,
 *       num_features): aco_lab.scoring's plain LightGBM layout (children side by side,
 *       "right" = left + 1, a leaf is its own left child). Little-endian hosts only. */
static PyObject *Trees_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *feature, *threshold, *left, *missing, *value, *roots;
    int num_class;
    Py_ssize_t num_features;
    if (!PyArg_ParseTuple(args, "SSSSSSin", &feature, &threshold, &left, &missing, &value,
                          &roots, &num_class, &num_features))
        return NULL;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    PyErr_SetString(PyExc_NotImplementedError, "Trees: big-endian hosts use the numpy path");
    return NULL;
#endif
    TreesObject *self = (TreesObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    Py_ssize_t n_feature, n_threshold, n_left, n_missing, n_value, n_roots;
    self->feature = copy_bytes(feature, 4, &n_feature, "feature");
    self->threshold = self->feature ? copy_bytes(threshold, 8, &n_threshold, "threshold") : NULL;
    self->left = self->threshold ? copy_bytes(left, 4, &n_left, "left") : NULL;
    self->missing = self->left ? copy_bytes(missing, 1, &n_missing, "missing") : NULL;
    self->value = self->missing ? copy_bytes(value, 8, &n_value, "value") : NULL;
    self->roots = self->value ? copy_bytes(roots, 4, &n_roots, "roots") : NULL;
    if (self->roots == NULL)
        goto fail;
    Py_ssize_t n = n_feature;
    if (n_threshold != n || n_left != n || n_missing != n || n_value != n || num_class < 1 ||
        num_features < 1 || n_roots % num_class) {
        PyErr_SetString(PyExc_ValueError, "Trees: table lengths disagree");
        goto fail;
    }
    for (Py_ssize_t e = 0; e < n; e++) {
        int32_t l = self->left[e];
        if (l == e)
            continue; /* a leaf */
        if (l < 0 || l + 1 >= n || self->feature[e] < 0 || self->feature[e] >= num_features ||
            self->missing[e] > MISSING_ZERO_RIGHT) {
            PyErr_Format(PyExc_ValueError, "Trees: entry %zd points outside the tables", e);
            goto fail;
        }
    }
    for (Py_ssize_t t = 0; t < n_roots; t++) {
        if (self->roots[t] < 0 || self->roots[t] >= n) {
            PyErr_Format(PyExc_ValueError, "Trees: root of tree %zd is outside the tables", t);
            goto fail;
        }
    }
    self->nodes = PyMem_Malloc((n > 0 ? n : 1) * sizeof(node_t));
    if (self->nodes == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t e = 0; e < n; e++) {
        int leaf = self->left[e] == e;
        self->nodes[e].number = leaf ? self->value[e] : self->threshold[e];
        self->nodes[e].feature = self->feature[e];
        self->nodes[e].left = self->left[e];
        self->nodes[e].missing = self->missing[e];
    }
    /* The packed nodes are all a descent reads: the copies they came from are not kept. */
    PyMem_Free(self->feature);
    PyMem_Free(self->left);
    PyMem_Free(self->missing);
    PyMem_Free(self->threshold);
    PyMem_Free(self->value);
    self->feature = self->left = NULL;
    self->missing = NULL;
    self->threshold = self->value = NULL;
    self->n_entries = n;
    self->n_trees = n_roots;
    self->num_features = num_features;
    self->num_class = num_class;
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

static int go_right(const node_t *node, double x)
{
    int code = node->missing;
    if (isnan(x)) {
        if (code == MISSING_NAN_LEFT || code == MISSING_ZERO_LEFT)
            return 0;
        if (code == MISSING_NAN_RIGHT || code == MISSING_ZERO_RIGHT)
            return 1;
        x = 0.0;
    } else if (code >= MISSING_ZERO_LEFT && x >= -ZERO_THRESHOLD && x <= ZERO_THRESHOLD) {
        return code == MISSING_ZERO_RIGHT;
    }
    return !(x <= node->number);
}

/* Adds one tree's leaf value for each of the rows x[column] = vals[lo..hi) to their raw
 * score. Nodes on other columns send every row the same way, so the rows descend together
 * and part only at nodes on `column`; -1 in *error when a descent does not end. */
static void descend_rows(const TreesObject *t, Py_ssize_t e, double *x, Py_ssize_t column,
                         const double *vals, Py_ssize_t lo, Py_ssize_t hi, double *raw,
                         int stride, int depth, int *error)
{
    for (;;) {
        if (depth++ > t->n_entries) {
            *error = -1;
            return;
        }
        const node_t *node = t->nodes + e;
        Py_ssize_t l = node->left;
        if (l == e) {
            for (Py_ssize_t i = lo; i < hi; i++)
                raw[i * stride] += node->number;
            return;
        }
        if (node->feature != column) {
            e = l + go_right(node, x[node->feature]);
            continue;
        }
        /* Rows going left first, then right: the common case for sorted values. */
        Py_ssize_t split = lo;
        while (split < hi && !go_right(node, vals[split]))
            split++;
        Py_ssize_t k = split;
        while (k < hi && go_right(node, vals[k]))
            k++;
        if (k < hi) { /* not a prefix/suffix split: one row at a time */
            for (Py_ssize_t i = lo; i < hi; i++)
                descend_rows(t, l + go_right(node, vals[i]), x, column, vals, i, i + 1, raw,
                             stride, depth, error);
            return;
        }
        if (split > lo && split < hi)
            descend_rows(t, l, x, column, vals, lo, split, raw, stride, depth, error);
        if (split == hi) {
            e = l;
        } else {
            lo = split;
            e = l + 1;
        }
    }
}

/* sweep(x: float64 buffer, column, values: sequence of float) -> list of raw scores,
 * values x classes (row-major), as predict_lgbm_raw of the rows x with x[column] = value.
 * x has num_features values, or num_features - 1 when column is the last feature. */
static PyObject *Trees_sweep(TreesObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3)
        return PyErr_Format(PyExc_TypeError, "sweep: expected x, column, values");
    Py_ssize_t column = PyLong_AsSsize_t(args[1]);
    if (column == -1 && PyErr_Occurred())
        return NULL;
    PyObject *values = PySequence_Fast(args[2], "sweep: values must be a sequence");
    if (values == NULL)
        return NULL;
    Py_ssize_t n_values = PySequence_Fast_GET_SIZE(values);
    Py_buffer xb;
    if (PyObject_GetBuffer(args[0], &xb, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        Py_DECREF(values);
        return NULL;
    }
    Py_ssize_t F = self->num_features, nx = xb.len / 8;
    double stack_x[2048];
    double *x = F <= 2048 ? stack_x : PyMem_Malloc(F * sizeof(double));
    double *raw = PyMem_Calloc(n_values * self->num_class + 1, sizeof(double));
    double *vals = PyMem_Malloc((n_values + 1) * sizeof(double));
    PyObject *result = NULL;
    if (x == NULL || raw == NULL || vals == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const char *fmt = xb.format != NULL ? xb.format : "d";
    if (fmt[0] == '<' || fmt[0] == '=')
        fmt++;
    if (xb.itemsize != 8 || strcmp(fmt, "d") != 0 ||
        column < 0 || column >= F || !(nx == F || (nx == F - 1 && column == F - 1))) {
        PyErr_Format(PyExc_ValueError,
                     "sweep: expected float64 x of %zd features (or %zd with the last column "
                     "swept) and a column inside, got %zd values and column %zd",
                     F, F - 1, nx, column);
        goto done;
    }
    memcpy(x, xb.buf, nx * sizeof(double));
    for (Py_ssize_t v = 0; v < n_values; v++) {
        vals[v] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(values, v));
        if (vals[v] == -1.0 && PyErr_Occurred())
            goto done;
    }
    x[column] = NAN; /* never read: nodes on the column read vals */
    int error = 0;
    int k = self->num_class;
    for (Py_ssize_t tree = 0; tree < self->n_trees; tree++)
        descend_rows(self, self->roots[tree], x, column, vals, 0, n_values, raw + tree % k, k, 0,
                     &error);
    if (error) {
        PyErr_SetString(PyExc_ValueError, "sweep: a tree does not end in a leaf (cycle)");
        goto done;
    }
    result = PyList_New(n_values * self->num_class);
    if (result == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n_values * self->num_class; i++) {
        PyObject *f = PyFloat_FromDouble(raw[i]);
        if (f == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, f);
    }
done:
    if (x != stack_x)
        PyMem_Free(x);
    PyMem_Free(raw);
    PyMem_Free(vals);
    PyBuffer_Release(&xb);
    Py_DECREF(values);
    return result;
}

static PyMethodDef Trees_methods[] = {
    {"sweep", (PyCFunction)(void (*)(void))Trees_sweep, METH_FASTCALL,
     "sweep(x, column, values) -> raw scores of x with x[column] set to each value"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TreesType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "aco._native.Trees",
    .tp_basicsize = sizeof(TreesObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Trees_new,
    .tp_dealloc = (destructor)Trees_dealloc,
    .tp_methods = Trees_methods,
    .tp_doc = "LightGBM trees in aco_lab.scoring's plain layout, scored in C",
};

static PyMethodDef module_methods[] = {
    {"window_features", (PyCFunction)(void (*)(void))window_features, METH_FASTCALL,
     "signals and hashed n-gram counts of a request's final-question window"},
    {"set_keywords", set_keywords, METH_O, "set the (word, group) keyword table"},
    {"linear_scores", (PyCFunction)(void (*)(void))linear_scores, METH_FASTCALL,
     "a folded linear model's scores for one row, NaN read as a fill value"},
    {"nearest_similarity", (PyCFunction)(void (*)(void))nearest_similarity, METH_FASTCALL,
     "the largest dot product of one row with float32 centroids"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "aco._native", "C versions of aco's per-request hot loops", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__native(void)
{
    init_tables();
    if (PyType_Ready(&TreesType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&native_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&TreesType);
    if (PyModule_AddObject(m, "Trees", (PyObject *)&TreesType) < 0) {
        Py_DECREF(&TreesType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
