/*
 * httpd.c -- a one-document HTTP server thread. See httpd.h.
 */
#include "runtime/httpd.h"
#include "runtime/error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEAD_MAX 8192
#define BODY_MAX (256 * 1024)

struct weft_httpd {
    int fd, port;
    char path[128], content_type[128];
    weft_httpd_render render;
    void *arg;
    atomic_int stop;
    pthread_t thread;
    char *body; /* BODY_MAX, rendered per request */
};

/* Read until the blank line that ends the head; 0 on success. */
static int read_head(int fd, char *buf, size_t len)
{
    size_t used = 0;
    while (used + 1 < len) {
        ssize_t n = recv(fd, buf + used, len - 1 - used, 0);
        if (n <= 0)
            return -1; /* closed, error or SO_RCVTIMEO */
        used += (size_t)n;
        buf[used] = '\0';
        if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
            return 0;
    }
    return -1;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void reply(int fd, int code, const char *status, const char *type, const char *body, size_t len,
                  int head_only)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", code,
                     status, type, len);
    send_all(fd, head, (size_t)n);
    if (!head_only)
        send_all(fd, body, len);
}

static void serve(weft_httpd *h, int fd)
{
    char req[HEAD_MAX], method[16], target[512];
    if (read_head(fd, req, sizeof req) != 0 || sscanf(req, "%15s %511s", method, target) != 2)
        return reply(fd, 400, "Bad Request", "text/plain", "bad request\n", 12, 0);
    char *q = strchr(target, '?');
    if (q)
        *q = '\0';
    int head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0)
        return reply(fd, 405, "Method Not Allowed", "text/plain", "GET or HEAD only\n", 17, 0);
    if (strcmp(target, h->path) != 0)
        return reply(fd, 404, "Not Found", "text/plain", "not found\n", 10, head);
    int n = h->render(h->arg, h->body, BODY_MAX);
    reply(fd, 200, "OK", h->content_type, h->body, n > 0 ? (size_t)n : 0, head);
}

static void *server_main(void *arg)
{
    weft_httpd *h = arg;
    while (!atomic_load(&h->stop)) {
        struct pollfd p = {.fd = h->fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        int c = accept(h->fd, NULL, NULL);
        if (c < 0)
            continue;
        struct timeval tv = {2, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        serve(h, c);
        close(c);
    }
    return NULL;
}

static int open_listener(const char *bind_addr, int port, int *fd_out, int *port_out)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, bind_addr, &a.sin_addr) != 1)
        return weft_error(WEFT_ECONFIG, "sched.metrics_bind: '%s' is not an IPv4 address", bind_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return weft_error(WEFT_EIO, "metrics server: socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t alen = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        int e = errno;
        close(fd);
        return weft_error(WEFT_EIO, "metrics server: cannot listen on %s:%d: %s (set sched.metrics_port to a "
                                    "free port, or 0 for any)", bind_addr, port, strerror(e));
    }
    *fd_out = fd;
    *port_out = ntohs(a.sin_port);
    return 0;
}

int weft_httpd_start(const char *bind_addr, int port, const char *path, const char *content_type,
                     weft_httpd_render render, void *arg, weft_httpd **out)
{
    weft_httpd *h = calloc(1, sizeof *h);
    char *body = malloc(BODY_MAX);
    if (!h || !body) {
        free(h);
        free(body);
        return weft_error(WEFT_ENOMEM, "metrics server: out of memory");
    }
    h->body = body;
    snprintf(h->path, sizeof h->path, "%s", path);
    snprintf(h->content_type, sizeof h->content_type, "%s", content_type);
    h->render = render;
    h->arg = arg;
    int rc = open_listener(bind_addr, port, &h->fd, &h->port);
    if (rc == 0 && pthread_create(&h->thread, NULL, server_main, h) != 0) {
        close(h->fd);
        rc = weft_error(WEFT_EINTERNAL, "metrics server: cannot start its thread");
    }
    if (rc) {
        free(body);
        free(h);
        return rc;
    }
    *out = h;
    return 0;
}

int weft_httpd_port(const weft_httpd *h) { return h->port; }

void weft_httpd_stop(weft_httpd *h)
{
    if (!h)
        return;
    atomic_store(&h->stop, 1);
    pthread_join(h->thread, NULL);
    close(h->fd);
    free(h->body);
    free(h);
}
