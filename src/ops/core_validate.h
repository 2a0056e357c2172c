/* Argument checks shared by all backends' core operators. */
#ifndef PLSTM_CORE_VALIDATE_H
#define PLSTM_CORE_VALIDATE_H

#include "plstm/core1d.h"
#include "plstm/core2d.h"

plstm_status plstm_core1d_validate(const plstm_core1d_desc *d, const plstm_core1d_inputs *in);
plstm_status plstm_core2d_validate(const plstm_core2d_desc *d, const plstm_core2d_inputs *in);

#endif
