/* The builtin balancer: one zone's data plane (a libev HTTP/1 reverse proxy
 * with alive / disconnected / dead server pools) and its admin API.
 *
 *   http1.c    strict HTTP/1 head parser and chunked-body scanner
 *   proxy.c    client and upstream connections, the request path
 *   servers.c  server table, pools, health checks, dead reports
 *   pick.c     which alive server takes a request: the algorithms, slow start
 *   outlier.c  outlier ejection (consecutive 5xx or failures), its events
 *   accesslog.c  the access log, written by a thread of its own
 *   tls.c      TLS termination: certificates by SNI, tickets, OCSP, redirect
 *   h2.c       HTTP/2 to clients (nghttp2): streams become HTTP/1.1 exchanges
 *   stats.c    request statistics per server over a window (GET /stats)
 *   wake.c     with requests held and no server alive: wake the primary, probe
 *   board.c    what the workers of a zone share (memory scalerd keeps): the
 *              server table, counters, statistics windows, reports
 *   admin.c    the zone's admin API (GET/PUT /servers, /monitor, /metrics, /stats)
 *   builtin.c  plugin descriptor, settings, controller-side pushes
 */
#ifndef SCALER_BAL_H
#define SCALER_BAL_H

#include <scaler/plugin.h>

#include <ev.h>
#include <jansson.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#define BAL_WHO "balancer"

/* ---- http1.c ------------------------------------------------------------ */

#define H1_MAX_DROP 16 /* header lines removed from one head (hop-by-hop, forwarding) */

enum h1_body {
	H1_BODY_NONE,    /* no body */
	H1_BODY_LENGTH,  /* Content-Length bytes */
	H1_BODY_CHUNKED, /* chunked, ends with the last chunk and trailers */
	H1_BODY_CLOSE,   /* response only: until the server closes */
};

struct h1_head {
	uint32_t len;        /* bytes of the whole head including the empty line */
	uint8_t version;     /* 10 or 11 */
	uint8_t body;        /* enum h1_body */
	uint8_t conn_close;  /* Connection: close (or 1.0 without keep-alive) */
	uint8_t upgrade;     /* Upgrade: websocket with Connection: upgrade */
	uint8_t idempotent;  /* request: method may be repeated safely */
	uint8_t head_method; /* request: HEAD (its response has no body) */
	uint8_t ndrop;
	uint8_t has_forwarded_proto; /* request: a kept X-Forwarded-Proto line */
	uint16_t status;             /* response: status code */
	uint16_t method_len;         /* request: bytes of the method */
	uint64_t content_length;
	uint32_t drop_off[H1_MAX_DROP]; /* header lines to remove (offset, length) */
	uint32_t drop_len[H1_MAX_DROP];
};

/* Parse a request head at buf[0..len). Returns the head length when
 * complete, 0 when more bytes are needed, or a negative HTTP status
 * (-400, -431, -501, -505) when the head must be refused. `scan` keeps the
 * scan position between calls (start at 0). The client's X-Forwarded-For,
 * -Proto, -Host, X-Real-IP and Forwarded lines are dropped unless
 * keep_forwarded (the client is a trusted proxy). */
int h1_parse_request(const char *buf, size_t len, size_t max_head, size_t *scan, struct h1_head *h,
                     int keep_forwarded);
/* Same for a response head; -502 on anything malformed. */
int h1_parse_response(const char *buf, size_t len, size_t max_head, size_t *scan,
                      struct h1_head *h);

/* Interim (1xx) responses one request may get before its final one. */
#define H1_MAX_INTERIM 32
#define H1_STR_(x) #x
#define H1_STR(x) H1_STR_(x)

enum h1_kind {
	H1_INTERIM, /* 1xx but 101: relay (to HTTP/1.1 clients) and read on */
	H1_FINAL,   /* the final response, framed by rs->body */
	H1_SWITCH,  /* 101 to the upgrade the request asked for: tunnel */
};
/* What the parsed response head rs is to the request rq: an enum h1_kind,
 * or -502 for a 101 the request did not ask for and for the interim
 * response past H1_MAX_INTERIM (*ninterim counts them, start at 0). Sets
 * rs->body to none where RFC 9110 says there is none (HEAD, 204, 304). */
