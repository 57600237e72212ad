/* SPDX-License-Identifier: Apache-2.0 */
/* Session secrets: generation, references, command matching (stub: being written). */
#include "session.h"
