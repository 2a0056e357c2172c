/* plstm: pLSTM networks (Pöppel et al. 2025) in C. Umbrella header. */
#ifndef PLSTM_PLSTM_H
#define PLSTM_PLSTM_H

#include "plstm/status.h"
#include "plstm/context.h"
#include "plstm/core1d.h"
#include "plstm/core2d.h"
#include "plstm/dag.h"
#include "plstm/graph_prep.h"
#include "plstm/graph_layers.h"
#include "plstm/layers.h"
#include "plstm/nn.h"
#include "plstm/layer2d.h"
#include "plstm/vision.h"
#include "plstm/vit.h"
#include "plstm/safetensors.h"
#include "plstm/ape.h"
#include "plstm/train.h"
#include "plstm/classifier.h"
#include "plstm/params.h"
#include "plstm/tu.h"
#include "plstm/trainer.h"

#define PLSTM_VERSION_STRING "0.1.0"

#endif
