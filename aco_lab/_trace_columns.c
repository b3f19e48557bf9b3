/* aco_lab._trace_columns: trace format v1 JSONL lines straight into column buffers.
 *
 * The fast path of aco_lab/trace_parser.py. One call takes a chunk of JSONL (whole lines) and
 * parses every line into the columns of the runs, steps and tool-call tables (values, a
 * validity byte per row, and offsets for strings), creating no Python object per value. The
 * Python side wraps the buffers as Arrow arrays without copying them.
 *
 * It accepts a line only when it is certain msgspec (the reference decoder, trace_parser.Trace)
 * would accept it with the same values; any other line (malformed JSON, a wrong type, a value
 * out of range, a duplicate or escaped key, a lone surrogate, nesting deeper than 64...) is
 * *left*: its rows are rolled back and its index returned, and the caller decodes it with
 * msgspec, which words the error. So this code never judges a line bad; it only declines lines
 * it is not sure of. Blank lines (only whitespace) are skipped. Floats are correctly rounded:
 * one exact operation when the digits allow it, else PyOS_string_to_double.
 *
 * Strictness where msgspec is lax is allowed (the line is then decoded by msgspec): UTF-8 is
 * validated everywhere, also in ignored keys and raw metadata. Lines taken with a key the
 * format does not define are reported too, for strict reading (aco_lab/strict_keys.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define LEAVE (-1) /* decline the line: msgspec decides */
#define FAIL (-2)  /* a Python exception is set (out of memory) */
#define MAX_SKIP_DEPTH 64
#define MAX_OUTCOMES 16

/* ---------------------------------------------------------------- growable byte buffers */

typedef struct {
    PyObject *obj; /* a bytes object grown in place; handed to Python at the end */
    char *p;
    size_t n, cap;
} Buf;

static int buf_grow(Buf *b, size_t extra) {
    size_t need = b->n + extra;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    if (b->obj == NULL) {
        b->obj = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)cap);
        if (b->obj == NULL) return FAIL;
    } else if (_PyBytes_Resize(&b->obj, (Py_ssize_t)cap) < 0) {
        b->obj = NULL;
        return FAIL;
    }
    b->p = PyBytes_AS_STRING(b->obj);
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const void *src, size_t len) {
    if (b->n + len > b->cap && buf_grow(b, len) < 0) return FAIL;
    memcpy(b->p + b->n, src, len);
    b->n += len;
    return 0;
}

static PyObject *buf_take(Buf *b) { /* the bytes, exactly n long; b is emptied */
    if (b->obj == NULL) return PyBytes_FromStringAndSize(NULL, 0);
    if (_PyBytes_Resize(&b->obj, (Py_ssize_t)b->n) < 0) {
        b->obj = NULL;
        return NULL;
    }
    PyObject *obj = b->obj;
    b->obj = NULL;
    b->p = NULL;
    b->n = b->cap = 0;
    return obj;
}

