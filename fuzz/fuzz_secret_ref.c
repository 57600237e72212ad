/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for secret references: cas_session_expand over arbitrary bytes with a fixed
 * small session (every kind, an import). The first byte picks text (environment, command) or file
 * mode. Checked: the result is NUL-terminated and, in a text, holds no NUL; a refusal says why and
 * never quotes a secret value; input without references comes out unchanged. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "custos.h"
#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char g_session[] = "name: fuzz\n"
                                "version: \"0.3\"\n"
                                "secrets:\n"
                                "  - name: pw\n"
                                "    value: \"Fuzz#Secret%Value\"\n"
                                "  - name: h\n"
                                "    kind: hex\n"
                                "    value: \"00ff10\"\n"
                                "  - name: b\n"
                                "    kind: binary\n"
                                "    value: AEZ1enpTZWNyZXQ=\n"
                                "  - name: a\n"
                                "    size: 12\n"
                                "  - name: k\n"
                                "    kind: key\n"
                                "  - name: ca\n"
                                "    kind: x509\n"
                                "  - name: x\n"
                                "    kind: x509\n"
                                "    issuer: ca\n"
                                "  - name: imp\n"
                                "    import: {session: other, secret: theirs}\n"
                                "  - name: gone\n"
                                "    import: {session: other, secret: gone}\n";

static json_t *g_parsed, *g_secrets, *g_imported;

static const json_t *fake_import(void *ctx, const char *session, const char *secret, char *err, size_t err_size)
{
    (void)ctx;
    if (!strcmp(session, "other") && !strcmp(secret, "theirs"))
        return g_imported;
    snprintf(err, err_size, "not exported to this session");
    return NULL;
}

static void init(void)
{
    char err[512];
    if (g_parsed)
        return;
    if (cas_session_parse(g_session, strlen(g_session), &g_parsed, err, sizeof(err)) != 0 ||
        cas_session_secrets(g_parsed, NULL, &g_secrets, err, sizeof(err)) != 0)
        abort();
    g_imported = json_pack("{s:s, s:s, s:s}", "def", "00", "kind", "ascii", "value", "SW1wb3J0ZWQjU2VjcmV0");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "";
    uint8_t *out = (uint8_t *)1;
    size_t out_size = 7;
    init();
    if (size < 1)
        return 0;
    bool text = data[0] & 1;
    const char *in = (const char *)data + 1;
    size--;
    struct cas_secret_source src = {g_parsed, g_secrets, fake_import, NULL};
    int ret = cas_session_expand(&src, in, size, text, &out, &out_size, err, sizeof(err));

    /* the references on their own */
    struct cas_secret_ref ref;
    char ref_err[512] = "";
    size_t pos = 0, refs = 0;
    int found;
    while ((found = cas_ref_next(in, size, &pos, &ref, ref_err, sizeof(ref_err))) == 1) {
        if (ref.end <= ref.start || ref.end > size || !cas_session_name_valid(ref.name))
            abort();
        refs++;
    }
    if (ret == 0) {
        if (found < 0 || !out || out[out_size] != '\0' || (text && memchr(out, '\0', out_size)))
            abort();
        if (!refs && (out_size != size || memcmp(out, in, size)))
            abort();
        custos_wipe(out, out_size);
        free(out);
        return 0;
    }
    if (out || out_size || !err[0] || !memchr(err, '\0', sizeof(err)))
        abort();
    /* the values hold '#' and '%', which no name (the only input a message quotes) holds */
    if (strstr(err, "Fuzz#Secret%Value") || strstr(err, "Imported#Secret") || strstr(err, "PRIVATE KEY"))
        abort();
    return 0;
}
