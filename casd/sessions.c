/* SPDX-License-Identifier: Apache-2.0 */
/* Session storage and API (stub: being written). */
#include "casd.h"
