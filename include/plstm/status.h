/* Status codes and error messages. Every fallible plstm_ function returns a
 * plstm_status; on failure a readable message is kept per thread and can be
 * read with plstm_last_error(). The library never prints, exits or aborts. */
#ifndef PLSTM_STATUS_H
#define PLSTM_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum plstm_status {
    PLSTM_OK = 0,
    PLSTM_ERR_INVALID_ARGUMENT, /* bad shape, NULL, out-of-range value      */
    PLSTM_ERR_OUT_OF_MEMORY,
    PLSTM_ERR_IO,               /* file could not be read or written        */
    PLSTM_ERR_FORMAT,           /* file content is malformed or hostile     */
    PLSTM_ERR_UNSUPPORTED,      /* valid request this build/backend lacks   */
    PLSTM_ERR_GRAPH,            /* cycle, self-loop, bad node index         */
    PLSTM_ERR_NUMERIC,          /* NaN/Inf where finite values are required */
    PLSTM_ERR_DEVICE,           /* CUDA/cuBLAS failure                      */
    PLSTM_ERR_MISMATCH          /* results differ beyond tolerance          */
} plstm_status;

/* Short fixed name of a status code ("invalid argument", ...). */
const char *plstm_status_name(plstm_status status);

/* Message of the last error raised on this thread ("" if none). */
const char *plstm_last_error(void);

/* Clears this thread's error message. */
void plstm_clear_error(void);

#ifdef __cplusplus
}
#endif
#endif
