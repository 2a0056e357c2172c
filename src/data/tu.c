/* TU dataset loader: the raw text files of one dataset folder into graphs
 * with PyG-style features (format: shared/data/tu/README.md). */
#include "plstm/tu.h"
#include "core/status_internal.h"

#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- text files ----------------------------------------------------------- */

typedef struct text {
    char *buf;
    size_t len;
    char file[160]; /* file name for messages */
} text;

/* Reads DIR/NAME_SUFFIX.txt. Missing: IO error if required, else *present = 0. */
static plstm_status read_text(const char *dir, const char *name, const char *suffix,
                              int required, text *t, int *present)
{
    char path[4096];
    memset(t, 0, sizeof *t);
    snprintf(t->file, sizeof t->file, "%s_%s.txt", name, suffix);
    if (snprintf(path, sizeof path, "%s/%s", dir, t->file) >= (int)sizeof path)
        return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "tu: path too long: %s", dir);
    if (present)
        *present = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (!required && errno == ENOENT)
            return PLSTM_OK;
        return plstm_fail(PLSTM_ERR_IO, "tu: cannot open %s: %s", path, strerror(errno));
    }
    plstm_status st = PLSTM_OK;
    size_t cap = 1 << 16;
    t->buf = malloc(cap + 1);
    while (t->buf) {
        size_t got = fread(t->buf + t->len, 1, cap - t->len, f);
        t->len += got;
        if (t->len < cap)
            break;
        char *nb = realloc(t->buf, 2 * cap + 1);
        if (!nb) {
            free(t->buf);
            t->buf = NULL;
        } else {
            t->buf = nb;
            cap *= 2;
        }
    }
    if (!t->buf)
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "tu: cannot read %s into memory", path);
    else if (ferror(f))
        st = plstm_fail(PLSTM_ERR_IO, "tu: error reading %s", path);
    else
        t->buf[t->len] = '\0';
    fclose(f);
    if (st == PLSTM_OK && present)
        *present = 1;
    return st;
}

/* Lines of a file: LF separated, a trailing CR is dropped, the final newline
 * is optional. */
typedef struct line_it {
    const char *p, *end;
    int64_t lineno;
} line_it;

static int next_line(line_it *it, const char **s, const char **e)
{
    if (it->p >= it->end)
        return 0;
    const char *nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
    *s = it->p;
    *e = nl ? nl : it->end;
    it->p = nl ? nl + 1 : it->end;
    if (*e > *s && (*e)[-1] == '\r')
        (*e)--;
    it->lineno++;
    return 1;
}

static int64_t count_lines(const text *t)
{
    line_it it = {t->buf, t->buf + t->len, 0};
    const char *s, *e;
    int64_t n = 0;
    while (next_line(&it, &s, &e))
        n++;
    return n;
}

static plstm_status line_error(const text *t, int64_t lineno, const char *s, const char *e,
                               const char *what)
{
    int n = (int)(e - s > 40 ? 40 : e - s);
    return plstm_fail(PLSTM_ERR_FORMAT, "tu: %s line %lld: %s, got '%.*s%s'", t->file,
                      (long long)lineno, what, n, s, e - s > 40 ? "..." : "");
}

static int is_space(char c) { return c == ' ' || c == '\t'; }

/* One integer filling [s, e) up to surrounding blanks. */
static int parse_int(const char *s, const char *e, int64_t *v)
{
    while (s < e && is_space(*s))
        s++;
    while (e > s && is_space(e[-1]))
        e--;
    int neg = 0;
    if (s < e && (*s == '-' || *s == '+'))
        neg = *s++ == '-';
    if (s == e)
        return 0;
    int64_t x = 0;
    for (; s < e; s++) {
        if (*s < '0' || *s > '9' || x > (INT64_MAX - 9) / 10)
            return 0;
        x = 10 * x + (*s - '0');
    }
    *v = neg ? -x : x;
    return 1;
}

static int parse_real(const char *s, const char *e, double *v)
{
    char tok[64];
    while (s < e && is_space(*s))
        s++;
    while (e > s && is_space(e[-1]))
        e--;
    if (s == e || e - s >= (ptrdiff_t)sizeof tok)
        return 0;
    memcpy(tok, s, (size_t)(e - s));
    tok[e - s] = '\0';
    char *end;
    errno = 0;
    *v = strtod(tok, &end);
    return *end == '\0' && errno == 0 && isfinite(*v);
}

/* A file of `cols` comma-separated integers per line, exactly `expect` lines
 * (-1: any). out[lines][cols]. */
