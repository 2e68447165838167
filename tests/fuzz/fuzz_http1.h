/* Checks shared by the harnesses of the balancer's HTTP/1 parser. */
#ifndef SCALER_FUZZ_HTTP1_H
#define SCALER_FUZZ_HTTP1_H

#include "../../plugins/balancer/bal.h"

#include <stddef.h>

/* An accepted head of r bytes in buf[0..size): its bytes and dropped lines. */
void fz_check_head(const char *buf, size_t size, size_t r, const struct h1_head *h, int request);
/* The same head arriving in pieces parses to the same result. */
void fz_check_pieces(const char *buf, size_t size, size_t r, const struct h1_head *h, int request);
/* What the proxy forwards of an accepted request head is accepted again
 * with the same framing, and drops nothing but the proxy's own lines. */
void fz_check_forwarded(const char *buf, const struct h1_head *h);
/* Scan p[0..n) as a chunked body: 1 complete, 0 incomplete, -1 malformed;
 * *used (may be NULL) is what belongs to the body. Whole, byte by byte and in
 * two pieces agree, and an accepted body matches RFC 9112's grammar. */
int fz_check_chunked(const char *p, size_t n, size_t *used);
/* 1 when p[0..n) is exactly one complete chunked body by the grammar. */
int fz_chunked_grammar(const char *p, size_t n);

#endif