static void buf_free(Buf *b) {
    Py_CLEAR(b->obj);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ---------------------------------------------------------------- columns */

enum { K_BOOL, K_I8, K_I32, K_I64, K_F64, K_STR, K_BIN };
static const size_t WIDTH[] = {1, 1, 4, 8, 8, 0, 0};
static const char *ARROW_TYPE[] = {"bool", "int8", "int32", "int64", "float64", "large_string",
                                   "large_binary"}; /* pyarrow.type_for_alias names */

typedef struct {
    const char *name;
    int kind;
    Buf values, valid, offsets; /* offsets: int64, rows + 1 of them (strings only) */
    Py_ssize_t nulls;
} Column;

typedef struct { size_t values, valid, offsets; Py_ssize_t nulls; } Mark;

static int col_init(Column *c) {
    if (c->kind == K_STR || c->kind == K_BIN) {
        int64_t zero = 0;
        return buf_put(&c->offsets, &zero, sizeof zero);
    }
    return 0;
}

static inline int col_value(Column *c, const void *value) {
    if (buf_put(&c->values, value, WIDTH[c->kind]) < 0) return FAIL;
    uint8_t one = 1;
    return buf_put(&c->valid, &one, 1);
}

static inline int col_bytes(Column *c, const char *s, size_t len) {
    if (buf_put(&c->values, s, len) < 0) return FAIL;
    int64_t end = (int64_t)c->values.n;
    if (buf_put(&c->offsets, &end, sizeof end) < 0) return FAIL;
    uint8_t one = 1;
    return buf_put(&c->valid, &one, 1);
}

static inline int col_null(Column *c) {
    c->nulls++;
    uint8_t zero = 0;
    if (buf_put(&c->valid, &zero, 1) < 0) return FAIL;
    if (c->kind == K_STR || c->kind == K_BIN) {
        int64_t end = (int64_t)c->values.n;
        return buf_put(&c->offsets, &end, sizeof end);
    }
    uint64_t blank = 0;
    return buf_put(&c->values, &blank, WIDTH[c->kind]);
}

/* The three tables' columns, in the order of the frames msgspec's path builds. */
enum {
    R_TRACE_ID, R_REQUEST, R_FINAL_OUTCOME, R_TASK_SUCCESS, R_TOTAL_COST, R_SCHEMA_VERSION,
    R_REQUEST_ID, R_TASK_TYPE, R_DIFFICULTY, R_PREDICTED_TIER, R_SOURCE, R_TIMESTAMP,
    R_METADATA, R_N_STEPS,
    S_STEP_NUM, S_ACTION, S_VERIFIER_CALLED, S_VERIFIER_PASSED, S_N_TOOL_CALLS, S_MODEL_ID,
    S_TIER, S_COST, S_INPUT_TOKENS, S_OUTPUT_TOKENS, S_CACHED_INPUT_TOKENS, S_LATENCY_MS,
    S_ESCALATED_FROM, S_MEAN_LOGPROB, S_MIN_LOGPROB, S_OUTPUT_TEXT,
    T_TOOL_NAME, T_TOOL_SUCCESS, T_COST, T_LATENCY_MS,
    N_COLUMNS
};
#define FIRST_STEP_COLUMN S_STEP_NUM
#define FIRST_TOOL_COLUMN T_TOOL_NAME

static const struct { const char *name; int kind; } COLUMNS[N_COLUMNS] = {
    {"trace_id", K_STR}, {"request", K_STR}, {"final_outcome", K_STR},
    {"task_success", K_BOOL}, {"total_cost", K_F64}, {"schema_version", K_I64},
    {"request_id", K_STR}, {"task_type", K_STR}, {"difficulty", K_I8},
    {"predicted_tier", K_I8}, {"source", K_STR}, {"timestamp", K_STR}, {"metadata", K_BIN},
    {"n_steps", K_I32},
    {"step_num", K_I32}, {"action", K_STR}, {"verifier_called", K_BOOL},
    {"verifier_passed", K_BOOL}, {"n_tool_calls", K_I32}, {"model_id", K_STR}, {"tier", K_I8},
    {"cost", K_F64}, {"input_tokens", K_I64}, {"output_tokens", K_I64},
    {"cached_input_tokens", K_I64}, {"latency_ms", K_F64}, {"escalated_from", K_I8},
    {"mean_logprob", K_F64}, {"min_logprob", K_F64}, {"output_text", K_STR},
    {"tool_name", K_STR}, {"tool_success", K_BOOL}, {"cost", K_F64}, {"latency_ms", K_F64},
};

/* ---------------------------------------------------------------- the fields of each object */

enum { F_STR, F_INT, F_FLOAT, F_BOOL, F_RAW, F_STEPS, F_MODEL_CALL, F_TOOL_CALLS };
enum { C_NONE, C_GE0, C_LE0, C_NONEMPTY, C_OUTCOME };
#define REQUIRED 1
#define NULLABLE 2

typedef struct {
    const char *key;
    int type, flags, check;
    int64_t lo, hi; /* int range; for defaults see `dflt` */
    int column;     /* -1: not a column of its own */
    int has_default;
    int64_t dflt; /* default of a missing int/bool field (else null) */
    size_t key_length; /* set at import */
} Field;

/* Limits filled in from Python at each call (trace_format's constants). */
typedef struct {
    int64_t schema_version, min_tier, max_tier, min_difficulty, max_difficulty;
} Limits;

enum { TR_TRACE_ID, TR_REQUEST, TR_STEPS, TR_FINAL_OUTCOME, TR_TASK_SUCCESS, TR_TOTAL_COST,
       TR_SCHEMA_VERSION, TR_REQUEST_ID, TR_TASK_TYPE, TR_DIFFICULTY, TR_PREDICTED_TIER,
       TR_TIMESTAMP, TR_SOURCE, TR_METADATA, N_TRACE_FIELDS };
enum { ST_STEP_NUM, ST_ACTION, ST_MODEL_CALL, ST_TOOL_CALLS, ST_VERIFIER_CALLED,
       ST_VERIFIER_PASSED, N_STEP_FIELDS };
enum { MC_MODEL_ID, MC_TIER, MC_COST, MC_INPUT_TOKENS, MC_OUTPUT_TOKENS, MC_CACHED_INPUT_TOKENS,
       MC_LATENCY_MS, MC_ESCALATED_FROM, MC_MEAN_LOGPROB, MC_MIN_LOGPROB, MC_OUTPUT_TEXT,
       N_MODEL_FIELDS };
enum { TC_TOOL_NAME, TC_SUCCESS, TC_COST, TC_LATENCY_MS, N_TOOL_FIELDS };

/* Ranges (and a default) given by the caller's limits at each call, not fixed here. */
#define FROM_LIMITS_TIER (-1)
#define FROM_LIMITS_SCHEMA_VERSION (-2)
#define FROM_LIMITS_DIFFICULTY (-3)
#define TIER_RANGE FROM_LIMITS_TIER, FROM_LIMITS_TIER
#define SCHEMA_VERSION_RANGE FROM_LIMITS_SCHEMA_VERSION, FROM_LIMITS_SCHEMA_VERSION
#define DIFFICULTY_RANGE FROM_LIMITS_DIFFICULTY, FROM_LIMITS_DIFFICULTY
#define I32_MAX 2147483647LL

static Field TRACE_FIELDS[N_TRACE_FIELDS] = {
    {"trace_id", F_STR, REQUIRED, C_NONEMPTY, 0, 0, R_TRACE_ID, 0, 0},
    {"request", F_STR, REQUIRED, C_NONE, 0, 0, R_REQUEST, 0, 0},
    {"steps", F_STEPS, REQUIRED, C_NONE, 0, 0, -1, 0, 0},
    {"final_outcome", F_STR, REQUIRED, C_OUTCOME, 0, 0, R_FINAL_OUTCOME, 0, 0},
    {"task_success", F_BOOL, REQUIRED | NULLABLE, C_NONE, 0, 0, R_TASK_SUCCESS, 0, 0},
    {"total_cost", F_FLOAT, REQUIRED, C_GE0, 0, 0, R_TOTAL_COST, 0, 0},
    {"schema_version", F_INT, 0, C_NONE, SCHEMA_VERSION_RANGE, R_SCHEMA_VERSION, 1,
     FROM_LIMITS_SCHEMA_VERSION},
    {"request_id", F_STR, NULLABLE, C_NONE, 0, 0, R_REQUEST_ID, 0, 0},
    {"task_type", F_STR, NULLABLE, C_NONE, 0, 0, R_TASK_TYPE, 0, 0},
    {"difficulty", F_INT, NULLABLE, C_NONE, DIFFICULTY_RANGE, R_DIFFICULTY, 0, 0},
    {"predicted_tier", F_INT, NULLABLE, C_NONE, TIER_RANGE, R_PREDICTED_TIER, 0, 0},
    {"timestamp", F_STR, NULLABLE, C_NONE, 0, 0, R_TIMESTAMP, 0, 0},
    {"source", F_STR, NULLABLE, C_NONE, 0, 0, R_SOURCE, 0, 0},
    {"metadata", F_RAW, 0, C_NONE, 0, 0, R_METADATA, 0, 0},
};

static Field STEP_FIELDS[N_STEP_FIELDS] = {
    {"step_num", F_INT, REQUIRED, C_NONE, 1, I32_MAX, S_STEP_NUM, 0, 0},
    {"action", F_STR, NULLABLE, C_NONE, 0, 0, S_ACTION, 0, 0},
    {"model_call", F_MODEL_CALL, NULLABLE, C_NONE, 0, 0, -1, 0, 0},
    {"tool_calls", F_TOOL_CALLS, 0, C_NONE, 0, 0, -1, 0, 0},
    {"verifier_called", F_BOOL, 0, C_NONE, 0, 0, S_VERIFIER_CALLED, 1, 0},
    {"verifier_passed", F_BOOL, NULLABLE, C_NONE, 0, 0, S_VERIFIER_PASSED, 0, 0},
};

static Field MODEL_FIELDS[N_MODEL_FIELDS] = {
    {"model_id", F_STR, REQUIRED, C_NONE, 0, 0, S_MODEL_ID, 0, 0},
    {"tier", F_INT, REQUIRED, C_NONE, TIER_RANGE, S_TIER, 0, 0},
    {"cost", F_FLOAT, REQUIRED, C_GE0, 0, 0, S_COST, 0, 0},
    {"input_tokens", F_INT, NULLABLE, C_NONE, 0, INT64_MAX, S_INPUT_TOKENS, 0, 0},
    {"output_tokens", F_INT, NULLABLE, C_NONE, 0, INT64_MAX, S_OUTPUT_TOKENS, 0, 0},
    {"cached_input_tokens", F_INT, NULLABLE, C_NONE, 0, INT64_MAX, S_CACHED_INPUT_TOKENS, 0, 0},
    {"latency_ms", F_FLOAT, NULLABLE, C_NONE, 0, 0, S_LATENCY_MS, 0, 0},
    {"escalated_from", F_INT, NULLABLE, C_NONE, TIER_RANGE, S_ESCALATED_FROM, 0, 0},
    {"mean_logprob", F_FLOAT, NULLABLE, C_LE0, 0, 0, S_MEAN_LOGPROB, 0, 0},
    {"min_logprob", F_FLOAT, NULLABLE, C_LE0, 0, 0, S_MIN_LOGPROB, 0, 0},
    {"output_text", F_STR, NULLABLE, C_NONE, 0, 0, S_OUTPUT_TEXT, 0, 0},
};

static Field TOOL_FIELDS[N_TOOL_FIELDS] = {
    {"tool_name", F_STR, REQUIRED, C_NONE, 0, 0, T_TOOL_NAME, 0, 0},
    {"success", F_BOOL, REQUIRED, C_NONE, 0, 0, T_TOOL_SUCCESS, 0, 0},
    {"cost", F_FLOAT, REQUIRED, C_GE0, 0, 0, T_COST, 0, 0},
    {"latency_ms", F_FLOAT, NULLABLE, C_NONE, 0, 0, T_LATENCY_MS, 0, 0},
};

/* A field's value while its object is parsed (keys come in any order). */
enum { MISSING, IS_NULL, PRESENT };
typedef struct {
    int state;
    int in_scratch; /* a string decoded from escapes: at scratch[off..off+len] */
    int64_t i;      /* ints, bools, counts */
    double f;
    const char *s;  /* a string (or raw JSON) without escapes: in the input */
    size_t off, len;
} Slot;

/* ---------------------------------------------------------------- the parser */

typedef struct {
    const unsigned char *p, *end;
    Buf scratch; /* strings with escapes, decoded; reset every line */
    Column cols[N_COLUMNS];
    Limits limits;
    int unknown_key; /* the line has a key trace format v1 does not define (not in metadata) */
    PyObject *outcomes[MAX_OUTCOMES]; /* bytes */
    Py_ssize_t n_outcomes;
} Parser;

static inline void skip_ws(Parser *ps) {
    const unsigned char *p = ps->p, *end = ps->end;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    ps->p = p;
}

/* The length of the strict UTF-8 sequence at s (as Python's decoder reads it), 0 if invalid. */
static inline int utf8_length(const unsigned char *s, const unsigned char *end) {
    unsigned char c = s[0];
    if (c < 0xC2) return 0;
    if (c < 0xE0) return (end - s >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c < 0xF0) {
        if (end - s < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0;  /* overlong */
        if (c == 0xED && s[1] > 0x9F) return 0;  /* a surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if (end - s < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
            (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0;  /* overlong */
        if (c == 0xF4 && s[1] > 0x8F) return 0;  /* above U+10FFFF */
        return 4;
    }
    return 0;
}

static inline int hex4(const unsigned char *s, unsigned *out) {
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return LEAVE;
    }
    *out = v;
    return 0;
}

static int put_utf8(Buf *b, unsigned cp) {
    unsigned char out[4];
    size_t n;
    if (cp < 0x80) { out[0] = (unsigned char)cp; n = 1; }
    else if (cp < 0x800) { out[0] = 0xC0 | (cp >> 6); out[1] = 0x80 | (cp & 0x3F); n = 2; }
    else if (cp < 0x10000) {
        out[0] = 0xE0 | (cp >> 12); out[1] = 0x80 | ((cp >> 6) & 0x3F);
        out[2] = 0x80 | (cp & 0x3F); n = 3;
    } else {
        out[0] = 0xF0 | (cp >> 18); out[1] = 0x80 | ((cp >> 12) & 0x3F);
        out[2] = 0x80 | ((cp >> 6) & 0x3F); out[3] = 0x80 | (cp & 0x3F); n = 4;
    }
    return buf_put(b, out, n);
}

/* A JSON string at ps->p (its opening quote). With a slot, its text is kept: a span of the
 * input when it has no escapes, else decoded into the scratch buffer. */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Whether 8 bytes are plain string text: no quote, backslash, control byte or non-ASCII. */
static inline int plain8(const unsigned char *p) {
    uint64_t v, quote, backslash;
    memcpy(&v, p, 8);
    quote = v ^ (ONES * '"');
    backslash = v ^ (ONES * '\\');
    uint64_t special = ((quote - ONES) & ~quote) | ((backslash - ONES) & ~backslash) |
                       ((v - ONES * 0x20) & ~v) | v;
    return (special & HIGHS) == 0;
}

static int parse_string(Parser *ps, Slot *slot) {
    const unsigned char *p = ps->p + 1, *end = ps->end, *start = p;
    const unsigned char *run = p; /* plain bytes not yet copied to the scratch buffer */
    Buf *out = &ps->scratch;
    size_t off = out->n;
    int escaped = 0;
    for (;;) {
        while (end - p >= 8 && plain8(p)) p += 8;
        if (p >= end) return LEAVE;
        unsigned char c = *p;
        if (c == '"') break;
        if (c < 0x20) return LEAVE;
        if (c >= 0x80) {
            int n = utf8_length(p, end);
            if (!n) return LEAVE;
            p += n;
            continue;
        }
        if (c != '\\') {
            p++;
            continue;
        }
        escaped = 1;
        if (slot && buf_put(out, run, (size_t)(p - run)) < 0) return FAIL;
        if (end - p < 2) return LEAVE;
        unsigned char e = p[1], ch;
        p += 2;
        switch (e) {
            case '"': ch = '"'; break;
            case '\\': ch = '\\'; break;
            case '/': ch = '/'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'u': {
                unsigned cp, low;
                if (end - p < 4 || hex4(p, &cp) < 0) return LEAVE;
                p += 4;
                if (cp >= 0xDC00 && cp <= 0xDFFF) return LEAVE; /* a lone low surrogate */
                if (cp >= 0xD800 && cp <= 0xDBFF) {            /* needs its low half */
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &low) < 0 ||
                        low < 0xDC00 || low > 0xDFFF)
                        return LEAVE;
                    p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                }
                if (slot && put_utf8(out, cp) < 0) return FAIL;
                run = p;
                continue;
            }
            default: return LEAVE;
        }
        if (slot && buf_put(out, &ch, 1) < 0) return FAIL;
        run = p;
    }
    if (slot) {
        if (escaped) { /* decoded in the scratch buffer */
            if (buf_put(out, run, (size_t)(p - run)) < 0) return FAIL;
            slot->in_scratch = 1;
            slot->off = off;
            slot->len = out->n - off;
        } else { /* the text is the input's */
            slot->in_scratch = 0;
            slot->s = (const char *)start;
            slot->len = (size_t)(p - start);
        }
    }
    ps->p = p + 1;
    return 0;
}

