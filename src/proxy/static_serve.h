/*
 * The answers of the static-file route (static_serve.c), on the loop
 * thread, from the files a configuration loaded (static.h).
 */
#ifndef SHOAL_PROXY_STATIC_SERVE_H
#define SHOAL_PROXY_STATIC_SERVE_H

#include "request.h"

/* Answers r (GET or HEAD, r->sfile set): 200 with the file, or 304 when If-None-Match matches. */
void px_static_respond(px_req *r);
/* Answers r with 301 to its path plus "/". */
void px_static_redirect(px_req *r);

#endif
