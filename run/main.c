/* SPDX-License-Identifier: Apache-2.0 */
/* cas-run, the attested launcher: measures a program and the files its arguments name, proves to CAS
 * with a lasd quote that it (an allowed cas-run) measured them, receives the service's configuration
 * (arguments, environment, working directory, injection files) encrypted to its own ephemeral key,
 * and executes exactly the measured program with it. docs/design.md "cas-run: the attested launcher". */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "run.h"

#define PROG "cas-run"

struct settings {
    const char *cas, *key_hash, *cli_config, *las, *session, *files_mode;
    struct custos_strlist platforms, measurements;
};

/* What the program is executed with; every string may hold a secret. */
struct launch {
    int program_fd;
    char **argv, **envp;
    size_t argc, envc;
    char *pwd;
    struct rlimit core; /* cas-run's own is 0 (no core dumps with secrets): the program gets the caller's */
};

static void launch_wipe(void *ctx)
{
    struct launch *l = ctx;
    for (size_t i = 0; l->argv && i < l->argc; i++) {
        custos_wipe(l->argv[i], strlen(l->argv[i]));
        free(l->argv[i]);
    }
    for (size_t i = 0; l->envp && i < l->envc; i++) {
        custos_wipe(l->envp[i], strlen(l->envp[i]));
        free(l->envp[i]);
    }
    free(l->argv);
    free(l->envp);
    l->argv = l->envp = NULL;
    l->argc = l->envc = 0;
    if (l->pwd) {
        custos_wipe(l->pwd, strlen(l->pwd));
        free(l->pwd);
        l->pwd = NULL;
    }
}

static int launch_exec(void *ctx)
{
    struct launch *l = ctx;
    if (chdir(l->pwd) < 0) {
        LOG_MODULE_ERROR(RUN_LOG, "cannot change to the service's working directory %s: %s", l->pwd, strerror(errno));
        return 1;
    }
    setrlimit(RLIMIT_CORE, &l->core);
    fexecve(l->program_fd, l->argv, l->envp);
    if (errno == ETXTBSY) {
        /* older kernels refuse to execute a file open for writing, sealed or not: a read-only one */
        char p[64];
        snprintf(p, sizeof(p), "/proc/self/fd/%d", l->program_fd);
        int ro = open(p, O_RDONLY | O_CLOEXEC);
        if (ro >= 0)
            fexecve(ro, l->argv, l->envp);
    }
    int e = errno;
    LOG_MODULE_ERROR(RUN_LOG, "cannot execute the measured program (%s): %s", l->argv[0], strerror(e));
    return e == ENOENT ? 127 : 126;
}

/* The CAS's URL and pinned key hash: --cas-key-hash with --cas (or the CLI configuration's entry for
 * its URL), else the entry of a CLI configuration named by --cli-config / CAS_CLI_CONFIG /
 * SCONE_CLI_CONFIG. Nothing else: cas-run never talks to a CAS it has no key hash for. */
