/* TLS termination with OpenSSL: the zone's certificates (one chosen per
 * connection by SNI, the first when the name matches none), TLS 1.2 and
 * 1.3 only, ALPN, session tickets whose keys every worker of the zone
 * shares (board.c) and rotates, OCSP stapling from a response file, the
 * certificates read again on SIGHUP, and an optional HTTP listener that
 * redirects to https.
 *
 * The data path stays in proxy.c: a client connection with an SSL reads
 * and writes through tls_recv and tls_send instead of read and sendmsg;
 * plain connections do not look at any of this.
 *
 * Defaults follow Mozilla's Server Side TLS guidelines, "intermediate"
 * configuration (wiki.mozilla.org/Security/Server_Side_TLS): TLS 1.2 and
 * 1.3, forward-secret AEAD suites only (its list without the DHE suites,
 * which would need parameters), curves X25519, P-256 and P-384, no
 * server cipher preference, tickets with keys rotated. */
#include "config.h"

#include "bal.h"
#include "http_server.h"
#include "net.h"
#include "secret.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define TLS_MAX_CERTS 256
#define TLS_DEFAULT_CIPHERS                                                                    \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-"    \
	"SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-" \
	"POLY1305"
#define TLS_DEFAULT_SUITES \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_DEFAULT_GROUPS "X25519:P-256:P-384"
#define TLS_KEY_MAX (1 << 20) /* bytes of a key file */

struct tls_cert {
	char cert[PATH_MAX], key[PATH_MAX], ocsp[PATH_MAX]; /* ocsp: "" when none */
	const config_setting_t *where;                      /* for errors at parse time */
	SSL_CTX *ctx;
	char **names; /* DNS names of the certificate, lower case ("*.x.org" for wildcards) */
	int nnames;
	unsigned char *ocsp_der; /* the response stapled, NULL when none */
	long ocsp_len;
};

struct tls_conf {
	struct tls_cert *certs;
	int ncerts;
	int min_version;
	char ciphers[1024], suites[512], groups[256];
	int tickets;
	double ticket_rotation;
	char redirect[270];
	int redirect_status;
	int http2; /* streams at once, 0: no HTTP/2 */
};

struct tls {
	struct bal *b;
	struct tls_conf *cf;
	struct tls_tickets keys; /* without a board: this worker's own */
	ev_timer rotate;
	ev_signal hup;
	struct http_server *redirect;
	int redirect_port; /* the zone's port, for the Location */
	unsigned char alpn[32];
	unsigned alpn_len;
};

/* ---- errors ----------------------------------------------------------------- */

/* The OpenSSL errors queued, as one sentence (and the queue emptied). */
static const char *tls_errors(char *buf, size_t len)
{
	unsigned long e;
	size_t off = 0;
	buf[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		char one[256];
		ERR_error_string_n(e, one, sizeof(one));
		/* "error:0A00018F:SSL routines::ee key too small": the reason */
		const char *r = strrchr(one, ':');
		r = r && r[1] ? r + 1 : one;
		if (off < len)
			off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? "; " : "", r);
	}
	if (!buf[0])
		snprintf(buf, len, "unknown error");
	return buf;
}

/* ---- loading a certificate ----------------------------------------------------- */

static void tls_cert_unload(struct tls_cert *c)
{
	SSL_CTX_free(c->ctx);
	c->ctx = NULL;
	for (int i = 0; i < c->nnames; i++)
		free(c->names[i]);
	free(c->names);
	c->names = NULL;
	c->nnames = 0;
	free(c->ocsp_der);
	c->ocsp_der = NULL;
	c->ocsp_len = 0;
}

static int tls_add_name(struct tls_cert *c, const unsigned char *s, int len)
{
	if (len <= 0 || len > 253)
		return 0;
	char **n = realloc(c->names, (size_t)(c->nnames + 1) * sizeof(*n));
	if (!n)
		return -1;
	c->names = n;
	if (!(n[c->nnames] = malloc((size_t)len + 1)))
		return -1;
	for (int i = 0; i < len; i++)
		n[c->nnames][i] = (char)tolower(s[i]);
	n[c->nnames][len] = '\0';
	c->nnames++;
	return 0;
}

/* The names SNI matches: the DNS subjectAltNames, else the common name. */
static int tls_cert_names(struct tls_cert *c, X509 *x)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int rc = 0;
	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type == GEN_DNS)
			rc |= tls_add_name(c, ASN1_STRING_get0_data(g->d.dNSName),
			                   ASN1_STRING_length(g->d.dNSName));
	}
	GENERAL_NAMES_free(gens);
	if (c->nnames == 0) {
		X509_NAME *subj = X509_get_subject_name(x);
		int k = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
		ASN1_STRING *cn =
		    k >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, k)) : NULL;
		if (cn)
			rc |= tls_add_name(c, ASN1_STRING_get0_data(cn), ASN1_STRING_length(cn));
	}
	return rc;
}

