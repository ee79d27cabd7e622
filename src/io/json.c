/* JSON: a strict recursive-descent parser into an lvk_json tree, and a
 * streaming pretty-printing writer.
 *
 * The parser follows RFC 8259 (no comments, no trailing commas, no NaN),
 * validates UTF-8, decodes escapes (surrogate pairs included) and bounds the
 * nesting depth so hostile input cannot exhaust the stack. Strings are C
 * strings, so "\u0000" is rejected rather than silently truncating. Numbers
 * go through strtod/snprintf and therefore assume the C numeric locale. */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "io/lvk_io.h"
#include "lvk_util.h"

#define MAX_DEPTH 256

/* Length of the valid UTF-8 sequence at p (at most n bytes available), or 0
 * for an invalid one: bad continuation, overlong form, UTF-16 surrogate, or
 * beyond U+10FFFF. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    uint32_t cp, min;
    size_t len;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xE0) == 0xC0) {
        len = 2, cp = p[0] & 0x1F, min = 0x80;
    } else if ((p[0] & 0xF0) == 0xE0) {
        len = 3, cp = p[0] & 0x0F, min = 0x800;
    } else if ((p[0] & 0xF8) == 0xF0) {
        len = 4, cp = p[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static size_t utf8_put(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- parser ----------------------------------------------------------------- */

struct parser {
    const char *start, *p, *end;
};

static lvk_status syntax(const struct parser *ps, const char *what)
{
    int line = 1, col = 1;
    for (const char *q = ps->start; q < ps->p; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    return lvk_fail(LVK_ERR_FORMAT, "JSON syntax error at line %d, column %d: %s", line, col,
                    what);
}

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int hex4(const char *p, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return 0;
        *v = (*v << 4) | (uint32_t)d;
    }
    return 1;
}

/* Decodes the \u escape(s) at ps->p (pointing at the backslash, `s` is the
 * closing quote) into a code point, joining a surrogate pair. */
static lvk_status unicode_escape(struct parser *ps, const char *s, uint32_t *cp)
{
    if (s - ps->p < 6 || !hex4(ps->p + 2, cp))
        return syntax(ps, "\\u needs four hex digits");
    if (*cp >= 0xDC00 && *cp <= 0xDFFF)
        return syntax(ps, "unpaired low surrogate");
    if (*cp >= 0xD800 && *cp <= 0xDBFF) {
        uint32_t lo;
        if (s - ps->p < 12 || ps->p[6] != '\\' || ps->p[7] != 'u' || !hex4(ps->p + 8, &lo) ||
            lo < 0xDC00 || lo > 0xDFFF)
            return syntax(ps, "unpaired high surrogate");
        *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
        ps->p += 6;
    }
    if (*cp == 0)
        return lvk_fail(LVK_ERR_UNSUPPORTED, "JSON: \\u0000 inside a string is not supported");
    ps->p += 6;
    return LVK_OK;
}

static lvk_status parse_string(struct parser *ps, char **out)
{
    ps->p++;
    /* Find the closing quote first: the decoded text is never longer than
     * the escaped one, so one allocation of that size suffices. */
    const char *s = ps->p;
    while (s < ps->end && *s != '"')
        s += (*s == '\\' && s + 1 < ps->end) ? 2 : 1;
    if (s >= ps->end)
        return syntax(ps, "unterminated string");
    char *buf = lvk_calloc((size_t)(s - ps->p) + 1, 1);
    if (!buf)
        return LVK_ERR_HOST_OOM;
    size_t n = 0;
    lvk_status st = LVK_OK;
    while (ps->p < s && st == LVK_OK) {
        unsigned char c = (unsigned char)*ps->p;
        if (c < 0x20) {
            st = syntax(ps, "control character in string");
        } else if (c != '\\') {
            size_t len = utf8_len((const unsigned char *)ps->p, (size_t)(s - ps->p));
            if (!len) {
                st = syntax(ps, "invalid UTF-8 in string");
            } else {
                memcpy(buf + n, ps->p, len);
                n += len;
                ps->p += len;
            }
        } else {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *e = strchr(from, ps->p[1]);
            if (ps->p[1] == 'u') {
                uint32_t cp = 0;
                st = unicode_escape(ps, s, &cp);
                if (st == LVK_OK)
                    n += utf8_put(buf + n, cp);
            } else if (e && *e) {
                buf[n++] = to[e - from];
                ps->p += 2;
            } else {
                st = syntax(ps, "invalid escape in string");
            }
        }
    }
    if (st != LVK_OK) {
        free(buf);
        return st;
    }
    buf[n] = 0;
    ps->p = s + 1;
    *out = buf;
    return LVK_OK;
}

