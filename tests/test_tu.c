/* TU dataset loader and protocol: MUTAG against the counts of its README
 * (shared/data/tu/README.md), a small hand-written dataset against its
 * features, clear errors on corrupt copies (written into a temp folder), the
 * stratified 10-fold split (disjoint, covering, stratified, and fold 0 equal
 * to scikit-learn 1.2.1's StratifiedKFold / train_test_split with seed 42),
 * and batch preparation of all MUTAG graphs. */
#include "testutil.h"
#include "plstm/tu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- temp folders ------------------------------------------------------------ */

static char tmp_root[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmp_root, sizeof tmp_root, "/tmp/plstm_test_tu_XXXXXX");
    return mkdtemp(tmp_root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    return system(cmd) == 0 ? 0 : -1;
}

/* Creates tmp_root/<sub>/NAME (returned) as a fresh folder. */
static const char *make_dir(const char *sub, const char *name)
{
    static char dir[512];
    char cmd[1200];
    snprintf(dir, sizeof dir, "%s/%s/%s", tmp_root, sub, name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    assert_int_equal(system(cmd), 0);
    return dir;
}

static void write_file(const char *dir, const char *name, const char *suffix, const char *text)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s_%s.txt", dir, name, suffix);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Copies MUTAG into tmp_root/<sub>/MUTAG. */
static const char *copy_mutag(const char *sub)
{
    const char *dir = make_dir(sub, "MUTAG");
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cp '%s'/MUTAG_*.txt '%s'/", tu_data_path("tu/MUTAG"), dir);
    assert_int_equal(system(cmd), 0);
    return dir;
}

/* Runs a shell edit on a file of the copy: sed expression or other command. */
static void edit(const char *dir, const char *file, const char *sh)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cd '%s' && %s %s", dir, sh, file);
    assert_int_equal(system(cmd), 0);
}

static void expect_load_error(const char *dir, plstm_status want, const char *needle)
{
    static plstm_tu_dataset dummy;
    plstm_tu_dataset *ds = &dummy; /* must be reset to NULL */
    assert_int_equal(plstm_tu_load(&ds, dir), want);
    assert_null(ds);
    if (!strstr(plstm_last_error(), needle))
        fail_msg("message '%s' lacks '%s'", plstm_last_error(), needle);
}

/* ---- MUTAG --------------------------------------------------------------------- */

static void test_mutag_counts(void **state)
{
    (void)state;
    plstm_tu_dataset *ds = NULL;
    TU_OK(plstm_tu_load(&ds, tu_data_path("tu/MUTAG")));
    assert_string_equal(ds->name, "MUTAG");
    assert_int_equal(ds->num_graphs, 188);
    assert_int_equal(ds->num_nodes, 3371);
    assert_int_equal(ds->num_edges, 3721); /* 7442 _A lines / 2 */
    assert_int_equal(ds->num_classes, 2);
    assert_int_equal(ds->class_value[0], -1);
    assert_int_equal(ds->class_value[1], 1);
    int64_t count[2] = {0, 0};
    for (int64_t g = 0; g < ds->num_graphs; g++)
        count[ds->label[g]]++;
    assert_int_equal(count[0], 63);  /* -1 */
    assert_int_equal(count[1], 125); /*  1 */
    assert_int_equal(ds->node_dim, 7);  /* node labels 0..6 */
    assert_int_equal(ds->edge_dim, 4);  /* edge labels 0..3 */
    assert_int_equal(ds->num_node_attr, 0);
    int64_t nmin = 1 << 30, nmax = 0, deg = 0;
    for (int64_t g = 0; g < ds->num_graphs; g++) {
        const int64_t nn = ds->node_off[g + 1] - ds->node_off[g];
        nmin = nn < nmin ? nn : nmin;
        nmax = nn > nmax ? nn : nmax;
        for (int64_t e = ds->edge_off[g]; e < ds->edge_off[g + 1]; e++) {
            assert_true(ds->edges[2 * e] >= 0 && ds->edges[2 * e] < ds->edges[2 * e + 1]);
            assert_true(ds->edges[2 * e + 1] < nn);
            if (e > ds->edge_off[g]) /* sorted by (lo, hi), no duplicates */
                assert_true(ds->edges[2 * e - 2] < ds->edges[2 * e] ||
                            (ds->edges[2 * e - 2] == ds->edges[2 * e] &&
                             ds->edges[2 * e - 1] < ds->edges[2 * e + 1]));
        }
    }
    assert_int_equal(nmin, 10);
    assert_int_equal(nmax, 28);
    for (int64_t n = 0; n < ds->num_nodes; n++) {
        double s = 0;
        for (int64_t c = 0; c < 7; c++)
            s += ds->x[n * 7 + c];
        assert_true(s == 1.0); /* one-hot */
        deg += ds->degree[n];
    }
    assert_int_equal(deg, 2 * 3721);
    for (int64_t e = 0; e < ds->num_edges; e++) {
        double s = 0;
        for (int64_t c = 0; c < 4; c++)
            s += ds->edge_attr[e * 4 + c];
        assert_true(s == 1.0);
    }
    /* First graph: its node count and first node label straight from the files. */
    FILE *f = fopen(tu_data_path("tu/MUTAG/MUTAG_graph_indicator.txt"), "r");
    assert_non_null(f);
    int id, first = 0;
    while (fscanf(f, "%d", &id) == 1 && id == 1)
        first++;
    fclose(f);
    assert_int_equal(ds->node_off[1], first);
    f = fopen(tu_data_path("tu/MUTAG/MUTAG_node_labels.txt"), "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d", &id), 1);
    fclose(f);
    assert_true(ds->x[id] == 1.0);
    plstm_tu_destroy(ds);
}