/* The private key file, read under the secrets rule. */
static EVP_PKEY *tls_read_key(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd = secret_open(path, "TLS key", &st, err, errlen);
	if (fd < 0)
		return NULL;
	char *buf = NULL;
	size_t len = 0;
	if (st.st_size > TLS_KEY_MAX) {
		snprintf(err, errlen, "TLS key %s is larger than %d bytes", path, TLS_KEY_MAX);
	} else if ((buf = malloc((size_t)st.st_size + 1))) {
		ssize_t n;
		while (len < (size_t)st.st_size &&
		       ((n = read(fd, buf + len, (size_t)st.st_size - len)) > 0 ||
		        (n < 0 && errno == EINTR)))
			len += n > 0 ? (size_t)n : 0;
	}
	close(fd);
	EVP_PKEY *k = NULL;
	if (buf) {
		BIO *bio = BIO_new_mem_buf(buf, (int)len);
		k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
		OPENSSL_cleanse(buf, len);
		free(buf);
		if (!k) {
			char why[256];
			snprintf(err, errlen, "TLS key %s: not a PEM private key (%s)", path,
			         tls_errors(why, sizeof(why)));
		}
	}
	return k;
}

/* The OCSP response c->ocsp, checked to be a successful answer about c's
 * certificate; an expired one is not stapled (a warning in *warn). */
static int tls_read_ocsp(struct tls_cert *c, X509 *leaf, char *err, size_t errlen, char *warn,
                         size_t warnlen)
{
	if (access(c->ocsp, R_OK) < 0) {
		snprintf(err, errlen, "OCSP response %s: %s", c->ocsp, strerror(errno));
		return -1;
	}
	unsigned char *der = NULL;
	long len = 0;
	BIO *bio = BIO_new_file(c->ocsp, "rb");
	OCSP_RESPONSE *r = bio ? d2i_OCSP_RESPONSE_bio(bio, NULL) : NULL;
	BIO_free(bio);
	ERR_clear_error();
	OCSP_BASICRESP *bs = r ? OCSP_response_get1_basic(r) : NULL;
	if (!r || OCSP_response_status(r) != OCSP_RESPONSE_STATUS_SUCCESSFUL || !bs) {
		snprintf(err, errlen, "OCSP response %s: not a successful OCSP response (DER)",
		         c->ocsp);
		goto fail;
	}
	STACK_OF(X509) *chain = NULL;
	SSL_CTX_get0_chain_certs(c->ctx, &chain);
	X509 *issuer = NULL;
	for (int i = 0; chain && i < sk_X509_num(chain) && !issuer; i++)
		if (X509_check_issued(sk_X509_value(chain, i), leaf) == X509_V_OK)
			issuer = sk_X509_value(chain, i);
	if (issuer) {
		OCSP_CERTID *id = OCSP_cert_to_id(NULL, leaf, issuer);
		int status, reason;
		ASN1_GENERALIZEDTIME *rev, *thisupd, *nextupd;
		int found =
		    id && OCSP_resp_find_status(bs, id, &status, &reason, &rev, &thisupd, &nextupd);
		OCSP_CERTID_free(id);
		if (!found) {
			snprintf(err, errlen, "OCSP response %s does not answer for certificate %s",
			         c->ocsp, c->cert);
			goto fail;
		}
		if (status == V_OCSP_CERTSTATUS_REVOKED) {
			snprintf(err, errlen, "OCSP response %s says certificate %s is revoked",
			         c->ocsp, c->cert);
			goto fail;
		}
		if (nextupd && X509_cmp_current_time(nextupd) < 0) {
			snprintf(warn, warnlen,
			         "OCSP response %s has expired: not stapled until it is renewed",
			         c->ocsp);
			goto out;
		}
	}
	len = i2d_OCSP_RESPONSE(r, &der);
	if (len > 0 && (c->ocsp_der = malloc((size_t)len))) {
		memcpy(c->ocsp_der, der, (size_t)len);
		c->ocsp_len = len;
	}
	OPENSSL_free(der);
out:
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(r);
	return 0;
fail:
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(r);
	return -1;
}