int h1_response_kind(const struct h1_head *rq, struct h1_head *rs, unsigned *ninterim);

/* Incremental scanner of a chunked body (the bytes pass through unchanged). */
struct h1_chunk {
	uint64_t left; /* data bytes left in the current chunk */
	uint8_t state;
	uint8_t digits;
	uint8_t done;       /* the body (and its trailers) ended */
	uint8_t last;       /* in the last chunk's trailer section */
	uint16_t ext_bytes; /* of the current chunk line's extensions */
	uint32_t trailer_bytes;
};
/* Consume up to n bytes; returns how many belong to the body (< n only
 * when the body ended), or -1 on a framing error. */
ssize_t h1_chunk_scan(struct h1_chunk *c, const char *p, size_t n);
/* Data bytes the scanner is in the middle of: the next that many bytes are
 * the body's own, not framing (0 between them). */
uint64_t h1_chunk_data(const struct h1_chunk *c);

/* ---- settings (builtin.c) ----------------------------------------------- */

enum bal_algo { BAL_ROUND_ROBIN, BAL_LEAST_CONN, BAL_RANDOM2 };

/* An address or a network (address/prefix). */
struct bal_net {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t bits;   /* prefix length */
	uint8_t addr[16];
};
#define BAL_MAX_TRUSTED 64
/* 0 and *out for "192.0.2.1", "198.51.100.0/24", "2001:db8::/32". */
int bal_net_parse(const char *s, struct bal_net *out);
/* 1 when addr (an in_addr or in6_addr of `family`) is in one of nets. */
int bal_net_match(const struct bal_net *nets, int n, int family, const void *addr);

struct bal_conf {
	enum bal_algo algo;
	double health_interval, health_timeout, recheck_interval, report_interval;
	char health_path[256];
	int retries;      /* failed rechecks before dead */
	int max_attempts; /* servers tried for one request */
	double connect_timeout, server_timeout, client_timeout, idle_timeout;
	double upstream_idle_timeout, tunnel_timeout;
	int upstream_keepalive; /* idle connections kept per server */
	size_t max_header_size;
	uint64_t max_body_size;
	size_t retry_body_size; /* request bytes kept so a retry can resend them */
	int max_connections;
	int max_servers;                         /* per zone */
	int max_checks;                          /* health checks (with name resolution) at once */
	int stats_history;                       /* seconds of request statistics per server */
	int hold_max;                            /* requests held with no server alive, 0: none */
	double hold_timeout;                     /* seconds one may be held */
	struct bal_net trusted[BAL_MAX_TRUSTED]; /* trusted_proxies */
	int ntrusted;
	double slow_start; /* seconds a joining server's share ramps up, 0: off */
	/* eject = { ... }: outlier ejection, off when both counts are 0 */
	int eject_5xx, eject_failures; /* consecutive, 0: not this way */
	double eject_base, eject_max;  /* base_time, max_time (seconds) */
	int eject_max_percent;
	struct alog_conf *alog; /* access_log = { ... }, NULL: none */
	struct tls_conf *tls;   /* tls = { ... }, NULL: plain HTTP */
};

/* ---- servers.c ---------------------------------------------------------- */

enum srv_state { SRV_PENDING, SRV_ALIVE, SRV_DISCONNECTED, SRV_DEAD };

/* One worker's counters of one server, in the board (board.c) where the
 * zone's admin API adds them up. */
struct board_ctr {
	uint32_t inc; /* the incarnation of the entry they count for */
	int32_t active;
	uint64_t served;
	uint32_t win_inc; /* the incarnation of the statistics window published */
	uint32_t pad;
};

struct uconn;
struct hcheck;
struct srv_dns;
struct st_slot;
struct bal;

