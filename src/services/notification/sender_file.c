/*
 * The default sender: each notification becomes the file
 * <dir>/<user_id>/<notification_id>.txt. It is written to a temporary file
 * in the same directory, fsynced and renamed into place, so a reader sees
 * either nothing or the whole message, and writing it again (a redelivery
 * after a crash) replaces it with identical bytes: delivery is idempotent.
 * Synchronous: done runs before send returns.
 */
#include "notification.h"

#include <shoal/clock.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct file_sender {
    char dir[512];
} file_sender;

static int mkdir_p(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc != 0 && errno != EEXIST) return SL_EIO;
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST) return SL_EIO;
    return 0;
}

static int write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, s, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return SL_EIO;
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

static int deliver(file_sender *fs, const notif_msg *m)
{
    /* Ids were checked when the notification was recorded (notif_user_id_valid, UUIDs). */
    char dir[700], tmp[800], dst[800];
    snprintf(dir, sizeof dir, "%s/%s", fs->dir, m->user_id);
    int rc = mkdir_p(dir);
    if (rc) return rc;
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, m->notification_id);
    snprintf(dst, sizeof dst, "%s/%s.txt", dir, m->notification_id);
    char at[SL_RFC3339_MAX];
    sl_rfc3339_format(m->created_ms * 1000000, at, sizeof at);
    char head[600];
    int hn = snprintf(head, sizeof head,
                      "To: %s\nSubject: %s\nDate: %s\nNotification-Id: %s\nKind: %s\n\n",
                      m->user_id, m->subject, at, m->notification_id, m->kind);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return SL_EIO;
    rc = write_all(fd, head, (size_t)hn);
    if (rc == 0) rc = write_all(fd, m->body, strlen(m->body));
    if (rc == 0) rc = write_all(fd, "\n", 1);
    if (rc == 0 && fsync(fd) != 0) rc = SL_EIO;
    if (close(fd) != 0 && rc == 0) rc = SL_EIO;
    if (rc == 0 && rename(tmp, dst) != 0) rc = SL_EIO;
    if (rc != 0) unlink(tmp);
    return rc;
}

static int file_send(void *ctx, const notif_msg *m, notif_sent_cb done, void *done_data)
{
    done(done_data, deliver(ctx, m));
    return 0;
}

static void file_close(void *ctx)
{
    free(ctx);
}

int notif_file_sender_new(const char *dir, notif_sender *out)
{
    if (dir == NULL || dir[0] == '\0' || strlen(dir) >= sizeof((file_sender *)0)->dir)
        return SL_EINVAL;
    file_sender *fs = calloc(1, sizeof *fs);
    if (!fs) return SL_ENOMEM;
    snprintf(fs->dir, sizeof fs->dir, "%s", dir);
    *out = (notif_sender){.send = file_send, .close = file_close, .ctx = fs};
    return 0;
}
