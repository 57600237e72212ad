/* SPDX-License-Identifier: Apache-2.0 */
/* POST /v1/run: attested configuration for cas-run (stub: being written). */
#include "casd.h"
#include "cas_run_measurement.h"
