/*
 * shoal-user over real sockets, on SQLite (argv[1] = sqlite) and PostgreSQL
 * (pg): register → login → the token verifies against the JWKS fetched from
 * the service; duplicate emails (any case) → 409; bad input on every endpoint
 * → 400 naming the field with the database unchanged; uniform 401s for an
 * unknown email and a wrong password; 429 after repeated failures; profile
 * read, update and read-your-writes with identity headers signed here;
 * access rules (401/403/404); and the admin bootstrap (credentials file with
 * mode 0600, a working password printed exactly once).
 */
#include "db_harness.h"
#include "harness.h"
#include "identity_harness.h"
#include "store.h"

#include <shoal/auth.h>
#include <shoal/clock.h>
#include <shoal/identity.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

static struct {
    char dir[256];
    char url[600];
    char cfg[300];
    char log[300];
    int port;
    pid_t pid;
    th_idkeys key;
    char admin_id[64];
    char admin_pw[64];
} g;

static void start_server(void)
{
    g.port = th_free_port();
    char port[16];
    snprintf(port, sizeof port, "%d", g.port);
    char *argv[] = {"shoal-user", "--config", g.cfg, "--port", port, NULL};
    g.pid = th_spawn(argv, NULL, g.log);
    if (th_wait_port(g.port, 10000) != 0) fail_msg("shoal-user did not start; see %s", g.log);
}

static void stop_server(void)
{
    int st = th_stop(g.pid, SIGTERM, 10000);
    assert_true(st != -1);
}

/* One request on a new connection. `who`/`role` sign identity headers (NULL: none). */
static int http(const char *method, const char *target, const char *body, const char *who,
                const char *role, th_response *res)
{
    char ident[400] = "";
    if (who) {
        char proof[SL_IDENTITY_PROOF_MAX];
        sl_slice mt = {method, strlen(method)};
        assert_int_equal(th_idsign(&g.key, who, role, sl_http_method_parse(mt), target, NULL, body,
                                   body ? strlen(body) : 0, sl_clock_wall_ms(sl_clock_system()),
                                   proof),
                         0);
        snprintf(ident, sizeof ident,
                 "x-user-id: %s\r\nx-user-role: %s\r\nx-shoal-identity: %s\r\n", who, role, proof);
    }
    static char raw[70000];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(raw, sizeof raw,
                     "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s%s"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, target, body ? "Content-Type: application/json\r\n" : "", ident, blen,
                     body ? body : "");
    assert_true(n > 0 && (size_t)n < sizeof raw);
    memset(res, 0, sizeof *res);
    int st = th_roundtrip(g.port, raw, (size_t)n, res, 10000);
    if (st < 0) fail_msg("%s %s: no response", method, target);
    return st;
}

static json_t *body_of(const th_response *res)
{
    json_error_t e;
    json_t *j = json_loadb(res->body, res->body_len, 0, &e);
    if (!j) fail_msg("not JSON: %.*s", (int)res->body_len, res->body);
    return j;
}

static const char *str(json_t *j, const char *k)
{
    const char *s = json_string_value(json_object_get(j, k));
    if (!s) fail_msg("member %s missing", k);
    return s ? s : "";
}

/* Asserts a problem answer with `status` whose errors[] names `field` (NULL: no check). */
static void expect_problem(int got, th_response *res, int status, const char *field)
{
    if (got != status)
        fail_msg("status %d, want %d: %.*s", got, status, (int)res->body_len, res->body);
    assert_string_equal(th_header(res, "content-type"), "application/problem+json");
    json_t *j = body_of(res);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), status);
    if (field) {
        json_t *errs = json_object_get(j, "errors");
        int found = 0;
        for (size_t i = 0; i < json_array_size(errs); i++)
            found |= strcmp(json_string_value(json_object_get(json_array_get(errs, i), "field")),
                            field) == 0;
        if (!found) fail_msg("no error for field '%s': %.*s", field, (int)res->body_len, res->body);
    }
    json_decref(j);
}

/* A fingerprint of the database: users, their versions, events and positions. */
static void db_fingerprint(char *out, size_t cap)
{
    sl_db *db;
    harness_open_url(g.url, &db);
    int64_t a = harness_int(db, "SELECT COUNT(*) FROM users");
    int64_t b = harness_int(db, "SELECT COALESCE(SUM(version), 0) FROM users");
    int64_t c = harness_int(db, "SELECT COUNT(*) FROM outbox");
    int64_t d = harness_int(db, "SELECT position FROM user_position");
    int64_t e = harness_int(db, "SELECT COUNT(*) FROM user_view");
    snprintf(out, cap, "%lld/%lld/%lld/%lld/%lld", (long long)a, (long long)b, (long long)c,
             (long long)d, (long long)e);
    sl_db_close(db);
}

/* Registers and returns the new user id (static buffer per call site's copy). */
static void register_user(const char *email, const char *pw, const char *name, char id[64])
{
    char body[512];
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\",\"name\":\"%s\"}", email, pw,
             name);
    th_response res;
    int st = http("POST", "/register", body, NULL, NULL, &res);
    if (st != 201) fail_msg("register %s: %d %.*s", email, st, (int)res.body_len, res.body);
    json_t *j = body_of(&res);
    snprintf(id, 64, "%s", str(j, "user_id"));
    json_decref(j);
    th_response_free(&res);
}