/* Every MUTAG graph prepares (both modes, reversed too) and batches. */
static void test_mutag_prepare(void **state)
{
    (void)state;
    plstm_tu_dataset *ds = NULL;
    TU_OK(plstm_tu_load(&ds, tu_data_path("tu/MUTAG")));
    int64_t *nc = tu_calloc((size_t)ds->num_graphs, sizeof(int64_t));
    int64_t *ec = tu_calloc((size_t)ds->num_graphs, sizeof(int64_t));
    for (int64_t g = 0; g < ds->num_graphs; g++) {
        nc[g] = ds->node_off[g + 1] - ds->node_off[g];
        ec[g] = ds->edge_off[g + 1] - ds->edge_off[g];
    }
    for (int v = 0; v < 3; v++) {
        plstm_graph_prep_opts o = {0, v ? PLSTM_GRAPH_MODE_D : PLSTM_GRAPH_MODE_P, v == 2};
        plstm_graph_batch *b = NULL;
        TU_OK(plstm_graph_batch_prepare(&b, ds->num_graphs, nc, ec, ds->edges, &o));
        assert_int_equal(b->num_edges, ds->num_edges);
        assert_int_equal(b->num_nodes, ds->num_nodes);
        plstm_graph_batch_destroy(b);
    }
    plstm_prepared_graph *pg = NULL;
    plstm_graph_prep_opts od = {0, PLSTM_GRAPH_MODE_D, 0};
    TU_OK(plstm_graph_prepare(&pg, nc[0], ec[0], ds->edges, &od));
    assert_int_equal(plstm_prepared_graph_is_multitree(pg), 1);
    plstm_prepared_graph_destroy(pg);
    free(nc);
    free(ec);
    plstm_tu_destroy(ds);
}

/* ---- hand-written dataset --------------------------------------------------------- */

static void write_toy(const char *dir)
{
    /* 3 graphs: nodes 1-3 (graph 1), 4-5 (graph 2), 6-9 (graph 3). NCI1-style
     * separators, both directions, a duplicate line, CRLF and no final newline
     * in places. */
    write_file(dir, "TOY", "graph_labels", "2\n7\n2\n");
    write_file(dir, "TOY", "graph_indicator", "1\n1\n1\n2\n2\n3\n3\n3\n3\n");
    write_file(dir, "TOY", "A", "1,2\n2,1\n3, 2\r\n2 ,3\n4,5\n5,4\n6,9\n9,6\n7,8\n8,7\n9,7\n7,9\n7,9");
    write_file(dir, "TOY", "edge_labels", "1\n1\n2\n2\n0\n0\n1\n1\n2\n2\n0\n0\n0\n");
    write_file(dir, "TOY", "node_labels", "3\n4\n3\n5\n3\n3\n4\n4\n5\n");
    write_file(dir, "TOY", "node_attributes",
               " 1.5, -2\n0,0\n3,1e1\n-1,2\n0.25,0\n1,1\n2,2\n3,3\n4,4\n");
}