static int is_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

static lvk_status parse_number(struct parser *ps, double *v)
{
    /* strtod accepts more than JSON (hex, "inf", leading '+', "1."), so the
     * grammar is checked here and strtod only converts. */
    const char *q = ps->p;
    if (q < ps->end && *q == '-')
        q++;
    if (!is_digit(q, ps->end))
        return syntax(ps, "invalid number");
    if (*q == '0')
        q++;
    else
        while (is_digit(q, ps->end))
            q++;
    if (q < ps->end && *q == '.') {
        if (!is_digit(++q, ps->end))
            return syntax(ps, "invalid number (digit expected after '.')");
        while (is_digit(q, ps->end))
            q++;
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < ps->end && (*q == '+' || *q == '-'))
            q++;
        if (!is_digit(q, ps->end))
            return syntax(ps, "invalid number (digit expected in exponent)");
        while (is_digit(q, ps->end))
            q++;
    }
    /* The input need not be NUL-terminated, so convert from a copy. */
    size_t n = (size_t)(q - ps->p);
    char small[64], *copy = n < sizeof small ? small : lvk_calloc(n + 1, 1);
    if (!copy)
        return LVK_ERR_HOST_OOM;
    memcpy(copy, ps->p, n);
    copy[n] = 0;
    *v = strtod(copy, NULL);
    if (copy != small)
        free(copy);
    if (isinf(*v))
        return syntax(ps, "number out of range");
    ps->p = q;
    return LVK_OK;
}

static int literal(struct parser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n))
        return 0;
    ps->p += n;
    return 1;
}

static lvk_status parse_value(struct parser *ps, int depth, struct lvk_json **out);

/* Array or object body after the opening bracket; children are appended in
 * order to `node`, which the caller frees on failure. */