/* A JSON number at ps->p: its span, whether it is an integer literal, its digits. */
typedef struct {
    const unsigned char *start, *end;
    int negative, is_int;
    uint64_t mantissa; /* significant digits, when they fit (n_digits <= 19) */
    int n_digits;      /* significant digits (leading zeros skipped) */
    int exp10;         /* value = mantissa * 10^exp10 (when n_digits <= 19) */
} Number;

static int scan_number(Parser *ps, Number *num) {
    const unsigned char *p = ps->p, *end = ps->end;
    num->start = p;
    num->negative = 0;
    num->is_int = 1;
    num->mantissa = 0;
    num->n_digits = 0;
    num->exp10 = 0;
    if (p < end && *p == '-') { num->negative = 1; p++; }
    if (p >= end) return LEAVE;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') {
            if (num->n_digits < 19) num->mantissa = num->mantissa * 10 + (*p - '0');
            else num->exp10++;
            num->n_digits++;
            p++;
        }
    } else {
        return LEAVE;
    }
    if (p < end && *p == '.') {
        num->is_int = 0;
        p++;
        if (p >= end || *p < '0' || *p > '9') return LEAVE;
        while (p < end && *p >= '0' && *p <= '9') {
            if (num->n_digits == 0 && *p == '0') { num->exp10--; p++; continue; }
            if (num->n_digits < 19) { num->mantissa = num->mantissa * 10 + (*p - '0'); num->exp10--; }
            num->n_digits++;
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        num->is_int = 0;
        p++;
        int negative_exp = 0;
        if (p < end && (*p == '+' || *p == '-')) { negative_exp = *p == '-'; p++; }
        if (p >= end || *p < '0' || *p > '9') return LEAVE;
        int e = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (e < 100000) e = e * 10 + (*p - '0');
            p++;
        }
        num->exp10 += negative_exp ? -e : e;
    }
    num->end = p;
    ps->p = p;
    return 0;
}

