/* Objectives: the parser of the text syntax (documented in objective.h) and
 * the compiler that resolves parsed terms against a model into the device
 * operations objective_gpu.c records.
 *
 * The parser is recursive descent over the text with no separate lexer.
 * Every sub-expression appends its terms to one array, so the terms of a
 * sub-expression are always a contiguous range [start, end): scaling,
 * negating and batch binding act on that range, and a sum simply joins two
 * adjacent ranges. Non-goals: products of two objectives, constants added to
 * objectives (no gradient), Lucid's cossim_pow, objectives on any tensor but
 * the image for tv/l1/l2/blur. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "io/lvk_io.h"
#include "optvis/objective.h"

static const char *const k_term_names[] = {
    [LVK_TERM_CHANNEL] = "channel",     [LVK_TERM_NEURON] = "neuron",
    [LVK_TERM_LAYER] = "layer",         [LVK_TERM_DIRECTION] = "direction",
    [LVK_TERM_CLASS] = "class",         [LVK_TERM_GROUP] = "group",
    [LVK_TERM_DIVERSITY] = "diversity", [LVK_TERM_TV] = "tv",
    [LVK_TERM_L1] = "l1",               [LVK_TERM_L2] = "l2",
    [LVK_TERM_BLUR] = "blur",
};

const char *lvk_term_name(enum lvk_term_kind k)
{
    return (unsigned)k < LVK_ARRAY_LEN(k_term_names) ? k_term_names[k] : "?";
}

/* ---- parser ------------------------------------------------------------------------ */

struct parser {
    const char *text;
    const char *p;          /* current position */
    struct lvk_term *terms; /* every term parsed so far */
    int nterms, cap;
    int depth;              /* nesting of parentheses and signs */
    bool failed;
    lvk_status status;      /* of the first failure */
};

/* Deeper nesting than any sensible objective; bounds the recursion. */
#define MAX_DEPTH 200

/* What an expression evaluates to: a number, or the weighted terms
 * terms[start, end). */
struct val {
    bool is_num;
    double num;
    int start, end;
};

static int column(const struct parser *ps, const char *at) { return (int)(at - ps->text) + 1; }

/* "'x'" for the character at `at`, or "end of text". */
static const char *found(const char *at, char *buf, size_t len)
{
    if (!*at)
        return "end of text";
    snprintf(buf, len, "'%c'", *at);
    return buf;
}

/* Records the first failure only: later ones are consequences of it. */
static void __attribute__((format(printf, 3, 4)))
perr(struct parser *ps, const char *at, const char *fmt, ...)
{
    if (ps->failed)
        return;
    ps->failed = true;
    ps->status = LVK_ERR_INVALID_ARG;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Long texts are cut so that the message keeps the column and reason. */
    int len = (int)strlen(ps->text);
    lvk_fail(LVK_ERR_INVALID_ARG, "objective \"%.*s%s\": column %d: %s", len > 80 ? 77 : len,
             ps->text, len > 80 ? "..." : "", column(ps, at), msg);
}

/* "expected X, found Y" at the current position. */
static void expected(struct parser *ps, const char *what)
{
    char b[8];
    perr(ps, ps->p, "expected %s, found %s", what, found(ps->p, b, sizeof b));
}

static void oom(struct parser *ps)
{
    if (ps->failed)
        return;
    ps->failed = true;
    ps->status = lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
}

static void skip_ws(struct parser *ps)
{
    while (isspace((unsigned char)*ps->p))
        ps->p++;
}

/* Consumes `c` (after whitespace) if it is next. */
static bool accept(struct parser *ps, char c)
{
    skip_ws(ps);
    if (*ps->p != c)
        return false;
    ps->p++;
    return true;
}

static bool expect(struct parser *ps, char c, const char *what)
{
    if (accept(ps, c))
        return true;
    expected(ps, what);
    return false;
}

