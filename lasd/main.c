/* SPDX-License-Identifier: Apache-2.0 */
/* lasd: the Local Attestation Service, one per node. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lasd.h"

int main(int argc, char **argv)
{
    custos_json_wipe_init(); /* before any JSON is made: freed JSON memory is wiped */
    const char *socket_path = NULL, *platform_name = NULL, *platform_dir = NULL, *tcti = NULL, *log_spec = NULL;
    long long sim_tcb = 0, threads = 0, max_clients = 0, max_per_uid = 0, reserved_clients = 0, timeout_ms = 0;
    struct custos_strlist reserved_uid_list = {0};
    bool debug = false;
    struct custos_option opts[] = {
        {"socket", 's', "SCONE_LAS_ADDR", CUSTOS_OPT_STRING, CUSTOS_LAS_DEFAULT_SOCKET, 0, 0, "PATH",
         "Unix socket to listen on", &socket_path},
        {"platform", 0, "CUSTOS_PLATFORM", CUSTOS_OPT_STRING, "sim", 0, 0, "sim|tpm2|sgx",
         "platform backend (the hardware root of trust)", &platform_name},
        {"platform-dir", 0, "CUSTOS_PLATFORM_DIR", CUSTOS_OPT_STRING, CUSTOS_DEFAULT_PLATFORM_DIR, 0, 0, "DIR",
         "directory holding the platform's sealed machine secret", &platform_dir},
        {"tpm-tcti", 0, "CUSTOS_TPM_TCTI", CUSTOS_OPT_STRING, "device:/dev/tpmrm0", 0, 0, "TCTI",
         "tpm2: TPM transport (e.g. swtpm:host=127.0.0.1,port=2321)", &tcti},
        {"sim-tcb", 0, "CUSTOS_SIM_TCB", CUSTOS_OPT_INT, "1", 0, 65535, "N", "sim: the TCB level reported in quotes",
         &sim_tcb},
        {"debug-mode", 0, "CUSTOS_DEBUG_MODE", CUSTOS_OPT_BOOL, "false", 0, 0, NULL,
         "mark quotes as debug mode (verifiers refuse them unless told otherwise)", &debug},
        {"threads", 0, "CUSTOS_LAS_THREADS", CUSTOS_OPT_INT, "2", 1, 64, "N", "worker threads", &threads},
        {"max-clients", 0, "CUSTOS_LAS_MAX_CLIENTS", CUSTOS_OPT_INT, "1024", 2, 65536, "N",
         "concurrent connections served, all users together", &max_clients},
        {"max-clients-per-uid", 0, "CUSTOS_LAS_MAX_CLIENTS_PER_UID", CUSTOS_OPT_INT, "64", 1, 65536, "N",
         "concurrent connections one user may hold (root and --reserved-uid excepted); more are refused", &max_per_uid},
        {"reserved-clients", 0, "CUSTOS_LAS_RESERVED_CLIENTS", CUSTOS_OPT_INT, "64", 0, 65535, "N",
         "connections of --max-clients that only root and --reserved-uid may use", &reserved_clients},
        {"reserved-uid", 0, "CUSTOS_LAS_RESERVED_UIDS", CUSTOS_OPT_LIST, NULL, 0, 0, "UID[,UID]",
         "a user that may use the reserved connections and has no per-user limit, besides root "
         "(e.g. the CAS's uid)",
         &reserved_uid_list},
        {"request-timeout-ms", 0, NULL, CUSTOS_OPT_INT, "5000", 10, 600000, "MS",
         "a connection without a complete request for this long is closed", &timeout_ms},
        {"log", 0, "CUSTOS_LOG", CUSTOS_OPT_STRING, "info", 0, 0, "SPEC", "log levels, e.g. info,las=debug", &log_spec},
    };
    int ret = custos_options_parse("lasd",
                                   "Custos Local Attestation Service: measures local programs, "
                                   "signs their quotes and hands them their seal keys.",
                                   opts, sizeof(opts) / sizeof(opts[0]), argc, argv, NULL);
    if (ret != 0)
        return ret > 0 ? 0 : 2;
    if (custos_log_configure(log_spec) < 0) {
        fprintf(stderr, "lasd: invalid log spec '%s' (expected e.g. info,las=debug)\n", log_spec);
        return 2;
    }
    uid_t *reserved_uids = NULL;
    size_t n_reserved_uids = 0;
    ret = las_parse_uids(&reserved_uid_list, &reserved_uids, &n_reserved_uids);
    custos_strlist_free(&reserved_uid_list);
    if (ret < 0)
        return 2;
    custos_harden_process();
    struct custos_platform_config pcfg = {.dir = platform_dir,
                                          .tcti = tcti,
                                          .sim_tcb = (uint32_t)sim_tcb,
                                          .debug = debug};
    struct custos_platform *platform = NULL;
    char err[512];
    if (custos_platform_open(platform_name, &pcfg, &platform, err, sizeof(err)) < 0) {
        LOG_MODULE_ERROR(LAS_LOG, "%s", err);
        free(reserved_uids);
        return 1;
    }
    LOG_MODULE_INFO(LAS_LOG, "platform %s: %s", platform->backend->name, platform->backend->protection);
    LOG_MODULE_INFO(LAS_LOG, "LAS started, public key: %s", platform->id);
    LOG_MODULE_INFO(LAS_LOG, "platform TCB %u%s", platform->tcb, debug ? ", debug mode" : "");
    struct las_server_config scfg = {.socket_path = socket_path,
                                     .threads = (unsigned)threads,
                                     .max_clients = (unsigned)max_clients,
                                     .max_per_uid = (unsigned)max_per_uid,
                                     .reserved_clients = (unsigned)reserved_clients,
                                     .reserved_uids = reserved_uids,
                                     .n_reserved_uids = n_reserved_uids,
                                     .request_timeout_ms = (unsigned)timeout_ms};
    ret = las_serve(&scfg, platform);
    custos_platform_close(platform);
    free(reserved_uids);
    return ret < 0 ? 1 : 0;
}