static int login(const char *email, const char *pw, th_response *res)
{
    char body[512];
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\"}", email, pw);
    return http("POST", "/login", body, NULL, NULL, res);
}

static void test_register_login_jwks(void **state)
{
    (void)state;
    th_response res;
    int st = http("POST", "/register",
                  "{\"email\":\"  Ann.Lee@Example.COM \",\"password\":\"correct horse\","
                  "\"name\":\"Ann Lee\"}",
                  NULL, NULL, &res);
    assert_int_equal(st, 201);
    json_t *j = body_of(&res);
    char id[64];
    snprintf(id, sizeof id, "%s", str(j, "user_id"));
    assert_string_equal(str(j, "email"), "ann.lee@example.com");
    assert_string_equal(str(j, "name"), "Ann Lee");
    assert_string_equal(str(j, "role"), "customer");
    assert_true(json_integer_value(json_object_get(j, "position")) > 0);
    assert_null(json_object_get(j, "password"));
    assert_null(json_object_get(j, "password_hash"));
    assert_null(strstr(res.body, "correct horse"));
    json_decref(j);
    th_response_free(&res);

    /* Login with another spelling of the same address. */
    assert_int_equal(login("ANN.LEE@example.com", "correct horse", &res), 200);
    assert_string_equal(th_header(&res, "cache-control"), "no-store");
    j = body_of(&res);
    assert_string_equal(str(j, "token_type"), "Bearer");
    /* Short access tokens (15 minutes by default), with a refresh token beside them. */
    assert_int_equal(json_integer_value(json_object_get(j, "expires_in")), 900);
    assert_string_equal(str(j, "user_id"), id);
    assert_int_equal(strlen(str(j, "refresh_token")), 43);
    char *token = strdup(str(j, "access_token"));
    json_decref(j);
    th_response_free(&res);

    /* The gateway's view: fetch the JWKS, verify the token. */
    assert_int_equal(http("GET", "/.well-known/jwks.json", NULL, NULL, NULL, &res), 200);
    sl_keyset *ks = NULL;
    assert_int_equal(sl_jwks_parse(res.body, res.body_len, &ks, NULL), 0);
    assert_int_equal(sl_keyset_count(ks), 1);
    th_response_free(&res);
    sl_jwt_verify_opts o;
    sl_jwt_verify_opts_init(&o, sl_clock_system());
    o.issuer = "shoal";
    sl_jwt_verified v;
    sl_jwt_reason why;
    assert_int_equal(sl_jwt_verify(ks, token, strlen(token), &o, &v, &why), 0);
    assert_string_equal(v.sub, id);
    assert_string_equal(v.role, "customer");
    assert_string_equal(v.iss, "shoal");
    assert_int_equal(v.exp - v.iat, 900);
    assert_string_equal(json_string_value(json_object_get(v.claims, "aud")), "shoal");
    assert_int_equal(strlen(json_string_value(json_object_get(v.claims, "sid"))), 36);
    sl_jwt_verified_deinit(&v);
    /* A tampered token does not verify. */
    token[strlen(token) - 2] ^= 1;
    assert_int_not_equal(sl_jwt_verify(ks, token, strlen(token), &o, &v, &why), 0);
    free(token);
    sl_keyset_free(ks);
}

