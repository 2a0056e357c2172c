/* Shared pieces of the graph preparation (src/graph/prep*.c). */
#ifndef PLSTM_PREP_INTERNAL_H
#define PLSTM_PREP_INTERNAL_H

#include "plstm/graph_prep.h"

/* calloc of n int64 (at least one), NULL on failure. */
int64_t *prep_alloc(int64_t n);

/* Stable counting sort of the items list[0..n) by key[item] in [0, nkeys):
 * off[nkeys+1], out[n]. */
void prep_bucket(const int64_t *list, int64_t n, const int64_t *key, int64_t nkeys,
                 int64_t *off, int64_t *out);

/* networkx topological_sort of a digraph on nodes 0..n-1 whose node
 * iteration order is `order` and whose successor lists (in insertion order)
 * are succ[succ_off[v] .. succ_off[v+1]]. Writes the order to `out` and
 * returns how many nodes it holds (< n if there is a cycle). `work` is [n]. */
int64_t prep_toposort(int64_t n, const int64_t *order, const int64_t *succ_off,
                      const int64_t *succ, int64_t *out, int64_t *work);

/* Fills every derived array of `pg` (N, E, mode, tail, head set; arrays
 * allocated) from the DAG's node iteration order and edge insertion order
 * (`ins`, original edge indices), as networkx would hold that DiGraph. */
plstm_status prep_derive(plstm_prepared_graph *pg, const int64_t *node_order,
                         const int64_t *ins);

#endif