static int int_value(const Number *num, int64_t *out) {
    if (!num->is_int || num->n_digits > 19) return LEAVE;
    if (num->mantissa > (uint64_t)INT64_MAX) return LEAVE;
    if (num->negative && num->mantissa != 0) return LEAVE; /* every int field is >= 0 */
    *out = (int64_t)num->mantissa; /* "-0" is 0 */
    return 0;
}

static const double POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int float_value(const Number *num, double *out) {
    double v;
    if (num->is_int && num->n_digits <= 18) {
        /* msgspec reads an integer literal as an int, then converts: "-0" gives 0.0 */
        v = (double)(int64_t)num->mantissa;
        if (num->negative) v = -v;
        if (num->mantissa == 0) v = 0.0;
    } else if (!num->is_int && num->n_digits <= 15 && num->mantissa <= (1ULL << 53) &&
               num->exp10 >= -22 && num->exp10 <= 22) {
        /* exact operands, one correctly rounded operation: the correctly rounded value */
        v = (double)num->mantissa;
        v = num->exp10 < 0 ? v / POW10[-num->exp10] : v * POW10[num->exp10];
        if (num->negative) v = -v;
    } else {
        size_t len = (size_t)(num->end - num->start);
        char text[128];
        if (len >= sizeof text) return LEAVE;
        memcpy(text, num->start, len);
        text[len] = '\0';
        char *stop;
        v = PyOS_string_to_double(text, &stop, NULL); /* correctly rounded, locale-free */
        if (v == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return LEAVE; }
        if (stop != text + len) return LEAVE;
        if (num->is_int && num->negative && v == 0.0) v = 0.0;
    }
    if (!isfinite(v)) return LEAVE; /* msgspec: "Number out of range" */
    *out = v;
    return 0;
}