static void test_toy(void **state)
{
    (void)state;
    const char *dir = make_dir("toy", "TOY");
    write_toy(dir);
    plstm_tu_dataset *ds = NULL;
    TU_OK(plstm_tu_load(&ds, dir));
    assert_int_equal(ds->num_graphs, 3);
    assert_int_equal(ds->num_nodes, 9);
    assert_int_equal(ds->num_classes, 2);
    assert_int_equal(ds->label[0], 0);
    assert_int_equal(ds->label[1], 1);
    assert_int_equal(ds->label[2], 0);
    assert_int_equal(ds->num_edges, 6);
    const int64_t eoff[] = {0, 2, 3, 6};
    const int64_t edges[] = {0, 1, 1, 2, 0, 1, 0, 3, 1, 2, 1, 3};
    const int64_t elab[] = {1, 2, 0, 1, 2, 0};
    for (int g = 0; g <= 3; g++)
        assert_int_equal(ds->edge_off[g], eoff[g]);
    for (int e = 0; e < 6; e++) {
        assert_int_equal(ds->edges[2 * e], edges[2 * e]);
        assert_int_equal(ds->edges[2 * e + 1], edges[2 * e + 1]);
        for (int c = 0; c < 3; c++)
            assert_true(ds->edge_attr[e * 3 + c] == (c == elab[e] ? 1.0 : 0.0));
    }
    assert_int_equal(ds->edge_dim, 3);
    /* x = [2 attributes, one-hot of labels 3..5] */
    assert_int_equal(ds->num_node_attr, 2);
    assert_int_equal(ds->num_node_labels, 3);
    assert_int_equal(ds->node_dim, 5);
    const double x0[] = {1.5, -2, 1, 0, 0}, x2[] = {3, 10, 1, 0, 0}, x8[] = {4, 4, 0, 0, 1};
    for (int c = 0; c < 5; c++) {
        assert_true(ds->x[0 * 5 + c] == x0[c]);
        assert_true(ds->x[2 * 5 + c] == x2[c]);
        assert_true(ds->x[8 * 5 + c] == x8[c]);
    }
    const int64_t deg[] = {1, 2, 1, 1, 1, 1, 2, 1, 2};
    for (int n = 0; n < 9; n++)
        assert_int_equal(ds->degree[n], deg[n]);
    /* pLSTM features: degree encoding appended, edge = mean of endpoints. */
    double nf[9 * 9], ef[6 * 9], enc[4];
    TU_OK(plstm_tu_node_features(ds, 4, nf));
    for (int c = 0; c < 5; c++)
        assert_true(nf[1 * 9 + c] == ds->x[1 * 5 + c]);
    plstm_tu_degree_encoding(2, 4, enc);
    assert_true(fabs(enc[0] - sin(2.0)) < 1e-15 && fabs(enc[1] - cos(2.0)) < 1e-15);
    assert_true(fabs(enc[2] - sin(0.02)) < 1e-15 && fabs(enc[3] - cos(0.02)) < 1e-15);
    for (int c = 0; c < 4; c++)
        assert_true(nf[1 * 9 + 5 + c] == enc[c]);
    TU_OK(plstm_tu_edge_mean_features(ds, nf, 9, ef));
    for (int c = 0; c < 9; c++) /* edge 3 = graph 2's (0, 3) = global nodes 5, 8 */
        assert_true(fabs(ef[3 * 9 + c] - 0.5 * (nf[5 * 9 + c] + nf[8 * 9 + c])) < 1e-15);
    plstm_tu_destroy(ds);

    /* Without node labels or attributes: a constant 1-feature. */
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "rm '%s'/TOY_node_labels.txt '%s'/TOY_node_attributes.txt", dir, dir);
    assert_int_equal(system(cmd), 0);
    TU_OK(plstm_tu_load(&ds, dir));
    assert_int_equal(ds->node_dim, 1);
    for (int n = 0; n < 9; n++)
        assert_true(ds->x[n] == 1.0);
    plstm_tu_destroy(ds);
}