static SSL_CTX *tls_ctx_new(const struct tls_conf *cf, char *err, size_t errlen, const char **which)
{
	char why[512];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	*which = NULL;
	if (!ctx) {
		snprintf(err, errlen, "%s", tls_errors(why, sizeof(why)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, cf->min_version);
	/* no renegotiation (a client could make it cost the server work at
	 * will), no compression (CRIME), a peer that closes without
	 * close_notify is an EOF like any other */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
	                             SSL_OP_IGNORE_UNEXPECTED_EOF |
	                             (cf->tickets ? 0 : SSL_OP_NO_TICKET));
	/* buffers of idle connections are given back; writes may be partial
	 * and come from wherever the bytes are (proxy.c's queue) */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
	                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* tickets only: a session cache would be one per worker */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_timeout(ctx, (long)(2 * cf->ticket_rotation));
	if (SSL_CTX_set_cipher_list(ctx, cf->ciphers) != 1)
		*which = "ciphers";
	else if (SSL_CTX_set_ciphersuites(ctx, cf->suites) != 1)
		*which = "ciphersuites";
	else if (SSL_CTX_set1_groups_list(ctx, cf->groups) != 1)
		*which = "groups";
	if (*which) {
		snprintf(err, errlen, "not accepted by OpenSSL (%s)", tls_errors(why, sizeof(why)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* Build c's context from its files. -1 with err and *which: "cert", "key",
 * "ocsp" or a setting of the group. */
static int tls_cert_load(struct tls_cert *c, const struct tls_conf *cf, char *err, size_t errlen,
                         const char **which, char *warn, size_t warnlen)
{
	char why[512];
	warn[0] = '\0';
	c->ctx = tls_ctx_new(cf, err, errlen, which);
	if (!c->ctx)
		return -1;
	*which = "cert";
	if (access(c->cert, R_OK) < 0) {
		snprintf(err, errlen, "certificate %s: %s", c->cert, strerror(errno));
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(c->ctx, c->cert) != 1) {
		snprintf(err, errlen, "certificate %s: not a PEM certificate chain (%s)", c->cert,
		         tls_errors(why, sizeof(why)));
		goto fail;
	}
	*which = "key";
	EVP_PKEY *k = tls_read_key(c->key, err, errlen);
	if (!k)
		goto fail;
	int ok = SSL_CTX_use_PrivateKey(c->ctx, k) == 1 && SSL_CTX_check_private_key(c->ctx) == 1;
	EVP_PKEY_free(k);
	if (!ok) {
		snprintf(err, errlen, "TLS key %s does not match certificate %s (%s)", c->key,
		         c->cert, tls_errors(why, sizeof(why)));
		goto fail;
	}
	*which = "cert";
	X509 *leaf = SSL_CTX_get0_certificate(c->ctx);
	if (tls_cert_names(c, leaf) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0)
		snprintf(warn, warnlen, "certificate %s has expired", c->cert);
	*which = "ocsp";
	if (c->ocsp[0] && tls_read_ocsp(c, leaf, err, errlen, warn, warnlen) < 0)
		goto fail;
	*which = NULL;
	return 0;
fail:
	tls_cert_unload(c);
	return -1;
}

/* ---- settings ------------------------------------------------------------------ */

static int tls_path(const struct scaler_host *h, const config_setting_t *g, const char *name,
                    char *out, int required)
{
	const config_setting_t *s = config_setting_get_member(g, name);
	const char *v = s ? config_setting_get_string(s) : NULL;
	out[0] = '\0';
	if (!s)
		return required ? h->conf_error(g, "%s is required (a file name)", name) : 0;
	if (!v || v[0] != '/' || strlen(v) >= PATH_MAX)
		return h->conf_error(s, "must be an absolute file name");
	snprintf(out, PATH_MAX, "%s", v);
	return 0;
}

static int tls_parse_certificates(const struct scaler_host *h, const config_setting_t *g,
                                  struct tls_cert *c)
{
	static const char *const known[] = {"cert", "key", "ocsp", NULL};
	if (!config_setting_is_group(g))
		return h->conf_error(g,
		                     "must be a group { cert = FILE; key = FILE; ocsp = FILE; }");
	int rc = h->conf_check_known(g, known) < 0;
	rc |= tls_path(h, g, "cert", c->cert, 1) < 0;
	rc |= tls_path(h, g, "key", c->key, 1) < 0;
	rc |= tls_path(h, g, "ocsp", c->ocsp, 0) < 0;
	c->where = g;
	return rc ? -1 : 0;
}

static int tls_string(const struct scaler_host *h, const config_setting_t *g, const char *name,
                      char *out, size_t outlen, const char *def)
{
	const config_setting_t *s = config_setting_get_member(g, name);
	const char *v = s ? config_setting_get_string(s) : def;
	if (!v || !v[0] || strlen(v) >= outlen)
		return h->conf_error(s, "must be a non-empty string of at most %zu bytes",
		                     outlen - 1);
	snprintf(out, outlen, "%s", v);
	return 0;
}

int tls_parse(const struct scaler_host *h, const config_setting_t *g, struct tls_conf **out)
{
	*out = NULL;
	struct tls_conf *cf = calloc(1, sizeof(*cf));
	if (!cf)
		return h->conf_error(g, "out of memory");
	int rc = 0;
	const config_setting_t *list = config_setting_get_member(g, "certificates");
	int n = list ? config_setting_length(list) : 0;
	if (!list || !config_setting_is_list(list) || n < 1 || n > TLS_MAX_CERTS) {
		rc |=
		    h->conf_error(list ? list : g,
		                  "certificates must be a list of 1 to %d groups ( { cert = FILE; "
		                  "key = FILE; }, ... ), the first one the default",
		                  TLS_MAX_CERTS);
		n = 0;
	}
	if (n && !(cf->certs = calloc((size_t)n, sizeof(*cf->certs)))) {
		free(cf);
		return h->conf_error(g, "out of memory");
	}
	for (int i = 0; i < n; i++)
		if (tls_parse_certificates(h, config_setting_get_elem(list, (unsigned)i),
		                           &cf->certs[cf->ncerts]) == 0)
			cf->ncerts++;
		else
			rc = 1;
	const config_setting_t *s = config_setting_get_member(g, "min_version");
	const char *mv = s ? config_setting_get_string(s) : "1.2";
	cf->min_version = TLS1_2_VERSION;
	if (mv && strcmp(mv, "1.3") == 0)
		cf->min_version = TLS1_3_VERSION;
	else if (!mv || strcmp(mv, "1.2") != 0)
		rc |= h->conf_error(s, "must be \"1.2\" or \"1.3\" (older versions are refused)");
	rc |=
	    tls_string(h, g, "ciphers", cf->ciphers, sizeof(cf->ciphers), TLS_DEFAULT_CIPHERS) < 0;
	rc |= tls_string(h, g, "ciphersuites", cf->suites, sizeof(cf->suites), TLS_DEFAULT_SUITES) <
	      0;
	rc |= tls_string(h, g, "groups", cf->groups, sizeof(cf->groups), TLS_DEFAULT_GROUPS) < 0;
	cf->tickets = 1;
	s = config_setting_get_member(g, "session_tickets");
	if (s && config_setting_type(s) != CONFIG_TYPE_BOOL)
		rc |= h->conf_error(s, "must be true or false");
	else if (s)
		cf->tickets = config_setting_get_bool(s);
	cf->http2 = 1;
	s = config_setting_get_member(g, "http2");
	if (s && config_setting_type(s) != CONFIG_TYPE_BOOL)
		rc |= h->conf_error(s, "must be true or false");
	else if (s)
		cf->http2 = config_setting_get_bool(s);
	long long streams;
	rc |= h->conf_integer(g, "http2_max_streams", 100, 1, 1000, &streams) < 0;
	cf->http2 = cf->http2 ? (int)streams : 0;
	rc |= h->conf_number(g, "ticket_rotation", 3600, 60, 7 * 86400, &cf->ticket_rotation) < 0;
	s = config_setting_get_member(g, "redirect");
	if (s) {
		const char *v = config_setting_get_string(s);
		char host[256];
		int port;
		if (!v || net_parse_hostport(v, host, sizeof(host), &port) < 0 ||
		    strlen(v) >= sizeof(cf->redirect))
			rc |= h->conf_error(s, "must be a listen address host:port (e.g. "
			                       "\"0.0.0.0:80\")");
		else
			snprintf(cf->redirect, sizeof(cf->redirect), "%s", v);
	}
	long long v;
	rc |= h->conf_integer(g, "redirect_status", 308, 301, 308, &v) < 0;
	cf->redirect_status = (int)v;
	if (v != 301 && v != 302 && v != 307 && v != 308)
		rc |= h->conf_error(config_setting_get_member(g, "redirect_status"),
		                    "must be 301, 302, 307 or 308");
	if (rc) {
		tls_conf_free(cf);
		return -1;
	}
	/* load everything now: scalerd -t and a reload refuse what would fail */
	for (int i = 0; i < cf->ncerts; i++) {
		struct tls_cert *c = &cf->certs[i];
		char err[1024], warn[512];
		const char *which;
		if (tls_cert_load(c, cf, err, sizeof(err), &which, warn, sizeof(warn)) < 0) {
			const config_setting_t *at = config_setting_get_member(c->where, which);
			if (!at)
				at = config_setting_get_member(g, which);
			rc |= h->conf_error(at ? at : c->where, "%s", err);
			if (at && config_setting_parent(at) == g)
				break; /* a setting of the group: every certificate says the same */
		} else if (warn[0]) {
			h->log(SCALER_LOG_WARNING, BAL_WHO, "%s", warn);
		}
	}
	if (rc) {
		tls_conf_free(cf);
		return -1;
	}
	*out = cf;
	return 0;
}

void tls_conf_free(struct tls_conf *cf)
{
	if (!cf)
		return;
	for (int i = 0; i < cf->ncerts; i++)
		tls_cert_unload(&cf->certs[i]);
	free(cf->certs);
	free(cf);
}

int tls_conf_http2(const struct tls_conf *cf)
{
	return cf ? cf->http2 : 0;
}

/* ---- the callbacks ---------------------------------------------------------------- */

static int tls_name_matches(const char *pattern, const char *name)
{
	if (strcmp(pattern, name) == 0)
		return 2;
	/* "*.example.org" matches one label: "a.example.org", not "a.b.example.org" */
	const char *dot = strchr(name, '.');
	return pattern[0] == '*' && pattern[1] == '.' && dot && dot != name &&
	       strcmp(pattern + 1, dot) == 0;
}

/* SNI: the certificate whose name is the one asked for, exact names first. */
static int tls_on_servername(SSL *s, int *al, void *arg)
{
	struct tls *t = arg;
	const char *sn = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
	(void)al;
	if (!sn || !*sn || t->cf->ncerts < 2)
		return SSL_TLSEXT_ERR_OK;
	char name[256];
	size_t n = strlen(sn);
	if (n >= sizeof(name))
		return SSL_TLSEXT_ERR_OK;
	for (size_t i = 0; i <= n; i++)
		name[i] = (char)tolower((unsigned char)sn[i]);
	struct tls_cert *best = NULL;
	int score = 0;
	for (int i = 0; i < t->cf->ncerts && score < 2; i++) {
		struct tls_cert *c = &t->cf->certs[i];
		for (int k = 0; k < c->nnames; k++) {
			int m = tls_name_matches(c->names[k], name);
			if (m > score) {
				score = m;
				best = c;
			}
		}
	}
	if (best && best->ctx != SSL_get_SSL_CTX(s))
		SSL_set_SSL_CTX(s, best->ctx);
	return SSL_TLSEXT_ERR_OK;
}

static int tls_on_alpn(SSL *s, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
	struct tls *t = arg;
	unsigned char *o = NULL;
	(void)s;
	if (SSL_select_next_proto(&o, outlen, t->alpn, t->alpn_len, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK; /* none in common: HTTP/1.1 without ALPN */
	*out = o;
	return SSL_TLSEXT_ERR_OK;
}

static int tls_on_status(SSL *s, void *arg)
{
	struct tls_cert *c = arg;
	if (!c->ocsp_der)
		return SSL_TLSEXT_ERR_NOACK;
	unsigned char *copy = OPENSSL_malloc((size_t)c->ocsp_len);
	if (!copy)
		return SSL_TLSEXT_ERR_NOACK;
	memcpy(copy, c->ocsp_der, (size_t)c->ocsp_len);
	SSL_set_tlsext_status_ocsp_resp(s, copy, c->ocsp_len);
	return SSL_TLSEXT_ERR_OK;
}

/* The keys in force: the zone's (board.c), or this worker's own. */
static const struct tls_tickets *tls_keys(struct tls *t, struct tls_tickets *buf)
{
	if (t->b->board && board_tickets_get(t->b, buf) == 0)
		return buf;
	return &t->keys;
}

/* The ticket cipher, fetched once: OpenSSL 3 looks a cipher up by name
 * (locks, a hash table) at every init it is not handed a fetched one. */
static EVP_CIPHER *tls_ticket_cipher(void)
{
	static EVP_CIPHER *aes;
	if (!aes)
		aes = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
	return aes;
}

static int tls_on_ticket(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
                         EVP_MAC_CTX *hctx, int enc)
{
	EVP_CIPHER *aes = tls_ticket_cipher();
	struct tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));
	struct tls_tickets buf;
	const struct tls_tickets *k = t ? tls_keys(t, &buf) : NULL;
	const struct tls_ticket_key *key = NULL;
	int rc = 1;
	if (!k || k->n == 0 || !aes)
		return enc ? -1 : 0;
	if (enc) {
		key = &k->key[0];
		memcpy(name, key->name, sizeof(key->name));
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(aes)) != 1)
			return -1;
	} else {
		for (int i = 0; i < k->n && !key; i++)
			if (memcmp(name, k->key[i].name, sizeof(k->key[i].name)) == 0)
				key = &k->key[i];
		if (!key)
			return 0; /* a ticket of a key forgotten: a full handshake */
		/* 2: good, and a new ticket please. TLS 1.3 always asks: OpenSSL
		 * sends no ticket after a resumption the callback did not renew,
		 * and a client that uses its tickets once (RFC 8446 C.4; OpenSSL's
		 * own clients among them) then falls back to a full handshake
		 * every other connection. OpenSSL renews its built-in keys' TLS
		 * 1.3 tickets the same way. */
		rc = key == &k->key[0] && SSL_version(s) < TLS1_3_VERSION ? 1 : 2;
	}
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)key->hmac,
	                                      sizeof(key->hmac)),
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
	    OSSL_PARAM_construct_end()};
	if (EVP_MAC_CTX_set_params(hctx, params) != 1)
		return enc ? -1 : 0;
	int ok = enc ? EVP_EncryptInit_ex(ectx, aes, NULL, key->aes, iv)
	             : EVP_DecryptInit_ex(ectx, aes, NULL, key->aes, iv);
	if (ok != 1)
		return enc ? -1 : 0;
	return rc;
}