static inline int literal(Parser *ps, const char *word, size_t len) {
    if ((size_t)(ps->end - ps->p) < len || memcmp(ps->p, word, len) != 0) return 0;
    ps->p += len;
    return 1;
}

static int skip_value(Parser *ps, int depth) {
    if (depth > MAX_SKIP_DEPTH) return LEAVE;
    skip_ws(ps);
    if (ps->p >= ps->end) return LEAVE;
    unsigned char c = *ps->p;
    int rc;
    if (c == '"') return parse_string(ps, NULL);
    if (c == '{' || c == '[') {
        unsigned char close = c == '{' ? '}' : ']';
        ps->p++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == close) { ps->p++; return 0; }
        for (;;) {
            if (c == '{') {
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != '"') return LEAVE;
                if ((rc = parse_string(ps, NULL)) < 0) return rc;
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != ':') return LEAVE;
                ps->p++;
            }
            if ((rc = skip_value(ps, depth + 1)) < 0) return rc;
            skip_ws(ps);
            if (ps->p >= ps->end) return LEAVE;
            if (*ps->p == ',') { ps->p++; continue; }
            if (*ps->p == close) { ps->p++; return 0; }
            return LEAVE;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        Number num;
        return scan_number(ps, &num);
    }
    if (literal(ps, "true", 4) || literal(ps, "false", 5) || literal(ps, "null", 4)) return 0;
    return LEAVE;
}

static void int_range(const Parser *ps, const Field *f, int64_t *lo, int64_t *hi) {
    if (f->lo == FROM_LIMITS_TIER) { *lo = ps->limits.min_tier; *hi = ps->limits.max_tier; }
    else if (f->lo == FROM_LIMITS_SCHEMA_VERSION) { *lo = *hi = ps->limits.schema_version; }
    else if (f->lo == FROM_LIMITS_DIFFICULTY) {
        *lo = ps->limits.min_difficulty;
        *hi = ps->limits.max_difficulty;
    }
    else { *lo = f->lo; *hi = f->hi; }
}

static inline const char *slot_text(const Parser *ps, const Slot *s) {
    return s->in_scratch ? ps->scratch.p + s->off : s->s;
}

static int check_outcome(const Parser *ps, const Slot *s) {
    const char *text = slot_text(ps, s);
    for (Py_ssize_t k = 0; k < ps->n_outcomes; k++) {
        PyObject *o = ps->outcomes[k];
        if ((size_t)PyBytes_GET_SIZE(o) == s->len && memcmp(PyBytes_AS_STRING(o), text, s->len) == 0)
            return 0;
    }
    return LEAVE;
}

static int parse_object(Parser *ps, const Field *fields, int n_fields, Slot *slots,
                        Slot *model_slots);

static int parse_array(Parser *ps, int (*element)(Parser *), int64_t *count);
static int parse_step(Parser *ps);
static int parse_tool_call(Parser *ps);