static lvk_status parse_container(struct parser *ps, int depth, struct lvk_json *node)
{
    int object = node->type == LVK_JSON_OBJECT;
    char close = object ? '}' : ']';
    if (depth >= MAX_DEPTH)
        return syntax(ps, "nesting deeper than 256 levels");
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return LVK_OK;
    }
    struct lvk_json **tail = &node->child;
    for (;;) {
        char *key = NULL;
        skip_ws(ps);
        if (object) {
            if (ps->p >= ps->end || *ps->p != '"')
                return syntax(ps, "expected a member name");
            LVK_CHECK(parse_string(ps, &key));
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                free(key);
                return syntax(ps, "expected ':'");
            }
            ps->p++;
        }
        struct lvk_json *child;
        lvk_status st = parse_value(ps, depth + 1, &child);
        if (st != LVK_OK) {
            free(key);
            return st;
        }
        child->key = key;
        *tail = child;
        tail = &child->next;
        node->count++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return LVK_OK;
        }
        return syntax(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static lvk_status parse_value(struct parser *ps, int depth, struct lvk_json **out)
{
    *out = NULL;
    skip_ws(ps);
    if (ps->p >= ps->end)
        return syntax(ps, "unexpected end of input");
    struct lvk_json *node = lvk_calloc(1, sizeof *node);
    if (!node)
        return LVK_ERR_HOST_OOM;
    lvk_status st = LVK_OK;
    char c = *ps->p;
    if (c == '{' || c == '[') {
        node->type = c == '{' ? LVK_JSON_OBJECT : LVK_JSON_ARRAY;
        st = parse_container(ps, depth, node);
    } else if (c == '"') {
        node->type = LVK_JSON_STRING;
        st = parse_string(ps, &node->string);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        node->type = LVK_JSON_NUMBER;
        st = parse_number(ps, &node->number);
    } else if (literal(ps, "true")) {
        node->type = LVK_JSON_BOOL;
        node->number = 1;
    } else if (literal(ps, "false")) {
        node->type = LVK_JSON_BOOL;
    } else if (literal(ps, "null")) {
        node->type = LVK_JSON_NULL;
    } else {
        st = syntax(ps, "unexpected character");
    }
    if (st != LVK_OK) {
        lvk_json_free(node);
        return st;
    }
    *out = node;
    return LVK_OK;
}

lvk_status lvk_json_parse(const char *text, size_t len, struct lvk_json **out)
{
    *out = NULL;
    struct parser ps = {text, text, text + len};
    /* RFC 8259 lets parsers ignore a byte order mark; editors add one. */
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
        ps.p += 3;
    struct lvk_json *root;
    LVK_CHECK(parse_value(&ps, 0, &root));
    skip_ws(&ps);
    if (ps.p != ps.end) {
        lvk_json_free(root);
        return syntax(&ps, "trailing characters after the document");
    }
    *out = root;
    return LVK_OK;
}

lvk_status lvk_json_read(const char *path, struct lvk_json **out)
{
    *out = NULL;
    uint8_t *text;
    size_t len;
    LVK_CHECK(lvk_read_file(path, &text, &len));
    lvk_status st = lvk_json_parse((const char *)text, len, out);
    if (st != LVK_OK)
        lvk_error_prefix("%s: ", path);
    free(text);
    return st;
}

void lvk_json_free(struct lvk_json *j)
{
    if (!j)
        return;
    /* Recursion depth is bounded by MAX_DEPTH; siblings are walked in a
     * loop so long arrays do not recurse. */
    struct lvk_json *c = j->child;
    while (c) {
        struct lvk_json *next = c->next;
        c->next = NULL;
        lvk_json_free(c);
        c = next;
    }
    free(j->key);
    free(j->string);
    free(j);
}

const struct lvk_json *lvk_json_get(const struct lvk_json *obj, const char *key)
{
    if (!obj || obj->type != LVK_JSON_OBJECT)
        return NULL;
    for (const struct lvk_json *c = obj->child; c; c = c->next)
        if (!strcmp(c->key, key))
            return c;
    return NULL;
}

const struct lvk_json *lvk_json_at(const struct lvk_json *arr, size_t i)
{
    if (!arr || arr->type != LVK_JSON_ARRAY || i >= arr->count)
        return NULL;
    const struct lvk_json *c = arr->child;
    while (i--)
        c = c->next;
    return c;
}

/* ---- writer ----------------------------------------------------------------- */

static void put(struct lvk_jw *w, const char *s, size_t n)
{
    if (w->failed)
        return;
    if (w->cap - w->len <= n) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap - w->len <= n) {
            if (cap > SIZE_MAX / 2) {
                w->failed = 1;
                return;
            }
            cap *= 2;
        }
        char *buf = realloc(w->buf, cap);
        if (!buf) {
            w->failed = 1;
            return;
        }
        w->buf = buf;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = 0;
}

static void newline(struct lvk_jw *w)
{
    put(w, "\n", 1);
    for (int i = 0; i < w->depth; i++)
        put(w, "  ", 2);
}

/* Separator before any value or key: nothing right after a key, else a comma
 * after a previous sibling and a new indented line inside a container. */
static void before_value(struct lvk_jw *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->need_comma)
        put(w, ",", 1);
    if (w->depth > 0)
        newline(w);
}

