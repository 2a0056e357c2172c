/* OpenBLAS 0.3.21 (Debian 12) does not recognise newer Xeons and falls back
 * to its SSE3 "Prescott" kernels, about 4x slower than its AVX-512 ones. The
 * kernel is chosen when the library loads, so a program that wants the fast
 * path must set OPENBLAS_CORETYPE before it starts: this re-executes the
 * program once with the variable set, only when detection failed on an
 * AVX-512 CPU and the user has not chosen a core type (and, beside a
 * pthreads OpenBLAS, with passive OpenMP waiting unless the user chose a
 * policy). Programs only; the
 * library never touches the environment. */
#ifndef PLSTM_CLI_BLAS_TUNE_H
#define PLSTM_CLI_BLAS_TUNE_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *openblas_get_corename(void);
int openblas_get_parallel(void); /* 0 sequential, 1 pthreads, 2 OpenMP */

static inline void plstm_program_tune_blas(char **argv)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (getenv("PLSTM_NO_BLAS_TUNE") || getenv("PLSTM_BLAS_TUNED"))
        return;
    int restart = 0;
    const char *core = openblas_get_corename();
    if (!getenv("OPENBLAS_CORETYPE") && core && !strcmp(core, "Prescott") &&
        __builtin_cpu_supports("avx512f")) {
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
        restart = 1;
    }
    /* With a pthreads OpenBLAS, OpenMP threads spinning at barriers steal the
     * cores OpenBLAS's own threads need; passive waiting doubled GEMM speed
     * inside a training step. An OpenMP OpenBLAS shares the team instead. */
    if (!getenv("OMP_WAIT_POLICY") && openblas_get_parallel() == 1) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        restart = 1;
    }
    if (restart) {
        setenv("PLSTM_BLAS_TUNED", "1", 1);
        execv("/proc/self/exe", argv); /* on failure just carry on */
    }
#else
    (void)argv;
#endif
}

#endif
