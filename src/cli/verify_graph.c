/* Verifier for the graph layers (kind graph_layer): rebuilds the graph from
 * input.edges, prepares it in the file's mode, checks the derived orderings
 * against the metadata (line-graph arc count, in/out slots, Q8 arc nodes),
 * loads every param.* strictly, runs forward + backward and compares
 * output.Y, grad.x, grad.edge_x (edge layer) and every grad.param.*. The
 * reference slot maps (Q9) and Q8 are used: the files exercise them. */
#include "cli/verify.h"
#include "core/status_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gcase {
    plstm_params *p;
    plstm_graph_batch *b;
    void *params, *grads, *acts;
    int64_t *edges;
    vtensor x, ex, dy, y, dx, dex;
} gcase;

static void case_free(gcase *k)
{
    plstm_params_destroy(k->p);
    plstm_graph_batch_destroy(k->b);
    free(k->params);
    free(k->grads);
    free(k->acts);
    free(k->edges);
    vtensor *v[] = {&k->x, &k->ex, &k->dy, &k->y, &k->dx, &k->dex};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        vt_free(v[i]);
}

static int json_int(json_t *o, const char *key, int fallback)
{
    json_t *v = o ? json_object_get(o, key) : NULL;
    return json_is_integer(v) ? (int)json_integer_value(v) : fallback;
}

static int json_flag(json_t *o, const char *key, int fallback)
{
    json_t *v = o ? json_object_get(o, key) : NULL;
    return json_is_boolean(v) ? json_is_true(v) : fallback;
}

static plstm_status config_of(const plstm_safetensors *st, plstm_graph_layer_config *c)
{
    const char *cls = plstm_safetensors_metadata(st, "class");
    const char *mode = plstm_safetensors_metadata(st, "mode");
    if (!mode || (strcmp(mode, "P") && strcmp(mode, "D")))
        return plstm_fail(PLSTM_ERR_FORMAT, "metadata 'mode' must be P or D");
    const int edge = cls && strstr(cls, "EdgeLayer") != NULL;
    int Din, H;
    PLSTM_TRY(meta_int(st, "input_dim", &Din));
    PLSTM_TRY(meta_int(st, "num_heads", &H));
    *c = plstm_graph_layer_config_default(edge ? PLSTM_GRAPH_LAYER_EDGE : PLSTM_GRAPH_LAYER_NODEWISE,
                                          Din, H, mode[0] == 'P' ? PLSTM_GRAPH_MODE_P
                                                                 : PLSTM_GRAPH_MODE_D);
    if (plstm_safetensors_metadata(st, "qk_head_dim"))
        PLSTM_TRY(meta_int(st, "qk_head_dim", &c->qk_head_dim));
    if (plstm_safetensors_metadata(st, "hv_head_dim"))
        PLSTM_TRY(meta_int(st, "hv_head_dim", &c->hv_head_dim));
    if (edge)
        PLSTM_TRY(meta_int(st, "edge_input_dim", &c->edge_input_dim));
    else
        PLSTM_TRY(meta_int(st, "max_edges", &c->max_edges));
    c->mhnorm_eps = meta_double(st, "mhnorm_eps", 1e-5);
    const char *cj = plstm_safetensors_metadata(st, "config_json");
    json_t *root = cj ? json_loads(cj, 0, NULL) : NULL;
    /* the reference edge layer always has q/k/v/out biases (nn.Linear default) */
    c->bias = edge ? 1 : json_flag(root, "bias", 0);
    c->out = json_flag(root, "out", 1);
    if (root && json_int(root, "output_dim", Din) != Din) {
        json_decref(root);
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "output_dim different from input_dim");
    }
    json_decref(root);
    c->slots = PLSTM_GRAPH_SLOTS_REFERENCE;
    c->q8 = 1;
    return PLSTM_OK;
}

/* Finds the batch edge tail -> head (one graph, small). */
static int64_t find_edge(const plstm_graph_batch *b, int64_t u, int64_t v)
{
    for (int64_t e = 0; e < b->num_edges; e++) {
        int64_t t, h;
        plstm_dag_edge(b->dag, e, &t, &h, NULL);
        if (t == u && h == v)
            return e;
    }
    return -1;
}

