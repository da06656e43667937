/*
 * The standard process metrics (metrics.h, sl_metrics_enable_process): CPU
 * time and memory from /proc/self/stat, open descriptors by listing
 * /proc/self/fd, the descriptor limit from getrlimit. Read at each render,
 * before the registry mutex is taken; the parser is pure and fuzzed.
 */
#include "metrics_int.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define STAT_TEXT_MAX 4096
/* Stop counting descriptors here: the listing's cost stays bounded whatever leaks. */
#define OPEN_FDS_COUNT_MAX (1u << 20)

void sl_metrics_enable_process(sl_metrics *reg)
{
    SL_ASSERT(reg);
    atomic_store_explicit(&reg->process, 1, memory_order_relaxed);
}

/* Reads an unsigned decimal field at *p (advancing past it). 0, or SL_EPARSE. */
static int field_u64(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (s >= end || *s < '0' || *s > '9') return SL_EPARSE;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return SL_EPARSE;
        v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return 0;
}

int sl_metrics_proc_stat_parse(const char *text, size_t len, sl_proc_stat *out)
{
    if (text == NULL || out == NULL) return SL_EPARSE;
    if (len > STAT_TEXT_MAX) len = STAT_TEXT_MAX;
    const char *end = text + len;
    const char *close = NULL;
    for (const char *s = text; s < end; s++)
        if (*s == ')') close = s;
    if (close == NULL || memchr(text, '(', (size_t)(close - text)) == NULL) return SL_EPARSE;
    /* After ") " come field 3 (state) onwards, separated by single spaces. */
    const char *p = close + 1;
    sl_proc_stat st = {0};
    for (int field = 3; field <= 24; field++) {
        if (p >= end || *p != ' ') return SL_EPARSE;
        p++;
        if (field == 3) {
            if (p >= end || *p == ' ') return SL_EPARSE;
            p++; /* one state letter */
            continue;
        }
        int used = field == 14 || field == 15 || field == 23 || field == 24;
        if (!used && p < end && *p == '-') p++; /* signed fields we skip (tty, nice, ...) */
        uint64_t v = 0;
        if (field_u64(&p, end, &v) != 0) return SL_EPARSE;
        if (field == 14) st.utime_ticks = v;
        if (field == 15) st.stime_ticks = v;
        if (field == 23) st.vsize_bytes = v;
        if (field == 24) st.rss_pages = v;
    }
    if (p < end && *p != ' ' && *p != '\n') return SL_EPARSE;
    *out = st;
    return 0;
}

static void read_stat(sl__metrics_process_values *v)
{
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[STAT_TEXT_MAX];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    sl_proc_stat st;
    if (n <= 0 || sl_metrics_proc_stat_parse(buf, (size_t)n, &st) != 0) return;
    long ticks = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    if (ticks > 0) v->cpu_seconds = (double)(st.utime_ticks + st.stime_ticks) / (double)ticks;
    if (page > 0) v->resident_bytes = (double)st.rss_pages * (double)page;
    v->virtual_bytes = (double)st.vsize_bytes;
}

static void read_fds(sl__metrics_process_values *v)
{
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        unsigned n = 0;
        struct dirent *e;
        while (n < OPEN_FDS_COUNT_MAX && (e = readdir(d)) != NULL)
            if (e->d_name[0] != '.') n++;
        closedir(d);
        /* The listing's own descriptor is not one of the process's. */
        v->open_fds = n > 0 ? (double)(n - 1) : 0;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        v->max_fds = rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur;
}

void sl__metrics_process_read(sl__metrics_process_values *v)
{
    v->cpu_seconds = v->resident_bytes = v->virtual_bytes = v->open_fds = v->max_fds = -1;
    read_stat(v);
    read_fds(v);
}