static plstm_status parse_int_file(const text *t, int cols, int64_t expect, const char *expect_why,
                                   int64_t **out, int64_t *lines)
{
    const int64_t n = count_lines(t);
    if (expect >= 0 && n != expect)
        return plstm_fail(PLSTM_ERR_FORMAT, "tu: %s has %lld lines, expected %lld (%s)", t->file,
                          (long long)n, (long long)expect, expect_why);
    *out = calloc((size_t)(n * cols > 0 ? n * cols : 1), sizeof **out);
    if (!*out)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "tu: cannot allocate %s", t->file);
    line_it it = {t->buf, t->buf + t->len, 0};
    const char *s, *e;
    for (int64_t i = 0; next_line(&it, &s, &e); i++) {
        const char *f = s;
        for (int c = 0; c < cols; c++) {
            const char *comma = c + 1 < cols ? memchr(f, ',', (size_t)(e - f)) : e;
            if (!comma || !parse_int(f, comma, &(*out)[i * cols + c]))
                return line_error(t, it.lineno, s, e,
                                  cols == 1 ? "expected one integer"
                                            : "expected two comma-separated integers");
            f = comma + 1;
        }
    }
    *lines = n;
    return PLSTM_OK;
}

/* Node attributes: the same number of comma-separated reals on each of n lines. */
static plstm_status parse_attr_file(const text *t, int64_t n, double **out, int64_t *cols)
{
    const int64_t lines = count_lines(t);
    if (lines != n)
        return plstm_fail(PLSTM_ERR_FORMAT, "tu: %s has %lld lines, expected %lld (one per node)",
                          t->file, (long long)lines, (long long)n);
    line_it it = {t->buf, t->buf + t->len, 0};
    const char *s, *e;
    *cols = 0;
    if (n > 0 && next_line(&it, &s, &e)) {
        *cols = 1;
        for (const char *c = s; c < e; c++)
            *cols += *c == ',';
    }
    *out = calloc((size_t)(n * *cols > 0 ? n * *cols : 1), sizeof **out);
    if (!*out)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "tu: cannot allocate %s", t->file);
    it = (line_it){t->buf, t->buf + t->len, 0};
    for (int64_t i = 0; next_line(&it, &s, &e); i++) {
        const char *f = s;
        for (int64_t c = 0; c < *cols; c++) {
            const char *comma = c + 1 < *cols ? memchr(f, ',', (size_t)(e - f)) : e;
            if (!comma || !parse_real(f, comma, &(*out)[i * *cols + c])) {
                char what[96];
                snprintf(what, sizeof what, "expected %lld comma-separated finite numbers",
                         (long long)*cols);
                return line_error(t, it.lineno, s, e, what);
            }
            f = comma + 1;
        }
    }
    return PLSTM_OK;
}

/* ---- assembly --------------------------------------------------------------- */

void plstm_tu_destroy(plstm_tu_dataset *ds)
{
    if (!ds)
        return;
    free(ds->label);
    free(ds->class_value);
    free(ds->node_off);
    free(ds->edge_off);
    free(ds->edges);
    free(ds->degree);
    free(ds->x);
    free(ds->edge_attr);
    free(ds);
}

static int cmp_i64(const void *a, const void *b)
{
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

typedef struct bond {
    int64_t lo, hi, label, line;
} bond;

static int cmp_bond(const void *a, const void *b)
{
    const bond *x = a, *y = b;
    if (x->lo != y->lo)
        return x->lo < y->lo ? -1 : 1;
    if (x->hi != y->hi)
        return x->hi < y->hi ? -1 : 1;
    return (x->line > y->line) - (x->line < y->line);
}

/* Classes = sorted distinct graph labels; label = class index. */
static plstm_status build_classes(plstm_tu_dataset *ds, const int64_t *raw)
{
    const int64_t G = ds->num_graphs;
    int64_t *sorted = malloc((size_t)(G > 0 ? G : 1) * sizeof *sorted);
    ds->label = calloc((size_t)(G > 0 ? G : 1), sizeof *ds->label);
    ds->class_value = calloc((size_t)(G > 0 ? G : 1), sizeof *ds->class_value);
    if (!sorted || !ds->label || !ds->class_value) {
        free(sorted);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "tu: cannot allocate labels");
    }
    memcpy(sorted, raw, (size_t)G * sizeof *sorted);
    qsort(sorted, (size_t)G, sizeof *sorted, cmp_i64);
    int64_t C = 0;
    for (int64_t i = 0; i < G; i++)
        if (i == 0 || sorted[i] != sorted[i - 1])
            ds->class_value[C++] = sorted[i];
    ds->num_classes = C;
    for (int64_t g = 0; g < G; g++) {
        const int64_t *p = bsearch(&raw[g], ds->class_value, (size_t)C, sizeof *p, cmp_i64);
        ds->label[g] = p - ds->class_value;
    }
    free(sorted);
    return PLSTM_OK;
}

