/* SPDX-License-Identifier: Apache-2.0 */
/* cas session create|update|read|list (stub: being written). */
#include "cli.h"
