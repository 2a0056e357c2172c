/* Internal helpers for raising errors with a message. */
#ifndef PLSTM_STATUS_INTERNAL_H
#define PLSTM_STATUS_INTERNAL_H

#include "plstm/status.h"

#if defined(__GNUC__)
#define PLSTM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PLSTM_PRINTF(a, b)
#endif

/* Records a formatted message for this thread and returns `status`. */
plstm_status plstm_fail(plstm_status status, const char *fmt, ...) PLSTM_PRINTF(2, 3);

/* Evaluates `expr`; returns its status from the caller if it failed. */
#define PLSTM_TRY(expr)                         \
    do {                                        \
        plstm_status plstm_try_s_ = (expr);     \
        if (plstm_try_s_ != PLSTM_OK)           \
            return plstm_try_s_;                \
    } while (0)

/* Fails with PLSTM_ERR_INVALID_ARGUMENT and a message when `cond` is false. */
#define PLSTM_CHECK_ARG(cond, ...)                                     \
    do {                                                               \
        if (!(cond))                                                   \
            return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, __VA_ARGS__); \
    } while (0)

#endif