/* node_off from the graph indicator (ids 1..G, non-decreasing, none empty). */
static plstm_status build_nodes(plstm_tu_dataset *ds, const text *t, const int64_t *ind)
{
    const int64_t G = ds->num_graphs, N = ds->num_nodes;
    ds->node_off = calloc((size_t)(G + 1), sizeof *ds->node_off);
    if (!ds->node_off)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "tu: cannot allocate the graph index");
    for (int64_t i = 0; i < N; i++) {
        if (ind[i] < 1 || ind[i] > G)
            return plstm_fail(PLSTM_ERR_FORMAT, "tu: %s line %lld: graph id %lld out of range "
                              "[1, %lld] (the number of graph labels)",
                              t->file, (long long)(i + 1), (long long)ind[i], (long long)G);
        if (i > 0 && ind[i] < ind[i - 1])
            return plstm_fail(PLSTM_ERR_FORMAT, "tu: %s line %lld: graph id %lld after %lld; "
                              "each graph's nodes must be one block in order",
                              t->file, (long long)(i + 1), (long long)ind[i],
                              (long long)ind[i - 1]);
        ds->node_off[ind[i]]++;
    }
    for (int64_t g = 0; g < G; g++) {
        if (ds->node_off[g + 1] == 0)
            return plstm_fail(PLSTM_ERR_FORMAT, "tu: %s: graph id %lld has no nodes", t->file,
                              (long long)(g + 1));
        ds->node_off[g + 1] += ds->node_off[g];
    }
    return PLSTM_OK;
}

/* Undirected edges from the _A lines (1-based global ids), merged and sorted. */
static plstm_status build_edges(plstm_tu_dataset *ds, const text *ta, const int64_t *A,
                                int64_t m, const int64_t *ind, const text *tl,
                                const int64_t *elab)
{
    const int64_t N = ds->num_nodes, G = ds->num_graphs;
    bond *b = calloc((size_t)(m > 0 ? m : 1), sizeof *b);
    if (!b)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "tu: cannot allocate %lld edges", (long long)m);
    int64_t nb = 0;
    plstm_status st = PLSTM_OK;
    for (int64_t i = 0; i < m; i++) {
        const int64_t u = A[2 * i], v = A[2 * i + 1];
        if (u < 1 || u > N || v < 1 || v > N) {
            st = plstm_fail(PLSTM_ERR_FORMAT, "tu: %s line %lld: node id out of range [1, %lld] "
                            "in (%lld, %lld)", ta->file, (long long)(i + 1), (long long)N,
                            (long long)u, (long long)v);
            goto done;
        }
        if (ind[u - 1] != ind[v - 1]) {
            st = plstm_fail(PLSTM_ERR_FORMAT, "tu: %s line %lld: edge (%lld, %lld) joins graphs "
                            "%lld and %lld", ta->file, (long long)(i + 1), (long long)u,
                            (long long)v, (long long)ind[u - 1], (long long)ind[v - 1]);
            goto done;
        }
        if (u == v)
            continue; /* PyG removes self-loops */
        b[nb++] = (bond){(u < v ? u : v) - 1, (u < v ? v : u) - 1, elab ? elab[i] : 0, i + 1};
    }
    qsort(b, (size_t)nb, sizeof *b, cmp_bond);
    int64_t E = 0;
    for (int64_t i = 0; i < nb; i++) {
        if (E > 0 && b[E - 1].lo == b[i].lo && b[E - 1].hi == b[i].hi) {
            if (b[E - 1].label != b[i].label) {
                st = plstm_fail(PLSTM_ERR_FORMAT, "tu: %s lines %lld and %lld: the bond (%lld, "
                                "%lld) has labels %lld and %lld", tl->file,
                                (long long)b[E - 1].line, (long long)b[i].line,
                                (long long)b[i].lo + 1, (long long)b[i].hi + 1,
                                (long long)b[E - 1].label, (long long)b[i].label);
                goto done;
            }
            continue;
        }
        b[E++] = b[i];
    }
    ds->num_edges = E;
    ds->edges = calloc((size_t)(2 * E > 0 ? 2 * E : 1), sizeof *ds->edges);
    ds->edge_off = calloc((size_t)(G + 1), sizeof *ds->edge_off);
    ds->degree = calloc((size_t)(N > 0 ? N : 1), sizeof *ds->degree);
    if (!ds->edges || !ds->edge_off || !ds->degree) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "tu: cannot allocate %lld edges", (long long)E);
        goto done;
    }
    int64_t emin = 0, emax = -1;
    for (int64_t i = 0; i < E; i++) {
        const int64_t g = ind[b[i].lo] - 1, n0 = ds->node_off[g];
        ds->edge_off[g + 1]++;
        ds->edges[2 * i] = b[i].lo - n0;
        ds->edges[2 * i + 1] = b[i].hi - n0;
        ds->degree[b[i].lo]++;
        ds->degree[b[i].hi]++;
        if (i == 0 || b[i].label < emin)
            emin = b[i].label;
        if (i == 0 || b[i].label > emax)
            emax = b[i].label;
    }
    for (int64_t g = 0; g < G; g++)
        ds->edge_off[g + 1] += ds->edge_off[g];
    if (elab && E > 0) {
        if (emax - emin >= 4096) {
            st = plstm_fail(PLSTM_ERR_FORMAT, "tu: %s: edge labels span %lld..%lld, too many "
                            "for a one-hot encoding", tl->file, (long long)emin, (long long)emax);
            goto done;
        }
        ds->edge_dim = emax - emin + 1;
        ds->edge_attr = calloc((size_t)(E * ds->edge_dim), sizeof *ds->edge_attr);
        if (!ds->edge_attr) {
            st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "tu: cannot allocate edge features");
            goto done;
        }
        for (int64_t i = 0; i < E; i++)
            ds->edge_attr[i * ds->edge_dim + (b[i].label - emin)] = 1.0;
    }