static int parse_field(Parser *ps, const Field *f, Slot *slot, Slot *model_slots) {
    int rc;
    skip_ws(ps);
    if (ps->p >= ps->end) return LEAVE;
    if (f->type == F_RAW) { /* any JSON value, null included, kept as its text */
        const unsigned char *start = ps->p;
        if ((rc = skip_value(ps, 0)) < 0) return rc;
        slot->state = PRESENT;
        slot->s = (const char *)start;
        slot->len = (size_t)(ps->p - start);
        slot->in_scratch = 0;
        return 0;
    }
    if (*ps->p == 'n' && literal(ps, "null", 4)) {
        if (!(f->flags & NULLABLE)) return LEAVE;
        slot->state = IS_NULL;
        return 0;
    }
    slot->state = PRESENT;
    switch (f->type) {
        case F_STR:
            if (*ps->p != '"') return LEAVE;
            if ((rc = parse_string(ps, slot)) < 0) return rc;
            if (f->check == C_NONEMPTY && slot->len == 0) return LEAVE;
            if (f->check == C_OUTCOME) return check_outcome(ps, slot);
            return 0;
        case F_INT: {
            Number num;
            int64_t lo, hi;
            if ((rc = scan_number(ps, &num)) < 0) return rc;
            if ((rc = int_value(&num, &slot->i)) < 0) return rc;
            int_range(ps, f, &lo, &hi);
            return (slot->i < lo || slot->i > hi) ? LEAVE : 0;
        }
        case F_FLOAT: {
            Number num;
            if ((rc = scan_number(ps, &num)) < 0) return rc;
            if ((rc = float_value(&num, &slot->f)) < 0) return rc;
            if (f->check == C_GE0 && !(slot->f >= 0.0)) return LEAVE;
            if (f->check == C_LE0 && !(slot->f <= 0.0)) return LEAVE;
            return 0;
        }
        case F_BOOL:
            if (literal(ps, "true", 4)) { slot->i = 1; return 0; }
            if (literal(ps, "false", 5)) { slot->i = 0; return 0; }
            return LEAVE;
        case F_STEPS:
            return parse_array(ps, parse_step, &slot->i);
        case F_TOOL_CALLS:
            return parse_array(ps, parse_tool_call, &slot->i);
        case F_MODEL_CALL:
            for (int k = 0; k < N_MODEL_FIELDS; k++) model_slots[k].state = MISSING;
            return parse_object(ps, MODEL_FIELDS, N_MODEL_FIELDS, model_slots, NULL);
    }
    return LEAVE;
}

static int match_field(const Field *fields, int n_fields, const char *key, size_t len) {
    for (int k = 0; k < n_fields; k++) {
        const char *name = fields[k].key;
        if (fields[k].key_length == len && name[0] == key[0] && memcmp(name, key, len) == 0)
            return k;
    }
    return -1;
}

/* An object of known fields into slots; unknown keys are skipped (their values checked). */
static int parse_object(Parser *ps, const Field *fields, int n_fields, Slot *slots,
                        Slot *model_slots) {
    int rc;
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != '{') return LEAVE;
    ps->p++;
    for (int k = 0; k < n_fields; k++) slots[k].state = MISSING;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') { ps->p++; goto done; }
    for (;;) {
        Slot key;
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != '"') return LEAVE;
        size_t scratch_mark = ps->scratch.n;
        if ((rc = parse_string(ps, &key)) < 0) return rc;
        if (key.in_scratch) return LEAVE; /* an escaped key: msgspec decides */
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') return LEAVE;
        ps->p++;
        int k = key.len ? match_field(fields, n_fields, key.s, key.len) : -1;
        ps->scratch.n = scratch_mark;
        if (k < 0) {
            ps->unknown_key = 1;
            if ((rc = skip_value(ps, 1)) < 0) return rc;
        } else {
            if (slots[k].state != MISSING) return LEAVE; /* a duplicate key */
            if ((rc = parse_field(ps, &fields[k], &slots[k], model_slots)) < 0) return rc;
        }
        skip_ws(ps);
        if (ps->p >= ps->end) return LEAVE;
        if (*ps->p == ',') { ps->p++; continue; }
        if (*ps->p == '}') { ps->p++; break; }
        return LEAVE;
    }
done:
    for (int k = 0; k < n_fields; k++)
        if (slots[k].state == MISSING && (fields[k].flags & REQUIRED)) return LEAVE;
    return 0;
}

/* One field's value into its column (a missing field takes its default). */
static int emit(Parser *ps, const Field *f, const Slot *s) {
    Column *c = &ps->cols[f->column];
    if (s->state == IS_NULL || (s->state == MISSING && !f->has_default && f->type != F_RAW))
        return col_null(c);
    if (s->state == MISSING) {
        if (f->type == F_RAW) return col_bytes(c, "null", 4);
        int64_t v = f->dflt == FROM_LIMITS_SCHEMA_VERSION ? ps->limits.schema_version : f->dflt;
        if (c->kind == K_BOOL) { uint8_t b = (uint8_t)v; return col_value(c, &b); }
        return col_value(c, &v);
    }
    switch (c->kind) {
        case K_BOOL: { uint8_t b = (uint8_t)s->i; return col_value(c, &b); }
        case K_I8: { int8_t v = (int8_t)s->i; return col_value(c, &v); }
        case K_I32: { int32_t v = (int32_t)s->i; return col_value(c, &v); }
        case K_I64: return col_value(c, &s->i);
        case K_F64: return col_value(c, &s->f);
        default: return col_bytes(c, slot_text(ps, s), s->len);
    }
}

