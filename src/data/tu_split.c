/* The TU evaluation protocol (experiments.md §2.7): scikit-learn's
 * StratifiedKFold(shuffle=True, random_state=seed) and, inside each fold,
 * train_test_split(stratify=..., random_state=seed), reproduced draw for
 * draw on numpy's legacy RandomState (MT19937 seeded by init_genrand,
 * bounded integers by masked rejection, Fisher-Yates shuffles). */
#include "plstm/tu.h"
#include "core/status_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- numpy RandomState (legacy) ------------------------------------------- */

typedef struct mt19937 {
    uint32_t s[624];
    int pos;
} mt19937;

static void mt_seed(mt19937 *m, uint32_t seed)
{
    m->s[0] = seed;
    for (int i = 1; i < 624; i++)
        m->s[i] = 1812433253u * (m->s[i - 1] ^ (m->s[i - 1] >> 30)) + (uint32_t)i;
    m->pos = 624;
}

static uint32_t mt_next(mt19937 *m)
{
    if (m->pos >= 624) {
        for (int i = 0; i < 624; i++) {
            uint32_t y = (m->s[i] & 0x80000000u) | (m->s[(i + 1) % 624] & 0x7fffffffu);
            m->s[i] = m->s[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        m->pos = 0;
    }
    uint32_t y = m->s[m->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* numpy random_interval: uniform in [0, max] by masked rejection (max < 2^32). */
static uint32_t mt_interval(mt19937 *m, uint32_t max)
{
    if (max == 0)
        return 0;
    uint32_t mask = max, v;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    while ((v = mt_next(m) & mask) > max)
        ;
    return v;
}

/* RandomState.shuffle of a 1-D array. */
static void mt_shuffle(mt19937 *m, int64_t *a, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = mt_interval(m, (uint32_t)i);
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* RandomState.permutation(n). */
static void mt_permutation(mt19937 *m, int64_t *a, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        a[i] = i;
    mt_shuffle(m, a, n);
}

/* ---- scikit-learn pieces ---------------------------------------------------- */

/* utils._approximate_mode: per-class draws summing to n_draws; the remainder
 * goes to the largest fractional parts, ties broken by rng.choice (which is
 * permutation(len)[:k]). counts/out are [C]; work is [2C]. */
static void approximate_mode(mt19937 *m, const int64_t *counts, int64_t C, int64_t n_draws,
                             int64_t *out, int64_t *work)
{
    double total = 0, cont[64], rem[64];
    for (int64_t c = 0; c < C; c++)
        total += (double)counts[c];
    double floored_sum = 0;
    for (int64_t c = 0; c < C; c++) {
        cont[c] = (double)counts[c] / total * (double)n_draws;
        out[c] = (int64_t)floor(cont[c]);
        floored_sum += floor(cont[c]);
        rem[c] = cont[c] - floor(cont[c]);
    }
    int64_t need = (int64_t)((double)n_draws - floored_sum);
    int used[64] = {0};
    while (need > 0) {
        /* next largest distinct remainder value */
        double best = -1;
        for (int64_t c = 0; c < C; c++)
            if (!used[c] && rem[c] > best)
                best = rem[c];
        if (best < 0)
            break;
        int64_t *inds = work, *perm = work + C, k = 0;
        for (int64_t c = 0; c < C; c++)
            if (!used[c] && rem[c] == best) {
                inds[k++] = c;
                used[c] = 1;
            }
        const int64_t add = k < need ? k : need;
        mt_permutation(m, perm, k);
        for (int64_t j = 0; j < add; j++)
            out[inds[perm[j]]]++;
        need -= add;
    }
}

/* StratifiedKFold._make_test_folds: fold of every sample. */
static void kfold_assign(mt19937 *m, int64_t n, const int64_t *enc, int64_t C, int K,
                         int64_t *fold, int64_t *work)
{
    /* allocation[k][c] = count of class c among sorted labels at positions k, k+K, ... */
    int64_t *count = work, *alloc = work + C, *list = work + C + (int64_t)K * C;
    memset(count, 0, (size_t)C * sizeof *count);
    for (int64_t i = 0; i < n; i++)
        count[enc[i]]++;
    memset(alloc, 0, (size_t)K * (size_t)C * sizeof *alloc);
    for (int64_t c = 0, pos = 0; c < C; c++)
        for (int64_t j = 0; j < count[c]; j++, pos++)
            alloc[(pos % K) * C + c]++;
    for (int64_t c = 0; c < C; c++) {
        int64_t len = 0;
        for (int k = 0; k < K; k++)
            for (int64_t j = 0; j < alloc[k * C + c]; j++)
                list[len++] = k;
        mt_shuffle(m, list, len);
        for (int64_t i = 0, j = 0; i < n; i++)
            if (enc[i] == c)
                fold[i] = list[j++];
    }
}

/* StratifiedShuffleSplit(n_splits=1)._iter_indices on items[0..n) with
 * labels y[i] (class of items[i]); writes item values. */
static plstm_status shuffle_split(mt19937 *m, int64_t n, const int64_t *items, const int64_t *y,
                                  int64_t C, double test_frac, int64_t *train, int64_t *n_train,
                                  int64_t *test, int64_t *n_test)
{
    const int64_t nt = (int64_t)ceil(test_frac * (double)n), nr = n - nt;
    int64_t counts[64] = {0}, ni[64], ti[64], rem[64], work[128];
    /* classes = sorted distinct labels present */
    int64_t cls_of[64], ncls = 0;
    for (int64_t c = 0; c < C; c++) {
        int64_t k = 0;
        for (int64_t i = 0; i < n; i++)
            k += y[i] == c;
        if (k > 0) {
            cls_of[ncls] = c;
            counts[ncls++] = k;
        }
    }
    if (nt < ncls || nr < ncls)
        return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT,
                          "tu folds: a validation split of %lld and a train split of %lld "
                          "cannot both hold all %lld classes",
                          (long long)nt, (long long)nr, (long long)ncls);
    approximate_mode(m, counts, ncls, nr, ni, work);
    for (int64_t c = 0; c < ncls; c++)
        rem[c] = counts[c] - ni[c];
    approximate_mode(m, rem, ncls, nt, ti, work);
    int64_t *perm = malloc((size_t)(n > 0 ? n : 1) * sizeof *perm);
    int64_t *members = malloc((size_t)(n > 0 ? n : 1) * sizeof *members);
    if (!perm || !members) {
        free(perm);
        free(members);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "tu folds: cannot allocate");
    }
    int64_t a = 0, b = 0;
    for (int64_t c = 0; c < ncls; c++) {
        int64_t k = 0;
        for (int64_t i = 0; i < n; i++) /* stable argsort by class */
            if (y[i] == cls_of[c])
                members[k++] = items[i];
        mt_permutation(m, perm, k);
        for (int64_t j = 0; j < ni[c]; j++)
            train[a++] = members[perm[j]];
        for (int64_t j = ni[c]; j < ni[c] + ti[c]; j++)
            test[b++] = members[perm[j]];
    }
    /* rng.permutation(list): a shuffled copy */
    mt_shuffle(m, train, a);
    mt_shuffle(m, test, b);
    *n_train = a;
    *n_test = b;
    free(perm);
    free(members);
    return PLSTM_OK;
}

void plstm_tu_folds_free(plstm_tu_fold *folds, int num_folds)
{
    for (int k = 0; folds && k < num_folds; k++) {
        free(folds[k].train);
        free(folds[k].val);
        free(folds[k].test);
        memset(&folds[k], 0, sizeof folds[k]);
    }
}

plstm_status plstm_tu_stratified_folds(int64_t n, const int64_t *labels, int K,
                                       double val_fraction, uint32_t seed, plstm_tu_fold *folds)
{
    PLSTM_CHECK_ARG(labels && folds && n >= 1, "tu folds: NULL labels/folds or no samples");
    PLSTM_CHECK_ARG(K >= 2 && K <= n, "tu folds: %d folds for %lld samples", K, (long long)n);
    PLSTM_CHECK_ARG(val_fraction > 0 && val_fraction < 1, "tu folds: val_fraction %g not in (0, 1)",
                    val_fraction);
    memset(folds, 0, (size_t)K * sizeof *folds);
    /* Classes encoded by order of first appearance (as StratifiedKFold does). */
    int64_t C = 0, first[64];
    int64_t *enc = malloc((size_t)n * sizeof *enc), *fold = malloc((size_t)n * sizeof *fold);
    int64_t *work = malloc((size_t)(64 + (int64_t)K * 64 + n) * sizeof *work);
    int64_t *items = malloc((size_t)n * sizeof *items), *ys = malloc((size_t)n * sizeof *ys);
    plstm_status st = PLSTM_OK;
    if (!enc || !fold || !work || !items || !ys) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "tu folds: cannot allocate");
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t c = 0;
        while (c < C && first[c] != labels[i])
            c++;
        if (c == C) {
            if (C == 64) {
                st = plstm_fail(PLSTM_ERR_UNSUPPORTED, "tu folds: more than 64 classes");
                goto done;
            }
            first[C++] = labels[i];
        }
        enc[i] = c;
    }
    /* As scikit-learn: an error only if every class is smaller than K. */
    int64_t largest = 0;
    for (int64_t c = 0; c < C; c++) {
        int64_t cnt = 0;
        for (int64_t i = 0; i < n; i++)
            cnt += enc[i] == c;
        largest = cnt > largest ? cnt : largest;
    }
    if (largest < K) {
        st = plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "tu folds: %d folds but no class has that "
                        "many samples (largest %lld)", K, (long long)largest);
        goto done;
    }
    mt19937 m;
    mt_seed(&m, seed);
    kfold_assign(&m, n, enc, C, K, fold, work);
    /* Labels sorted by value for the inner split's class order. */
    int64_t sorted_vals[64];
    memcpy(sorted_vals, first, (size_t)C * sizeof *first);
    for (int64_t i = 1; i < C; i++)
        for (int64_t j = i; j > 0 && sorted_vals[j - 1] > sorted_vals[j]; j--) {
            int64_t t = sorted_vals[j];
            sorted_vals[j] = sorted_vals[j - 1];
            sorted_vals[j - 1] = t;
        }
    for (int k = 0; k < K && st == PLSTM_OK; k++) {
        plstm_tu_fold *f = &folds[k];
        int64_t nte = 0, ntv = 0;
        for (int64_t i = 0; i < n; i++)
            nte += fold[i] == k;
        f->test = malloc((size_t)(nte > 0 ? nte : 1) * sizeof *f->test);
        f->train = malloc((size_t)(n - nte > 0 ? n - nte : 1) * sizeof *f->train);
        f->val = malloc((size_t)(n - nte > 0 ? n - nte : 1) * sizeof *f->val);
        if (!f->test || !f->train || !f->val) {
            st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "tu folds: cannot allocate fold %d", k);
            break;
        }
        for (int64_t i = 0; i < n; i++) {
            if (fold[i] == k) {
                f->test[f->num_test++] = i;
            } else {
                items[ntv] = i;
                int64_t c = 0;
                while (sorted_vals[c] != labels[i])
                    c++;
                ys[ntv++] = c;
            }
        }
        mt19937 inner; /* train_test_split gets a fresh RandomState(seed) */
        mt_seed(&inner, seed);
        st = shuffle_split(&inner, ntv, items, ys, C, val_fraction, f->train, &f->num_train,
                           f->val, &f->num_val);
    }
done:
    free(enc);
    free(fold);
    free(work);
    free(items);
    free(ys);
    if (st != PLSTM_OK)
        plstm_tu_folds_free(folds, K);
    return st;
}

double plstm_tu_test_at_best_val(const double *val_acc, const double *test_acc, int num_epochs)
{
    int best = 0;
    for (int i = 1; i < num_epochs; i++)
        if (val_acc[i] > val_acc[best])
            best = i;
    return num_epochs > 0 ? test_acc[best] : 0.0;
}

void plstm_tu_mean_std(const double *v, int n, double *mean, double *std)
{
    double s = 0, q = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    const double mu = n > 0 ? s / n : 0;
    for (int i = 0; i < n; i++)
        q += (v[i] - mu) * (v[i] - mu);
    *mean = mu;
    *std = n > 0 ? sqrt(q / n) : 0;
}
