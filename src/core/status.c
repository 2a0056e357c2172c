#include "status_internal.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[1024];

const char *plstm_status_name(plstm_status status)
{
    switch (status) {
    case PLSTM_OK: return "ok";
    case PLSTM_ERR_INVALID_ARGUMENT: return "invalid argument";
    case PLSTM_ERR_OUT_OF_MEMORY: return "out of memory";
    case PLSTM_ERR_IO: return "i/o error";
    case PLSTM_ERR_FORMAT: return "malformed data";
    case PLSTM_ERR_UNSUPPORTED: return "unsupported";
    case PLSTM_ERR_GRAPH: return "invalid graph";
    case PLSTM_ERR_NUMERIC: return "non-finite value";
    case PLSTM_ERR_DEVICE: return "device error";
    case PLSTM_ERR_MISMATCH: return "mismatch";
    }
    return "unknown status";
}

const char *plstm_last_error(void) { return last_error; }

void plstm_clear_error(void) { last_error[0] = '\0'; }

plstm_status plstm_fail(plstm_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}