static void tls_hook(struct tls *t, struct tls_cert *c)
{
	SSL_CTX *ctx = c->ctx;
	SSL_CTX_set_app_data(ctx, t);
	SSL_CTX_set_tlsext_servername_callback(ctx, tls_on_servername);
	SSL_CTX_set_tlsext_servername_arg(ctx, t);
	SSL_CTX_set_alpn_select_cb(ctx, tls_on_alpn, t);
	SSL_CTX_set_tlsext_status_cb(ctx, tls_on_status);
	SSL_CTX_set_tlsext_status_arg(ctx, c);
	if (t->cf->tickets)
		SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_on_ticket);
}

/* ---- ticket keys -------------------------------------------------------------------- */

static int tls_new_key(struct tls_ticket_key *k)
{
	return RAND_bytes(k->name, sizeof(k->name)) == 1 &&
	               RAND_bytes(k->aes, sizeof(k->aes)) == 1 &&
	               RAND_bytes(k->hmac, sizeof(k->hmac)) == 1
	           ? 0
	           : -1;
}

/* A new key encrypts from now on; the one before still decrypts (its
 * tickets are renewed) for one more period. */
static int tls_rotate_keys(struct tls_tickets *k)
{
	struct tls_ticket_key fresh;
	if (tls_new_key(&fresh) < 0)
		return -1;
	k->key[1] = k->key[0];
	k->key[0] = fresh;
	k->n = k->n ? 2 : 1;
	k->rotated = bal_wallclock();
	k->gen++;
	OPENSSL_cleanse(&fresh, sizeof(fresh));
	return 0;
}