static void test_corrupt(void **state)
{
    (void)state;
    const char *dir;
    /* Corrupt copies of MUTAG. */
    dir = copy_mutag("c1");
    edit(dir, "MUTAG_graph_labels.txt", "rm");
    expect_load_error(dir, PLSTM_ERR_IO, "MUTAG_graph_labels.txt");
    dir = copy_mutag("c2");
    edit(dir, "MUTAG_A.txt", "sed -i '17s/.*/12, x/'");
    expect_load_error(dir, PLSTM_ERR_FORMAT, "MUTAG_A.txt line 17: expected two comma-separated");
    dir = copy_mutag("c3");
    edit(dir, "MUTAG_node_labels.txt", "sed -i '$d'");
    expect_load_error(dir, PLSTM_ERR_FORMAT, "MUTAG_node_labels.txt has 3370 lines, expected 3371");
    dir = copy_mutag("c4");
    edit(dir, "MUTAG_A.txt", "sed -i '5s/.*/3, 99999/'");
    expect_load_error(dir, PLSTM_ERR_FORMAT, "MUTAG_A.txt line 5: node id out of range");
    dir = copy_mutag("c5");
    edit(dir, "MUTAG_graph_indicator.txt", "sed -i '$s/.*/189/'");
    expect_load_error(dir, PLSTM_ERR_FORMAT, "graph id 189 out of range [1, 188]");
    dir = copy_mutag("c6");
    edit(dir, "MUTAG_edge_labels.txt", "sed -i '1d'");
    expect_load_error(dir, PLSTM_ERR_FORMAT, "MUTAG_edge_labels.txt has 7441 lines, expected 7442");
    dir = copy_mutag("c7");
    edit(dir, "MUTAG_node_labels.txt", "sed -i '3s/.*/2.5/'");
    expect_load_error(dir, PLSTM_ERR_FORMAT, "MUTAG_node_labels.txt line 3: expected one integer");
    dir = copy_mutag("c8");
    edit(dir, "MUTAG_A.txt", "sed -i '1s/.*/1, 3000/'"); /* node 3000 is in another graph */
    expect_load_error(dir, PLSTM_ERR_FORMAT, "joins graphs 1 and");
    dir = copy_mutag("c9");
    edit(dir, "MUTAG_graph_labels.txt", "sed -i '5s/.*//'");
    expect_load_error(dir, PLSTM_ERR_FORMAT, "MUTAG_graph_labels.txt line 5: expected one integer");
    /* Hand-written: graph ids out of order, an empty graph, labels of the two
     * directions that differ, attributes that are not numbers. */
    dir = make_dir("c10", "TOY");
    write_toy(dir);
    write_file(dir, "TOY", "graph_indicator", "1\n1\n2\n1\n2\n3\n3\n3\n3\n");
    expect_load_error(dir, PLSTM_ERR_FORMAT, "TOY_graph_indicator.txt line 4: graph id 1 after 2");
    write_file(dir, "TOY", "graph_indicator", "1\n1\n1\n3\n3\n3\n3\n3\n3\n");
    expect_load_error(dir, PLSTM_ERR_FORMAT, "graph id 2 has no nodes");
    write_toy(dir);
    write_file(dir, "TOY", "edge_labels", "1\n0\n2\n2\n0\n0\n1\n1\n2\n2\n0\n0\n0\n");
    expect_load_error(dir, PLSTM_ERR_FORMAT, "lines 1 and 2: the bond (1, 2) has labels 1 and 0");
    write_toy(dir);
    write_file(dir, "TOY", "node_attributes", "1,2\n1,2\n1\n1,2\n1,2\n1,2\n1,2\n1,2\n1,2\n");
    expect_load_error(dir, PLSTM_ERR_FORMAT, "TOY_node_attributes.txt line 3");
    write_file(dir, "TOY", "node_attributes", "1,2\n1,2\n1,nan\n1,2\n1,2\n1,2\n1,2\n1,2\n1,2\n");
    expect_load_error(dir, PLSTM_ERR_FORMAT, "finite numbers");
    expect_load_error(make_dir("c11", "EMPTY"), PLSTM_ERR_IO, "EMPTY_graph_labels.txt");
}

/* ---- protocol ----------------------------------------------------------------------- */

/* MUTAG fold 0 from scikit-learn 1.2.1 (StratifiedKFold(10, shuffle=True,
 * random_state=42); train_test_split(test_size=0.111111, stratify,
 * random_state=42)), y = position of the label among the sorted labels. */
static const int64_t sk_test0[] = {15, 24, 26, 30, 36, 57, 65, 68, 75, 84,
                                   93, 96, 103, 115, 138, 141, 153, 158, 162};