done:
    free(b);
    return st;
}

/* x = [attributes, one_hot(node label - min)] or a constant 1. */
static plstm_status build_x(plstm_tu_dataset *ds, const text *tn, const int64_t *nlab,
                            const double *attr)
{
    const int64_t N = ds->num_nodes;
    int64_t lmin = 0, lmax = -1;
    for (int64_t i = 0; nlab && i < N; i++) {
        if (i == 0 || nlab[i] < lmin)
            lmin = nlab[i];
        if (i == 0 || nlab[i] > lmax)
            lmax = nlab[i];
    }
    if (nlab && lmax - lmin >= 4096)
        return plstm_fail(PLSTM_ERR_FORMAT, "tu: %s: node labels span %lld..%lld, too many for "
                          "a one-hot encoding", tn->file, (long long)lmin, (long long)lmax);
    ds->num_node_labels = nlab && N > 0 ? lmax - lmin + 1 : 0;
    ds->node_dim = ds->num_node_attr + ds->num_node_labels;
    const int constant = ds->node_dim == 0;
    if (constant)
        ds->node_dim = 1;
    const int64_t D = ds->node_dim;
    ds->x = calloc((size_t)(N * D > 0 ? N * D : 1), sizeof *ds->x);
    if (!ds->x)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "tu: cannot allocate node features");
    for (int64_t i = 0; i < N; i++) {
        double *row = ds->x + i * D;
        if (constant) {
            row[0] = 1.0;
            continue;
        }
        for (int64_t c = 0; c < ds->num_node_attr; c++)
            row[c] = attr[i * ds->num_node_attr + c];
        if (nlab)
            row[ds->num_node_attr + (nlab[i] - lmin)] = 1.0;
    }
    return PLSTM_OK;
}

