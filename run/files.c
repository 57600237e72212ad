/* SPDX-License-Identifier: Apache-2.0 */
/* cas-run: injection files (stub). */
#include "cli.h"
