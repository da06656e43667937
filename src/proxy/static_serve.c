/*
 * Answers of the static-file route (static_serve.h): the file from memory
 * with its validators and security headers, 304 on a matching
 * If-None-Match, and the redirect of a directory asked for without its slash.
 */
#include "static_serve.h"

#include <stdio.h>
#include <string.h>

/* No inline script or style, nothing from elsewhere, never framed. */
#define PX_STATIC_CSP                                                                              \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "                    \
    "form-action 'self'; frame-ancestors 'none'"

void px_static_respond(px_req *r)
{
    sl_http_req *req = r->req;
    const px_static_file *f = r->sfile;
    SL_ASSERT(f && r->ssite);
    char cc[48];
    if (f->html)
        snprintf(cc, sizeof cc, "no-cache");
    else
        snprintf(cc, sizeof cc, "public, max-age=%u", r->ssite->max_age_s);
    sl_http_header h[8];
    size_t n = 0;
    h[n++] = (sl_http_header){SL_SLICE_LIT("ETag"), {f->etag, strlen(f->etag)}};
    h[n++] = (sl_http_header){SL_SLICE_LIT("Cache-Control"), {cc, strlen(cc)}};
    h[n++] = (sl_http_header){SL_SLICE_LIT("X-Content-Type-Options"), SL_SLICE_LIT("nosniff")};
    h[n++] = (sl_http_header){SL_SLICE_LIT("Referrer-Policy"), SL_SLICE_LIT("no-referrer")};
    if (f->html)
        h[n++] =
            (sl_http_header){SL_SLICE_LIT("Content-Security-Policy"), SL_SLICE_LIT(PX_STATIC_CSP)};
    sl_slice inm;
    if (sl_http_req_header(req, "if-none-match", &inm) && px_static_etag_match(inm, f->etag)) {
        sl_http_respond(req, 304, h, n, NULL, 0);
        return;
    }
    h[n++] = (sl_http_header){SL_SLICE_LIT("Content-Type"), {f->ctype, strlen(f->ctype)}};
    sl_http_respond(req, 200, h, n, f->data, f->len);
}

void px_static_redirect(px_req *r)
{
    sl_http_req *req = r->req;
    char loc[PX_STATIC_PATH_MAX + 2];
    int n = snprintf(loc, sizeof loc, "%.*s/", (int)req->path.len, req->path.ptr);
    if (n < 0 || (size_t)n >= sizeof loc) {
        px_respond_problem(r, 404, "no such resource", NULL, 0);
        return;
    }
    sl_http_header h[2] = {
        {SL_SLICE_LIT("Location"), {loc, (size_t)n}},
        {SL_SLICE_LIT("Cache-Control"), SL_SLICE_LIT("no-cache")},
    };
    sl_http_respond(req, 301, h, 2, NULL, 0);
}