static void tls_on_rotate(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tls *t = w->data;
	struct bal *b = t->b;
	(void)loop;
	(void)revents;
	if (b->follower)
		return; /* worker 0 rotates the zone's keys */
	struct tls_tickets k;
	const struct tls_tickets *cur = tls_keys(t, &k);
	if (cur != &k)
		k = *cur;
	if (k.n && bal_wallclock() - k.rotated < t->cf->ticket_rotation)
		return;
	if (tls_rotate_keys(&k) < 0)
		return;
	if (b->board)
		board_tickets_put(b, &k);
	else
		t->keys = k;
	OPENSSL_cleanse(&k, sizeof(k));
}

/* ---- reload ---------------------------------------------------------------------------- */

/* Read every certificate again (SIGHUP): all or nothing. Connections keep
 * the context they started with. */
static void tls_reload(struct tls *t)
{
	struct bal *b = t->b;
	struct tls_conf *cf = t->cf;
	struct tls_cert *fresh = calloc((size_t)cf->ncerts, sizeof(*fresh));
	char err[1024], warn[512];
	const char *which;
	int i;
	if (!fresh)
		return;
	for (i = 0; i < cf->ncerts; i++) {
		fresh[i] = cf->certs[i];
		fresh[i].ctx = NULL;
		fresh[i].names = NULL;
		fresh[i].nnames = 0;
		fresh[i].ocsp_der = NULL;
		if (tls_cert_load(&fresh[i], cf, err, sizeof(err), &which, warn, sizeof(warn)) < 0)
			break;
		if (warn[0])
			b->host->log(SCALER_LOG_WARNING, BAL_WHO, "zone %s: %s", b->zone, warn);
	}
	if (i < cf->ncerts) {
		b->host->log(SCALER_LOG_ERR, BAL_WHO,
		             "zone %s: certificates not reloaded, the ones in use stay: %s",
		             b->zone, err);
		while (i-- > 0)
			tls_cert_unload(&fresh[i]);
		free(fresh);
		return;
	}
	for (i = 0; i < cf->ncerts; i++) {
		tls_cert_unload(&cf->certs[i]);
		cf->certs[i] = fresh[i];
		tls_hook(t, &cf->certs[i]);
	}
	free(fresh);
	b->host->log(SCALER_LOG_NOTICE, BAL_WHO, "zone %s: %d certificate(s) reloaded", b->zone,
	             cf->ncerts);
}