struct server {
	struct server *next, *prev;   /* every server of the table */
	struct server *hnext;         /* the next of its hash bucket */
	struct server *qnext, *qprev; /* waiting for a check slot (max_checks) */
	uint32_t hash;                /* of url */
	uint8_t queued;               /* in the check queue */
	uint8_t checking;             /* holds a check slot: resolving or checking */
	uint8_t mark;    /* a moment's mark: PUT /servers' deletes, a report's "alive" */
	uint8_t probing; /* pending, checked fast: requests wait (wake.c) */
	struct bal *b;
	char url[256]; /* canonical http://host:port */
	char hostport[262];
	struct sockaddr_storage addr;
	socklen_t addrlen;
	enum srv_state state;
	int fails;         /* consecutive failed checks */
	int rechecks;      /* failed rechecks while disconnected */
	double last_check; /* unix time, 0 = never */
	char last_error[160];
	int active;                           /* requests in flight */
	uint64_t served;                      /* responses relayed */
	int conns;                            /* upstream connections open */
	int removed;                          /* deleted: freed when conns reaches 0 */
	int alive_idx;                        /* index in b->alive, -1 when not alive */
	struct uconn *idle_first, *idle_last; /* idle keep-alive connections, oldest first */
	int nidle;
	ev_timer check_timer;
	struct hcheck *check; /* in flight */
	struct srv_dns *dns;  /* name being resolved; addrlen is 0 until done */
	char host[256];
	int port;
	struct st_slot *st_ring; /* request statistics (stats.c), from its first request */
	double st_since;         /* when `active` last changed */
	/* slow start (pick.c) */
	double ramp_since;  /* when it joined; 0 when it takes its full share */
	double ramp_credit; /* share earned and not yet taken */
	/* outlier ejection (outlier.c) */
	int c5xx, cfail;    /* consecutive 5xx responses, failed attempts */
	int ejections;      /* the multiplier of base_time, decays while it behaves */
	double ejected_at;  /* when it was ejected, 0 when it is not */
	double returned_at; /* when it last came back */
	ev_timer eject_timer;
	int32_t entry;         /* its entry in the board, -1 when none */
	uint32_t inc;          /* the entry's incarnation it is */
	struct board_ctr *ctr; /* this worker's counters of it in the board, or own_ctr */
	struct board_ctr own_ctr;
};

/* 0 and canonical url in out when s is http://host:port (optional '/'). */
int srv_url_parse(const char *s, char *out, size_t outlen, char *host, size_t hostlen, int *port);
struct server *srv_find(struct bal *b, const char *url);
/* Add (idempotent). start_alive: serve at once (static/restored servers
 * given by address), else pending until the first health check passes; a
 * host name is resolved without blocking first. NULL on a bad URL, and
 * beyond max_servers. */
struct server *srv_add(struct bal *b, const char *url, int start_alive, char *err, size_t errlen);
void srv_remove(struct server *s);
void srv_set_state(struct server *s, enum srv_state st, const char *why);
/* Into or out of the alive pool (the servers requests are sent to). */
void srv_alive_add(struct bal *b, struct server *s);
void srv_alive_del(struct bal *b, struct server *s);
void srv_conn_closed(struct server *s); /* a connection to s went away */
void srv_start_checks(struct bal *b);
/* Check pending servers every WAKE_PROBE_INTERVAL from now on. */
void srv_probe_pending(struct bal *b);
void srv_stop_checks(struct bal *b);
void srv_free_all(struct bal *b);
const char *srv_state_name(enum srv_state st);
void report_start(struct bal *b);
/* Report to the primary now (dead servers, outlier events) unless a
 * report is on its way. */
void report_now(struct bal *b);
void report_stop(struct bal *b);

/* ---- pick.c ------------------------------------------------------------- */

/* Pick an alive server not in `tried` (at most 8 looked at); NULL when
 * none. A server in slow start takes its share of what the algorithm
 * gives it. */
struct server *srv_pick(struct bal *b, struct server *const *tried, int ntried);
/* s joined the alive pool (from pending, disconnected or ejected): its
 * share ramps up over slow_start seconds. */
void pick_joined(struct server *s);
/* s leaves the alive pool or the table: no ramp. */
void pick_forget(struct server *s);
/* A ramping server's share now, 0..1 (1 when it is not ramping). */
double pick_weight(struct server *s, double now);

/* ---- outlier.c ---------------------------------------------------------- */

/* What an attempt on s came to: the status of its final response, or 0
 * when it failed (connect, reset, timeout, malformed response). */
void outlier_result(struct server *s, int status);
/* s leaves the table. */
void outlier_forget(struct server *s);
/* Servers' outlier fields and the zone's events, for the admin API. */
void outlier_server_json(const struct server *s, json_t *o);
json_t *outlier_events_json(struct bal *b);
/* Events not yet reported to the primary (NULL when none), and the mark
 * to pass to outlier_reported once the primary took them. */
