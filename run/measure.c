/* SPDX-License-Identifier: Apache-2.0 */
/* cas-run: measuring the program (stub). */
#include "cli.h"
