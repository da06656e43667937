/*
 * `shoal load` options (load_args.h). Every value is checked whole: a trailing unit or
 * character that is not understood is an error naming the option.
 */
#include "load_args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cli_load_usage[] =
    "usage: shoal load [--scenario checkout|browse|mix] [--rate N/s | --conns N]\n"
    "                  [--duration 60s] [--warmup 5s] [--target http://127.0.0.1:8080]\n"
    "                  [--users N] [--mix browse=80,cart=15,checkout=5]\n"
    "                  [--admin-credentials data/admin-credentials] [--json] [--quiet]\n"
    "                  [--allow-remote]\n"
    "  --rate N/s   open loop: N arrivals per second on a fixed schedule, latency measured\n"
    "               from each arrival's intended time\n"
    "  --conns N    closed loop: N at once, each starting its next action when its last\n"
    "               one ended (the default, 16)\n"
    "  --users N    accounts the run registers and takes turns with (default: the\n"
    "               connections in closed loop, 32 in open loop)\n"
    "  durations take ms, s or m (a bare number is seconds)\n";

static void say_err(char err[CLI_LOAD_ERR_MAX], const char *fmt, ...) SL_PRINTF(2, 3);
static void say_err(char err[CLI_LOAD_ERR_MAX], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, CLI_LOAD_ERR_MAX, fmt, ap);
    va_end(ap);
}

int cli_load_parse_duration(const char *s, int64_t *ms, char err[CLI_LOAD_ERR_MAX])
{
    SL_ASSERT(s != NULL && ms != NULL);
    const char *p = s;
    if (*p < '0' || *p > '9') {
        say_err(err, "'%s' is not a duration (e.g. 500ms, 30s, 2m)", s);
        return SL_EINVAL;
    }
    double v = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++)
        if (digits < 12) v = v * 10 + (*p - '0');
    if (*p == '.') {
        double scale = 0.1;
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            v += (*p - '0') * scale;
    }
    double mult;
    if (strcmp(p, "ms") == 0)
        mult = 1;
    else if (strcmp(p, "s") == 0 || *p == '\0')
        mult = 1000;
    else if (strcmp(p, "m") == 0)
        mult = 60000;
    else {
        say_err(err, "'%s': unknown unit '%s' (ms, s or m)", s, p);
        return SL_EINVAL;
    }
    double r = v * mult;
    if (digits >= 12 || r > (double)CLI_LOAD_DURATION_MAX_MS) {
        say_err(err, "'%s' is longer than a day", s);
        return SL_EINVAL;
    }
    *ms = (int64_t)llround(r);
    return 0;
}

int cli_load_parse_rate(const char *s, double *rate, char err[CLI_LOAD_ERR_MAX])
{
    SL_ASSERT(s != NULL && rate != NULL);
    char buf[64];
    size_t n = strlen(s);
    if (n >= sizeof buf || n == 0) {
        say_err(err, "'%s' is not a rate (e.g. 800/s)", n >= sizeof buf ? "(too long)" : s);
        return SL_EINVAL;
    }
    memcpy(buf, s, n + 1);
    if (n > 2 && strcmp(buf + n - 2, "/s") == 0) buf[n - 2] = '\0';
    if (buf[0] < '0' || buf[0] > '9') {
        say_err(err, "'%s' is not a rate (e.g. 800/s)", s);
        return SL_EINVAL;
    }
    errno = 0;
    char *end = NULL;
    double v = strtod(buf, &end);
    if (errno != 0 || !end || *end != '\0' || !isfinite(v) || v <= 0 || v > CLI_LOAD_RATE_MAX) {
        say_err(err, "'%s' is not a rate above 0 and at most 100000/s", s);
        return SL_EINVAL;
    }
    *rate = v;
    return 0;
}

/* Reads a decimal integer of at most 9 digits at *p, advancing it; -1 when there is none. */
static long read_uint(const char **p)
{
    long v = 0;
    int d = 0;
    for (; **p >= '0' && **p <= '9'; (*p)++, d++) {
        if (d >= 9) return -1;
        v = v * 10 + (**p - '0');
    }
    return d ? v : -1;
}