json_t *outlier_events_unreported(struct bal *b, uint64_t *upto);
void outlier_reported(struct bal *b, uint64_t upto);
void outlier_stop(struct bal *b);

/* ---- accesslog.c --------------------------------------------------------- */

struct alog;
struct alog_conf;

/* What one line says of a request. */
struct alog_entry {
	double start, end; /* the request's first byte, the end of its response */
	const char *client;
	const char *method, *path; /* NULL when the request was not understood */
	size_t method_len, path_len;
	const char *protocol; /* "HTTP/1.1" */
	int status;           /* sent to the client, 0 when none was */
	uint64_t bytes;       /* sent to the client */
	const char *upstream; /* the server's URL, NULL when none answered */
	double upstream_time; /* request sent to response relayed, < 0: none */
	int retries;
	const char *tls; /* the TLS version, NULL without TLS */
};

/* access_log = { path; format; flush; buffer; }: -1 after conf_error. */
int alog_parse_access_log(const struct scaler_host *h, const config_setting_t *g,
                          struct alog_conf **out);
void alog_conf_free(struct alog_conf *c);
/* Start the writer (the file is opened by it) and take SIGUSR1 to reopen. */
struct alog *alog_start(struct bal *b, const struct alog_conf *cf);
/* Write what is buffered and end the writer. */
void alog_stop(struct alog *a);
void alog_request(struct alog *a, const struct alog_entry *e);
uint64_t alog_dropped(const struct alog *a);

/* ---- tls.c -------------------------------------------------------------- */

struct tls;
struct tls_conf;
struct ssl_st;

/* Session ticket keys: [0] encrypts, [1] (the one before) still decrypts. */
struct tls_ticket_key {
	uint8_t name[16], aes[32], hmac[32];
};
struct tls_tickets {
	uint64_t gen;   /* bumped by every rotation */
	double rotated; /* unix time of the last one */
	int n;          /* keys in key[] */
	int pad;
	struct tls_ticket_key key[2];
};

/* The settings of the group tls = { ... } (checked to be known): -1 after
 * conf_error; every certificate is loaded and checked (its key under the
 * secrets rule), so scalerd -t refuses a bad one. */
int tls_parse(const struct scaler_host *h, const config_setting_t *g, struct tls_conf **out);
void tls_conf_free(struct tls_conf *cf);
/* The streams an HTTP/2 connection may have at once; 0 when ALPN does not
 * offer HTTP/2. */
int tls_conf_http2(const struct tls_conf *cf);
/* Worker side: the callbacks, the ticket keys (the zone's, through the
 * board), SIGHUP to read the certificates again, the redirect listener. */
struct tls *tls_start(struct bal *b, struct tls_conf *cf, char *err, size_t errlen);
void tls_stop(struct tls *t); /* shutdown: the redirect listener closes */
void tls_free(struct tls *t);
/* A client connection's TLS on fd; NULL when out of memory. */
struct ssl_st *tls_conn_new(struct tls *t, int fd);
/* graceful: say close_notify (once, never waiting for the peer's). */
void tls_conn_free(struct ssl_st *s, int graceful);
/* read(2) and write(2) through TLS: bytes, 0 at EOF (recv), or -1 with
 * errno (EAGAIN when it would block; *want_write when the TLS layer must
 * write before it can read on). */
ssize_t tls_recv(struct ssl_st *s, void *buf, size_t len, int *want_write);
ssize_t tls_send(struct ssl_st *s, const void *buf, size_t len);
/* Bytes the TLS layer holds that the socket will not signal. */
int tls_pending(struct ssl_st *s);
int tls_handshake_done(struct ssl_st *s);
const char *tls_version(struct ssl_st *s);
/* ALPN chose HTTP/2. */
int tls_alpn_h2(struct ssl_st *s);

/* ---- h2.c --------------------------------------------------------------- */

struct h2conn;
struct h2s;
struct cconn;

/* HTTP/2 on client connection c (ALPN said h2), with the n bytes read so
 * far; NULL when it cannot start (c is then closed by the caller). */