static char *dup_range(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* A non-negative integer (channel, position, image index). */
static bool parse_index(struct parser *ps, const char *what, int *out)
{
    skip_ws(ps);
    if (!isdigit((unsigned char)*ps->p)) {
        expected(ps, what);
        return false;
    }
    const char *start = ps->p;
    long v = 0;
    while (isdigit((unsigned char)*ps->p)) {
        v = v * 10 + (*ps->p++ - '0');
        if (v > 1000000000L) {
            perr(ps, start, "%s is too large", what);
            return false;
        }
    }
    *out = (int)v;
    return true;
}

/* A tensor name or file path: quoted ('...' or "...", no escapes) or bare
 * (up to ',', ')', a quote or whitespace). */
static char *parse_name(struct parser *ps, const char *what)
{
    skip_ws(ps);
    const char *start = ps->p;
    if (*ps->p == '\'' || *ps->p == '"') {
        char q = *ps->p++;
        const char *end = strchr(ps->p, q);
        if (!end) {
            perr(ps, start, "unterminated quote: expected a closing %c", q);
            return NULL;
        }
        if (end == ps->p) {
            perr(ps, start, "empty %s", what);
            return NULL;
        }
        char *s = dup_range(ps->p, (size_t)(end - ps->p));
        ps->p = end + 1;
        if (!s)
            oom(ps);
        return s;
    }
    while (*ps->p && !strchr(",()'\"", *ps->p) && !isspace((unsigned char)*ps->p))
        ps->p++;
    if (ps->p == start) {
        expected(ps, what);
        return NULL;
    }
    char *s = dup_range(start, (size_t)(ps->p - start));
    if (!s)
        oom(ps);
    return s;
}

/* ',' after a name argument; the hint covers the common mistake of an
 * unquoted name with spaces. */
static bool expect_after_name(struct parser *ps, const char *name, const char *what)
{
    skip_ws(ps);
    if (*ps->p == ',') {
        ps->p++;
        return true;
    }
    char b[8], e[320];
    snprintf(e, sizeof e, "expected ',' after the %s '%s', found %s%s", what, name,
             found(ps->p, b, sizeof b),
             *ps->p && *ps->p != ')' ? " (quote names that contain spaces)" : "");
    perr(ps, ps->p, "%s", e);
    return false;
}

static struct lvk_term *new_term(struct parser *ps, enum lvk_term_kind kind, const char *at)
{
    if (ps->nterms == ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 8;
        struct lvk_term *t = realloc(ps->terms, (size_t)cap * sizeof *t);
        if (!t) {
            oom(ps);
            return NULL;
        }
        ps->terms = t;
        ps->cap = cap;
    }
    struct lvk_term *t = &ps->terms[ps->nterms++];
    *t = (struct lvk_term){.kind = kind, .weight = 1.0, .batch = -1, .x = -1, .y = -1,
                           .col = column(ps, at)};
    return t;
}

/* group's channel list: items "n" or "a-b" separated by commas, optionally
 * inside [ ]. Stops before the closing ')'. */
static bool parse_channel_list(struct parser *ps, struct lvk_term *t)
{
    bool bracket = accept(ps, '[');
    for (;;) {
        int a, b;
        if (!parse_index(ps, "a channel index or range (a-b)", &a))
            return false;
        b = a;
        const char *range_at = ps->p;
        if (accept(ps, '-')) {
            if (!parse_index(ps, "the last channel of the range", &b))
                return false;
            if (b < a) {
                perr(ps, range_at, "empty channel range %d-%d: expected first <= last", a, b);
                return false;
            }
        }
        if (b - a > 1000000 - t->nchannels) {
            perr(ps, range_at, "too many channels in the group");
            return false;
        }
        int *c = realloc(t->channels, (size_t)(t->nchannels + b - a + 1) * sizeof *c);
        if (!c) {
            oom(ps);
            return false;
        }
        t->channels = c;
        for (int k = a; k <= b; k++)
            t->channels[t->nchannels++] = k;
        if (!accept(ps, ','))
            break;
    }
    if (bracket && !expect(ps, ']', "',' or ']' in the channel list"))
        return false;
    return true;
}

static struct val parse_sum(struct parser *ps);

/* The arguments of a term that takes them, after its '('. */
static bool parse_args(struct parser *ps, struct lvk_term *t)
{
    switch (t->kind) {
    case LVK_TERM_CHANNEL:
    case LVK_TERM_NEURON:
        if (!(t->tensor = parse_name(ps, "a tensor name")) ||
            !expect_after_name(ps, t->tensor, "tensor name") ||
            !parse_index(ps, "a channel index", &t->channel))
            return false;
        if (t->kind == LVK_TERM_NEURON && accept(ps, ',')) {
            if (!parse_index(ps, "the neuron's column x", &t->x) ||
                !expect(ps, ',', "',' and the neuron's row y") ||
                !parse_index(ps, "the neuron's row y", &t->y))
                return false;
        }
        return true;
    case LVK_TERM_LAYER:
    case LVK_TERM_DIVERSITY:
        return (t->tensor = parse_name(ps, "a tensor name")) != NULL;
    case LVK_TERM_DIRECTION:
        return (t->tensor = parse_name(ps, "a tensor name")) &&
               expect_after_name(ps, t->tensor, "tensor name") &&
               (t->path = parse_name(ps, "the .npy file of the direction vector"));
    case LVK_TERM_CLASS:
        if (!parse_index(ps, "a class index", &t->channel))
            return false;
        if (accept(ps, ','))
            return (t->tensor = parse_name(ps, "a tensor name")) != NULL;
        return true;
    case LVK_TERM_GROUP:
        return (t->tensor = parse_name(ps, "a tensor name")) &&
               expect_after_name(ps, t->tensor, "tensor name") && parse_channel_list(ps, t);
    default:
        return true; /* image terms: "tv()" */
    }
}

static bool kind_from_name(const char *s, size_t n, enum lvk_term_kind *k)
{
    static const struct {
        const char *name;
        enum lvk_term_kind kind;
    } names[] = {
        {"channel", LVK_TERM_CHANNEL},     {"neuron", LVK_TERM_NEURON},
        {"layer", LVK_TERM_LAYER},         {"deepdream", LVK_TERM_LAYER},
        {"direction", LVK_TERM_DIRECTION}, {"class", LVK_TERM_CLASS},
        {"group", LVK_TERM_GROUP},         {"diversity", LVK_TERM_DIVERSITY},
        {"tv", LVK_TERM_TV},               {"total_variation", LVK_TERM_TV},
        {"l1", LVK_TERM_L1},               {"l2", LVK_TERM_L2},
        {"blur", LVK_TERM_BLUR},
    };
    for (size_t i = 0; i < LVK_ARRAY_LEN(names); i++)
        if (strlen(names[i].name) == n && strncasecmp(names[i].name, s, n) == 0) {
            *k = names[i].kind;
            return true;
        }
    return false;
}

/* Binds terms[v.start, v.end) to image `b`. */
static void bind_batch(struct parser *ps, struct val v, int b, const char *at)
{
    for (int i = v.start; i < v.end; i++) {
        struct lvk_term *t = &ps->terms[i];
        if (t->kind == LVK_TERM_DIVERSITY) {
            perr(ps, ps->text + t->col - 1,
                 "diversity compares the images of a batch; it cannot be bound to image %d", b);
            return;
        }
        if (t->batch >= 0 && t->batch != b) {
            perr(ps, at, "a term already bound to image %d cannot also be bound to image %d",
                 t->batch, b);
            return;
        }
        t->batch = b;
    }
}

static const char k_terms_list[] =
    "a term (channel, neuron, layer, direction, class, group, diversity, tv, l1, l2, blur, batch)";

/* NUMBER | '(' sum ')' | name ['(' args ')'] | batch(i, sum). */
static struct val parse_primary(struct parser *ps)
{
    struct val v = {.start = ps->nterms, .end = ps->nterms};
    skip_ws(ps);
    const char *at = ps->p;
    if (isdigit((unsigned char)*at) || (*at == '.' && isdigit((unsigned char)at[1]))) {
        /* Decimal only: digits [. digits] [e [+-] digits]. Scanned here so
         * that strtod's hex and "inf" forms are not accepted. */
        const char *e = at;
        while (isdigit((unsigned char)*e))
            e++;
        if (*e == '.')
            for (e++; isdigit((unsigned char)*e); e++)
                ;
        if (*e == 'e' || *e == 'E') {
            const char *x = e + 1;
            if (*x == '+' || *x == '-')
                x++;
            if (isdigit((unsigned char)*x)) {
                while (isdigit((unsigned char)*x))
                    x++;
                e = x;
            }
        }
        char buf[64];
        if ((size_t)(e - at) >= sizeof buf) {
            perr(ps, at, "number too long");
            return v;
        }
        memcpy(buf, at, (size_t)(e - at));
        buf[e - at] = 0;
        errno = 0;
        double d = strtod(buf, NULL);
        if (errno || !isfinite(d)) {
            perr(ps, at, "number out of range");
            return v;
        }
        ps->p = e;
        v.is_num = true;
        v.num = d;
        return v;
    }
    if (accept(ps, '(')) {
        v = parse_sum(ps);
        if (!ps->failed)
            expect(ps, ')', "')' or an operator ('+', '-', '*', '/')");
        return v;
    }
    if (!isalpha((unsigned char)*at)) {
        expected(ps, k_terms_list);
        return v;
    }
    const char *name = at;
    while (isalnum((unsigned char)*ps->p) || *ps->p == '_')
        ps->p++;
    size_t n = (size_t)(ps->p - name);

    if (n == 5 && strncasecmp(name, "batch", 5) == 0) {
        int b;
        if (!expect(ps, '(', "'(' after batch") || !parse_index(ps, "an image index", &b) ||
            !expect(ps, ',', "',' after the image index"))
            return v;
        v = parse_sum(ps);
        if (ps->failed || !expect(ps, ')', "')' closing batch(...)"))
            return v;
        if (v.is_num) {
            perr(ps, at, "batch(%d, ...) holds no term", b);
            return v;
        }
        bind_batch(ps, v, b, at);
        return v;
    }

    enum lvk_term_kind kind;
    if (!kind_from_name(name, n, &kind)) {
        perr(ps, at, "unknown term '%.*s': expected %s", (int)n, name, k_terms_list);
        return v;
    }
    struct lvk_term *t = new_term(ps, kind, at);
    if (!t)
        return v;
    v.end = ps->nterms;
    if (lvk_term_on_image(kind)) {
        /* Regularisers take no arguments; "()" is optional. */
        if (accept(ps, '('))
            expect(ps, ')', "')': image terms take no arguments");
    } else {
        char what[64];
        snprintf(what, sizeof what, "'(' after %s", lvk_term_name(kind));
        if (!expect(ps, '(', what))
            return v;
        /* parse_args adds no terms, so t stays valid. */
        if (!parse_args(ps, t))
            return v;
        if (!ps->failed) {
            snprintf(what, sizeof what, "')' closing %s(...)", lvk_term_name(kind));
            expect(ps, ')', what);
        }
    }
    t->len = (int)(ps->p - at);
    return v;
}

/* primary ['@' INDEX] */
static struct val parse_postfix(struct parser *ps)
{
    struct val v = parse_primary(ps);
    if (ps->failed)
        return v;
    skip_ws(ps);
    const char *at = ps->p;
    if (accept(ps, '@')) {
        int b;
        if (!parse_index(ps, "an image index after '@'", &b))
            return v;
        if (v.is_num) {
            perr(ps, at, "'@%d' follows a number; it binds terms to an image", b);
            return v;
        }
        bind_batch(ps, v, b, at);
    }
    return v;
}

static void scale(struct parser *ps, struct val *v, double s)
{
    if (v->is_num)
        v->num *= s;
    else
        for (int i = v->start; i < v->end; i++)
            ps->terms[i].weight *= s;
}

/* ('-' | '+')* postfix. Every level of nesting passes here, so the depth
 * limit is checked here. */
static struct val parse_unary(struct parser *ps)
{
    struct val v = {.start = ps->nterms, .end = ps->nterms};
    skip_ws(ps);
    if (++ps->depth > MAX_DEPTH) {
        perr(ps, ps->p, "expression nested more than %d levels deep", MAX_DEPTH);
        return v;
    }
    if (accept(ps, '-')) {
        v = parse_unary(ps);
        scale(ps, &v, -1.0);
    } else if (accept(ps, '+')) {
        v = parse_unary(ps);
    } else {
        v = parse_postfix(ps);
    }
    ps->depth--;
    return v;
}

/* unary (('*' | '/') unary)* */
static struct val parse_product(struct parser *ps)
{
    struct val a = parse_unary(ps);
    while (!ps->failed) {
        skip_ws(ps);
        const char *op = ps->p;
        if (*op != '*' && *op != '/')
            break;
        ps->p++;
        skip_ws(ps);
        const char *rhs_at = ps->p;
        struct val b = parse_unary(ps);
        if (ps->failed)
            break;
        if (*op == '/') {
            if (!b.is_num) {
                perr(ps, rhs_at, "expected a number after '/': an objective can only be divided by a number");
                break;
            }
            if (b.num == 0.0) {
                perr(ps, rhs_at, "division by zero");
                break;
            }
            scale(ps, &a, 1.0 / b.num);
        } else if (a.is_num) {
            double s = a.num;
            a = b;
            scale(ps, &a, s);
        } else if (b.is_num) {
            scale(ps, &a, b.num);
        } else {
            perr(ps, op, "cannot multiply two objectives: one side of '*' must be a number");
            break;
        }
    }
    return a;
}

/* product (('+' | '-') product)* */
static struct val parse_sum(struct parser *ps)
{
    struct val a = parse_product(ps);
    while (!ps->failed) {
        skip_ws(ps);
        const char *op = ps->p;
        if (*op != '+' && *op != '-')
            break;
        ps->p++;
        struct val b = parse_product(ps);
        if (ps->failed)
            break;
        if (*op == '-')
            scale(ps, &b, -1.0);
        if (a.is_num && b.is_num) {
            a.num += b.num;
        } else if (a.is_num || b.is_num) {
            perr(ps, op, "cannot add a number to an objective: a constant has no gradient");
            break;
        } else {
            a.end = b.end; /* adjacent ranges: b was parsed right after a */
        }
    }
    return a;
}

static void free_terms(struct lvk_term *terms, int n)
{
    for (int i = 0; i < n; i++) {
        free(terms[i].tensor);
        free(terms[i].channels);
        free(terms[i].path);
    }
    free(terms);
}

lvk_status lvk_objective_parse(const char *text, struct lvk_objective **out)
{
    *out = NULL;
    if (!text)
        return lvk_fail(LVK_ERR_INVALID_ARG, "objective: no text");
    struct parser ps = {.text = text, .p = text};
    struct val v = parse_sum(&ps);
    if (!ps.failed) {
        skip_ws(&ps);
        if (*ps.p)
            expected(&ps, "an operator ('+', '-', '*', '/') or the end of the objective");
        else if (v.is_num || ps.nterms == 0)
            perr(&ps, text, "expected %s: the objective is a constant", k_terms_list);
    }
    if (ps.failed) {
        /* A term whose parse failed may hold partial allocations: free all. */
        free_terms(ps.terms, ps.nterms);
        return ps.status;
    }
    struct lvk_objective *o = lvk_calloc(1, sizeof *o);
    char *t = o ? dup_range(text, strlen(text)) : NULL;
    if (!o || !t) {
        free(o);
        free_terms(ps.terms, ps.nterms);
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    }
    o->text = t;
    o->terms = ps.terms;
    o->nterms = ps.nterms;
    *out = o;
    return LVK_OK;
}

void lvk_objective_destroy(struct lvk_objective *o)
{
    if (!o)
        return;
    free_terms(o->terms, o->nterms);
    free(o->text);
    free(o);
}

/* ---- tensors and binding ------------------------------------------------------------- */

/* Formats a failure of term t: 'objective term "channel(x, 9)" (column 3): ...'. */
static lvk_status __attribute__((format(printf, 4, 5)))
term_fail(const struct lvk_objective *o, const struct lvk_term *t, lvk_status s, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lvk_fail(s, "objective term \"%.*s\" (column %d): %s", t->len, o->text + t->col - 1,
                    t->col, msg);
}

static lvk_status unknown_tensor(const struct lvk_objective *o, const struct lvk_term *t,
                                 const struct lvk_model *m, const char *name)
{
    return term_fail(o, t, LVK_ERR_NOT_FOUND,
                     "%s has no tensor named '%s' (list them with 'lucidvk info %s')", m->path,
                     name, m->path);
}

/* The tensor a model term reads (class(k) without one: graph output 0). */
static const char *term_tensor(const struct lvk_term *t, const struct lvk_model *m)
{
    if (t->tensor)
        return t->tensor;
    return m ? lvk_model_output_name(m, 0) : NULL;
}

lvk_status lvk_objective_tensors(const struct lvk_objective *o, const struct lvk_model *m,
                                 const char **names, int max, int *count)
{
    int n = 0;
    *count = 0;
    for (int i = 0; i < o->nterms; i++) {
        const struct lvk_term *t = &o->terms[i];
        if (lvk_term_on_image(t->kind))
            continue;
        const char *name = term_tensor(t, m);
        if (!name)
            return term_fail(o, t, LVK_ERR_NOT_FOUND,
                             "class(%d) reads the model's first output, but %s; name the tensor: "
                             "class(%d, TENSOR)", t->channel,
                             m ? "the model has none" : "no model was given", t->channel);
        /* Checked here too, so that an unknown name is reported with its
         * term before the model is planned for it. */
        if (m && lvk_graph_find(m, name) < 0)
            return unknown_tensor(o, t, m, name);
        bool seen = false;
        for (int k = 0; k < n && !seen; k++)
            seen = strcmp(names[k], name) == 0;
        if (seen)
            continue;
        if (n == max)
            return lvk_fail(LVK_ERR_INVALID_ARG, "objective \"%s\" reads more than %d tensors",
                            o->text, max);
        names[n++] = name;
    }
    *count = n;
    return LVK_OK;
}

void lvk_objective_channels(const struct lvk_objective *o, const struct lvk_model *m,
                            const char *name, int64_t *lo, int64_t *hi)
{
    *lo = INT64_MAX;
    *hi = INT64_MIN;
    for (int i = 0; i < o->nterms; i++) {
        const struct lvk_term *t = &o->terms[i];
        const char *tn = lvk_term_on_image(t->kind) ? NULL : term_tensor(t, m);
        if (!tn || strcmp(tn, name) != 0)
            continue;
        switch (t->kind) {
        case LVK_TERM_CHANNEL:
        case LVK_TERM_NEURON:
        case LVK_TERM_CLASS:
            *lo = LVK_MIN(*lo, (int64_t)t->channel);
            *hi = LVK_MAX(*hi, (int64_t)t->channel + 1);
            break;
        case LVK_TERM_GROUP:
            for (int k = 0; k < t->nchannels; k++) {
                *lo = LVK_MIN(*lo, (int64_t)t->channels[k]);
                *hi = LVK_MAX(*hi, (int64_t)t->channels[k] + 1);
            }
            break;
        default:
            *lo = 0;
            *hi = INT64_MAX;
            return;
        }
    }
    if (*lo >= *hi) { /* no term reads it */
        *lo = 0;
        *hi = INT64_MAX;
    }
}

/* Resolves a model term's tensor; fills op->value, c, s and checks the
 * batch dimension and that the tensor has device data and a gradient. */
static lvk_status resolve_tensor(const struct lvk_objective *o, const struct lvk_term *t,
                                 struct lvk_model *m, int batch, struct lvk_objective_op *op)
{
    const char *name = term_tensor(t, m);
    if (!name)
        return term_fail(o, t, LVK_ERR_NOT_FOUND,
                         "the model has no graph output; name the tensor: class(%d, TENSOR)",
                         t->channel);
    int v = lvk_graph_find(m, name);
    if (v < 0)
        return unknown_tensor(o, t, m, name);
    const struct lvk_value *val = &m->values[v];
    char sh[128];
    lvk_shape_str(&val->shape, sh, sizeof sh);
    if (val->dtype != LVK_DTYPE_F32)
        return term_fail(o, t, LVK_ERR_UNSUPPORTED, "tensor '%s' is not float", name);
    if (val->shape.ndim < 2 || val->shape.ndim > 4)
        return term_fail(o, t, LVK_ERR_UNSUPPORTED,
                         "tensor '%s' %s: expected [B, C], [B, C, L] or [B, C, H, W]", name, sh);
    if (val->shape.d[0] != batch)
        return term_fail(o, t, LVK_ERR_UNSUPPORTED,
                         "tensor '%s' %s does not have the batch of %d images first", name, sh,
                         batch);
    if (!val->buf)
        return term_fail(o, t, LVK_ERR_INVALID_ARG,
                         "tensor '%s' is not computed: request the objective's tensors "
                         "(lvk_objective_tensors) as model outputs", name);
    if (!val->grad)
        return term_fail(o, t, LVK_ERR_INVALID_ARG,
                         "tensor '%s' has no gradient (%s)", name,
                         m->gradients ? "it does not depend on the input image"
                                      : "the model was loaded without gradients");
    int64_t s = 1;
    for (int d = 2; d < val->shape.ndim; d++)
        s *= val->shape.d[d];
    if (lvk_shape_count(&val->shape) > (int64_t)UINT32_MAX)
        return term_fail(o, t, LVK_ERR_UNSUPPORTED, "tensor '%s' %s is too large", name, sh);
    op->value = v;
    op->c = (uint32_t)val->shape.d[1];
    op->base = (uint32_t)val->channel_base;
    op->s = (uint32_t)s;
    op->p0 = 0;
    op->npos = op->s;
    op->power = 1;
    return LVK_OK;
}

/* A channel (or class, for class terms) index against the tensor's C. */
static lvk_status check_channel(const struct lvk_objective *o, const struct lvk_term *t,
                                const struct lvk_model *m, const struct lvk_objective_op *op, int c)
{
    if (c >= (int)op->base && (uint32_t)c - op->base < op->c)
        return LVK_OK;
    const struct lvk_value *val = &m->values[op->value];
    bool cls = t->kind == LVK_TERM_CLASS;
    char sh[128];
    return term_fail(o, t, LVK_ERR_INVALID_ARG, "%s %d out of range: tensor '%s' %s has %u %s (%u-%u)",
                     cls ? "class" : "channel", c, val->name,
                     lvk_shape_str(&val->shape, sh, sizeof sh), op->c, cls ? "classes" : "channels",
                     op->base, op->base + op->c - 1);
}

/* The neuron's position: explicit (x, y), or the centre as Lucid picks it
 * (size / 2 along each axis). */
static lvk_status neuron_position(const struct lvk_objective *o, const struct lvk_term *t,
                                  const struct lvk_model *m, struct lvk_objective_op *op)
{
    const struct lvk_value *val = &m->values[op->value];
    const struct lvk_shape *s = &val->shape;
    int64_t h = s->ndim == 4 ? s->d[2] : 1, w = s->ndim >= 3 ? s->d[s->ndim - 1] : 1;
    int64_t x = t->x >= 0 ? t->x : w / 2, y = t->y >= 0 ? t->y : h / 2;
    if (x >= w || y >= h) {
        char sh[128];
        lvk_shape_str(s, sh, sizeof sh);
        return term_fail(o, t, LVK_ERR_INVALID_ARG,
                         "position x=%lld, y=%lld out of range: tensor '%s' %s has %lld columns "
                         "and %lld rows", (long long)x, (long long)y, val->name, sh,
                         (long long)w, (long long)h);
    }
    op->p0 = (uint32_t)(y * w + x);
    op->npos = 1;
    return LVK_OK;
}

static lvk_status read_direction(const struct lvk_objective *o, const struct lvk_term *t,
                                 const struct lvk_model *m, struct lvk_objective_op *op)
{
    struct lvk_npy a = {0};
    lvk_status st = lvk_npy_read(t->path, &a);
    if (st != LVK_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", lvk_last_error());
        return term_fail(o, t, st == LVK_ERR_IO ? LVK_ERR_NOT_FOUND : st,
                         "cannot read the direction vector: %s", why);
    }
    if (a.count != op->c) {
        const struct lvk_value *val = &m->values[op->value];
        char sh[128];
        st = term_fail(o, t, LVK_ERR_INVALID_ARG,
                       "the direction vector in %s has %zu values, but tensor '%s' %s has %u "
                       "channels", t->path, a.count, val->name,
                       lvk_shape_str(&val->shape, sh, sizeof sh), op->c);
        lvk_npy_free(&a);
        return st;
    }
    for (uint32_t c = 0; c < op->c; c++)
        op->coef[c] = a.data[c];
    lvk_npy_free(&a);
    return LVK_OK;
}

/* Compiles term t into op (which starts zeroed). */
static lvk_status compile_term(const struct lvk_objective *o, const struct lvk_term *t,
                               struct lvk_model *m, int batch, struct lvk_objective_op *op)
{
    op->kind = t->kind;
    op->weight = (float)t->weight;
    op->value = -1;
    if (t->batch >= batch)
        return term_fail(o, t, LVK_ERR_INVALID_ARG, "image %d out of range: the batch has %d images",
                         t->batch, batch);
    op->b0 = t->batch >= 0 ? (uint32_t)t->batch : 0;
    op->nb = t->batch >= 0 ? 1 : (uint32_t)batch;
    if (lvk_term_on_image(t->kind))
        return LVK_OK;

    LVK_CHECK(resolve_tensor(o, t, m, batch, op));
    if (t->kind == LVK_TERM_DIVERSITY) {
        if (batch < 2)
            return term_fail(o, t, LVK_ERR_INVALID_ARG,
                             "diversity compares the images of a batch: it needs at least 2, not %d",
                             batch);
        if ((uint64_t)op->c * op->c * (uint64_t)batch > UINT32_MAX)
            return term_fail(o, t, LVK_ERR_UNSUPPORTED, "%u channels are too many for diversity",
                             op->c);
        return LVK_OK;
    }

    /* Every other model term is sum_c coef[c] * mean over the chosen
     * positions of T[b, c, p]^power. */
    op->coef = lvk_calloc(op->c, sizeof *op->coef);
    if (!op->coef)
        return LVK_ERR_HOST_OOM;
    switch (t->kind) {
    case LVK_TERM_CHANNEL:
    case LVK_TERM_CLASS:
        LVK_CHECK(check_channel(o, t, m, op, t->channel));
        op->coef[t->channel - op->base] = 1.0f;
        break;
    case LVK_TERM_NEURON:
        LVK_CHECK(check_channel(o, t, m, op, t->channel));
        op->coef[t->channel - op->base] = 1.0f;
        LVK_CHECK(neuron_position(o, t, m, op));
        break;
    case LVK_TERM_LAYER:
        /* Mean of squares over channels and positions. */
        for (uint32_t c = 0; c < op->c; c++)
            op->coef[c] = 1.0f / (float)op->c;
        op->power = 2;
        break;
    case LVK_TERM_GROUP:
        /* A channel listed twice counts twice, as in a sum of channel(). */
        for (int k = 0; k < t->nchannels; k++) {
            LVK_CHECK(check_channel(o, t, m, op, t->channels[k]));
            op->coef[t->channels[k] - op->base] += 1.0f;
        }
        break;
    case LVK_TERM_DIRECTION:
        LVK_CHECK(read_direction(o, t, m, op));
        break;
    default:
        LVK_ASSERT(!"unhandled term kind");
    }
    /* The value and gradient passes visit only the channels with coefficients. */
    uint32_t first = op->c, last = 0;
    for (uint32_t c = 0; c < op->c; c++)
        if (op->coef[c] != 0.0f) {
            first = LVK_MIN(first, c);
            last = c;
        }
    op->c0 = first < op->c ? first : 0;
    op->nc = first < op->c ? last - first + 1 : 0;
    return LVK_OK;
}

lvk_status lvk_objective_bind(struct lvk_objective *o, struct lvk_model *m, int batch,
                              int channels, int height, int width,
                              struct lvk_objective_gpu **out)
{
    *out = NULL;
    if (batch < 1 || channels < 1 || height < 1 || width < 1 ||
        (int64_t)batch * channels * height * width > (int64_t)UINT32_MAX)
        return lvk_fail(LVK_ERR_INVALID_ARG, "objective: bad image size %d x %d x %d x %d",
                        batch, channels, height, width);
    if (!m->planned)
        return lvk_fail(LVK_ERR_INVALID_ARG, "objective: the model is not finalized");
    struct lvk_objective_gpu *g = lvk_calloc(1, sizeof *g);
    if (!g)
        return LVK_ERR_HOST_OOM;
    g->ctx = m->ctx;
    g->m = m;
    g->batch = batch;
    g->channels = channels;
    g->height = height;
    g->width = width;
    lvk_status st = LVK_OK;
    g->ops = lvk_calloc((size_t)o->nterms, sizeof *g->ops);
    if (!g->ops) {
        st = LVK_ERR_HOST_OOM;
        goto fail;
    }
    for (int i = 0; i < o->nterms; i++) {
        g->nops = i + 1; /* so destroy frees this op's coefficients */
        LVK_TRY(st, compile_term(o, &o->terms[i], m, batch, &g->ops[i]));
        if (g->ops[i].value >= 0)
            LVK_TRY(st, lvk_graph_seed_target(m, g->ops[i].value));
    }
    LVK_TRY(st, lvk_objective_gpu_alloc(g));
    *out = g;
    return LVK_OK;
fail:
    lvk_objective_gpu_destroy(g);
    return st;
}