int cli_load_parse_mix(const char *s, cli_load_opts *o, char err[CLI_LOAD_ERR_MAX])
{
    SL_ASSERT(s != NULL && o != NULL);
    unsigned w[3] = {0, 0, 0};
    int seen[3] = {0, 0, 0};
    static const char *const names[] = {"browse", "cart", "checkout"};
    const char *p = s;
    for (;;) {
        const char *eq = strchr(p, '=');
        if (!eq) {
            say_err(err, "'%s': expected NAME=WEIGHT[,...] with browse, cart, checkout", s);
            return SL_EINVAL;
        }
        size_t len = (size_t)(eq - p);
        int k = -1;
        for (int i = 0; i < 3; i++)
            if (strlen(names[i]) == len && strncmp(p, names[i], len) == 0) k = i;
        if (k < 0) {
            char name[32];
            snprintf(name, sizeof name, "%.*s", (int)(len < 24 ? len : 24), p);
            say_err(err, "unknown mix entry '%s' (browse, cart, checkout) in '%s'", name, s);
            return SL_EINVAL;
        }
        if (seen[k]) {
            say_err(err, "'%s' is given twice in '%s'", names[k], s);
            return SL_EINVAL;
        }
        seen[k] = 1;
        p = eq + 1;
        long v = read_uint(&p);
        if (v < 0 || v > (long)CLI_LOAD_WEIGHT_MAX || (*p != ',' && *p != '\0')) {
            say_err(err, "the weight of '%s' in '%s' must be an integer 0..1000000", names[k], s);
            return SL_EINVAL;
        }
        w[k] = (unsigned)v;
        if (*p == '\0') break;
        p++;
    }
    if (w[0] + w[1] + w[2] == 0) {
        say_err(err, "'%s': at least one weight must be above 0", s);
        return SL_EINVAL;
    }
    o->w_browse = w[0];
    o->w_cart = w[1];
    o->w_checkout = w[2];
    return 0;
}

static bool is_loopback(const char *host, bool ipv6)
{
    if (ipv6) return strcmp(host, "::1") == 0 || strcmp(host, "0:0:0:0:0:0:0:1") == 0;
    if (strcmp(host, "localhost") == 0) return true;
    /* 127.a.b.c with every part a number 0..255 */
    if (strncmp(host, "127.", 4) != 0) return false;
    const char *p = host + 4;
    for (int part = 0; part < 3; part++) {
        long v = read_uint(&p);
        if (v < 0 || v > 255) return false;
        if (part < 2 && *p++ != '.') return false;
    }
    return *p == '\0';
}

int cli_load_parse_target(const char *s, cli_load_opts *o, char err[CLI_LOAD_ERR_MAX])
{
    SL_ASSERT(s != NULL && o != NULL);
    if (strlen(s) >= sizeof o->target) {
        say_err(err, "--target: too long");
        return SL_EINVAL;
    }
    if (strncmp(s, "http://", 7) != 0) {
        say_err(err, "--target '%s': only http://HOST:PORT is supported", s);
        return SL_EINVAL;
    }
    const char *h = s + 7, *hend, *rest;
    bool v6 = false;
    if (*h == '[') {
        hend = strchr(h, ']');
        if (!hend) {
            say_err(err, "--target '%s': unclosed '['", s);
            return SL_EINVAL;
        }
        h++;
        rest = hend + 1;
        v6 = true;
    } else {
        hend = h + strcspn(h, ":/");
        rest = hend;
    }
    size_t hl = (size_t)(hend - h);
    if (hl == 0 || hl > CLI_LOAD_HOST_MAX) {
        say_err(err, "--target '%s': no host", s);
        return SL_EINVAL;
    }
    for (size_t i = 0; i < hl; i++) {
        char c = h[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || (v6 && c == ':');
        if (!ok) {
            say_err(err, "--target '%s': the host has a character that is not allowed", s);
            return SL_EINVAL;
        }
    }
    long port = 80;
    if (*rest == ':') {
        rest++;
        port = read_uint(&rest);
        if (port < 1 || port > 65535) {
            say_err(err, "--target '%s': the port must be 1..65535", s);
            return SL_EINVAL;
        }
    }
    if (!(*rest == '\0' || strcmp(rest, "/") == 0)) {
        say_err(err, "--target '%s': expected nothing after the port, found '%s'", s, rest);
        return SL_EINVAL;
    }
    memcpy(o->host, h, hl);
    o->host[hl] = '\0';
    o->port = (int)port;
    o->ipv6 = v6;
    o->loopback = is_loopback(o->host, v6);
    snprintf(o->target, sizeof o->target, "%s", s);
    return 0;
}

void cli_load_opts_default(cli_load_opts *o)
{
    memset(o, 0, sizeof *o);
    o->scenario = CLI_SC_CHECKOUT;
    o->conns = 16;
    o->duration_ms = 60000;
    o->warmup_ms = 5000;
    snprintf(o->host, sizeof o->host, "127.0.0.1");
    o->port = 8080;
    o->loopback = true;
    snprintf(o->target, sizeof o->target, "http://127.0.0.1:8080");
    o->w_browse = 80;
    o->w_cart = 15;
    o->w_checkout = 5;
    o->admin_file = "data/admin-credentials";
}

/* Splits "--name=value" or "--name value"; returns the value or NULL (missing). */
static const char *value_of(int argc, char **argv, int *i, const char *name)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) == 0 && a[n] == '=') return a + n + 1;
    if (*i + 1 < argc) return argv[++*i];
    return NULL;
}