static int emit_count(Parser *ps, int column, int64_t count) {
    if (count > I32_MAX) return LEAVE;
    int32_t v = (int32_t)count;
    return col_value(&ps->cols[column], &v);
}

static int emit_fields(Parser *ps, const Field *fields, int n_fields, const Slot *slots) {
    int rc;
    for (int k = 0; k < n_fields; k++)
        if (fields[k].column >= 0 && (rc = emit(ps, &fields[k], &slots[k])) < 0) return rc;
    return 0;
}

/* A JSON array of objects, each parsed (and its rows appended) by `element`. */
static int parse_array(Parser *ps, int (*element)(Parser *), int64_t *count) {
    int rc;
    *count = 0;
    if (*ps->p != '[') return LEAVE;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') { ps->p++; return 0; }
    for (;;) {
        if ((rc = element(ps)) < 0) return rc;
        ++*count;
        skip_ws(ps);
        if (ps->p >= ps->end) return LEAVE;
        if (*ps->p == ',') { ps->p++; continue; }
        if (*ps->p == ']') { ps->p++; return 0; }
        return LEAVE;
    }
}

static int parse_tool_call(Parser *ps) {
    int rc;
    Slot slots[N_TOOL_FIELDS];
    if ((rc = parse_object(ps, TOOL_FIELDS, N_TOOL_FIELDS, slots, NULL)) < 0) return rc;
    return emit_fields(ps, TOOL_FIELDS, N_TOOL_FIELDS, slots);
}

/* A step's row, after its tool calls' rows (appended while its tool_calls were parsed). */
static int parse_step(Parser *ps) {
    int rc;
    Slot slots[N_STEP_FIELDS], model[N_MODEL_FIELDS];
    if ((rc = parse_object(ps, STEP_FIELDS, N_STEP_FIELDS, slots, model)) < 0) return rc;
    if ((rc = emit_fields(ps, STEP_FIELDS, N_STEP_FIELDS, slots)) < 0) return rc;
    int64_t calls = slots[ST_TOOL_CALLS].state == PRESENT ? slots[ST_TOOL_CALLS].i : 0;
    if ((rc = emit_count(ps, S_N_TOOL_CALLS, calls)) < 0) return rc;
    if (slots[ST_MODEL_CALL].state == PRESENT)
        return emit_fields(ps, MODEL_FIELDS, N_MODEL_FIELDS, model);
    for (int col = S_MODEL_ID; col <= S_OUTPUT_TEXT; col++)
        if ((rc = col_null(&ps->cols[col])) < 0) return rc;
    return 0;
}

static int parse_line(Parser *ps) {
    int rc;
    Slot slots[N_TRACE_FIELDS];
    if ((rc = parse_object(ps, TRACE_FIELDS, N_TRACE_FIELDS, slots, NULL)) < 0) return rc;
    skip_ws(ps);
    if (ps->p != ps->end) return LEAVE; /* trailing characters */
    if ((rc = emit_fields(ps, TRACE_FIELDS, N_TRACE_FIELDS, slots)) < 0) return rc;
    return emit_count(ps, R_N_STEPS, slots[TR_STEPS].i);
}

static void mark_columns(Parser *ps, Mark *marks) {
    for (int k = 0; k < N_COLUMNS; k++) {
        Column *c = &ps->cols[k];
        marks[k] = (Mark){c->values.n, c->valid.n, c->offsets.n, c->nulls};
    }
}

static void roll_back(Parser *ps, const Mark *marks) {
    for (int k = 0; k < N_COLUMNS; k++) {
        Column *c = &ps->cols[k];
        c->values.n = marks[k].values;
        c->valid.n = marks[k].valid;
        c->offsets.n = marks[k].offsets;
        c->nulls = marks[k].nulls;
    }
}