static void put_string(struct lvk_jw *w, const char *s)
{
    put(w, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
    while (left) {
        size_t run = 0;
        while (run < left && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        put(w, (const char *)p, run);
        p += run;
        left -= run;
        if (!left)
            break;
        char esc[8];
        size_t len = 1;
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\', esc[1] = (char)*p;
            put(w, esc, 2);
        } else if (*p < 0x20) {
            static const char short_esc[] = "btn\0fr"; /* for \b \t \n \v \f \r */
            if (*p >= '\b' && *p <= '\r' && short_esc[*p - '\b']) {
                esc[0] = '\\', esc[1] = short_esc[*p - '\b'];
                put(w, esc, 2);
            } else {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                put(w, esc, 6);
            }
        } else if ((len = utf8_len(p, left)) != 0) {
            put(w, (const char *)p, len);
        } else {
            /* Invalid UTF-8 would make the document unreadable, so the bad
             * byte becomes U+FFFD instead. */
            len = 1;
            put(w, "\\ufffd", 6);
        }
        p += len;
        left -= len;
    }
    put(w, "\"", 1);
}

void lvk_jw_begin_object(struct lvk_jw *w)
{
    before_value(w);
    put(w, "{", 1);
    w->depth++;
    w->need_comma = 0;
}

static void end_container(struct lvk_jw *w, const char *close)
{
    LVK_ASSERT(w->depth > 0 && !w->after_key);
    w->depth--;
    if (w->need_comma)
        newline(w);
    put(w, close, 1);
    w->need_comma = 1;
}

void lvk_jw_end_object(struct lvk_jw *w)
{
    end_container(w, "}");
}

void lvk_jw_begin_array(struct lvk_jw *w)
{
    before_value(w);
    put(w, "[", 1);
    w->depth++;
    w->need_comma = 0;
}

void lvk_jw_end_array(struct lvk_jw *w)
{
    end_container(w, "]");
}

void lvk_jw_key(struct lvk_jw *w, const char *key)
{
    LVK_ASSERT(key && !w->after_key);
    before_value(w);
    put_string(w, key);
    put(w, ": ", 2);
    w->after_key = 1;
}

void lvk_jw_null(struct lvk_jw *w)
{
    before_value(w);
    put(w, "null", 4);
    w->need_comma = 1;
}

void lvk_jw_string(struct lvk_jw *w, const char *s)
{
    if (!s) {
        lvk_jw_null(w);
        return;
    }
    before_value(w);
    put_string(w, s);
    w->need_comma = 1;
}

void lvk_jw_number(struct lvk_jw *w, double v)
{
    /* JSON has no NaN or infinity; null is what JavaScript writes too, and a
     * report with one missing metric beats a failed report. */
    if (!isfinite(v)) {
        lvk_jw_null(w);
        return;
    }
    /* Only a double is passed in, so a value that is exactly a float is taken
     * to be one: 9 digits bring back the same float (and read better than
     * 17). Integers are exempt: %.17g keeps them exact as doubles and prints
     * small ones without an exponent. */
    char b[40];
    if (v != trunc(v) && fabs(v) <= FLT_MAX && (double)(float)v == v)
        snprintf(b, sizeof b, "%.9g", v);
    else
        snprintf(b, sizeof b, "%.17g", v);
    before_value(w);
    put(w, b, strlen(b));
    w->need_comma = 1;
}

void lvk_jw_int(struct lvk_jw *w, int64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%" PRId64, v);
    before_value(w);
    put(w, b, strlen(b));
    w->need_comma = 1;
}

void lvk_jw_bool(struct lvk_jw *w, int v)
{
    before_value(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
    w->need_comma = 1;
}

lvk_status lvk_jw_write(struct lvk_jw *w, const char *path)
{
    lvk_status st;
    if (!w->failed && (w->depth != 0 || w->after_key || w->len == 0)) {
        st = lvk_fail(LVK_ERR_INVALID_ARG, "%s: incomplete JSON document", path);
    } else {
        put(w, "\n", 1);
        if (w->failed)
            st = lvk_fail(LVK_ERR_HOST_OOM, "%s: out of host memory while writing JSON", path);
        else
            st = lvk_write_file_atomic(path, w->buf, w->len);
    }
    lvk_jw_free(w);
    return st;
}

void lvk_jw_free(struct lvk_jw *w)
{
    free(w->buf);
    memset(w, 0, sizeof *w);
}