static int resolve_cas(const struct settings *s, char *url, size_t url_size, char key_hash[65], char *err,
                       size_t err_size)
{
    const char *cfg_path = s->cli_config && *s->cli_config ? s->cli_config : NULL;
    const char *cu = NULL, *ck = NULL;
    json_t *cfg = NULL;
    char ferr[1024], host[300];
    int ret = 0;
    if (cfg_path) {
        if (cli_config_load(cfg_path, &cfg, ferr, sizeof(ferr)) < 0) {
            snprintf(err, err_size, "CLI configuration %s: %s", cfg_path, ferr);
            return -EINVAL;
        }
        if (cli_find_cas(cfg, s->cas, &cu, &ck, ferr, sizeof(ferr)) < 0 && !s->key_hash) {
            snprintf(err, err_size, "CLI configuration %s: %s", cfg_path, ferr);
            ret = -EINVAL;
            goto out;
        }
    }
    if (s->key_hash && *s->key_hash) {
        uint8_t kh[32];
        if (strlen(s->key_hash) != 64 || custos_hex_decode(s->key_hash, kh, sizeof(kh)) < 0) {
            snprintf(err, err_size, "CAS key hash '%s' is not 64 hex digits", s->key_hash);
            ret = -EINVAL;
            goto out;
        }
        custos_hex_encode(kh, sizeof(kh), key_hash, false);
        if (ck && strcasecmp(ck, key_hash)) {
            snprintf(err, err_size,
                     "--cas-key-hash %s differs from the key hash %s the CLI configuration %s records for "
                     "CAS %s",
                     key_hash, ck, cfg_path, cu);
            ret = -EINVAL;
            goto out;
        }
        if (cu) {
            snprintf(url, url_size, "%s", cu);
        } else if (!s->cas || !*s->cas) {
            snprintf(err, err_size, "no CAS address: pass --cas ADDR (env SCONE_CAS_ADDR)");
            ret = -EINVAL;
        } else if (cli_normalize_address(s->cas, url, url_size, host, sizeof(host)) < 0) {
            snprintf(err, err_size, "CAS address '%s' is not host, host:port or https://host:port", s->cas);
            ret = -EINVAL;
        }
        goto out;
    }
    if (!cu || !ck) {
        snprintf(err, err_size,
                 "no key hash for CAS %s: pass --cas-key-hash HEX (env CAS_KEY_HASH) or a CLI configuration that "
                 "records this CAS (--cli-config FILE, env CAS_CLI_CONFIG); cas-run never talks to a CAS it cannot pin",
                 s->cas && *s->cas ? s->cas : "(none given)");
        ret = -EINVAL;
        goto out;
    }
    snprintf(url, url_size, "%s", cu);
    snprintf(key_hash, 65, "%s", ck);
    for (char *c = key_hash; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
out:
    json_decref(cfg);
    return ret;
}

/* SESSION/SERVICE: two names of [A-Za-z0-9._-]{1,128} (not . or ..). */
static bool service_id_ok(const char *id)
{
    const char *slash = strchr(id, '/');
    if (!slash || strchr(slash + 1, '/'))
        return false;
    const char *parts[2] = {id, slash + 1};
    size_t lens[2] = {(size_t)(slash - id), strlen(slash + 1)};
    for (int k = 0; k < 2; k++) {
        if (lens[k] < 1 || lens[k] > 128 || (lens[k] == 1 && parts[k][0] == '.') ||
            (lens[k] == 2 && parts[k][0] == '.' && parts[k][1] == '.'))
            return false;
        for (size_t i = 0; i < lens[k]; i++) {
            char c = parts[k][i];
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == '-'))
                return false;
        }
    }
    return true;
}

/* SCONE_HASH=1: the measurement of PROGRAM (resolved as it would be run), or cas-run's own. */
static int print_hash(char *const *words, size_t count)
{
    char path[4096], err[1024], hex[65];
    uint8_t h[32];
    int fd = -1;
    if (count == 0)
        snprintf(path, sizeof(path), "/proc/self/exe");
    else if (run_resolve_program(words[0], path, sizeof(path), err, sizeof(err)) < 0)
        goto fail;
    if (run_sealed_copy(path, RUN_PROGRAM_MAX, true, true, &fd, h, err, sizeof(err)) < 0)
        goto fail;
    if (count && run_is_script(fd)) {
        snprintf(err, sizeof(err), "%.900s is a script (#!): cas-run does not run scripts as programs", path);
        close(fd);
        goto fail;
    }
    close(fd);
    custos_hex_encode(h, sizeof(h), hex, false);
    printf("%s\n", hex);
    return 0;
fail:
    fprintf(stderr, PROG ": %s\n", err);
    return 1;
}