static void tls_on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	tls_reload(w->data);
}

/* ---- the redirect listener ------------------------------------------------------------- */

/* A Host header's name: letters, digits, '-', '.', or an [IPv6] literal;
 * the port is dropped. 0 and the name in out, -1 when it is not one. */
static int tls_host_name(const char *host, char *out, size_t outlen)
{
	size_t n = 0;
	if (!host)
		return -1;
	if (host[0] == '[') {
		const char *e = strchr(host, ']');
		if (!e || (size_t)(e - host) + 2 > outlen)
			return -1;
		for (const char *p = host + 1; p < e; p++)
			if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
				return -1;
		memcpy(out, host, (size_t)(e - host) + 1);
		out[e - host + 1] = '\0';
		return 0;
	}
	for (; host[n] && host[n] != ':'; n++)
		if ((!isalnum((unsigned char)host[n]) && host[n] != '-' && host[n] != '.') ||
		    n + 1 >= outlen)
			return -1;
	if (n == 0)
		return -1;
	memcpy(out, host, n);
	out[n] = '\0';
	return 0;
}

static void tls_on_redirect(struct http_exchange *x, const struct http_request *req, void *arg)
{
	struct tls *t = arg;
	char host[260], loc[4096], port[8] = "";
	if (tls_host_name(http_request_header(req, "Host"), host, sizeof(host)) < 0) {
		http_reply_error(x, 400, "a request to this address needs a Host header");
		return;
	}
	if (t->redirect_port != 443)
		snprintf(port, sizeof(port), ":%d", t->redirect_port);
	size_t n = (size_t)snprintf(loc, sizeof(loc), "Location: https://%s%s", host, port);
	/* the path as it came, its bytes outside RFC 3986's pchar percent-encoded */
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)req->path; *p && n + 4 < sizeof(loc);
	     p++) {
		if (isalnum(*p) || strchr("-._~!$&'()*+,;=:@/", *p)) {
			loc[n++] = (char)*p;
		} else {
			loc[n++] = '%';
			loc[n++] = hex[*p >> 4];
			loc[n++] = hex[*p & 15];
		}
	}
	loc[n] = '\0';
	if (req->query[0] && n + strlen(req->query) + 2 < sizeof(loc))
		snprintf(loc + n, sizeof(loc) - n, "?%s", req->query);
	const char *const headers[] = {loc, NULL};
	http_reply(x, t->cf->redirect_status, "text/plain", "this site is served over https\n", 30,
	           headers);
}