static const int64_t sk_val0[] = {53, 7, 73, 3, 85, 112, 18, 111, 178, 142,
                                  55, 79, 10, 12, 54, 133, 67, 132, 125};
static const int64_t sk_train0_head[] = {23, 37, 135, 144, 123, 143, 34, 100, 39, 25};

static void test_folds(void **state)
{
    (void)state;
    plstm_tu_dataset *ds = NULL;
    TU_OK(plstm_tu_load(&ds, tu_data_path("tu/MUTAG")));
    const int64_t G = ds->num_graphs;
    plstm_tu_fold f[10];
    TU_OK(plstm_tu_stratified_folds(G, ds->label, 10, 0.111111, 42, f));
    int64_t *in_test = tu_calloc((size_t)G, sizeof(int64_t));
    int64_t *mark = tu_calloc((size_t)G, sizeof(int64_t));
    for (int k = 0; k < 10; k++) {
        memset(mark, 0, (size_t)G * sizeof *mark);
        const int64_t *sets[3] = {f[k].train, f[k].val, f[k].test};
        const int64_t sizes[3] = {f[k].num_train, f[k].num_val, f[k].num_test};
        for (int s = 0; s < 3; s++) {
            int64_t c1 = 0;
            for (int64_t i = 0; i < sizes[s]; i++) {
                assert_true(sets[s][i] >= 0 && sets[s][i] < G);
                mark[sets[s][i]]++;
                c1 += ds->label[sets[s][i]];
            }
            /* stratified: each set's share of class 1 within one sample of 125/188 */
            const double want = 125.0 / 188.0 * (double)sizes[s];
            assert_true(fabs((double)c1 - want) <= 1.0);
        }
        for (int64_t g = 0; g < G; g++)
            assert_int_equal(mark[g], 1); /* disjoint and covering */
        for (int64_t i = 0; i < f[k].num_test; i++)
            in_test[f[k].test[i]]++;
        assert_true(f[k].num_test == 18 || f[k].num_test == 19);
        assert_int_equal(f[k].num_val,
                         (int64_t)ceil(0.111111 * (double)(G - f[k].num_test)));
    }
    for (int64_t g = 0; g < G; g++)
        assert_int_equal(in_test[g], 1); /* the test sets partition the data */
    assert_int_equal(f[0].num_test, 19);
    assert_int_equal(f[0].num_val, 19);
    for (int i = 0; i < 19; i++) {
        assert_int_equal(f[0].test[i], sk_test0[i]);
        assert_int_equal(f[0].val[i], sk_val0[i]);
    }
    for (int i = 0; i < 10; i++)
        assert_int_equal(f[0].train[i], sk_train0_head[i]);
    /* Same seed, same folds; another seed, other folds. */
    plstm_tu_fold h[10];
    TU_OK(plstm_tu_stratified_folds(G, ds->label, 10, 0.111111, 42, h));
    assert_memory_equal(h[3].val, f[3].val, (size_t)f[3].num_val * sizeof(int64_t));
    plstm_tu_folds_free(h, 10);
    TU_OK(plstm_tu_stratified_folds(G, ds->label, 10, 0.111111, 7, h));
    assert_memory_not_equal(h[0].test, f[0].test, (size_t)18 * sizeof(int64_t));
    plstm_tu_folds_free(h, 10);
    plstm_tu_folds_free(f, 10);
    assert_int_equal(plstm_tu_stratified_folds(G, ds->label, 1, 0.1, 42, f),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_int_equal(plstm_tu_stratified_folds(G, ds->label, 10, 1.5, 42, f),
                     PLSTM_ERR_INVALID_ARGUMENT);
    free(in_test);
    free(mark);
    plstm_tu_destroy(ds);
}

static void test_summary(void **state)
{
    (void)state;
    const double val[] = {0.5, 0.8, 0.7, 0.8, 0.6}, test[] = {0.1, 0.2, 0.3, 0.4, 0.5};
    assert_true(plstm_tu_test_at_best_val(val, test, 5) == 0.2); /* first best epoch */
    const double acc[] = {1, 2, 3, 4};
    double mean, std;
    plstm_tu_mean_std(acc, 4, &mean, &std);
    assert_true(fabs(mean - 2.5) < 1e-15);
    assert_true(fabs(std - sqrt(1.25)) < 1e-15);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutag_counts), cmocka_unit_test(test_mutag_prepare),
        cmocka_unit_test(test_toy),          cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_folds),        cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
