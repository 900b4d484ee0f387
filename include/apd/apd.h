/* apd/apd.h: umbrella header for libapd. Include the per-concern headers directly if you
 * need only one part:
 *   status.h   status enum, apd_strerror, apd_err
 *   dataset.h  in-memory datasets (importer output, method input)
 *   io.h       importers (cifar10/100, idx, fashion-mnist, folder) and PNG exporters
 *   quant.h    classical quantizers (median cut, octree, k-means)
 *   format.h   .apd reader and writer (spec/apd-format.md); json.h JSON writer and reader
 *   loader.h   training batches: shuffling, sharding, threads, resume
 *   nn.h       the NN engine (ops, ConvNet, SGD); dsa.h augmentation; train.h evaluation
 *   palette.h  AutoPalette palette network and colour losses; budget.h storage budgets
 *   distill.h  distillation methods (random, dm, autopalette) */
#ifndef APD_APD_H
#define APD_APD_H
#include "apd/status.h"
#include "apd/dataset.h"
#include "apd/io.h"
#include "apd/quant.h"
#include "apd/format.h"
#include "apd/json.h"
#include "apd/loader.h"
#include "apd/nn.h"
#include "apd/dsa.h"
#include "apd/train.h"
#include "apd/palette.h"
#include "apd/budget.h"
#include "apd/distill.h"
#endif