static void test_register_rejects_without_writing(void **state)
{
    (void)state;
    char id[64], before[128], after[128];
    register_user("dup@example.com", "password1", "Dup", id);
    db_fingerprint(before, sizeof before);
    th_response res;
    int st = http("POST", "/register",
                  "{\"email\":\"DUP@Example.com\",\"password\":\"password2\",\"name\":\"D\"}", NULL,
                  NULL, &res);
    expect_problem(st, &res, 409, "email");
    th_response_free(&res);
    static const struct {
        const char *body;
        const char *field;
    } bad[] = {
        {"{\"email\":\"not-an-email\",\"password\":\"password1\",\"name\":\"A\"}", "email"},
        {"{\"email\":\"a b@example.com\",\"password\":\"password1\",\"name\":\"A\"}", "email"},
        {"{\"email\":\"a@example\",\"password\":\"password1\",\"name\":\"A\"}", "email"},
        {"{\"email\":5,\"password\":\"password1\",\"name\":\"A\"}", "email"},
        {"{\"password\":\"password1\",\"name\":\"A\"}", "email"},
        {"{\"email\":\"new@example.com\",\"password\":\"short7!\",\"name\":\"A\"}", "password"},
        {"{\"email\":\"new@example.com\",\"password\":12345678,\"name\":\"A\"}", "password"},
        {"{\"email\":\"new@example.com\",\"name\":\"A\"}", "password"},
        {"{\"email\":\"new@example.com\",\"password\":\"password1\"}", "name"},
        {"{\"email\":\"new@example.com\",\"password\":\"password1\",\"name\":\"  \"}", "name"},
        {"{\"email\":\"new@example.com\",\"password\":\"password1\",\"name\":null}", "name"},
        {"{\"email\":\"new@example.com\",\"password\":\"password1\",\"name\":\"A\","
         "\"role\":\"admin\"}",
         "role"},
        {"{\"email\":\"new@example.com\",\"password\":\"password1\",\"name\":\"\xff\"}", ""},
        {"{\"email\":\"new@example.com\",", ""},
        {"[1,2]", ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st = http("POST", "/register", bad[i].body, NULL, NULL, &res);
        expect_problem(st, &res, 400, bad[i].field);
        th_response_free(&res);
    }
    /* Over-long name and password. */
    char body[2000], longs[700];
    memset(longs, 'x', 600);
    longs[600] = '\0';
    snprintf(body, sizeof body,
             "{\"email\":\"new@example.com\",\"password\":\"password1\","
             "\"name\":\"%.101s\"}",
             longs);
    expect_problem(http("POST", "/register", body, NULL, NULL, &res), &res, 400, "name");
    th_response_free(&res);
    snprintf(body, sizeof body,
             "{\"email\":\"new@example.com\",\"password\":\"%.129s\","
             "\"name\":\"A\"}",
             longs);
    expect_problem(http("POST", "/register", body, NULL, NULL, &res), &res, 400, "password");
    th_response_free(&res);
    expect_problem(http("POST", "/register", NULL, NULL, NULL, &res), &res, 400, "");
    th_response_free(&res);
    db_fingerprint(after, sizeof after);
    assert_string_equal(before, after);
}

static void test_login_failures_uniform_and_rate_limited(void **state)
{
    (void)state;
    char id[64], before[128], after[128];
    register_user("lim@example.com", "the password", "Lim", id);
    register_user("free@example.com", "the password", "Free", id);
    db_fingerprint(before, sizeof before);
    th_response a, b;
    assert_int_equal(login("nobody@example.com", "the password", &a), 401);
    assert_int_equal(login("lim@example.com", "wrong password", &b), 401);
    /* The same body for both: nothing says which of the two was wrong. */
    assert_int_equal(a.body_len, b.body_len);
    assert_memory_equal(a.body, b.body, a.body_len);
    assert_string_equal(th_header(&a, "content-type"), th_header(&b, "content-type"));
    th_response_free(&a);
    th_response_free(&b);
    /* Malformed email: also 401 (it names no account). */
    assert_int_equal(login("not an email", "the password", &a), 401);
    th_response_free(&a);

    /* 5 attempts per minute per account: 4 more failures, then 429 even for the right one. */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(login("LIM@example.com", "wrong password", &a), 401);
        th_response_free(&a);
    }
    int st = login("lim@example.com", "the password", &a);
    expect_problem(st, &a, 429, NULL);
    const char *ra = th_header(&a, "retry-after");
    assert_non_null(ra);
    assert_true(atoi(ra) >= 1 && atoi(ra) <= 60);
    th_response_free(&a);
    /* Another account is not affected. */
    assert_int_equal(login("free@example.com", "the password", &a), 200);
    th_response_free(&a);

    /* Bad input: 400 naming the field. */
    static const struct {
        const char *body;
        const char *field;
    } bad[] = {
        {"{\"email\":\"free@example.com\"}", "password"},
        {"{\"password\":\"the password\"}", "email"},
        {"{\"email\":\"free@example.com\",\"password\":1}", "password"},
        {"{\"email\":[],\"password\":\"the password\"}", "email"},
        {"{\"email\":\"free@example.com\",\"password\":\"the password\",\"x\":1}", "x"},
        {"not json", ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st = http("POST", "/login", bad[i].body, NULL, NULL, &a);
        expect_problem(st, &a, 400, bad[i].field);
        th_response_free(&a);
    }
    db_fingerprint(after, sizeof after);
    assert_string_equal(before, after);
}

/* POST /login as the gateway forwards it: X-Forwarded-For ends with the client's address. */
static int login_from(int port, const char *client, const char *email, const char *pw,
                      th_response *res)
{
    char body[300], raw[800];
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\"}", email, pw);
    int n = snprintf(raw, sizeof raw,
                     "POST /login HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nX-Forwarded-For: 6.6.6.6, %s\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     client, strlen(body), body);
    memset(res, 0, sizeof *res);
    int st = th_roundtrip(port, raw, (size_t)n, res, 10000);
    if (st < 0) fail_msg("POST /login: no response");
    return st;
}

/* Starts shoal-user on the test database with `workers` workers and long backoffs (so that
 * nothing here depends on how fast the machine is). */
static void start_throttle_server(int workers, int *port, pid_t *pid)
{
    char cfg[400], log[400];
    snprintf(cfg, sizeof cfg, "%s/throttle.yaml", g.dir);
    snprintf(log, sizeof log, "%s/throttle.log", g.dir);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fprintf(f,
            "db: {url: \"%s\"}\n"
            "identity: {key_file: \"%s/identity.key\"}\n"
            "user:\n"
            "  password_cost: min\n"
            "  password_concurrency: 16\n"
            "  signing_key_file: \"%s/keys/user-signing.pem\"\n"
            "  login_rate: 5\n"
            "  login_account_backoff_ms: 600000\n"
            "  login_account_backoff_max_s: 3600\n"
            "  login_client_free: 8\n"
            "  login_client_backoff_ms: 600000\n",
            g.url, g.dir, g.dir);
    fclose(f);
    *port = th_free_port();
    char ps[16], ws[16];
    snprintf(ps, sizeof ps, "%d", *port);
    snprintf(ws, sizeof ws, "%d", workers);
    char *argv[] = {"shoal-user", "--config", cfg, "--port", ps, "--workers", ws, NULL};
    *pid = th_spawn(argv, NULL, log);
    if (th_wait_port(*port, 10000) != 0) fail_msg("throttle shoal-user did not start: %s", log);
}

/* Wrong passwords for `email` from `client`, `n` times: returns how many were checked (401). */
static int guesses(int port, const char *client, const char *email, int n)
{
    int checked = 0;
    for (int i = 0; i < n; i++) {
        th_response res;
        int st = login_from(port, client, email, "wrong password", &res);
        if (st == 401)
            checked++;
        else if (st != 429)
            fail_msg("guess: %d %.*s", st, (int)res.body_len, res.body);
        if (st == 429) assert_true(atoi(th_header(&res, "retry-after")) >= 1);
        th_response_free(&res);
    }
    return checked;
}

static void test_login_throttle_shared(void **state)
{
    (void)state;
    char id[64];
    register_user("victim@example.com", "the password", "Victim", id);
    int port;
    pid_t pid;
    stop_server();
    /* Four workers: the counters are in the database, so the workers share them. */
    start_throttle_server(4, &port, &pid);
    assert_int_equal(guesses(port, "10.0.0.1", "victim@example.com", 24), 5);
    /* A restart keeps them. */
    assert_int_equal(th_stop(pid, SIGTERM, 10000) != -1, 1);
    start_throttle_server(2, &port, &pid);
    assert_int_equal(guesses(port, "10.0.0.1", "victim@example.com", 8), 0);
    /* The right password from the attacker's address: still refused. */
    th_response res;
    int st = login_from(port, "10.0.0.1", "victim@example.com", "the password", &res);
    expect_problem(st, &res, 429, NULL);
    th_response_free(&res);
    /* The owner, from an address with no failures, is not locked out. */
    st = login_from(port, "10.7.7.7", "victim@example.com", "the password", &res);
    if (st != 200) fail_msg("owner login: %d %.*s", st, (int)res.body_len, res.body);
    th_response_free(&res);
    /* The attacker's address, spread over other accounts: 8 failures in all, then its long
     * backoff (5 were spent above). */
    assert_int_equal(guesses(port, "10.0.0.1", "other1@example.com", 2), 2);
    assert_int_equal(guesses(port, "10.0.0.1", "other2@example.com", 2), 1);
    assert_int_equal(guesses(port, "10.0.0.1", "other3@example.com", 1), 0);
    /* Another address is not affected. */
    assert_int_equal(guesses(port, "10.0.0.2", "other3@example.com", 1), 1);
    /* Concurrent guesses (4 processes over 4 workers): still 5 per account in all. */
    assert_int_equal(th_stop(pid, SIGTERM, 10000) != -1, 1);
    start_throttle_server(4, &port, &pid);
    pid_t kids[4];
    for (int i = 0; i < 4; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) _exit(guesses(port, "10.0.0.3", "victim2@example.com", 6));
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        int ws = 0;
        assert_int_equal(waitpid(kids[i], &ws, 0), kids[i]);
        assert_true(WIFEXITED(ws));
        total += WEXITSTATUS(ws);
    }
    assert_int_equal(total, 5);
    assert_int_equal(th_stop(pid, SIGTERM, 10000) != -1, 1);
    start_server();
}

