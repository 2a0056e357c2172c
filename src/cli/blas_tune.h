/* OpenBLAS 0.3.21 (Debian 12) does not recognise newer Xeons and falls back
 * to its SSE3 "Prescott" kernels, about 4x slower than its AVX-512 ones. The
 * kernel is chosen when the library loads, so a program that wants the fast
 * path must set OPENBLAS_CORETYPE before it starts: this re-executes the
 * program once with the variable set, only when detection failed on an
 * AVX-512 CPU and the user has not chosen a core type. Programs only; the
 * library never touches the environment. */
#ifndef PLSTM_CLI_BLAS_TUNE_H
#define PLSTM_CLI_BLAS_TUNE_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *openblas_get_corename(void);

static inline void plstm_program_tune_blas(char **argv)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (getenv("OPENBLAS_CORETYPE") || getenv("PLSTM_NO_BLAS_TUNE"))
        return;
    const char *core = openblas_get_corename();
    if (!core || strcmp(core, "Prescott") != 0 || !__builtin_cpu_supports("avx512f"))
        return;
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    execv("/proc/self/exe", argv); /* on failure just carry on with the slow kernels */
#else
    (void)argv;
#endif
}

#endif