/* The orderings the file records must be the ones this preparation derived. */
static plstm_status check_orderings(const plstm_safetensors *st, const plstm_graph_batch *b)
{
    int arcs;
    if (plstm_safetensors_metadata(st, "num_line_graph_arcs")) {
        PLSTM_TRY(meta_int(st, "num_line_graph_arcs", &arcs));
        if (arcs != b->num_arcs)
            return plstm_fail(PLSTM_ERR_FORMAT, "line graph: %lld arcs prepared, file has %d",
                              (long long)b->num_arcs, arcs);
    }
    const char *keys[2] = {"graph_in_slot", "graph_out_slot"};
    for (int k = 0; k < 2; k++) {
        const char *txt = plstm_safetensors_metadata(st, keys[k]);
        json_t *a = txt ? json_loads(txt, 0, NULL) : NULL;
        for (size_t i = 0; json_is_array(a) && i < json_array_size(a); i++) {
            json_t *r = json_array_get(a, i);
            const int64_t u = json_integer_value(json_array_get(r, 0));
            const int64_t v = json_integer_value(json_array_get(r, 1));
            const int64_t s = json_integer_value(json_array_get(r, 2));
            const int64_t e = find_edge(b, u, v);
            const int64_t got = e < 0 ? -1 : k ? b->out_slot[e] : b->in_slot[e];
            if (got != s) {
                json_decref(a);
                return plstm_fail(PLSTM_ERR_FORMAT, "%s of edge %lld -> %lld: %lld, file has %lld",
                                  keys[k], (long long)u, (long long)v, (long long)got,
                                  (long long)s);
            }
        }
        json_decref(a);
    }
    const char *txt = plstm_safetensors_metadata(st, "graph_line_graph_arc_nodeidx");
    json_t *a = txt ? json_loads(txt, 0, NULL) : NULL;
    plstm_status s = PLSTM_OK;
    for (int64_t i = 0; json_is_array(a) && i < b->num_arcs && s == PLSTM_OK; i++) {
        const int64_t want = json_integer_value(json_array_get(a, (size_t)b->arc_ref[i]));
        if (b->arc_node_q8[i] != want)
            s = plstm_fail(PLSTM_ERR_FORMAT, "arc %lld: Q8 node %lld, file has %lld",
                           (long long)b->arc_ref[i], (long long)b->arc_node_q8[i],
                           (long long)want);
    }
    json_decref(a);
    return s;
}

static plstm_status run_graph(const plstm_safetensors *st, const verify_opts *o,
                              verify_report *r, gcase *k)
{
    const plstm_dtype dt = o->dtype;
    plstm_graph_layer_config cfg;
    PLSTM_TRY(config_of(st, &cfg));
    cfg.algo = o->algo;
    const int edge = cfg.kind == PLSTM_GRAPH_LAYER_EDGE;
    int N, E;
    PLSTM_TRY(meta_int(st, "num_nodes", &N));
    PLSTM_TRY(meta_int(st, "num_edges", &E));
    const int64_t es[2] = {E, 2};
    PLSTM_TRY(plstm_safetensors_expect_shape(st, "input.edges", 2, es));
    if (!(k->edges = malloc(((size_t)E * 2 + 1) * sizeof *k->edges)))
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate edges");
    PLSTM_TRY(plstm_safetensors_read_i64(st, "input.edges", k->edges, (size_t)E * 2));
    const plstm_graph_prep_opts po = {.directed = 0, .mode = cfg.mode, .reverse = 0};
    const int64_t nn = N, ne = E;
    PLSTM_TRY(plstm_graph_batch_prepare(&k->b, 1, &nn, &ne, k->edges, &po));
    PLSTM_TRY(check_orderings(st, k->b));

    plstm_graph_layer L;
    PLSTM_TRY(plstm_params_create(&k->p));
    PLSTM_TRY(plstm_graph_layer_declare(&L, &cfg, k->p, NULL));
    const size_t np = plstm_params_size(k->p), esz = plstm_dtype_size(dt);
    k->params = calloc(np ? np : 1, esz);
    k->grads = calloc(np ? np : 1, esz);
    if (!k->params || !k->grads)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate %zu parameters", np);
    PLSTM_TRY(plstm_params_load(k->p, k->params, dt, st, "param.", 1));

    const int D = cfg.input_dim, De = cfg.edge_input_dim;
    const int64_t xs[2] = {N, D}, exs[2] = {E, De};
    PLSTM_TRY(vt_load(st, "input.x", 2, xs, dt, &k->x));
    PLSTM_TRY(vt_load(st, "input.dY", 2, xs, dt, &k->dy));
    if (edge)
        PLSTM_TRY(vt_load(st, "input.edge_x", 2, exs, dt, &k->ex));
    PLSTM_TRY(vt_zeros((size_t)N * D, dt, &k->y));
    PLSTM_TRY(vt_zeros((size_t)N * D, dt, &k->dx));
    if (edge)
        PLSTM_TRY(vt_zeros((size_t)E * De, dt, &k->dex));
    const size_t na = plstm_graph_layer_activation_size(&L, k->b);
    if (!(k->acts = malloc((na ? na : 1) * esz)))
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate %zu activations", na);

    const void *exp = edge ? vt_ptr(&k->ex, dt) : NULL;
    PLSTM_TRY(plstm_graph_layer_forward(o->ctx, &L, dt, k->params, k->b, vt_ptr(&k->x, dt), exp,
                                        vt_ptr(&k->y, dt), k->acts));
    PLSTM_TRY(verify_compare(st, "output.Y", &k->y, dt, o, r));
    PLSTM_TRY(plstm_graph_layer_backward(o->ctx, &L, dt, k->params, k->b, vt_ptr(&k->x, dt), exp,
                                         k->acts, vt_ptr(&k->dy, dt), vt_ptr(&k->dx, dt),
                                         edge ? vt_ptr(&k->dex, dt) : NULL, k->grads));
    PLSTM_TRY(verify_compare(st, "grad.x", &k->dx, dt, o, r));
    if (edge)
        PLSTM_TRY(verify_compare(st, "grad.edge_x", &k->dex, dt, o, r));
    return verify_compare_param_grads(st, k->p, k->grads, o, r);
}

plstm_status verify_graph_layer(const plstm_safetensors *st, const verify_opts *o,
                                verify_report *r)
{
    gcase k;
    memset(&k, 0, sizeof k);
    plstm_status s = run_graph(st, o, r, &k);
    case_free(&k);
    return s;
}