struct h2conn *h2_start(struct bal *b, struct cconn *c, const char *in, size_t n);
/* c's socket is readable or writable. */
void h2_io(struct h2conn *h, int revents);
/* The connection closes: its streams end (the caller closes the socket). */
void h2_free(struct h2conn *h);
/* Timeouts (idle without streams, a client that does not read). */
void h2_sweep(struct h2conn *h, double now);
/* Draining: no new streams; the connection closes once they are done. */
void h2_shutdown(struct h2conn *h);
/* A stream's exchange queued response bytes (HTTP/1.1 as the server sent
 * them): 1 when they are all taken, 0 when h2.c will take them (then
 * proxy_stream_writable), -1 when the stream is gone. */
int h2_stream_flush(struct h2s *s);
/* The exchange has room for more of the request's body. */
void h2_stream_armed(struct h2s *s);
/* The exchange's response is all queued (an error it answered): end it. */
void h2_stream_end(struct h2s *s);
/* The exchange is closed; complete: its response was all relayed. */
void h2_stream_detach(struct h2s *s, int complete);

/* ---- proxy.c ------------------------------------------------------------ */

/* Bind hostport and accept at once (a worker that runs alone: a host before ABI 1.4). */
int proxy_listen(struct bal *b, const char *hostport, char *err, size_t errlen);
/* Serve on fd, a listening socket scalerd holds; accept only from
 * proxy_accept on (once the server set is known). */
void proxy_adopt(struct bal *b, int fd);
void proxy_accept(struct bal *b);
void proxy_shutdown(struct bal *b);
void proxy_free(struct bal *b);
/* A server is alive: dispatch the held requests, oldest first. */
void proxy_release_held(struct bal *b);
/* Close the idle keep-alive connections to s (deleted or not alive). */
void proxy_close_idle(struct server *s);
/* HTTP/2 (h2.c): a stream is an exchange like a client connection's
 * request, without a socket: its request comes as HTTP/1.1 bytes, its
 * response goes out as HTTP/1.1 bytes that h2.c takes and turns into
 * frames. */
struct cconn *proxy_stream_new(struct cconn *parent, struct h2s *s);
/* Request bytes in: how many were taken (the rest waits for h2_stream_armed). */
size_t proxy_stream_input(struct cconn *c, const char *p, size_t n);
/* Answer an error status without asking a server (a request refused). */
void proxy_stream_refuse(struct cconn *c, int status);
/* The client reset the stream, or its connection went away. */
void proxy_stream_abort(struct cconn *c);
/* h2.c took the queued response bytes: go on. */
void proxy_stream_writable(struct cconn *c);
int proxy_stream_dead(const struct cconn *c);
/* The response bytes queued: *iov and how many entries; n bytes taken. */
int proxy_stream_out(struct cconn *c, struct iovec **iov);
void proxy_stream_out_take(struct cconn *c, size_t n);
/* The stream's request as parsed, NULL before it was. */
const struct h1_head *proxy_stream_request(const struct cconn *c);
/* The HTTP/2 connection's socket (TLS): read (as read(2)), send (bytes
 * written, 0 when it would block, -1 on error), watch for writability,
 * read what TLS holds, close. */
ssize_t proxy_conn_recv(struct cconn *c, void *buf, size_t len);
ssize_t proxy_conn_send(struct cconn *c, const void *p, size_t n);
void proxy_conn_want_write(struct cconn *c, int on);
void proxy_conn_more(struct cconn *c);
void proxy_conn_close(struct cconn *c);

/* ---- stats.c ------------------------------------------------------------ */

#define ST_LAT_BUCKETS 42 /* 0: < 64 µs; 2e+1+h: [64·2^e·(1+h/2), ...); 41: ≥ ~67 s */

/* A server's requests over a window: what a worker publishes for another
 * to add to its own (board.c). */
struct st_window {
	double requests, failed, busy_s;
	double lat[ST_LAT_BUCKETS];
};
/* s's window [now - window, now] of this worker (zeros without traffic). */
void st_window_read(struct server *s, double now, double window, struct st_window *out);

/* Called just before s->active goes up (a request is sent to s) and just
 * before it goes down (relayed: the response was relayed after `latency`
 * seconds; else the attempt ended without one). */
