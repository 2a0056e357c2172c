/* TU graph-classification datasets (MUTAG, NCI1, PROTEINS, PTC_FM) and the
 * paper's evaluation protocol (experiments.md §2.7; data format in
 * shared/data/tu/README.md).
 *
 * A dataset folder DIR/NAME holds NAME_A.txt, NAME_graph_indicator.txt,
 * NAME_graph_labels.txt and optionally NAME_node_labels.txt,
 * NAME_edge_labels.txt, NAME_node_attributes.txt (NAME = the folder's last
 * path component). Features are built as PyTorch Geometric's
 * TUDataset(use_node_attr=True) builds them:
 *   x         = [node attributes, one_hot(node label - min label)]
 *               (a constant 1 when a dataset has neither);
 *   edge_attr = one_hot(edge label - min label), where edge labels exist;
 *   label     = position of the graph label among the sorted distinct labels.
 * Each undirected bond, listed twice in _A.txt, becomes one edge (lo, hi)
 * with lo < hi in local node indices; a graph's edges are sorted by (lo, hi)
 * (the coalesced order PyG hands to networkx). Duplicate lines and the second
 * direction are merged; self-loops are dropped (PyG removes them).
 *
 * Errors: PLSTM_ERR_IO (a required file is missing / unreadable) and
 * PLSTM_ERR_FORMAT (non-numeric line, wrong line count, node or graph id out
 * of range, edge across graphs, graph ids not contiguous, labels of the two
 * directions of a bond differ), each naming the file and line. */
#ifndef PLSTM_TU_H
#define PLSTM_TU_H

#include <stdint.h>
#include "plstm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct plstm_tu_dataset {
    char name[64];
    int64_t num_graphs, num_nodes, num_edges; /* edges: undirected, after merging */
    int64_t num_classes;
    int64_t *label;        /* [G] class index 0..num_classes-1                   */
    int64_t *class_value;  /* [num_classes] raw graph label of each class        */
    int64_t *node_off;     /* [G+1] graph g's nodes are node_off[g] .. (global)  */
    int64_t *edge_off;     /* [G+1] graph g's edges are edge_off[g] ..           */
    int64_t *edges;        /* [E][2] (lo, hi), node indices LOCAL to the graph   */
    int64_t *degree;       /* [N] undirected degree                              */
    int64_t num_node_attr;   /* real attributes per node (PROTEINS: 1)           */
    int64_t num_node_labels; /* one-hot width of node labels (0: no label file)  */
    int64_t node_dim;        /* num_node_attr + num_node_labels, or 1 if both 0  */
    double *x;             /* [N][node_dim]                                      */
    int64_t edge_dim;      /* one-hot width of edge labels (0: no label file)    */
    double *edge_attr;     /* [E][edge_dim], NULL when edge_dim = 0              */
} plstm_tu_dataset;

/* Loads the dataset in folder `dir` (e.g. ".../shared/data/tu/MUTAG"). */
plstm_status plstm_tu_load(plstm_tu_dataset **ds, const char *dir);
void plstm_tu_destroy(plstm_tu_dataset *ds);

/* Sinusoidal encoding of a node degree into `dim` values, as in transformer
 * position encodings: out[2i] = sin(deg / 10000^(2i/dim)), out[2i+1] = cos(..).
 * (The paper's pLSTM adds a sinusoidal degree encoding to the node features;
 * its exact form is not published, this is the standard one.) */
void plstm_tu_degree_encoding(int64_t degree, int64_t dim, double *out);

/* Node features of the pLSTM experiments: [x, degree encoding of `deg_dim`]
 * per node, out [N][node_dim + deg_dim]. */
plstm_status plstm_tu_node_features(const plstm_tu_dataset *ds, int64_t deg_dim, double *out);

/* Edge features of the pLSTM experiments: the mean of the two endpoint rows of
 * `node_feat` [N][dim] (global node order), out [E][dim]. */
plstm_status plstm_tu_edge_mean_features(const plstm_tu_dataset *ds, const double *node_feat,
                                         int64_t dim, double *out);

/* ---- protocol ---------------------------------------------------------------
 *
 * 10-fold stratified cross-validation with a validation split inside every
 * fold, reproducing scikit-learn exactly (numpy's legacy MT19937 stream):
 *
 *   StratifiedKFold(n_splits=num_folds, shuffle=True, random_state=seed)
 *       .split(X, labels)                          -> (trainval, test) per fold
 *   train_test_split(trainval, test_size=val_fraction,
 *                    stratify=labels[trainval], random_state=seed)
 *                                                  -> (train, val)
 *
 * With num_folds = 10, val_fraction = 0.111111, seed = 42 this is the paper's
 * 80/10/10 protocol. Fold k's test set holds the graphs StratifiedKFold puts
 * in fold k (ascending index); train and val are in scikit-learn's (shuffled)
 * order; n_val = ceil(val_fraction * |trainval|). The three sets of a fold are
 * disjoint and cover all graphs; the test sets of all folds partition them. */
typedef struct plstm_tu_fold {
    int64_t num_train, num_val, num_test;
    int64_t *train, *val, *test; /* graph indices */
} plstm_tu_fold;

plstm_status plstm_tu_stratified_folds(int64_t n, const int64_t *labels, int num_folds,
                                       double val_fraction, uint32_t seed, plstm_tu_fold *folds);
void plstm_tu_folds_free(plstm_tu_fold *folds, int num_folds);

/* Test accuracy at the (first) epoch of best validation accuracy. */
double plstm_tu_test_at_best_val(const double *val_acc, const double *test_acc, int num_epochs);

/* Mean and standard deviation (population, numpy's default) over folds. */
void plstm_tu_mean_std(const double *values, int n, double *mean, double *std);

#ifdef __cplusplus
}
#endif
#endif
