#include "backends/cpu/blas_threads.h"

#include <cblas.h>

int cpu_blas_serial_begin(int team)
{
    if (team <= 1 || openblas_get_parallel() != 1)
        return 0;
    const int prev = openblas_get_num_threads();
    if (prev == 1)
        return 0;
    openblas_set_num_threads(1);
    return prev;
}

void cpu_blas_serial_end(int token)
{
    if (token > 0)
        openblas_set_num_threads(token);
}