void st_request_start(struct server *s, double now);
void st_request_end(struct server *s, double now, double latency, int relayed);
void st_server_free(struct server *s);
/* -1 with a sentence in err when `window` is not one this balancer keeps. */
int st_window_check(struct bal *b, double window, char *err, size_t errlen);
/* GET /stats?window=S: the zone's servers over the last S seconds, summed
 * over its workers; complete 0 when one of them did not publish its
 * window (the values are then missing). */
json_t *st_json(struct bal *b, double window, int complete);

/* ---- wake.c ------------------------------------------------------------- */

/* Every few tens of milliseconds: how often a pending server is checked
 * while requests wait for it. */
#define WAKE_PROBE_INTERVAL 0.03
/* The zone started holding requests (no server alive): tell the primary now
 * and every second while it lasts; probe pending servers fast. */
void wake_holding(struct bal *b);
void wake_stop(struct bal *b);

/* ---- board.c ------------------------------------------------------------ */

struct board;
struct bal_stats;
struct http_exchange;

/* Map the zone's shared memory (w->shared_fd), set it up when it is new,
 * and watch this worker's wake fd. -1 with a sentence in err. */
int board_open(struct bal *b, const struct scaler_zone_worker *w, char *err, size_t errlen);
void board_close(struct bal *b);
/* The server set the workers before this one left (this set's board, or
 * the board of the set this one replaces): 1 when it was taken. */
int board_restore(struct bal *b);
/* The server set is known (worker 0): the others may serve. */
void board_ready(struct bal *b);
/* Worker 0: s (added, or its state, check or address changed), or its
 * removal, into the table; the others follow on their next wake. */
void board_put(struct server *s);
void board_del(struct server *s);
void board_put_monitor(struct bal *b);
/* Another worker: a connection to s failed; worker 0 decides its state. */
void board_report(struct server *s, const char *why);
/* This worker holds requests now (or no longer): worker 0 probes pending
 * servers fast while any worker does. */
void board_holding(struct bal *b);
/* 1 when this worker, or (worker 0) another, holds requests. */
int board_holding_any(const struct bal *b);
/* The zone's session ticket keys: get (-1 when none yet), set up (the
 * first worker's keys win, or those of the set a reload replaced: k gets
 * the keys in force), put (worker 0 rotates them). */
int board_tickets_get(struct bal *b, struct tls_tickets *k);
int board_tickets_setup(struct bal *b, struct tls_tickets *k);
void board_tickets_put(struct bal *b, const struct tls_tickets *k);
/* Refresh this worker's gauges (connections, held requests) in the board. */
void board_gauges(struct bal *b);
/* Sums over the zone's workers (this one alone without a board). */
void board_counts(const struct server *s, int *active, uint64_t *served);
void board_stats_sum(const struct bal *b, struct bal_stats *out, int *nconns, int *nupstream,
                     int *nheld);
/* Worker w's own counters; -1 when there is no such worker. */
int board_worker_stats(const struct bal *b, int w, struct bal_stats *out);
/* GET /stats: have every worker publish its windows of `window`
 * seconds, then call done(x) (now, when this worker is alone). */
void board_stats_gather(struct bal *b, double window, struct http_exchange *x,
                        void (*done)(struct bal *b, struct http_exchange *x, double window,
                                     int complete));
/* Add the windows the other workers published for s. */
void board_stats_add(const struct server *s, struct st_window *w);
/* The admin API stops: pending gathers are dropped. */
void board_stats_drop(struct bal *b);

/* ---- admin.c ------------------------------------------------------------ */

int admin_start(struct bal *b, const char *hostport, char *err, size_t errlen);
/* -1 with a sentence when hostport may not serve the admin API (not
 * loopback, and no token). */
int admin_allowed(struct bal *b, const char *hostport, char *err, size_t errlen);
/* The same on fd, a listening socket scalerd holds (hostport names it);
 * the admin API owns fd from then on, even when it fails. */
int admin_adopt(struct bal *b, int fd, const char *hostport, char *err, size_t errlen);
void admin_stop(struct bal *b);

/* ---- the instance ------------------------------------------------------- */

struct bal_stats {
	uint64_t responses[6]; /* by status class 1xx..5xx, [0] unused */
	uint64_t retries;
	uint64_t connect_errors;
	uint64_t accepted;
	uint64_t client_errors; /* requests refused by the parser */
	uint64_t timeouts;
	uint64_t ejections;
};

