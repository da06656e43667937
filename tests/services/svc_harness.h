/*
 * Shared set-up for the shop-service API suites (tests/services/<svc>/NAME_api_test.c):
 * starts build/bin/shoal-<svc> on a free port against a fresh database
 * (db_harness.h: SQLite file or PostgreSQL schema, by argv[1]) with an
 * identity key written by the test, and sends requests over real sockets
 * with identity headers signed like the gateway does. Header-only; every
 * function is thread-safe (each request uses its own connection and reader)
 * except svc_start/svc_stop.
 */
#ifndef SHOAL_TESTS_SVC_HARNESS_H
#define SHOAL_TESTS_SVC_HARNESS_H

#include "db_harness.h"
#include "harness.h"
#include "identity_harness.h"

#include <shoal/clock.h>
#include <shoal/identity.h>

#include <jansson.h>
#include <signal.h>
#include <sys/wait.h>

typedef struct svc_proc {
    pid_t pid;
    int port;
    char db_url[600];
    char key_path[600];
    char log_path[600];
    th_idkeys key;
} svc_proc;

/*
 * Starts shoal-<name> on a fresh database. `env` adds "K=V" entries (NULL-terminated list,
 * may be NULL). `workers` is passed as --workers. Fails the test when it does not come up.
 */
static inline void svc_start(svc_proc *p, const char *name, char *const *env, int workers)
{
    memset(p, 0, sizeof *p);
    harness_fresh_url(p->db_url, sizeof p->db_url);
    snprintf(p->key_path, sizeof p->key_path, "%s_%ld.key", name, (long)getpid());
    snprintf(p->log_path, sizeof p->log_path, "%s_%ld_%d.log", name, (long)getpid(), harness_g.n);
    char err[256];
    unlink(p->key_path);
    if (th_idkeys_make(p->key_path, name, &p->key, err) != 0) fail_msg("key: %s", err);
    p->port = th_free_port();
    char bin[64], port[16], nworkers[16], dbenv[700], keyenv[700];
    snprintf(bin, sizeof bin, "shoal-%s", name);
    snprintf(port, sizeof port, "%d", p->port);
    snprintf(nworkers, sizeof nworkers, "%d", workers);
    snprintf(dbenv, sizeof dbenv, "SHOAL_DB__URL=%s", p->db_url);
    snprintf(keyenv, sizeof keyenv, "SHOAL_IDENTITY__KEY_FILE=%s", p->key_path);
    char *envs[16];
    size_t n = 0;
    envs[n++] = dbenv;
    envs[n++] = keyenv;
    for (size_t i = 0; env && env[i] && n < 15; i++)
        envs[n++] = env[i];
    envs[n] = NULL;
    char *argv[] = {bin, "--port", port, "--workers", nworkers, NULL};
    p->pid = th_spawn(argv, envs, p->log_path);
    if (th_wait_port(p->port, 15000) != 0) fail_msg("%s did not start; see %s", bin, p->log_path);
}

/* Stops the service with SIGTERM and checks it exited cleanly. */
static inline void svc_stop(svc_proc *p)
{
    int st = th_stop(p->pid, SIGTERM, 15000);
    assert_true(st != -1);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    unlink(p->key_path);
}

/*
 * Sends one request. `role` NULL sends no identity; otherwise the identity of `user` with
 * `role`, signed for this method and path. `body` may be NULL; `extra` is raw header lines
 * ("Name: v\r\n...") or NULL. Returns the status (or -1) and the response in *res (free with
 * th_response_free).
 */
static inline int svc_req_raw(const svc_proc *p, const char *method, const char *path,
                              const char *user, const char *role, const char *body, size_t body_len,
                              const char *extra, th_response *res)
{
    char ident[512] = "";
    if (role) {
        char proof[SL_IDENTITY_PROOF_MAX], idem[128];
        sl_http_method m = sl_http_method_parse((sl_slice){method, strlen(method)});
        if (th_idsign(&p->key, user, role, m, path, th_idem_of(extra, idem, sizeof idem), body,
                      body_len, sl_clock_wall_ms(sl_clock_system()), proof) != 0)
            fail_msg("sign");
        snprintf(ident, sizeof ident,
                 "x-user-id: %s\r\nx-user-role: %s\r\nx-shoal-identity: %s\r\n", user, role, proof);
    }
    size_t cap = 4096 + body_len;
    char *raw = malloc(cap);
    int hl = snprintf(raw, cap,
                      "%s %s HTTP/1.1\r\nHost: t\r\n%s%s%sContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      method, path, ident, extra ? extra : "",
                      body ? "Content-Type: application/json\r\n" : "", body ? body_len : 0);
    if (body) memcpy(raw + hl, body, body_len);
    size_t len = (size_t)hl + (body ? body_len : 0);
    int fd = th_connect(p->port);
    int rc = -1;
    memset(res, 0, sizeof *res);
    if (fd >= 0) {
        th_reader *rb = malloc(sizeof *rb);
        th_reader_init(rb, fd);
        if (th_send(fd, raw, len) == 0 && th_read_response(rb, res, 15000) == 0) rc = res->status;
        free(rb);
        close(fd);
    }
    free(raw);
    return rc;
}

static inline int svc_req(const svc_proc *p, const char *method, const char *path, const char *user,
                          const char *role, const char *body, th_response *res)
{
    return svc_req_raw(p, method, path, user, role, body, body ? strlen(body) : 0, NULL, res);
}

/* Parses a response body as JSON (returns owned, json_decref); fails the test otherwise. */
static inline json_t *svc_json(const th_response *res)
{
    json_error_t e;
    json_t *v = json_loadb(res->body ? res->body : "", res->body_len, 0, &e);
    if (!v) fail_msg("response is not JSON (%s): %.*s", e.text, (int)res->body_len, res->body);
    return v;
}

/* Sends a request and returns its parsed JSON body (owned), asserting the status. */
static inline json_t *svc_call(const svc_proc *p, const char *method, const char *path,
                               const char *user, const char *role, const char *body,
                               int want_status)
{
    th_response r;
    int st = svc_req(p, method, path, user, role, body, &r);
    if (st != want_status)
        fail_msg("%s %s: status %d, want %d: %.*s", method, path, st, want_status, (int)r.body_len,
                 r.body ? r.body : "");
    json_t *v = svc_json(&r);
    th_response_free(&r);
    return v;
}

/* Returns 1 when the problem body `v` has an errors[] entry for `field`. */
static inline int svc_has_error(const json_t *v, const char *field)
{
    json_t *errs = json_object_get(v, "errors");
    for (size_t i = 0; i < json_array_size(errs); i++) {
        const char *f = json_string_value(json_object_get(json_array_get(errs, i), "field"));
        if (f && strcmp(f, field) == 0) return 1;
    }
    return 0;
}

/* Integer member of an object (fails the test when absent). */
static inline int64_t svc_int(const json_t *v, const char *key)
{
    json_t *m = json_object_get(v, key);
    if (!json_is_integer(m)) fail_msg("member %s is not an integer", key);
    return (int64_t)json_integer_value(m);
}

static inline const char *svc_str(const json_t *v, const char *key)
{
    const char *s = json_string_value(json_object_get(v, key));
    return s ? s : "";
}

#endif
