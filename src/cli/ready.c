/* The catalogue check of `shoal up` (ready.h). */
#include "ready.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define READ_MAX (256 * 1024)

int cli_ready_body_has_stock(const char *body, size_t len)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    json_t *items = json_object_get(doc, "items");
    int stock = 0;
    for (size_t i = 0; i < json_array_size(items) && !stock; i++) {
        json_t *avail = json_object_get(json_array_get(items, i), "available");
        stock = json_is_integer(avail) && json_integer_value(avail) > 0;
    }
    json_decref(doc);
    return stock;
}

int cli_ready_stock(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char *buf = malloc(READ_MAX + 1);
    size_t len = 0;
    int ok = 0;
    if (buf && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        char req[1200];
        int n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
        if (n > 0 && (size_t)n < sizeof req && write(fd, req, (size_t)n) == n) {
            ssize_t r;
            while (len < READ_MAX && (r = read(fd, buf + len, READ_MAX - len)) > 0)
                len += (size_t)r;
        }
    }
    if (buf) {
        buf[len] = '\0';
        const char *body = strstr(buf, "\r\n\r\n");
        /* Connection: close and a gateway answer small enough: the body runs to the end. */
        if (len >= 12 && strncmp(buf, "HTTP/1.1 200", 12) == 0 && body)
            ok = cli_ready_body_has_stock(body + 4, len - (size_t)(body + 4 - buf));
    }
    free(buf);
    close(fd);
    return ok;
}