/* POST /refresh and /logout, and the gateway's poll of revoked sessions. */
static json_t *post_refresh(const char *path, const char *token, int want)
{
    char body[200];
    snprintf(body, sizeof body, "{\"refresh_token\":\"%s\"}", token);
    th_response res;
    int st = http("POST", path, body, NULL, NULL, &res);
    if (st != want) fail_msg("%s: %d, want %d: %.*s", path, st, want, (int)res.body_len, res.body);
    json_t *j = st == 200 ? body_of(&res) : NULL;
    th_response_free(&res);
    return j;
}

static char *claim_of(const char *token, const char *name)
{
    const char *d1 = strchr(token, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    assert_non_null(d2);
    char raw[2048];
    size_t n = 0;
    assert_int_equal(sl_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), raw, sizeof raw, &n), 0);
    json_t *j = json_loadb(raw, n, 0, NULL);
    assert_non_null(j);
    char *v = strdup(json_string_value(json_object_get(j, name)));
    json_decref(j);
    return v;
}

/* The sids revoked after `after` (GET /sessions/revoked as a service); *last gets the cursor. */
static int revoked_has(const char *sid, int64_t after, int64_t *last)
{
    char target[64];
    snprintf(target, sizeof target, "/sessions/revoked?after=%lld", (long long)after);
    th_response res;
    int st = http("GET", target, NULL, "gateway", "service", &res);
    if (st != 200) fail_msg("revoked: %d %.*s", st, (int)res.body_len, res.body);
    json_t *j = body_of(&res);
    th_response_free(&res);
    int found = 0;
    json_t *items = json_object_get(j, "items");
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *it = json_array_get(items, i);
        found |= strcmp(json_string_value(json_object_get(it, "sid")), sid) == 0;
        assert_true(json_integer_value(json_object_get(it, "until_ms")) > 0);
    }
    if (last) *last = json_integer_value(json_object_get(j, "last"));
    json_decref(j);
    return found;
}

