/* Graph pLSTM layers, blocks and the graph classification model
 * (plstm-math.md §6.3–6.5, §7.1; experiments.md §2.7).
 *
 * Everything runs on a batch of prepared graphs (plstm_graph_batch,
 * graph_prep.h): node rows are the batch's global nodes, edge rows its global
 * edges (graph g's edges in their original order), so a mini-batch of many
 * graphs is one computation (all graphs' edges of one topological level
 * together in the core). Node features x are [N, Din] row-major.
 *
 * Layers follow docs/ARCHITECTURE.md: declare (parameter names = the
 * reference PyTorch state_dict keys), init, activation_size, forward (acts may
 * be NULL for inference), backward (WRITES dx / dedge_x, ACCUMULATES parameter
 * gradients). CPU backend, F32 or F64. */
#ifndef PLSTM_GRAPH_LAYERS_H
#define PLSTM_GRAPH_LAYERS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "plstm/context.h"
#include "plstm/graph_prep.h"
#include "plstm/nn.h"
#include "plstm/params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== */
/* Graph layers (§6.3 node-wise, §6.4 edge features)                         */
/* ======================================================================== */

typedef enum plstm_graph_layer_kind {
    PLSTM_GRAPH_LAYER_NODEWISE = 0, /* pLSTMGraphLayer: gates per node and edge slot    */
    PLSTM_GRAPH_LAYER_EDGE          /* pLSTMGraphEdgeLayer: gates from edge features    */
} plstm_graph_layer_kind;

/* Node-wise slot maps (§6.2, Q9). REFERENCE reproduces the reference:
 *   s_e = S[tail, Bk(e)], m_e = M[head, F(e)], t(e'->e) = T[tail(e), F(e'), Bk(e)];
 * INTENDED indexes every gate by the slot at the node where it sits:
 *   s_e = S[tail, F(e)], m_e = M[head, Bk(e)], t(e'->e) = T[tail(e), Bk(e'), F(e)].
 * F = out_slot (position among the tail's successors), Bk = in_slot. In both,
 * P mode zeroes T[n, i, :] for i >= indegree(n) and divides each row by
 * 0.5 + Σ_j |T[n, i, j]| (the reference's normalization). */
typedef enum plstm_graph_slot_map {
    PLSTM_GRAPH_SLOTS_REFERENCE = 0,
    PLSTM_GRAPH_SLOTS_INTENDED
} plstm_graph_slot_map;

typedef struct plstm_graph_layer_config {
    plstm_graph_layer_kind kind;
    plstm_graph_mode mode;   /* transition normalization: P (row-normalized) or D (tanh) */
    int input_dim;           /* Din (= output dim)                                  */
    int num_heads;           /* H                                                   */
    int qk_head_dim, hv_head_dim; /* K, V; 0 = Din / H                              */
    int bias;                /* q, k, v, out biases (reference: node-wise default 0;
                                the edge layer always has them)                     */
    int out;                 /* output projection Linear(H·V -> Din), default 1     */
    double mhnorm_eps;       /* 1e-5                                                */
    /* node-wise only */
    int max_edges;           /* slots per node (>= the batch's max degree)          */
    plstm_graph_slot_map slots;
    /* edge layer only */
    int edge_input_dim;      /* De                                                  */
    int q8;                  /* 1: transition features use the tail of the incoming
                                edge (reference, Q8); 0: the node between the edges  */
    plstm_algo algo;         /* form of the DAG core                                */
} plstm_graph_layer_config;

/* Defaults: the reference's layer configuration (node-wise: bias 0, out 1,
 * max_edges 4; edge layer: bias 1, out 1, edge_input_dim = input_dim) with
 * the quirks fixed (INTENDED slots, q8 0); the verifier sets REFERENCE / q8 1. */
plstm_graph_layer_config plstm_graph_layer_config_default(plstm_graph_layer_kind kind,
                                                          int input_dim, int num_heads,
                                                          plstm_graph_mode mode);

/* Parameter offsets (PLSTM_NO_PARAM-like (size_t)-1 where absent). Names:
 * query.weight [H·K, Din] (+ .bias), key.*, value_.*, source.{weight,bias},
 * transition.{weight,bias}, mark.{weight,bias}, direct.{weight,bias},
 * mhnorm.scale [H, V], out.weight [Din, H·V] (+ .bias). Gate widths: node-wise
 * source/mark [H·E, Din], transition [H·E·E, Din], direct [H, Din]; edge layer
 * source/mark [H, Din + De], transition [H, 2·De + Din] (input order
 * [f_in_edge, f_out_edge, x_node]), direct [H, Din]. */
typedef struct plstm_graph_layer {
    plstm_graph_layer_config cfg;
    int K, V, HK, HV, E; /* E: max_edges (node-wise) */
    size_t q_w, q_b, k_w, k_b, v_w, v_b;
    size_t s_w, s_b, t_w, t_b, m_w, m_b, d_w, d_b;
    size_t norm, o_w, o_b;
} plstm_graph_layer;