/* 403 attestation_failed: CAS's reasons, one line each, as the reference prints them. */
static void print_refusal(const struct cli_response *resp, const char *service)
{
    const json_t *e = json_object_get(resp->body, "error");
    const json_t *errors = json_object_get(resp->body, "errors");
    if (!json_is_array(errors))
        errors = json_object_get(e, "errors");
    LOG_MODULE_ERROR(RUN_LOG, "CAS refused to configure %s (status %ld): %s", service, resp->status,
                     cli_error_message(resp));
    size_t n = json_array_size(errors), i;
    const json_t *v;
    json_array_foreach(errors, i, v)
        fprintf(stderr, "Error %zu of %zu: %s\n", i + 1, n, json_string_value(v) ?: "?");
}

/* The configuration's argv with each word whose caller's word named a protected file replaced by
 * /dev/fd/N (CAS filled @@N from the original words). */
static int build_argv(const json_t *cfg, const struct run_measured *m, struct launch *l, char *err, size_t err_size)
{
    const json_t *argv = json_object_get(cfg, "argv");
    size_t n = json_array_size(argv);
    if (!json_is_array(argv) || n != m->word_count) {
        snprintf(err, err_size, "CAS's configuration has %zu words for a command of %zu", n, m->word_count);
        return -EPROTO;
    }
    l->argv = calloc(n + 1, sizeof(*l->argv));
    if (!l->argv)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *w = json_string_value(json_array_get(argv, i));
        if (!w) {
            snprintf(err, err_size, "CAS's configuration: argv[%zu] is not a string", i);
            return -EPROTO;
        }
        if (m->file_fd[i] >= 0) {
            char fdpath[32];
            snprintf(fdpath, sizeof(fdpath), "/dev/fd/%d", m->file_fd[i]);
            l->argv[i] = strdup(fdpath);
        } else {
            l->argv[i] = strdup(w);
        }
        if (!l->argv[i])
            return -ENOMEM;
        l->argc++;
    }
    return 0;
}

/* Exactly the configuration's environment: {name, value}, or {name, from_caller} copied from
 * cas-run's own environment (left out when cas-run has none of that name). */
static int build_env(const json_t *cfg, struct launch *l, char *err, size_t err_size)
{
    const json_t *env = json_object_get(cfg, "env");
    if (env && !json_is_array(env)) {
        snprintf(err, err_size, "CAS's configuration: env is not a list");
        return -EPROTO;
    }
    l->envp = calloc(json_array_size(env) + 1, sizeof(*l->envp));
    if (!l->envp)
        return -ENOMEM;
    size_t i;
    const json_t *e;
    json_array_foreach(env, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *value = json_string_value(json_object_get(e, "value"));
        bool from_caller = json_is_true(json_object_get(e, "from_caller"));
        if (!name || !*name || strchr(name, '=') || (!value && !from_caller)) {
            snprintf(err, err_size, "CAS's configuration: env[%zu] is not {name, value} or {name, from_caller}", i);
            return -EPROTO;
        }
        if (from_caller && !(value = getenv(name)))
            continue;
        if (asprintf(&l->envp[l->envc], "%s=%s", name, value) < 0) {
            l->envp[l->envc] = NULL;
            return -ENOMEM;
        }
        l->envc++;
    }
    return 0;
}

/* The injection files of the configuration, decoded (caller wipes and frees each content). */
static int decode_files(const json_t *cfg, struct run_file **out, size_t *count, char *err, size_t err_size)
{
    const json_t *files = json_object_get(cfg, "files");
    size_t n = json_array_size(files), i;
    const json_t *f;
    if (files && !json_is_array(files)) {
        snprintf(err, err_size, "CAS's configuration: files is not a list");
        return -EPROTO;
    }
    *out = calloc(n + 1, sizeof(**out));
    *count = 0;
    if (!*out)
        return -ENOMEM;
    json_array_foreach(files, i, f) {
        const char *path = json_string_value(json_object_get(f, "path"));
        const char *content = json_string_value(json_object_get(f, "content"));
        uint8_t *bytes = NULL;
        size_t size = 0;
        if (!path || !content || custos_base64_decode(content, &bytes, &size) < 0) {
            snprintf(err, err_size, "CAS's configuration: files[%zu] is not {path, content (base64)}", i);
            return -EPROTO;
        }
        (*out)[i] = (struct run_file){.path = path, .content = bytes, .size = size};
        (*count)++;
    }
    return 0;
}