static void test_refresh_rotation_logout(void **state)
{
    (void)state;
    char id[64];
    register_user("rot@example.com", "the password", "Rot", id);
    th_response res;
    assert_int_equal(login("rot@example.com", "the password", &res), 200);
    json_t *j = body_of(&res);
    th_response_free(&res);
    char *r1 = strdup(str(j, "refresh_token"));
    char *sid = claim_of(str(j, "access_token"), "sid");
    json_decref(j);
    int64_t head = 0;
    assert_int_equal(revoked_has(sid, 0, &head), 0);

    /* A refresh rotates: a new pair, same session; the old refresh token is spent. */
    j = post_refresh("/refresh", r1, 200);
    char *r2 = strdup(str(j, "refresh_token"));
    assert_string_not_equal(r1, r2);
    assert_int_equal(json_integer_value(json_object_get(j, "expires_in")), 900);
    char *sid2 = claim_of(str(j, "access_token"), "sid");
    assert_string_equal(sid, sid2);
    char *sub = claim_of(str(j, "access_token"), "sub");
    assert_string_equal(sub, id);
    json_decref(j);
    j = post_refresh("/refresh", r2, 200);
    char *r3 = strdup(str(j, "refresh_token"));
    json_decref(j);
    assert_int_equal(revoked_has(sid, head, NULL), 0);
    /* Reusing a spent token revokes the whole session: the live one stops working too. */
    json_decref(post_refresh("/refresh", r1, 401));
    json_decref(post_refresh("/refresh", r3, 401));
    int64_t head2 = 0;
    assert_int_equal(revoked_has(sid, head, &head2), 1);
    assert_true(head2 > head);
    /* The poll moves on: after its cursor, the sid is not repeated. */
    assert_int_equal(revoked_has(sid, head2, NULL), 0);

    /* Logout revokes the session; its refresh token is dead; a repeat still answers 204. */
    assert_int_equal(login("rot@example.com", "the password", &res), 200);
    j = body_of(&res);
    th_response_free(&res);
    char *r4 = strdup(str(j, "refresh_token"));
    char *sid4 = claim_of(str(j, "access_token"), "sid");
    json_decref(j);
    assert_string_not_equal(sid4, sid);
    json_decref(post_refresh("/logout", r4, 204));
    json_decref(post_refresh("/logout", r4, 204));
    json_decref(post_refresh("/logout", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 204));
    json_decref(post_refresh("/refresh", r4, 401));
    assert_int_equal(revoked_has(sid4, head2, NULL), 1);
    json_decref(post_refresh("/refresh", "nonsense", 401));

    /* Bad bodies name the field; the revoked list is for services only. */
    const char *bad[] = {"{}", "{\"refresh_token\":5}", "{\"refresh_token\":\"\"}",
                         "{\"refresh_token\":\"x\",\"y\":1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = http("POST", "/refresh", bad[i], NULL, NULL, &res);
        expect_problem(st, &res, 400, NULL);
        th_response_free(&res);
    }
    expect_problem(http("GET", "/sessions/revoked", NULL, id, "customer", &res), &res, 403, NULL);
    th_response_free(&res);
    expect_problem(http("GET", "/sessions/revoked?after=x", NULL, "gateway", "service", &res), &res,
                   400, "after");
    th_response_free(&res);
    free(r1);
    free(r2);
    free(r3);
    free(r4);
    free(sid);
    free(sid2);
    free(sid4);
    free(sub);
}

static void get_user(const char *target, const char *who, const char *role, int want, json_t **out)
{
    th_response res;
    int st = http("GET", target, NULL, who, role, &res);
    if (st != want)
        fail_msg("GET %s: %d, want %d: %.*s", target, st, want, (int)res.body_len, res.body);
    if (out) *out = body_of(&res);
    th_response_free(&res);
}

