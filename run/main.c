/* SPDX-License-Identifier: Apache-2.0 */
/* cas-run: the attested launcher (stub: being written). */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "cas-run: not implemented yet\n");
    return 2;
}