plstm_status plstm_graph_layer_declare(plstm_graph_layer *L, const plstm_graph_layer_config *cfg,
                                       plstm_params *p, const char *prefix);
/* The reference initialization: q/k/v/out weights SmallInit (σ = 1/sqrt(2.5·fan_in)),
 * their biases 0 (node-wise) or the torch default U(±1/sqrt(fan_in)) (edge
 * layer, whose reset skips them); gate weights 0, source/mark/direct biases
 * −5; transition bias: identity per head over the slots (node-wise) or
 * N(0, 10²) (edge layer); mhnorm scale 1. */
plstm_status plstm_graph_layer_init(const plstm_graph_layer *L, void *params, plstm_dtype dtype,
                                    uint64_t seed);
/* Elements of `acts` forward saves for backward on this batch. */
size_t plstm_graph_layer_activation_size(const plstm_graph_layer *L, const plstm_graph_batch *b);

/* x [N, Din], edge_x [E, De] (edge layer; NULL for node-wise) -> y [N, Din].
 * Errors: a node-wise batch whose max degree exceeds max_edges. */
plstm_status plstm_graph_layer_forward(plstm_context *ctx, const plstm_graph_layer *L,
                                       plstm_dtype dtype, const void *params,
                                       const plstm_graph_batch *b, const void *x,
                                       const void *edge_x, void *y, void *acts);
/* dx [N, Din] and dedge_x [E, De] are written (either may be NULL). */
plstm_status plstm_graph_layer_backward(plstm_context *ctx, const plstm_graph_layer *L,
                                        plstm_dtype dtype, const void *params,
                                        const plstm_graph_batch *b, const void *x,
                                        const void *edge_x, const void *acts, const void *dy,
                                        void *dx, void *dedge_x, void *grads);

/* ======================================================================== */
/* PostUp graph block (§7.1 around a graph layer) and the P/D pair (§6.5)    */
/* ======================================================================== */
/*   x1 = RMSNorm(x); x2 = x + Layer(x1[, edge_x]); x3 = RMSNorm2(x2);
 *   y  = x2 + DownProj(act(UpProj(x3)))        inner = ceil64(4·dim).
 * Names "prefix.norm.scale", "prefix.norm2.scale", "prefix.upproj.{weight,bias}",
 * "prefix.interaction_module.*", "prefix.downproj.{weight,bias}". */
typedef struct plstm_graph_postup {
    plstm_graph_layer layer;
    int dim, inner;
    plstm_activation act; /* exact GELU */
    double norm_eps;      /* 1e-5 */
    size_t norm_off, norm2_off, up_w, up_b, down_w, down_b;
} plstm_graph_postup;

plstm_status plstm_graph_postup_declare(plstm_graph_postup *B, const plstm_graph_layer_config *layer,
                                        plstm_params *p, const char *prefix);
plstm_status plstm_graph_postup_init(const plstm_graph_postup *B, void *params, plstm_dtype dtype,
                                     uint64_t seed);
size_t plstm_graph_postup_activation_size(const plstm_graph_postup *B, const plstm_graph_batch *b);
/* x, y [N, dim] (must not overlap); edge_x as for the layer. acts may be NULL. */
plstm_status plstm_graph_postup_forward(plstm_context *ctx, const plstm_graph_postup *B,
                                        plstm_dtype dtype, const void *params,
                                        const plstm_graph_batch *b, const void *x,
                                        const void *edge_x, void *y, void *acts);
/* Writes dx; ADDS the edge-feature gradient into dedge_x (may be NULL). */
plstm_status plstm_graph_postup_backward(plstm_context *ctx, const plstm_graph_postup *B,
                                         plstm_dtype dtype, const void *params,
                                         const plstm_graph_batch *b, const void *x,
                                         const void *edge_x, const void *acts, const void *dy,
                                         void *dx, void *dedge_x, void *grads);

/* ======================================================================== */
/* Graph classification model (experiments.md §2.7)                          */
/* ======================================================================== */
/* node_encoder Linear(node_dim -> hidden) + sinusoidal degree encoding (added,
 * width hidden); edge features = mean of the two endpoints' encoded rows (edge
 * layers; shared by all blocks); num_blocks × (block0 in block_mode[0],
 * block1 in block_mode[1]); blocks with odd index use the reversed DAGs; mean
 * (or sum) pooling per graph; decoder Linear–ReLU–Linear. Names:
 * node_encoder.{weight,bias}, node_convs.<i>.block<j>.*, decoder.0.*, decoder.2.* */
