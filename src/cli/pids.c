/*
 * The pid table of `shoal up` (cli.h): <data_dir>/pids, owner-only, so that
 * `shoal chaos` signals only processes the supervisor started and still
 * owns.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_pids_write(const char *data_dir, int supervisor, const cli_pid *p, size_t n)
{
    SL_ASSERT(data_dir && (p || n == 0));
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/pids", data_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return SL_EIO;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return SL_EIO;
    }
    int bad = fprintf(f, "supervisor %d\n", supervisor) < 0;
    for (size_t i = 0; i < n && !bad; i++)
        bad = fprintf(f, "%s %d\n", p[i].name, p[i].pid) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return SL_EIO;
    }
    return 0;
}

int cli_pids_read(const char *data_dir, int *supervisor, cli_pid *out, size_t cap, size_t *n)
{
    SL_ASSERT(data_dir && supervisor && n && (out || cap == 0));
    *n = 0;
    *supervisor = 0;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/pids", data_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno == ENOENT ? SL_ENOTFOUND : SL_EIO;
    struct stat st;
    /* Only a table this user wrote, that nobody else could have edited, names pids to signal. */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 077) != 0) {
        close(fd);
        return SL_EIO;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return SL_EIO;
    }
    char line[128];
    int rc = 0, first = 1;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        char name[CLI_NAME_MAX];
        int pid = 0;
        if (sscanf(line, "%31s %d", name, &pid) != 2 || pid <= 1) {
            rc = SL_EPARSE;
        } else if (first) {
            if (strcmp(name, "supervisor") != 0) rc = SL_EPARSE;
            *supervisor = pid;
        } else if (*n < cap) {
            snprintf(out[*n].name, sizeof out[*n].name, "%s", name);
            out[(*n)++].pid = pid;
        }
        first = 0;
    }
    fclose(f);
    if (rc == 0 && first) rc = SL_EPARSE;
    return rc;
}

int cli_pid_is_child(int pid, int parent)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    /* pid (comm) state ppid ...: comm may hold spaces and parentheses; the last ')' ends it. */
    const char *p = strrchr(buf, ')');
    char state;
    int ppid = 0;
    if (!p || sscanf(p + 1, " %c %d", &state, &ppid) != 2) return 0;
    return ppid == parent && state != 'Z';
}
