/* OpenBLAS threads around GEMMs issued from inside an OpenMP team. */
#ifndef PLSTM_CPU_BLAS_THREADS_H
#define PLSTM_CPU_BLAS_THREADS_H

/* Before a team of `team` threads makes BLAS calls: a pthreads OpenBLAS is
 * made single-threaded (its own pool would only oversubscribe the cores and
 * race between callers). An OpenMP OpenBLAS already runs serially inside a
 * parallel region, and setting its thread count would also set the caller's
 * OpenMP thread count, so it is left alone. Returns a token for _end. */
int cpu_blas_serial_begin(int team);
void cpu_blas_serial_end(int token);

#endif
