/*
 * httpd.h -- the smallest HTTP/1.0 server that serves one text document
 * (Prometheus metrics) from a background thread.
 *
 * One thread accepts one connection at a time, reads the request head (at
 * most 8 KiB, within 2 s), answers GET or HEAD of the one path with what
 * the render callback produces, 404 for other paths, 405 for other methods,
 * and closes. A slow or hostile client costs at most the read timeout and
 * never touches the training thread. Bound to 127.0.0.1 unless told
 * otherwise.
 *
 * States: weft_httpd_start (listening, thread running) -> weft_httpd_stop
 * (thread joined, socket closed).
 */
#ifndef WEFT_RUNTIME_HTTPD_H
#define WEFT_RUNTIME_HTTPD_H

#include <stddef.h>

typedef struct weft_httpd weft_httpd;

/* Writes the document into buf (len bytes) and returns its length. Runs on
 * the server thread. */
typedef int (*weft_httpd_render)(void *arg, char *buf, size_t len);

/* bind: an IPv4 address ("127.0.0.1", "0.0.0.0"); port 0: ephemeral.
 * path: the one path served ("/metrics"); content_type of the answer. */
int weft_httpd_start(const char *bind, int port, const char *path, const char *content_type,
                     weft_httpd_render render, void *arg, weft_httpd **out);
/* The port actually bound. */
int weft_httpd_port(const weft_httpd *h);
void weft_httpd_stop(weft_httpd *h);

#endif