typedef struct plstm_graph_model_config {
    int node_dim, num_classes;
    int hidden_dim;          /* 96 */
    int num_heads;           /* 4 */
    int num_blocks;          /* 2 (pairs) */
    char block_mode[3];      /* "PD" */
    int reverse_alternate;   /* 1: odd blocks on the reversed DAGs */
    plstm_graph_layer_kind layer_kind; /* EDGE (the paper) or NODEWISE */
    int max_edges;           /* node-wise layers: slots (>= max degree)        */
    plstm_graph_slot_map slots;
    int q8;                  /* edge layers: reference Q8 (default 1)          */
    int degree_encoding;     /* 1 */
    int sum_pooling;         /* 0: mean (the paper's text), 1: sum             */
    plstm_algo algo;
} plstm_graph_model_config;

plstm_graph_model_config plstm_graph_model_config_default(int node_dim, int num_classes);

#define PLSTM_GRAPH_MODEL_MAX_BLOCKS 16

typedef struct plstm_graph_model {
    plstm_graph_model_config cfg;
    int nb; /* number of PostUp blocks = 2·num_blocks */
    plstm_graph_postup blocks[2 * PLSTM_GRAPH_MODEL_MAX_BLOCKS];
    size_t enc_w, enc_b, dec0_w, dec0_b, dec2_w, dec2_b;
} plstm_graph_model;

/* A prepared mini-batch: the same graphs prepared four ways (identical node
 * and edge numbering): [mode][reversed], mode 0 = P, 1 = D. Entries the
 * model does not use may be NULL. x: raw node features [N, node_dim]. */
typedef struct plstm_graph_model_input {
    const plstm_graph_batch *graphs[2][2];
    const void *x;
} plstm_graph_model_input;

plstm_status plstm_graph_model_declare(plstm_graph_model *M, const plstm_graph_model_config *cfg,
                                       plstm_params *p);
plstm_status plstm_graph_model_init(const plstm_graph_model *M, void *params, plstm_dtype dtype,
                                    uint64_t seed);
size_t plstm_graph_model_activation_size(const plstm_graph_model *M,
                                         const plstm_graph_model_input *in);
/* logits [G, num_classes]. acts may be NULL (inference). */
plstm_status plstm_graph_model_forward(plstm_context *ctx, const plstm_graph_model *M,
                                       plstm_dtype dtype, const void *params,
                                       const plstm_graph_model_input *in, void *logits,
                                       void *acts);
/* After a forward with acts: accumulates parameter gradients given dlogits. */
plstm_status plstm_graph_model_backward(plstm_context *ctx, const plstm_graph_model *M,
                                        plstm_dtype dtype, const void *params,
                                        const plstm_graph_model_input *in, const void *acts,
                                        const void *dlogits, void *grads);

/* ======================================================================== */
/* TU benchmark training (experiments.md §2.7)                               */
/* ======================================================================== */
typedef struct plstm_tu_train_config {
    char dataset[32];        /* MUTAG, NCI1, PROTEINS, PTC_FM                   */
    char data_dir[512];      /* folder holding <dataset>/ ("" = built-in default) */
    int folds;               /* 10 */
    int first_fold, num_run_folds; /* run folds first_fold .. +num_run_folds-1 (0: all) */
    int epochs;              /* 100 */
    int batch_size;          /* 64 (gradient accumulation 64 with batch 1)       */
    double lr;               /* 1e-3 */
    int warmup_epochs;       /* 5 (epochs / 20) */
    double weight_decay;     /* 0.01 (torch AdamW default) */
    double clip;             /* 1.0 */
    uint64_t seed;           /* model init / shuffling seed                     */
    uint32_t split_seed;     /* 42 */
    int threads;             /* 0 = OpenMP default */
    int verbose;             /* per-epoch lines on the log stream */
    plstm_graph_model_config model; /* node_dim / num_classes filled from the data */
} plstm_tu_train_config;

typedef struct plstm_tu_result {
    int folds_run;
    double test_acc[64];     /* per fold, at the best validation epoch */
    double best_val_acc[64];
    int best_epoch[64];
    double mean, std;
    double seconds;
    size_t num_params;
} plstm_tu_result;

/* Presets "tu-mutag", "tu-nci1", "tu-proteins", "tu-ptc_fm" (the paper's
 * recipe); PLSTM_ERR_INVALID_ARGUMENT for an unknown name. */
plstm_status plstm_tu_preset(const char *name, plstm_tu_train_config *cfg);
/* Number of presets and the i-th name (NULL past the end). */
const char *plstm_tu_preset_name(int i);

/* Runs the protocol: stratified folds, train per fold, test accuracy at the
 * best validation accuracy, mean ± std. `log` (may be NULL) gets progress
 * lines; `jsonl` (may be NULL) a record per fold and epoch. */
plstm_status plstm_tu_train(const plstm_tu_train_config *cfg, FILE *log, const char *jsonl_path,
                            plstm_tu_result *result);

#ifdef __cplusplus
}
#endif
#endif