static int tls_redirect_start(struct tls *t, char *err, size_t errlen)
{
	struct bal *b = t->b;
	char host[256];
	if (net_parse_hostport(b->listen, host, sizeof(host), &t->redirect_port) < 0)
		t->redirect_port = 443;
	/* every worker listens (SO_REUSEPORT), those of a reload's new set too */
	int fd = net_listen_flags(t->cf->redirect, 511, NET_LISTEN_REUSEPORT, err, errlen);
	if (fd < 0)
		return -1;
	struct http_server_limits lim = {.max_header = 8192, .max_body = 0, .read_timeout = 10};
	t->redirect = http_server_adopt(b->loop, fd, &lim, tls_on_redirect, t, err, errlen);
	if (!t->redirect) {
		close(fd);
		return -1;
	}
	return 0;
}

/* ---- the worker's side ----------------------------------------------------------------- */

struct tls *tls_start(struct bal *b, struct tls_conf *cf, char *err, size_t errlen)
{
	struct tls *t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->b = b;
	t->cf = cf;
	/* ALPN, in the server's order of preference */
	if (cf->http2) {
		memcpy(t->alpn, "\x02h2", 3);
		t->alpn_len = 3;
	}
	memcpy(t->alpn + t->alpn_len, "\x08http/1.1", 9);
	t->alpn_len += 9;
	for (int i = 0; i < cf->ncerts; i++)
		tls_hook(t, &cf->certs[i]);
	if (cf->tickets) {
		struct tls_tickets k;
		memset(&k, 0, sizeof(k));
		if (tls_rotate_keys(&k) < 0) {
			snprintf(err, errlen, "no random bytes for the session ticket keys");
			free(t);
			return NULL;
		}
		/* the zone's keys if its workers (or the ones a reload replaced)
		 * have some, else these */
		if (!b->board || board_tickets_setup(b, &k) < 0)
			t->keys = k;
		OPENSSL_cleanse(&k, sizeof(k));
		double every = cf->ticket_rotation / 10;
		ev_timer_init(&t->rotate, tls_on_rotate, every, every);
		t->rotate.data = t;
		ev_timer_start(b->loop, &t->rotate);
		ev_unref(b->loop);
	}
	ev_signal_init(&t->hup, tls_on_hup, SIGHUP);
	t->hup.data = t;
	ev_signal_start(b->loop, &t->hup);
	ev_unref(b->loop);
	if (cf->redirect[0] && tls_redirect_start(t, err, errlen) < 0) {
		tls_free(t);
		return NULL;
	}
	return t;
}