static void free_files(struct run_file *files, size_t count)
{
    for (size_t i = 0; files && i < count; i++) {
        custos_wipe((void *)files[i].content, files[i].size);
        free((void *)files[i].content);
    }
    free(files);
}

/* Authenticates CAS, asks it for the service's configuration and opens it. 0 with *config, or the
 * exit status (1). */
static int fetch_config(const struct settings *s, const char *url, const char *pinned, char *const *words,
                        const struct run_measured *m, json_t **config)
{
    struct cli_trust trust = {
        .platforms = s->platforms,
        .measurements = s->measurements,
        .trust_any = s->platforms.count == 0,
        .ignore_signer = s->measurements.count == 0,
    };
    struct cli_response resp = {0};
    json_t *evidence = NULL, *req = NULL, *body = NULL;
    char *cert = NULL, *text = NULL;
    char kh[65], err[2048];
    uint8_t priv[32], pub[32], salt[32], rd[CUSTOS_REPORT_DATA_SIZE];
    struct custos_quote q;
    int ret = 1;
    LOG_MODULE_INFO(RUN_LOG, "Connecting to CAS at %s using service ID %s", url, s->session);
    if (cli_attest_cas(url, pinned, &trust, &evidence, &cert, kh, err, sizeof(err)) < 0) {
        LOG_MODULE_ERROR(RUN_LOG, "%s", err);
        goto out;
    }
    LOG_MODULE_INFO(RUN_LOG, "CAS attested: key hash %s, platform %s, measurement %s%s", kh,
                    json_string_value(json_object_get(evidence, "platform_id")),
                    json_string_value(json_object_get(evidence, "measurement")),
                    s->measurements.count ? "" : " (not checked: no --cas-measurement)");
    if (custos_x25519_keypair(priv, pub) < 0) {
        LOG_MODULE_ERROR(RUN_LOG, "cannot make an X25519 key");
        goto out;
    }
    req = run_request(m, words, pub, kh, (long long)time(NULL));
    if (!req || custos_run_binding(req, salt, rd) < 0) {
        LOG_MODULE_ERROR(RUN_LOG, "out of memory");
        goto out;
    }
    if (custos_las_quote(s->las, rd, &q, err, sizeof(err)) < 0) {
        LOG_MODULE_ERROR(RUN_LOG, "no quote from the LAS at %s: %s", s->las, err);
        goto out;
    }
    body = json_pack("{s:s, s:O, s:o}", "service", s->session, "request", req, "quote", custos_quote_to_json(&q));
    text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (!text || cli_https(url, "POST", "/v1/run", text, kh, NULL, &resp, err, sizeof(err)) < 0) {
        LOG_MODULE_ERROR(RUN_LOG, "%s", text ? err : "out of memory");
        goto out;
    }
    if (resp.status == 403 &&
        !strcmp(json_string_value(json_object_get(json_object_get(resp.body, "error"), "code")) ?: "",
                "attestation_failed")) {
        print_refusal(&resp, s->session);
        goto out;
    }
    if (resp.status != 200) {
        LOG_MODULE_ERROR(RUN_LOG, "CAS refused to configure %s (status %ld): %s", s->session, resp.status,
                         cli_error_message(&resp));
        goto out;
    }
    if (run_open_config(resp.body, priv, salt, config, err, sizeof(err)) < 0) {
        LOG_MODULE_ERROR(RUN_LOG, "%s", err);
        goto out;
    }
    ret = 0;
out:
    custos_wipe(priv, sizeof(priv));
    free(text);
    free(cert);
    json_decref(body);
    json_decref(req);
    json_decref(evidence);
    cli_response_free(&resp);
    return ret;
}