static bool opt_is(const char *a, const char *name)
{
    size_t n = strlen(name);
    return strncmp(a, name, n) == 0 && (a[n] == '\0' || a[n] == '=');
}

int cli_load_parse_args(int argc, char **argv, cli_load_opts *o, char err[CLI_LOAD_ERR_MAX])
{
    cli_load_opts_default(o);
    bool rate = false, conns = false;
    err[0] = '\0';
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        char sub[CLI_LOAD_ERR_MAX];
        int rc = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return 1;
        if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            o->quiet = true;
            continue;
        }
        if (strcmp(a, "--allow-remote") == 0) {
            o->allow_remote = true;
            continue;
        }
        static const char *const valued[] = {"--scenario", "--rate",   "--conns",
                                             "--duration", "--warmup", "--target",
                                             "--users",    "--mix",    "--admin-credentials"};
        const char *name = NULL;
        for (size_t k = 0; k < SL_ARRAY_LEN(valued); k++)
            if (opt_is(a, valued[k])) name = valued[k];
        if (!name) {
            say_err(err, "unknown option '%s'", a);
            return SL_EINVAL;
        }
        v = value_of(argc, argv, &i, name);
        if (!v) {
            say_err(err, "%s needs a value", name);
            return SL_EINVAL;
        }
        sub[0] = '\0';
        if (strcmp(name, "--scenario") == 0) {
            if (strcmp(v, "checkout") == 0)
                o->scenario = CLI_SC_CHECKOUT;
            else if (strcmp(v, "browse") == 0)
                o->scenario = CLI_SC_BROWSE;
            else if (strcmp(v, "mix") == 0)
                o->scenario = CLI_SC_MIX;
            else {
                snprintf(sub, sizeof sub, "'%.64s' is not checkout, browse or mix", v);
                rc = SL_EINVAL;
            }
        } else if (strcmp(name, "--rate") == 0) {
            rc = cli_load_parse_rate(v, &o->rate, sub);
            rate = true;
        } else if (strcmp(name, "--conns") == 0 || strcmp(name, "--users") == 0) {
            const char *p = v;
            long n = read_uint(&p);
            long max = strcmp(name, "--conns") == 0 ? CLI_LOAD_CONNS_MAX : CLI_LOAD_USERS_MAX;
            if (n < 1 || n > max || *p != '\0') {
                snprintf(sub, sizeof sub, "'%.64s' is not an integer 1..%ld", v, max);
                rc = SL_EINVAL;
            } else if (strcmp(name, "--conns") == 0) {
                o->conns = (int)n;
                conns = true;
            } else {
                o->users = (int)n;
            }
        } else if (strcmp(name, "--duration") == 0) {
            rc = cli_load_parse_duration(v, &o->duration_ms, sub);
            if (rc == 0 && o->duration_ms < 1) {
                snprintf(sub, sizeof sub, "must be above 0");
                rc = SL_EINVAL;
            }
        } else if (strcmp(name, "--warmup") == 0) {
            rc = cli_load_parse_duration(v, &o->warmup_ms, sub);
        } else if (strcmp(name, "--target") == 0) {
            rc = cli_load_parse_target(v, o, sub);
        } else if (strcmp(name, "--mix") == 0) {
            rc = cli_load_parse_mix(v, o, sub);
        } else {
            o->admin_file = v;
        }
        if (rc != 0) {
            say_err(err, "%s: %s", name, sub); /* cut to CLI_LOAD_ERR_MAX if need be */
            return SL_EINVAL;
        }
    }
    if (rate && conns) {
        say_err(err, "--rate (open loop) and --conns (closed loop) exclude each other");
        return SL_EINVAL;
    }
    if (!rate) o->rate = 0;
    if (!o->loopback && !o->allow_remote) {
        say_err(err,
                "--target %s is not a loopback address: a load test against another machine "
                "needs --allow-remote",
                o->target);
        return SL_EINVAL;
    }
    return 0;
}
