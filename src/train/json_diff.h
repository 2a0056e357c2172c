/* Finds the first difference between two JSON documents, for error messages
 * that say which configuration value differs. */
#ifndef PLSTM_TRAIN_JSON_DIFF_H
#define PLSTM_TRAIN_JSON_DIFF_H

#include <stddef.h>
#include "plstm/status.h"

/* Compares `file_text` (from a file: unparsable is PLSTM_ERR_FORMAT) with
 * `run_text` (the caller's: unparsable is PLSTM_ERR_INVALID_ARGUMENT). `out`
 * gets "" when they are equal as JSON (key order and spacing do not matter),
 * else a description such as "dim is 192 in the file and 128 in this run". */
plstm_status plstm_json_diff(const char *file_text, const char *run_text, char *out,
                             size_t cap);

#endif