struct cconn;
struct buf;
struct http_server;
struct adm_confirm;

struct bal {
	const struct scaler_host *host;
	struct ev_loop *loop;
	struct bal_conf conf;
	char zone[64];
	char listen[270], admin_addr[270];

	/* servers */
	struct server *servers;
	int nservers;
	struct server **htab;                      /* by canonical URL */
	uint32_t hmask;                            /* buckets - 1 */
	struct server *checkq_first, *checkq_last; /* due checks waiting for a slot */
	int checks_running;
	uint8_t checks_stopped;
	uint8_t checks_starting; /* in srv_check_next: no recursion */
	uint8_t quiet;           /* a batch of changes: one log line for all */
	int servers_slack;       /* PUT /servers: servers it deletes after its adds */
	struct server **alive;
	int nalive, alive_cap;
	unsigned rr;
	uint64_t rnd;

	/* primary */
	char *monitor_url; /* confirmed by the state store (or restored from it) */
	uint64_t monitor_epoch;
	struct adm_confirm *confirms; /* PUT /monitor waiting for the state store */
	int nconfirms;
	ev_timer report_timer;
	struct scaler_http_call *report_call;
	struct report_ctx *report_ctx;

	/* data plane */
	int listen_fd;
	ev_io accept_w;
	ev_timer accept_pause;
	ev_timer sweep;
	struct cconn *conns; /* every client connection */
	int nconns;
	struct cconn *streams; /* the exchanges of HTTP/2 streams */
	int nstreams;
	struct h2ctx *h2ctx; /* h2.c's, NULL until the first HTTP/2 connection */
	int nupstream;
	struct buf *free_bufs;
	int nfree_bufs;
	struct buf *free_large; /* buf_get_large's */
	int nfree_large;
	struct buf *free_resp; /* buf_get_resp's */
	int nfree_resp;
	int pipes[64][2]; /* empty pipes for splice */
	int npipes;
	size_t buf_size;
	struct cconn *free_cconns;
	struct uconn *free_uconns;
	int shutting_down;
	int serving;
	int accepting; /* the server set is known: the listening socket is watched */
	int admin_fd;  /* handed over, served from the first accept on; -1 */

	/* admin */
	struct http_server *admin;

	struct alog *alog; /* the access log, NULL when off */
	struct tls *tls;   /* TLS on the zone's listener, NULL when off */

	struct bal_stats *st; /* this worker's counters: in the board, or own_st */
	struct bal_stats own_st;
	double st_t0; /* when this worker started serving: stats.c's second 0 */

	/* slow start and outlier ejection (pick.c, outlier.c) */
	int nramping, nejected;
	struct outlier_event *events; /* a ring of OUTLIER_EVENTS, allocated at the first */
	uint64_t events_seq;          /* events recorded */
	uint64_t events_reported;     /* events the primary took */
	/* the zone's workers (board.c) */
	struct board *board;
	int windex, nworkers; /* this worker is windex of nworkers */
	int follower;         /* not worker 0: no checks, no admin API, follows the board */
	int syncing;          /* applying the board: changes are not written back */

	/* held requests (proxy.c) and waking the primary (wake.c) */
	struct cconn *held_first, *held_last;
	int nheld;
	ev_timer wake_timer;
	struct scaler_http_call *wake_call;
	char wake_said[200]; /* the outcome last logged */
};

double bal_wallclock(void);
/* (builtin.c) Send `body` (taken, NULL: none) as JSON to url with the host's
 * token; the call, or NULL (cb not called). */
struct scaler_http_call *bal_send_json(struct bal *b, const char *method, const char *url,
                                       json_t *body, double timeout, scaler_http_cb cb, void *arg);
/* The primary's URL with path appended into out; -1 without a primary. */
int bal_monitor_url(const struct bal *b, const char *path, char *out, size_t len);
/* xorshift64 on b->rnd: cheap, for spreading and random choices */
uint64_t bal_random(struct bal *b);

/* A request to s starts (+1) or ends (-1); one was relayed. The board
 * (board.c) sees the counts of every worker. */
static inline void srv_busy(struct server *s, int d)
{
	s->active += d;
	s->ctr->active = s->active;
}
static inline void srv_served(struct server *s)
{
	s->served++;
	s->ctr->served++;
}

#endif