void tls_stop(struct tls *t)
{
	if (t && t->redirect) {
		http_server_free(t->redirect);
		t->redirect = NULL;
	}
}

void tls_free(struct tls *t)
{
	if (!t)
		return;
	tls_stop(t);
	struct ev_loop *loop = t->b->loop;
	if (ev_is_active(&t->rotate)) {
		ev_ref(loop);
		ev_timer_stop(loop, &t->rotate);
	}
	if (ev_is_active(&t->hup)) {
		ev_ref(loop);
		ev_signal_stop(loop, &t->hup);
	}
	OPENSSL_cleanse(&t->keys, sizeof(t->keys));
	free(t);
}

/* ---- connections ------------------------------------------------------------------------ */

SSL *tls_conn_new(struct tls *t, int fd)
{
	SSL *s = SSL_new(t->cf->certs[0].ctx);
	if (!s)
		return NULL;
	if (SSL_set_fd(s, fd) != 1) {
		SSL_free(s);
		return NULL;
	}
	SSL_set_accept_state(s);
	return s;
}

void tls_conn_free(SSL *s, int graceful)
{
	if (!s)
		return;
	/* close_notify, once, when the handshake was done: nothing waits for
	 * the peer's */
	if (graceful && SSL_is_init_finished(s))
		SSL_shutdown(s);
	SSL_free(s);
	ERR_clear_error();
}

/* After SSL_read or SSL_write returned r <= 0: errno EAGAIN (with *want_write
 * when the TLS layer must write before it can read on), or -1 for good. */
static int tls_would_block(SSL *s, int r, int *want_write)
{
	int e = SSL_get_error(s, r);
	if (want_write)
		*want_write = e == SSL_ERROR_WANT_WRITE;
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return 1;
	}
	ERR_clear_error();
	if (e != SSL_ERROR_SYSCALL || !errno)
		errno = ECONNRESET;
	return 0;
}

ssize_t tls_recv(SSL *s, void *buf, size_t len, int *want_write)
{
	size_t n = 0;
	*want_write = 0;
	int r = SSL_read_ex(s, buf, len, &n);
	if (r == 1)
		return (ssize_t)n;
	if (SSL_get_error(s, r) == SSL_ERROR_ZERO_RETURN)
		return 0;
	tls_would_block(s, r, want_write);
	return -1;
}

ssize_t tls_send(SSL *s, const void *buf, size_t len)
{
	size_t n = 0;
	int r = SSL_write_ex(s, buf, len, &n);
	if (r == 1)
		return (ssize_t)n;
	tls_would_block(s, r, NULL);
	return -1;
}

int tls_pending(SSL *s)
{
	return SSL_has_pending(s);
}

int tls_handshake_done(SSL *s)
{
	return SSL_is_init_finished(s);
}

const char *tls_version(SSL *s)
{
	return SSL_get_version(s);
}

int tls_alpn_h2(SSL *s)
{
	const unsigned char *p;
	unsigned int n;
	SSL_get0_alpn_selected(s, &p, &n);
	return n == 2 && memcmp(p, "h2", 2) == 0;
}