plstm_status plstm_tu_load(plstm_tu_dataset **out, const char *dir)
{
    PLSTM_CHECK_ARG(out && dir, "tu: NULL argument");
    *out = NULL;
    /* NAME = last path component of dir. */
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    size_t ns = dl;
    while (ns > 0 && dir[ns - 1] != '/')
        ns--;
    PLSTM_CHECK_ARG(dl > ns && dl - ns < 64, "tu: cannot take a dataset name from '%s'", dir);
    char name[64], folder[4096];
    memcpy(name, dir + ns, dl - ns);
    name[dl - ns] = '\0';
    PLSTM_CHECK_ARG(dl < sizeof folder, "tu: path too long");
    memcpy(folder, dir, dl);
    folder[dl] = '\0';

    text tg = {0}, ti = {0}, ta = {0}, tn = {0}, te = {0}, tt = {0};
    int64_t *graph_lab = NULL, *ind = NULL, *A = NULL, *nlab = NULL, *elab = NULL;
    double *attr = NULL;
    int has_nl = 0, has_el = 0, has_at = 0;
    int64_t G = 0, N = 0, m = 0, cnt = 0;
    plstm_tu_dataset *ds = calloc(1, sizeof *ds);
    plstm_status st = PLSTM_OK;
    if (!ds) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "tu: cannot allocate the dataset");
        goto done;
    }
    snprintf(ds->name, sizeof ds->name, "%s", name);
    if ((st = read_text(folder, name, "graph_labels", 1, &tg, NULL)) != PLSTM_OK ||
        (st = read_text(folder, name, "graph_indicator", 1, &ti, NULL)) != PLSTM_OK ||
        (st = read_text(folder, name, "A", 1, &ta, NULL)) != PLSTM_OK ||
        (st = read_text(folder, name, "node_labels", 0, &tn, &has_nl)) != PLSTM_OK ||
        (st = read_text(folder, name, "edge_labels", 0, &te, &has_el)) != PLSTM_OK ||
        (st = read_text(folder, name, "node_attributes", 0, &tt, &has_at)) != PLSTM_OK)
        goto done;
    if ((st = parse_int_file(&tg, 1, -1, "", &graph_lab, &G)) != PLSTM_OK)
        goto done;
    if (G == 0) {
        st = plstm_fail(PLSTM_ERR_FORMAT, "tu: %s is empty", tg.file);
        goto done;
    }
    ds->num_graphs = G;
    if ((st = build_classes(ds, graph_lab)) != PLSTM_OK ||
        (st = parse_int_file(&ti, 1, -1, "", &ind, &N)) != PLSTM_OK)
        goto done;
    ds->num_nodes = N;
    if ((st = build_nodes(ds, &ti, ind)) != PLSTM_OK)
        goto done;
    if (has_nl && (st = parse_int_file(&tn, 1, N, "one per node, as the graph indicator", &nlab,
                                       &cnt)) != PLSTM_OK)
        goto done;
    if (has_at && (st = parse_attr_file(&tt, N, &attr, &ds->num_node_attr)) != PLSTM_OK)
        goto done;
    if ((st = parse_int_file(&ta, 2, -1, "", &A, &m)) != PLSTM_OK)
        goto done;
    if (has_el && (st = parse_int_file(&te, 1, m, "one per line of the _A file", &elab, &cnt)) !=
                      PLSTM_OK)
        goto done;
    if ((st = build_edges(ds, &ta, A, m, ind, &te, has_el ? elab : NULL)) != PLSTM_OK)
        goto done;
    st = build_x(ds, &tn, has_nl ? nlab : NULL, attr);
done:
    free(tg.buf);
    free(ti.buf);
    free(ta.buf);
    free(tn.buf);
    free(te.buf);
    free(tt.buf);
    free(graph_lab);
    free(ind);
    free(A);
    free(nlab);
    free(elab);
    free(attr);
    if (st != PLSTM_OK)
        plstm_tu_destroy(ds);
    else
        *out = ds;
    return st;
}

/* ---- features of the pLSTM experiments ------------------------------------- */

void plstm_tu_degree_encoding(int64_t degree, int64_t dim, double *out)
{
    for (int64_t i = 0; i < dim; i++) {
        const double freq = pow(10000.0, -(double)(i - (i & 1)) / (double)dim);
        out[i] = (i & 1) ? cos((double)degree * freq) : sin((double)degree * freq);
    }
}

plstm_status plstm_tu_node_features(const plstm_tu_dataset *ds, int64_t deg_dim, double *out)
{
    PLSTM_CHECK_ARG(ds && out && deg_dim >= 0, "tu: bad arguments to node_features");
    const int64_t D = ds->node_dim, W = D + deg_dim;
    for (int64_t i = 0; i < ds->num_nodes; i++) {
        memcpy(out + i * W, ds->x + i * D, (size_t)D * sizeof *out);
        plstm_tu_degree_encoding(ds->degree[i], deg_dim, out + i * W + D);
    }
    return PLSTM_OK;
}

plstm_status plstm_tu_edge_mean_features(const plstm_tu_dataset *ds, const double *node_feat,
                                         int64_t dim, double *out)
{
    PLSTM_CHECK_ARG(ds && node_feat && out && dim >= 1, "tu: bad arguments to edge features");
    for (int64_t g = 0; g < ds->num_graphs; g++)
        for (int64_t e = ds->edge_off[g]; e < ds->edge_off[g + 1]; e++) {
            const double *a = node_feat + (ds->node_off[g] + ds->edges[2 * e]) * dim;
            const double *b = node_feat + (ds->node_off[g] + ds->edges[2 * e + 1]) * dim;
            for (int64_t c = 0; c < dim; c++)
                out[e * dim + c] = 0.5 * (a[c] + b[c]);
        }
    return PLSTM_OK;
}
