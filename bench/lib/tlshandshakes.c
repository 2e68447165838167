/* An LD_PRELOAD shim for wrk in bench/balancer's TLS rows: counts the
 * client's handshakes that resumed a session and those that were full,
 * and, with SCALER_BENCH_FULL_HANDSHAKES=1, makes each one full.
 *
 * wrk keeps one SSL object per connection slot and reconnects with it, so
 * it offers the session of its previous connection (a TLS 1.3 ticket): left
 * alone, "a new connection per request" measures resumptions. Dropping the
 * session before each handshake starts makes the server sign with its key
 * every time (ECDSA or RSA): the full handshakes the key type names.
 *
 * Built by the bench with the system's cc; prints one line to stderr at
 * exit: "tlshandshakes: full N resumed M". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/ssl.h>

static int (*real_connect)(SSL *);
static long full, resumed;
static int drop = -1;

int SSL_connect(SSL *s)
{
	if (!real_connect)
		real_connect = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_connect");
	if (drop < 0) {
		const char *e = getenv("SCALER_BENCH_FULL_HANDSHAKES");
		drop = e && *e == '1';
	}
	/* only before the handshake starts: wrk calls again while it goes on */
	if (drop && SSL_in_before(s))
		SSL_set_session(s, NULL);
	int r = real_connect(s);
	if (r == 1) {
		if (SSL_session_reused(s))
			resumed++;
		else
			full++;
	}
	return r;
}

__attribute__((destructor)) static void tlshandshakes_report(void)
{
	fprintf(stderr, "tlshandshakes: full %ld resumed %ld\n", full, resumed);
}