static inline int is_blank(const unsigned char *p, const unsigned char *end) {
    for (; p < end; p++) /* bytes.strip()'s whitespace */
        if (!(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\v' || *p == '\f'))
            return 0;
    return 1;
}

static void parser_free(Parser *ps) {
    buf_free(&ps->scratch);
    for (int k = 0; k < N_COLUMNS; k++) {
        buf_free(&ps->cols[k].values);
        buf_free(&ps->cols[k].valid);
        buf_free(&ps->cols[k].offsets);
    }
}

static PyObject *column_tuple(Column *c) {
    PyObject *values = buf_take(&c->values), *valid = NULL, *offsets = NULL;
    if (values == NULL) return NULL;
    if ((valid = buf_take(&c->valid)) == NULL) goto error;
    if (c->kind == K_STR || c->kind == K_BIN) {
        if ((offsets = buf_take(&c->offsets)) == NULL) goto error;
    } else {
        offsets = Py_NewRef(Py_None);
    }
    return Py_BuildValue("(ssnNNN)", c->name, ARROW_TYPE[c->kind], c->nulls, values, valid,
                         offsets);
error:
    Py_XDECREF(values);
    Py_XDECREF(valid);
    return NULL;
}

PyDoc_STRVAR(decode_doc,
"decode(data, first_line, outcomes, limits) -> (numbers, left, tables, unknown)\n\n"
"Parse a chunk of JSONL (whole lines) into the columns of the runs, steps and tool-call\n"
"tables. numbers: int64 line numbers (in the file) of the lines taken, as bytes; left: the\n"
"indices (in the chunk) of the non-blank lines not taken, for msgspec to decode; tables:\n"
"the runs, steps and tool-call columns, each (name, Arrow type name, nulls, values, valid,\n"
"offsets): a byte per value or row, offsets (int64) for strings, None for the others.\n"
"outcomes: the allowed final_outcome values as bytes; limits: (schema_version, min_tier,\n"
"max_tier, min_difficulty, max_difficulty). unknown: int64 line numbers, as bytes, of the\n"
"lines taken that carry a key trace format v1 does not define (metadata not looked into).");

static PyObject *decode(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer view;
    Py_ssize_t first_line;
    PyObject *outcomes;
    Parser ps;
    memset(&ps, 0, sizeof ps);
    if (!PyArg_ParseTuple(args, "y*nO!(LLLLL)", &view, &first_line, &PyTuple_Type, &outcomes,
                          &ps.limits.schema_version, &ps.limits.min_tier, &ps.limits.max_tier,
                          &ps.limits.min_difficulty, &ps.limits.max_difficulty))
        return NULL;
    PyObject *result = NULL, *left = NULL, *columns = NULL, *numbers_obj = NULL;
    PyObject *unknown_obj = NULL;
    Buf numbers = {0}, unknown = {0};
    ps.n_outcomes = PyTuple_GET_SIZE(outcomes);
    if (ps.n_outcomes > MAX_OUTCOMES) {
        PyErr_SetString(PyExc_ValueError, "too many outcomes");
        goto done;
    }
    for (Py_ssize_t k = 0; k < ps.n_outcomes; k++) {
        ps.outcomes[k] = PyTuple_GET_ITEM(outcomes, k);
        if (!PyBytes_Check(ps.outcomes[k])) {
            PyErr_SetString(PyExc_TypeError, "outcomes must be bytes");
            goto done;
        }
    }
    for (int k = 0; k < N_COLUMNS; k++) {
        ps.cols[k].name = COLUMNS[k].name;
        ps.cols[k].kind = COLUMNS[k].kind;
        if (col_init(&ps.cols[k]) < 0) goto done;
    }
    if ((left = PyList_New(0)) == NULL) goto done;

    const unsigned char *data = view.buf, *data_end = data + view.len, *line = data;
    Mark marks[N_COLUMNS];
    for (Py_ssize_t index = 0; line < data_end; index++) {
        const unsigned char *eol = memchr(line, '\n', (size_t)(data_end - line));
        if (eol == NULL) eol = data_end;
        if (!is_blank(line, eol)) {
            mark_columns(&ps, marks);
            ps.scratch.n = 0;
            ps.p = line;
            ps.end = eol;
            ps.unknown_key = 0;
            int rc = parse_line(&ps);
            if (rc == FAIL) goto done;
            if (rc == LEAVE) {
                roll_back(&ps, marks);
                PyObject *i = PyLong_FromSsize_t(index);
                if (i == NULL || PyList_Append(left, i) < 0) { Py_XDECREF(i); goto done; }
                Py_DECREF(i);
            } else {
                int64_t number = (int64_t)(first_line + index);
                if (buf_put(&numbers, &number, sizeof number) < 0) goto done;
                if (ps.unknown_key && buf_put(&unknown, &number, sizeof number) < 0) goto done;
            }
        }
        line = eol + 1;
    }
    static const int TABLE_START[] = {0, FIRST_STEP_COLUMN, FIRST_TOOL_COLUMN, N_COLUMNS};
    if ((columns = PyTuple_New(3)) == NULL) goto done;
    for (int t = 0; t < 3; t++) {
        PyObject *table = PyTuple_New(TABLE_START[t + 1] - TABLE_START[t]);
        if (table == NULL) goto done;
        PyTuple_SET_ITEM(columns, t, table);
        for (int k = TABLE_START[t]; k < TABLE_START[t + 1]; k++) {
            PyObject *item = column_tuple(&ps.cols[k]);
            if (item == NULL) goto done;
            PyTuple_SET_ITEM(table, k - TABLE_START[t], item);
        }
    }
    if ((numbers_obj = buf_take(&numbers)) == NULL) goto done;
    if ((unknown_obj = buf_take(&unknown)) == NULL) goto done;
    result = PyTuple_Pack(4, numbers_obj, left, columns, unknown_obj);
done:
    Py_XDECREF(numbers_obj);
    Py_XDECREF(unknown_obj);
    Py_XDECREF(left);
    Py_XDECREF(columns);
    buf_free(&numbers);
    buf_free(&unknown);
    parser_free(&ps);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef METHODS[] = {
    {"decode", decode, METH_VARARGS, decode_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_trace_columns",
    "Trace format v1 JSONL straight into column buffers (the fast path of "
    "aco_lab.trace_parser).",
    -1, METHODS,
};

static void set_key_lengths(Field *fields, int n_fields) {
    for (int k = 0; k < n_fields; k++) fields[k].key_length = strlen(fields[k].key);
}

PyMODINIT_FUNC PyInit__trace_columns(void) {
    set_key_lengths(TRACE_FIELDS, N_TRACE_FIELDS);
    set_key_lengths(STEP_FIELDS, N_STEP_FIELDS);
    set_key_lengths(MODEL_FIELDS, N_MODEL_FIELDS);
    set_key_lengths(TOOL_FIELDS, N_TOOL_FIELDS);
    return PyModule_Create(&MODULE);
}
