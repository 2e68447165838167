/* Checks shared by the harnesses of the balancer's HTTP/1 parser. */
#ifndef SCALER_FUZZ_HTTP1_H
#define SCALER_FUZZ_HTTP1_H

#include "../../plugins/balancer/bal.h"

#include <stddef.h>

/* `request` below: 0 for a response, FZ_UNTRUSTED or FZ_TRUSTED for a
 * request from a client or from a trusted proxy (keep_forwarded). */
enum { FZ_UNTRUSTED = 1, FZ_TRUSTED = 2 };

/* An accepted head of r bytes in buf[0..size): its bytes and dropped lines. */
void fz_check_head(const char *buf, size_t size, size_t r, const struct h1_head *h, int request);
/* The same head arriving in pieces parses to the same result. */
void fz_check_pieces(const char *buf, size_t size, size_t r, const struct h1_head *h, int request);
/* What the proxy forwards of an accepted request head is accepted again
 * with the same framing, and drops nothing but the proxy's own lines; from
 * a client that is not trusted, no forwarding header gets through. */
void fz_check_forwarded(const char *buf, const struct h1_head *h, int trusted);
/* Scan p[0..n) as a chunked body: 1 complete, 0 incomplete, -1 malformed;
 * *used (may be NULL) is what belongs to the body. Whole, byte by byte and in
 * two pieces agree, and an accepted body matches RFC 9112's grammar. */
int fz_check_chunked(const char *p, size_t n, size_t *used);
/* The length of the complete chunked body at the start of p[0..n) by the
 * grammar, 0 when there is none; its data goes to out (n bytes of room) and
 * *outlen when out is not NULL. */
size_t fz_chunked_parse(const char *p, size_t n, char *out, size_t *outlen);

#endif