static void test_profile_read_update(void **state)
{
    (void)state;
    char ann[64], bob[64];
    register_user("pat@example.com", "password1", "Pat", ann);
    register_user("bob@example.com", "password1", "Bob", bob);
    json_t *j;
    get_user("/users/me", ann, "customer", 200, &j);
    assert_string_equal(str(j, "user_id"), ann);
    assert_string_equal(str(j, "email"), "pat@example.com");
    assert_string_equal(str(j, "role"), "customer");
    int64_t t;
    assert_int_equal(sl_rfc3339_parse(str(j, "created_at"), strlen(str(j, "created_at")), &t), 0);
    json_decref(j);

    th_response res;
    expect_problem(http("GET", "/users/me", NULL, NULL, NULL, &res), &res, 401, NULL);
    th_response_free(&res);
    /* A proof for another path does not pass. */
    char raw[600], proof[SL_IDENTITY_PROOF_MAX];
    assert_int_equal(th_idsign(&g.key, ann, "customer", SL_HTTP_GET, "/users", NULL, NULL, 0,
                               sl_clock_wall_ms(sl_clock_system()), proof),
                     0);
    int n = snprintf(raw, sizeof raw,
                     "GET /users/me HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                     "x-user-id: %s\r\nx-user-role: customer\r\n"
                     "x-shoal-identity: %s\r\n\r\n",
                     ann, proof);
    memset(&res, 0, sizeof res);
    expect_problem(th_roundtrip(g.port, raw, (size_t)n, &res, 5000), &res, 401, NULL);
    th_response_free(&res);

    /* PATCH, then read our own write. */
    int st =
        http("PATCH", "/users/me", "{\"name\":\"  Pat Smith \",\"email\":\"Pat.S@Example.com\"}",
             ann, "customer", &res);
    assert_int_equal(st, 200);
    j = body_of(&res);
    assert_string_equal(str(j, "name"), "Pat Smith");
    assert_string_equal(str(j, "email"), "pat.s@example.com");
    int64_t pos = json_integer_value(json_object_get(j, "position"));
    assert_true(pos > 0);
    json_decref(j);
    th_response_free(&res);
    char target[200];
    snprintf(target, sizeof target, "/users/me?min_position=%lld", (long long)pos);
    get_user(target, ann, "customer", 200, &j);
    assert_string_equal(str(j, "name"), "Pat Smith");
    json_decref(j);
    snprintf(target, sizeof target, "/users/%s?min_position=%lld", ann, (long long)pos);
    get_user(target, ann, "customer", 200, NULL);
    /* The new email logs in; the old one does not. */
    assert_int_equal(login("pat.s@example.com", "password1", &res), 200);
    th_response_free(&res);
    assert_int_equal(login("pat@example.com", "password1", &res), 401);
    th_response_free(&res);

    /* Bad updates change nothing. */
    char before[128], after[128];
    db_fingerprint(before, sizeof before);
    static const struct {
        const char *body;
        const char *field;
    } bad[] = {
        {"{\"email\":\"BOB@example.com\"}", "email"}, /* taken: 409 */
        {"{}", ""},
        {"{\"role\":\"admin\"}", "role"},
        {"{\"password\":\"newpassword\"}", "password"},
        {"{\"name\":\"\"}", "name"},
        {"{\"name\":7}", "name"},
        {"{\"email\":\"nope\"}", "email"},
        {"{\"name\":\"a\\u0007b\"}", "name"},
        {"[]", ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st = http("PATCH", "/users/me", bad[i].body, ann, "customer", &res);
        expect_problem(st, &res, i == 0 ? 409 : 400, bad[i].field);
        th_response_free(&res);
    }
    expect_problem(http("PATCH", "/users/me", "{\"name\":\"X\"}", NULL, NULL, &res), &res, 401,
                   NULL);
    th_response_free(&res);
    db_fingerprint(after, sizeof after);
    assert_string_equal(before, after);

    /* Reading others: self and admin yes; another customer gets 404 (exists or not). */
    snprintf(target, sizeof target, "/users/%s", ann);
    get_user(target, ann, "customer", 200, NULL);
    get_user(target, g.admin_id, "admin", 200, NULL);
    get_user(target, bob, "customer", 404, NULL);
    get_user("/users/01a22234-d416-7a29-8db6-000000000000", bob, "customer", 404, NULL);
    get_user("/users/01a22234-d416-7a29-8db6-000000000000", g.admin_id, "admin", 404, NULL);
    expect_problem(http("GET", "/users/not-a-uuid", NULL, g.admin_id, "admin", &res), &res, 400,
                   "user_id");
    th_response_free(&res);
    expect_problem(http("GET", "/users/me?min_position=999999999", NULL, ann, "customer", &res),
                   &res, 400, "min_position");
    th_response_free(&res);
    expect_problem(http("GET", "/users/me?min_position=-1", NULL, ann, "customer", &res), &res, 400,
                   "min_position");
    th_response_free(&res);
}

static void test_list_admin_only(void **state)
{
    (void)state;
    th_response res;
    char id[64];
    register_user("list1@example.com", "password1", "L1", id);
    expect_problem(http("GET", "/users", NULL, NULL, NULL, &res), &res, 401, NULL);
    th_response_free(&res);
    expect_problem(http("GET", "/users", NULL, id, "customer", &res), &res, 403, NULL);
    th_response_free(&res);
    json_t *j;
    get_user("/users?per_page=2&page=1", g.admin_id, "admin", 200, &j);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 2);
    int64_t total = json_integer_value(json_object_get(j, "total"));
    assert_true(total >= 2);
    assert_int_equal(json_integer_value(json_object_get(j, "page")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "per_page")), 2);
    json_decref(j);
    get_user("/users?role=admin", g.admin_id, "admin", 200, &j);
    assert_int_equal(json_integer_value(json_object_get(j, "total")), 1);
    assert_string_equal(str(json_array_get(json_object_get(j, "items"), 0), "user_id"), g.admin_id);
    json_decref(j);
    get_user("/users?role=customer&per_page=100", g.admin_id, "admin", 200, &j);
    assert_int_equal(json_integer_value(json_object_get(j, "total")), total - 1);
    json_decref(j);
    expect_problem(http("GET", "/users?per_page=0", NULL, g.admin_id, "admin", &res), &res, 400,
                   "per_page");
    th_response_free(&res);
    expect_problem(http("GET", "/users?per_page=101", NULL, g.admin_id, "admin", &res), &res, 400,
                   "per_page");
    th_response_free(&res);
    expect_problem(http("GET", "/users?page=1000000", NULL, g.admin_id, "admin", &res), &res, 400,
                   "page");
    th_response_free(&res);
    expect_problem(http("GET", "/users?role=root", NULL, g.admin_id, "admin", &res), &res, 400,
                   "role");
    th_response_free(&res);
    expect_problem(http("GET", "/users?page=x", NULL, g.admin_id, "admin", &res), &res, 400,
                   "page");
    th_response_free(&res);
}

