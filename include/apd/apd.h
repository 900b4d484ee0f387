/* apd/apd.h: umbrella header for libapd. Include the per-concern headers directly if you
 * need only one part: status, dataset, format, io, quant, loader, nn, distill. */
#ifndef APD_APD_H
#define APD_APD_H
#include "apd/status.h"
#include "apd/dataset.h"
#endif