static void pause_hook(void)
{
    const char *v = getenv("CUSTOS_TEST_RUN_PAUSE_MS");
    long ms = v ? strtol(v, NULL, 10) : 0;
    if (ms <= 0)
        return;
    LOG_MODULE_WARN(RUN_LOG, "CUSTOS_TEST_RUN_PAUSE_MS=%ld is set (a test hook): pausing between measuring and exec",
                    ms);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int main(int argc, char **argv)
{
    struct launch l = {.program_fd = -1};
    getrlimit(RLIMIT_CORE, &l.core);
    custos_harden_process();
    custos_json_wipe_init();
    custos_log_configure(getenv("CUSTOS_LOG"));

    /* options before "--", the program and its arguments after it */
    int opt_argc = argc;
    char **words = NULL;
    size_t word_count = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) {
            opt_argc = i;
            words = argv + i + 1;
            word_count = (size_t)(argc - i - 1);
            break;
        }
    }
    struct settings s = {0};
    // clang-format off
    struct custos_option opts[] = {
        {"cas", 0, "SCONE_CAS_ADDR", CUSTOS_OPT_STRING, NULL, 0, 0, "NAME|ADDR",
         "the CAS: an address (host, host:port, https://host:port; port 8081 by default) with --cas-key-hash, or a "
         "name or address of the CLI configuration (default: its default CAS)", &s.cas},
        {"cas-key-hash", 0, "CAS_KEY_HASH", CUSTOS_OPT_STRING, NULL, 0, 0, "HEX",
         "the CAS's key hash (64 hex): its TLS key is pinned to it; without it, the CLI configuration's entry gives "
         "it, and without either cas-run refuses to start", &s.key_hash},
        {"cli-config", 0, "CAS_CLI_CONFIG|SCONE_CLI_CONFIG", CUSTOS_OPT_STRING, NULL, 0, 0, "FILE",
         "a cas CLI configuration to take the CAS's URL and key hash from (no default: ~/.cas/config is not read)",
         &s.cli_config},
        {"las", 0, "SCONE_LAS_ADDR", CUSTOS_OPT_STRING, CUSTOS_LAS_DEFAULT_SOCKET, 0, 0, "PATH",
         "the Local Attestation Service's socket", &s.las},
        {"cas-platform", 0, NULL, CUSTOS_OPT_LIST, NULL, 0, 0, "ID",
         "a platform the CAS's own quote may come from (default: any platform: the pinned key authenticates CAS)",
         &s.platforms},
        {"cas-measurement", 0, NULL, CUSTOS_OPT_LIST, NULL, 0, 0, "HEX",
         "a measurement the CAS (casd) may have (default: not checked)", &s.measurements},
        {"session", 0, "SCONE_CONFIG_ID", CUSTOS_OPT_STRING, NULL, 0, 0, "SESSION/SERVICE",
         "the session and service whose configuration the program gets (required)", &s.session},
        {"files-mode", 0, "CAS_RUN_FILES_MODE", CUSTOS_OPT_STRING, "auto", 0, 0, "auto|namespace|parent",
         "injection files: in a private mount namespace (tmpfs overlays), or on disk with cas-run staying the parent "
         "that removes them; auto: namespace, else parent", &s.files_mode},
    };
    // clang-format on
    const char *summary =
        "       cas-run [OPTIONS] -- PROGRAM [ARGS...]\n"
        "Runs PROGRAM (found through PATH, never a #! script) with the configuration of the service SESSION/SERVICE "
        "(arguments, environment, working directory, injection files), which CAS gives only when PROGRAM and the "
        "files its ARGS name have the measurements the session allows. What runs and what the program reads as "
        "protected files are sealed copies of what was measured.\n"
        "SCONE_HASH=1 cas-run -- PROGRAM prints PROGRAM's measurement, SCONE_HASH=1 cas-run its own.";
    int ret = custos_options_parse(PROG, summary, opts, sizeof(opts) / sizeof(opts[0]), opt_argc, argv, NULL);
    if (ret)
        return ret > 0 ? 0 : 2;
    const char *hash_env = getenv("SCONE_HASH");
    if (hash_env && !strcmp(hash_env, "1"))
        return print_hash(words, word_count);

    char err[2048], url[512], key_hash[65];
    enum run_files_mode mode;
    struct run_measured m = {.program_fd = -1};
    struct run_file *files = NULL;
    size_t file_count = 0;
    struct run_files *placed = NULL;
    json_t *config = NULL;
    ret = 2;
    if (!s.session || !*s.session) {
        fprintf(stderr, PROG ": no service: pass --session SESSION/SERVICE (env SCONE_CONFIG_ID)\n");
        goto out;
    }
    if (!service_id_ok(s.session)) {
        fprintf(stderr, PROG ": --session '%s' is not SESSION/SERVICE (names of A-Z a-z 0-9 . _ -)\n", s.session);
        goto out;
    }
    if (word_count == 0) {
        fprintf(stderr, PROG ": no program: cas-run [OPTIONS] -- PROGRAM [ARGS...] (see --help)\n");
        goto out;
    }
    if (run_files_mode_parse(s.files_mode, &mode) < 0) {
        fprintf(stderr, PROG ": --files-mode '%s' is not auto, namespace or parent\n", s.files_mode);
        goto out;
    }
    if (custos_las_path_check(s.las, err, sizeof(err)) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        goto out;
    }
    ret = 1;
    if (resolve_cas(&s, url, sizeof(url), key_hash, err, sizeof(err)) < 0) {
        LOG_MODULE_ERROR(RUN_LOG, "%s", err);
        goto out;
    }
    if (run_measure(words, word_count, &m, err, sizeof(err)) < 0) {
        LOG_MODULE_ERROR(RUN_LOG, "%s", err);
        goto out;
    }
    char hex[65];
    custos_hex_encode(m.program_hash, sizeof(m.program_hash), hex, false);
    size_t protected_count = 0;
    for (size_t i = 1; i < m.word_count; i++)
        protected_count += m.file_fd[i] >= 0;
    LOG_MODULE_INFO(RUN_LOG, "program %s measured: %s; %zu argument%s name%s a file, measured and passed as /dev/fd/N",
                    words[0], hex, protected_count, protected_count == 1 ? "" : "s", protected_count == 1 ? "s" : "");
    pause_hook();
    if (fetch_config(&s, url, key_hash, words, &m, &config) != 0)
        goto out;
    LOG_MODULE_INFO(RUN_LOG, "configuration of %s received (session hash %s)", s.session,
                    json_string_value(json_object_get(config, "session_hash")) ?: "?");
    const char *pwd = json_string_value(json_object_get(config, "pwd"));
    if ((ret = build_argv(config, &m, &l, err, sizeof(err))) < 0 ||
        (ret = build_env(config, &l, err, sizeof(err))) < 0 ||
        (ret = decode_files(config, &files, &file_count, err, sizeof(err))) < 0 || !pwd || pwd[0] != '/' ||
        !(l.pwd = strdup(pwd))) {
        LOG_MODULE_ERROR(RUN_LOG, "%s", ret < 0 && ret != -ENOMEM ? err : "CAS's configuration: no absolute pwd");
        ret = 1;
        goto out;
    }
    ret = 1;
    if (run_files_place(mode, files, file_count, &placed, err, sizeof(err)) < 0) {
        LOG_MODULE_ERROR(RUN_LOG, "%s", err);
        goto out;
    }
    free_files(files, file_count); /* decoded: the copies are in place */
    files = NULL;
    json_decref(config); /* wiped as it is freed (custos_json_wipe_init) */
    config = NULL;
    l.program_fd = m.program_fd;
    LOG_MODULE_INFO(RUN_LOG, "running %s as %s (injection files: %s)", words[0], s.session,
                    run_files_mode_used(placed));
    ret = run_files_run(placed, launch_exec, launch_wipe, &l);
out:
    launch_wipe(&l);
    free_files(files, file_count);
    json_decref(config);
    run_files_free(placed);
    run_measured_free(&m);
    custos_strlist_free(&s.platforms);
    custos_strlist_free(&s.measurements);
    return ret;
}