/* Starts a second server with the read model fed only by the bus (so nothing projects it
 * here), real Argon2id cost and one password operation at a time. */
static void start_bus_mode_server(const char *name, int *port, pid_t *pid, char *log, size_t cap)
{
    char cfg[400];
    snprintf(cfg, sizeof cfg, "%s/%s.yaml", g.dir, name);
    snprintf(log, cap, "%s/%s.log", g.dir, name);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fprintf(f,
            "db: {url: \"%s\"}\n"
            "identity: {key_file: \"%s/identity.key\"}\n"
            "user:\n"
            "  password_cost: interactive\n"
            "  password_concurrency: 1\n"
            "  read_model_feed: bus\n"
            "  read_wait_ms: 1500\n"
            "  signing_key_file: \"%s/keys/user-signing.pem\"\n",
            g.url, g.dir, g.dir);
    fclose(f);
    *port = th_free_port();
    char ps[16];
    snprintf(ps, sizeof ps, "%d", *port);
    char *argv[] = {"shoal-user", "--config", cfg, "--port", ps, NULL};
    *pid = th_spawn(argv, NULL, log);
    if (th_wait_port(*port, 10000) != 0) fail_msg("second shoal-user did not start");
}

static void test_read_your_writes_and_password_limit(void **state)
{
    (void)state;
    int port0 = g.port, port;
    pid_t pid;
    char log[400];
    /* The first server stops: its local projector would feed the view. */
    stop_server();
    start_bus_mode_server("busmode", &port, &pid, log, sizeof log);
    g.port = port;

    /* Two registrations at once: with one Argon2id operation allowed (~100 ms or more each),
     * the second is refused with 503 + Retry-After. */
    const char *body1 =
        "{\"email\":\"ryw1@example.com\",\"password\":\"password1\",\"name\":\"R\"}";
    const char *body2 =
        "{\"email\":\"ryw2@example.com\",\"password\":\"password1\",\"name\":\"R\"}";
    char raw1[512], raw2[512];
    int n1 = snprintf(raw1, sizeof raw1,
                      "POST /register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n%s",
                      strlen(body1), body1);
    int n2 = snprintf(raw2, sizeof raw2,
                      "POST /register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n%s",
                      strlen(body2), body2);
    int fd1 = th_connect(port), fd2 = th_connect(port);
    assert_true(fd1 >= 0 && fd2 >= 0);
    assert_int_equal(th_send(fd1, raw1, (size_t)n1), 0);
    usleep(20000); /* so the first is surely admitted first */
    assert_int_equal(th_send(fd2, raw2, (size_t)n2), 0);
    static th_reader r1, r2;
    th_reader_init(&r1, fd1);
    th_reader_init(&r2, fd2);
    th_response a, b;
    assert_int_equal(th_read_response(&r2, &b, 10000), 0);
    expect_problem(b.status, &b, 503, NULL);
    assert_string_equal(th_header(&b, "retry-after"), "1");
    th_response_free(&b);
    assert_int_equal(th_read_response(&r1, &a, 10000), 0);
    assert_int_equal(a.status, 201);
    json_t *j = body_of(&a);
    char id[64];
    snprintf(id, sizeof id, "%s", str(j, "user_id"));
    int64_t pos = json_integer_value(json_object_get(j, "position"));
    json_decref(j);
    th_response_free(&a);
    close(fd1);
    close(fd2);

    /* Nothing feeds the view: a read at that position waits, then answers 503. */
    char target[200];
    snprintf(target, sizeof target, "/users/me?min_position=%lld", (long long)pos);
    th_response res;
    expect_problem(http("GET", target, NULL, id, "customer", &res), &res, 503, NULL);
    assert_non_null(th_header(&res, "retry-after"));
    th_response_free(&res);
    snprintf(target, sizeof target, "/users?min_position=%lld", (long long)pos);
    expect_problem(http("GET", target, NULL, g.admin_id, "admin", &res), &res, 503, NULL);
    th_response_free(&res);
    /* Without min_position the read answers at once from the (stale) view: not there yet. */
    get_user("/users/me", id, "customer", 404, NULL);

    /* A waiting read completes once the events are applied (here by this test, in place of
     * the bus consumer). */
    snprintf(target, sizeof target, "/users/me?min_position=%lld", (long long)pos);
    char raw[800], proof[SL_IDENTITY_PROOF_MAX];
    assert_int_equal(th_idsign(&g.key, id, "customer", SL_HTTP_GET, target, NULL, NULL, 0,
                               sl_clock_wall_ms(sl_clock_system()), proof),
                     0);
    int n = snprintf(raw, sizeof raw,
                     "GET %s HTTP/1.1\r\nHost: t\r\nx-user-id: %s\r\nx-user-role: customer\r\n"
                     "x-shoal-identity: %s\r\n\r\n",
                     target, id, proof);
    int fd = th_connect(port);
    assert_int_equal(th_send(fd, raw, (size_t)n), 0);
    usleep(50000);
    sl_db *db;
    harness_open_url(g.url, &db);
    int applied = 0;
    HARNESS_OK(db, user_project_outbox(db, 10, &applied, NULL));
    assert_true(applied >= 1);
    sl_db_close(db);
    static th_reader rr;
    th_reader_init(&rr, fd);
    assert_int_equal(th_read_response(&rr, &res, 10000), 0);
    assert_int_equal(res.status, 200);
    j = body_of(&res);
    assert_string_equal(str(j, "email"), "ryw1@example.com");
    json_decref(j);
    th_response_free(&res);
    close(fd);

    assert_true(th_stop(pid, SIGTERM, 10000) != -1);
    g.port = port0;
    start_server();
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strdup(buf);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void test_admin_bootstrap(void **state)
{
    (void)state;
    char file[400];
    snprintf(file, sizeof file, "%s/data/admin-credentials", g.dir);
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *text = slurp(file);
    assert_non_null(text);
    assert_int_equal(strncmp(text, "email: admin@shoal.local\npassword: ", 35), 0);
    const char *pw = text + 35;
    size_t pwlen = strcspn(pw, "\n");
    assert_true(pwlen >= 32);
    /* The password works, and the token says admin. */
    char pwbuf[64];
    snprintf(pwbuf, sizeof pwbuf, "%.*s", (int)pwlen, pw);
    th_response res;
    assert_int_equal(login("admin@shoal.local", pwbuf, &res), 200);
    json_t *j = body_of(&res);
    assert_string_equal(str(j, "user_id"), g.admin_id);
    json_decref(j);
    th_response_free(&res);
    /* Never logged: the log of the start that created it names the file, not the password. */
    char *log = slurp(g.log);
    assert_int_equal(count(log, pwbuf), 0);
    assert_non_null(strstr(log, "admin account created"));
    assert_non_null(strstr(log, file));
    assert_null(strstr(log, "\"password\""));
    free(log);

    /* A restart creates nothing and prints no password; the file stays as it was. */
    stop_server();
    start_server();
    assert_int_equal(login("admin@shoal.local", pwbuf, &res), 200);
    th_response_free(&res);
    log = slurp(g.log);
    assert_null(strstr(log, pwbuf));
    assert_null(strstr(log, "\"password\""));
    free(log);
    char *again = slurp(file);
    assert_string_equal(again, text);
    free(again);
    free(text);
}

/* The admin's id, from the database (it was created at start). */
static void find_admin(void)
{
    char file[400];
    snprintf(file, sizeof file, "%s/data/admin-credentials", g.dir);
    /* The port opens before worker 0 has bootstrapped; its requests wait in the backlog, but
     * the file may not be there yet. */
    char *text = NULL;
    for (int i = 0; i < 1000 && !(text = slurp(file)); i++)
        usleep(10000);
    if (!text) fail_msg("no admin credentials file: %s", file);
    const char *pw = text + 35;
    snprintf(g.admin_pw, sizeof g.admin_pw, "%.*s", (int)strcspn(pw, "\n"), pw);
    free(text);
    th_response res;
    if (login("admin@shoal.local", g.admin_pw, &res) != 200) fail_msg("admin login failed");
    json_t *j = body_of(&res);
    snprintf(g.admin_id, sizeof g.admin_id, "%s", str(j, "user_id"));
    json_decref(j);
    th_response_free(&res);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g.dir, sizeof g.dir, "/tmp/shoal-user-api-XXXXXX");
    if (!mkdtemp(g.dir)) return -1;
    char keyfile[400], err[256];
    snprintf(keyfile, sizeof keyfile, "%s/identity.key", g.dir);
    if (th_idkeys_make(keyfile, "user", &g.key, err) != 0) return -1;
    harness_fresh_url(g.url, sizeof g.url);
    snprintf(g.cfg, sizeof g.cfg, "%s/user.yaml", g.dir);
    snprintf(g.log, sizeof g.log, "%s/user.log", g.dir);
    FILE *f = fopen(g.cfg, "w");
    if (!f) return -1;
    fprintf(f,
            "db: {url: \"%s\"}\n"
            "identity: {key_file: \"%s\"}\n"
            "user:\n"
            "  password_cost: min\n"
            "  signing_key_file: \"%s/keys/user-signing.pem\"\n"
            "  data_dir: \"%s/data\"\n"
            "  bootstrap_admin: true\n",
            g.url, keyfile, g.dir, g.dir);
    fclose(f);
    start_server();
    find_admin();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (g.pid > 0) th_stop(g.pid, SIGTERM, 10000);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g.dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", g.dir);
    return 0;
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admin_bootstrap), /* first: it reads the first start's log */
        cmocka_unit_test(test_register_login_jwks),
        cmocka_unit_test(test_register_rejects_without_writing),
        cmocka_unit_test(test_login_failures_uniform_and_rate_limited),
        cmocka_unit_test(test_login_throttle_shared),
        cmocka_unit_test(test_refresh_rotation_logout),
        cmocka_unit_test(test_profile_read_update),
        cmocka_unit_test(test_list_admin_only),
        cmocka_unit_test(test_read_your_writes_and_password_limit),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    harness_done();
    return rc;
}
