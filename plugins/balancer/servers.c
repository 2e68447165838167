/* The zone's servers: the table, the alive / disconnected / dead pools,
 * picking a server for a request, health checks and dead reports.
 *
 *   pending       added by the API: checked at once, then every
 *                 health_interval; takes traffic after its first pass,
 *                 dead after `retries` failures
 *   alive         takes traffic; checked every health_interval (spread)
 *   disconnected  a check or a connection failed; rechecked every
 *                 recheck_interval, alive again on success, dead after
 *                 `retries` failed rechecks
 *   dead          no more checks; reported to the primary every
 *                 report_interval and forgotten once it accepts */
#include "config.h"

#include "bal.h"
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct hcheck {
	struct server *s;
	int fd;
	ev_io io;
	ev_timer timer;
	int connected;
	size_t len, reqlen, sent;
	char buf[256];
	char req[600];
};

double bal_wallclock(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *srv_state_name(enum srv_state st)
{
	switch (st) {
	case SRV_PENDING:
		return "pending";
	case SRV_ALIVE:
		return "alive";
	case SRV_DISCONNECTED:
		return "disconnected";
	case SRV_DEAD:
		return "dead";
	}
	return "?";
}

uint64_t bal_random(struct bal *b)
{
	uint64_t x = b->rnd;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	b->rnd = x;
	return x;
}

int srv_url_parse(const char *s, char *out, size_t outlen, char *host, size_t hostlen, int *port)
{
	char hp[300];
	if (!s || strncmp(s, "http://", 7) != 0)
		return -1;
	size_t len = strlen(s + 7);
	if (len == 0 || len >= sizeof(hp))
		return -1;
	memcpy(hp, s + 7, len + 1);
	if (hp[len - 1] == '/')
		hp[--len] = '\0';
	if (net_parse_hostport(hp, host, hostlen, port) < 0 || host[0] == '\0')
		return -1;
	if ((size_t)snprintf(out, outlen, "http://%s", hp) >= outlen)
		return -1;
	return 0;
}

/* ---- the table: a list to walk, a hash of canonical URLs to find ------- */

static uint32_t srv_hash(const char *url)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)url; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

static struct server *srv_lookup(struct bal *b, const char *canon)
{
	if (!b->htab)
		return NULL;
	uint32_t h = srv_hash(canon);
	for (struct server *s = b->htab[h & b->hmask]; s; s = s->hnext)
		if (s->hash == h && strcmp(s->url, canon) == 0)
			return s;
	return NULL;
}

/* Room for one more (buckets at least twice the servers); -1 without memory. */
static int srv_table_reserve(struct bal *b)
{
	uint32_t n = b->htab ? b->hmask + 1 : 0;
	if ((uint32_t)b->nservers + 1 <= n / 2)
		return 0;
	uint32_t nn = n ? n * 2 : 64;
	struct server **t = calloc(nn, sizeof(*t));
	if (!t)
		return -1;
	for (struct server *s = b->servers; s; s = s->next) {
		s->hnext = t[s->hash & (nn - 1)];
		t[s->hash & (nn - 1)] = s;
	}
	free(b->htab);
	b->htab = t;
	b->hmask = nn - 1;
	return 0;
}

static void srv_table_del(struct bal *b, struct server *s)
{
	struct server **pp = &b->htab[s->hash & b->hmask];
	while (*pp && *pp != s)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = s->hnext;
	s->hnext = NULL;
	if (s->prev)
		s->prev->next = s->next;
	else if (b->servers == s)
		b->servers = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
	b->nservers--;
}

struct server *srv_find(struct bal *b, const char *url)
{
	char canon[256], host[256];
	int port;
	if (srv_url_parse(url, canon, sizeof(canon), host, sizeof(host), &port) < 0)
		return NULL;
	return srv_lookup(b, canon);
}

void srv_alive_add(struct bal *b, struct server *s)
{
	if (b->nalive == b->alive_cap) {
		int ncap = b->alive_cap ? b->alive_cap * 2 : 16;
		struct server **n = realloc(b->alive, (size_t)ncap * sizeof(*n));
		if (!n)
			return; /* stays out of rotation; the next check retries */
		b->alive = n;
		b->alive_cap = ncap;
	}
	s->alive_idx = b->nalive;
	b->alive[b->nalive++] = s;
}

void srv_alive_del(struct bal *b, struct server *s)
{
	int i = s->alive_idx;
	if (i < 0)
		return;
	b->alive[i] = b->alive[--b->nalive];
	b->alive[i]->alive_idx = i;
	s->alive_idx = -1;
}

static void hc_start(struct server *s);
static void dns_start(struct server *s);
static void dns_detach(struct server *s);

/* ---- check slots: at most max_checks checks (or resolutions) at once, so
 * a zone of 20,000 servers does not open 20,000 sockets in one tick; due
 * checks wait in a queue, first come first served ------------------------ */

static void srv_check_run(struct server *s)
{
	struct bal *b = s->b;
	b->checks_running++;
	s->checking = 1;
	if (s->addrlen == 0)
		dns_start(s);
	else
		hc_start(s);
}

static void srv_queue_del(struct server *s)
{
	struct bal *b = s->b;
	if (!s->queued)
		return;
	if (s->qprev)
		s->qprev->qnext = s->qnext;
	else
		b->checkq_first = s->qnext;
	if (s->qnext)
		s->qnext->qprev = s->qprev;
	else
		b->checkq_last = s->qprev;
	s->qnext = s->qprev = NULL;
	s->queued = 0;
}

/* Start queued checks while there are slots. A check that ends at once
 * (a refused connect) frees its slot inside the loop, not by recursion. */
static void srv_check_next(struct bal *b)
{
	if (b->checks_starting)
		return;
	b->checks_starting = 1;
	while (!b->checks_stopped && b->checks_running < b->conf.max_checks && b->checkq_first) {
		struct server *s = b->checkq_first;
		srv_queue_del(s);
		if (s->state != SRV_DEAD)
			srv_check_run(s);
	}
	b->checks_starting = 0;
}

/* The check of s (or its name resolution) is over: its slot goes to the next. */
static void srv_check_release(struct server *s)
{
	struct bal *b = s->b;
	if (!s->checking)
		return;
	s->checking = 0;
	b->checks_running--;
	srv_check_next(b);
}

static void srv_check_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *s = w->data;
	struct bal *b = s->b;
	(void)loop;
	(void)revents;
	if (s->checking || s->queued || s->state == SRV_DEAD || b->checks_stopped)
		return;
	if (b->checks_running < b->conf.max_checks) {
		srv_check_run(s);
		return;
	}
	s->queued = 1;
	s->qnext = NULL;
	s->qprev = b->checkq_last;
	if (b->checkq_last)
		b->checkq_last->qnext = s;
	else
		b->checkq_first = s;
	b->checkq_last = s;
}

/* (Re)schedule the server's checks for its state; first after `first`. A
 * pending server is probed fast while requests wait for one (wake.c). */
static void srv_schedule(struct server *s, double first)
{
	struct bal *b = s->b;
	double every =
	    s->state == SRV_DISCONNECTED ? b->conf.recheck_interval : b->conf.health_interval;
	s->probing = s->state == SRV_PENDING && board_holding_any(b);
	if (s->probing) {
		every = WAKE_PROBE_INTERVAL;
		if (first > every)
			first = every;
	}
	ev_timer_stop(b->loop, &s->check_timer);
	/* worker 0 alone checks the zone's servers (board.c) */
	if (s->state == SRV_DEAD || !b->serving || b->follower)
		return;
	ev_timer_set(&s->check_timer, first, every);
	ev_timer_start(b->loop, &s->check_timer);
}

void srv_set_state(struct server *s, enum srv_state st, const char *why)
{
	struct bal *b = s->b;
	enum srv_state old = s->state;
	if (why && why != s->last_error)
		snprintf(s->last_error, sizeof(s->last_error), "%s", why);
	if (old == st)
		return;
	s->state = st;
	if (old == SRV_ALIVE) {
		srv_alive_del(b, s);
		pick_forget(s);
	}
	if (st == SRV_ALIVE) {
		if (!s->ejected_at) { /* an ejected server comes back when its time is up */
			srv_alive_add(b, s);
			pick_joined(s);
		}
		s->fails = s->rechecks = 0;
	}
	if (st == SRV_DISCONNECTED)
		s->rechecks = 0;
	if (old == SRV_ALIVE)
		proxy_close_idle(s);
	/* worker 0 logs the zone's changes; another worker tells it of its own */
	if (!b->follower)
		b->host->log(st == SRV_ALIVE ? SCALER_LOG_NOTICE : SCALER_LOG_WARNING, BAL_WHO,
		             "zone %s: server %s %s -> %s%s%s", b->zone, s->url,
		             srv_state_name(old), srv_state_name(st),
		             why && st != SRV_ALIVE ? ": " : "", why && st != SRV_ALIVE ? why : "");
	else if (st == SRV_DISCONNECTED)
		board_report(s, why);
	switch (st) {
	case SRV_ALIVE:
		srv_schedule(s, b->conf.health_interval);
		break;
	case SRV_DISCONNECTED:
		srv_schedule(s, b->conf.recheck_interval);
		break;
	case SRV_PENDING:
		srv_schedule(s, 0.);
		break;
	case SRV_DEAD:
		srv_schedule(s, 0.);
		break;
	}
	board_put(s);
	if (st == SRV_ALIVE)
		proxy_release_held(b);
}

void srv_probe_pending(struct bal *b)
{
	for (struct server *s = b->servers; s; s = s->next)
		if (s->state == SRV_PENDING && !s->probing && !s->checking && !s->queued)
			srv_schedule(s, 0.);
}

struct server *srv_add(struct bal *b, const char *url, int start_alive, char *err, size_t errlen)
{
	char canon[256], host[256];
	int port;
	if (srv_url_parse(url, canon, sizeof(canon), host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "invalid server URL \"%s\" (expected http://host:port)",
		         url ? url : "");
		return NULL;
	}
	struct server *s = srv_lookup(b, canon);
	if (s)
		return s;
	if (b->nservers >= b->conf.max_servers + b->servers_slack) {
		snprintf(err, errlen,
		         "zone %s has max_servers = %d servers; \"%s\" is one too many", b->zone,
		         b->conf.max_servers, canon);
		return NULL;
	}
	if (srv_table_reserve(b) < 0 || !(s = calloc(1, sizeof(*s)))) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* an address is used at once; a name is resolved on the loop
	 * (getaddrinfo_a) before the first check, so nothing blocks */
	struct sockaddr_in *a4 = (struct sockaddr_in *)&s->addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&s->addr;
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		s->addrlen = sizeof(*a4);
	} else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		s->addrlen = sizeof(*a6);
	} else {
		start_alive = 0;
	}
	snprintf(s->host, sizeof(s->host), "%s", host);
	s->port = port;
	s->b = b;
	snprintf(s->url, sizeof(s->url), "%s", canon);
	snprintf(s->hostport, sizeof(s->hostport), "%s", canon + 7);
	s->alive_idx = -1;
	s->state = SRV_PENDING;
	s->entry = -1;
	s->ctr = &s->own_ctr;
	ev_timer_init(&s->check_timer, srv_check_cb, 0., 0.);
	s->check_timer.data = s;
	s->hash = srv_hash(s->url);
	s->hnext = b->htab[s->hash & b->hmask];
	b->htab[s->hash & b->hmask] = s;
	s->next = b->servers;
	if (b->servers)
		b->servers->prev = s;
	b->servers = s;
	b->nservers++;
	if (start_alive) {
		s->state = SRV_ALIVE;
		srv_alive_add(b, s);
		/* spread the checks over the interval */
		double first = b->conf.health_interval * (double)(bal_random(b) % 1000) / 1000.0;
		srv_schedule(s, first);
	} else {
		srv_schedule(s, 0.);
	}
	if (!b->quiet)
		b->host->log(SCALER_LOG_INFO, BAL_WHO, "zone %s: server %s added (%s)", b->zone,
		             s->url, srv_state_name(s->state));
	board_put(s);
	return s;
}

static void hc_free(struct hcheck *h);

static void srv_free(struct server *s)
{
	st_server_free(s);
	free(s);
}

void srv_remove(struct server *s)
{
	struct bal *b = s->b;
	srv_table_del(b, s);
	if (s->state == SRV_ALIVE)
		srv_alive_del(b, s);
	ev_timer_stop(b->loop, &s->check_timer);
	srv_queue_del(s);
	pick_forget(s);
	outlier_forget(s);
	board_del(s);
	s->removed = 1; /* before its check slot goes to another */
	if (s->check)
		hc_free(s->check);
	dns_detach(s);
	if (!b->quiet)
		b->host->log(SCALER_LOG_INFO, BAL_WHO, "zone %s: server %s removed (%s)", b->zone,
		             s->url, srv_state_name(s->state));
	s->conns++; /* hold s while its idle connections close */
	proxy_close_idle(s);
	srv_conn_closed(s);
}

void srv_conn_closed(struct server *s)
{
	s->conns--;
	if (s->removed && s->conns == 0)
		srv_free(s);
}

/* ---- health checks ------------------------------------------------------ */

static void hc_free(struct hcheck *h)
{
	struct server *s = h->s;
	struct bal *b = s->b;
	ev_io_stop(b->loop, &h->io);
	ev_timer_stop(b->loop, &h->timer);
	if (h->fd >= 0)
		close(h->fd);
	s->check = NULL;
	free(h);
	srv_check_release(s);
}

static void srv_check_result(struct server *s, int ok, const char *why);

static void hc_done(struct hcheck *h, int ok, const char *why)
{
	struct server *s = h->s;
	hc_free(h);
	srv_check_result(s, ok, why);
}

/* The outcome of a health check (or of resolving the server's name). */
static void srv_check_result(struct server *s, int ok, const char *why)
{
	struct bal *b = s->b;
	s->last_check = bal_wallclock();
	if (ok) {
		s->fails = 0;
		s->last_error[0] = '\0';
		if (s->state != SRV_ALIVE)
			srv_set_state(s, SRV_ALIVE, NULL);
		else
			board_put(s);
		return;
	}
	s->fails++;
	snprintf(s->last_error, sizeof(s->last_error), "%s%s", s->addrlen ? "health check: " : "",
	         why);
	if (s->state == SRV_PENDING && s->probing) {
		/* starting while requests wait for it: not a failure yet */
		if (!board_holding_any(b))
			srv_schedule(s, b->conf.health_interval);
		board_put(s);
		return;
	}
	switch (s->state) {
	case SRV_ALIVE:
		srv_set_state(s, SRV_DISCONNECTED, s->last_error);
		break;
	case SRV_DISCONNECTED:
	case SRV_PENDING:
		if (++s->rechecks >= b->conf.retries) {
			char msg[200];
			snprintf(msg, sizeof(msg), "%s (%d failed checks)", s->last_error,
			         s->fails);
			srv_set_state(s, SRV_DEAD, msg);
		}
		break;
	case SRV_DEAD:
		break;
	}
	board_put(s); /* its failures and last error */
}

static void hc_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	hc_done(w->data, 0, "timed out");
}

static void hc_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hcheck *h = w->data;
	(void)revents;
	if (!h->connected) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			char why[128];
			snprintf(why, sizeof(why), "connect: %s", strerror(err));
			hc_done(h, 0, why);
			return;
		}
		h->connected = 1;
	}
	if (h->sent < h->reqlen) {
		ssize_t n = send(h->fd, h->req + h->sent, h->reqlen - h->sent, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			char why[128];
			snprintf(why, sizeof(why), "send: %s", strerror(errno));
			hc_done(h, 0, why);
			return;
		}
		if (n > 0)
			h->sent += (size_t)n;
		if (h->sent == h->reqlen) {
			ev_io_stop(loop, &h->io);
			ev_io_set(&h->io, h->fd, EV_READ);
			ev_io_start(loop, &h->io);
		}
		return;
	}
	ssize_t n = read(h->fd, h->buf + h->len, sizeof(h->buf) - 1 - h->len);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		char why[128];
		snprintf(why, sizeof(why), "read: %s", strerror(errno));
		hc_done(h, 0, why);
		return;
	}
	h->len += (size_t)n;
	h->buf[h->len] = '\0';
	/* the status line is all a check needs */
	if (h->len >= 12 || n == 0 || h->len == sizeof(h->buf) - 1) {
		if (h->len >= 12 && strncmp(h->buf, "HTTP/1.", 7) == 0 && h->buf[8] == ' ' &&
		    h->buf[9] >= '1' && h->buf[9] <= '5' && h->buf[10] >= '0' &&
		    h->buf[10] <= '9' && h->buf[11] >= '0' && h->buf[11] <= '9') {
			int status = atoi(h->buf + 9);
			if (status >= 200 && status < 300) {
				hc_done(h, 1, NULL);
			} else {
				char why[64];
				snprintf(why, sizeof(why), "status %d", status);
				hc_done(h, 0, why);
			}
		} else {
			hc_done(h, 0,
			        n == 0 && h->len == 0 ? "connection closed without a response"
			                              : "not an HTTP response");
		}
	}
}

struct srv_dns {
	struct server *s; /* NULL once the server is gone */
	struct gaicb req;
	struct gaicb *list[1];
	struct addrinfo hints;
	char service[8];
	char host[256]; /* glibc reads it until the request completes */
	ev_timer poll;
	struct bal *b;
};

static void dns_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct srv_dns *d = w->data;
	(void)revents;
	int rc = gai_error(&d->req);
	if (rc == EAI_INPROGRESS)
		return;
	ev_timer_stop(loop, &d->poll);
	struct server *s = d->s;
	struct addrinfo *res = rc == 0 ? d->req.ar_result : NULL;
	if (s) {
		s->dns = NULL;
		if (res) {
			/* a name with both families ("localhost"): IPv4 first, like curl */
			struct addrinfo *ai = res;
			for (struct addrinfo *r = res; r; r = r->ai_next)
				if (r->ai_family == AF_INET) {
					ai = r;
					break;
				}
			memcpy(&s->addr, ai->ai_addr, ai->ai_addrlen);
			s->addrlen = ai->ai_addrlen;
		}
	}
	if (res)
		freeaddrinfo(res);
	if (s) {
		if (s->addrlen) {
			hc_start(s); /* in the same check slot */
		} else {
			char why[300];
			snprintf(why, sizeof(why), "cannot resolve \"%s\": %s", s->host,
			         gai_strerror(rc));
			srv_check_release(s);
			srv_check_result(s, 0, why);
		}
	}
	free(d);
}

static void dns_start(struct server *s)
{
	struct bal *b = s->b;
	struct srv_dns *d = calloc(1, sizeof(*d));
	if (!d) {
		srv_check_release(s);
		return;
	}
	d->s = s;
	d->b = b;
	d->hints.ai_socktype = SOCK_STREAM;
	d->hints.ai_flags = AI_NUMERICSERV;
	snprintf(d->service, sizeof(d->service), "%d", s->port);
	snprintf(d->host, sizeof(d->host), "%s", s->host);
	d->req.ar_name = d->host;
	d->req.ar_service = d->service;
	d->req.ar_request = &d->hints;
	d->list[0] = &d->req;
	if (getaddrinfo_a(GAI_NOWAIT, d->list, 1, NULL) != 0) {
		free(d);
		srv_check_release(s);
		srv_check_result(s, 0, "cannot start name resolution");
		return;
	}
	s->dns = d;
	ev_timer_init(&d->poll, dns_poll_cb, 0.002, 0.005);
	d->poll.data = d;
	ev_timer_start(b->loop, &d->poll);
}

/* The server goes away while its name is being resolved. */
static void dns_detach(struct server *s)
{
	struct srv_dns *d = s->dns;
	if (!d)
		return;
	s->dns = NULL;
	srv_check_release(s);
	if (gai_cancel(&d->req) == EAI_CANCELED) {
		ev_timer_stop(d->b->loop, &d->poll);
		free(d);
		return;
	}
	d->s = NULL; /* glibc still owns the request: the poll frees it when done */
}

static void hc_start(struct server *s)
{
	struct bal *b = s->b;
	struct hcheck *h = calloc(1, sizeof(*h));
	if (!h) {
		srv_check_release(s);
		return;
	}
	h->s = s;
	s->check = h;
	h->reqlen =
	    (size_t)snprintf(h->req, sizeof(h->req),
	                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: scaler-balancer\r\n"
	                     "Connection: close\r\n\r\n",
	                     b->conf.health_path, s->hostport);
	ev_timer_init(&h->timer, hc_timeout_cb, b->conf.health_timeout, 0.);
	h->timer.data = h;
	ev_timer_start(b->loop, &h->timer);
	h->fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (h->fd < 0) {
		char why[128];
		snprintf(why, sizeof(why), "socket: %s", strerror(errno));
		b->host->log(SCALER_LOG_ERR, BAL_WHO, "health check of %s: %s", s->url, why);
		hc_free(h); /* our problem, not the server's */
		return;
	}
	int one = 1;
	setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev_io_init(&h->io, hc_io_cb, h->fd, EV_WRITE);
	h->io.data = h;
	if (connect(h->fd, (struct sockaddr *)&s->addr, s->addrlen) < 0 && errno != EINPROGRESS) {
		char why[128];
		snprintf(why, sizeof(why), "connect: %s", strerror(errno));
		hc_done(h, 0, why);
		return;
	}
	ev_io_start(b->loop, &h->io);
}

void srv_start_checks(struct bal *b)
{
	b->checks_stopped = 0;
	for (struct server *s = b->servers; s; s = s->next) {
		double first =
		    s->state == SRV_ALIVE
		        ? b->conf.health_interval * (double)(bal_random(b) % 1000) / 1000.0
		        : (s->state == SRV_PENDING ? 0. : b->conf.recheck_interval);
		srv_schedule(s, first);
	}
}

void srv_stop_checks(struct bal *b)
{
	b->checks_stopped = 1;
	while (b->checkq_first)
		srv_queue_del(b->checkq_first);
	for (struct server *s = b->servers; s; s = s->next) {
		ev_timer_stop(b->loop, &s->check_timer);
		if (s->check)
			hc_free(s->check);
		dns_detach(s);
	}
}

void srv_free_all(struct bal *b)
{
	srv_stop_checks(b);
	while (b->servers)
		srv_remove(b->servers);
	free(b->alive);
	b->alive = NULL;
	b->nalive = b->alive_cap = 0;
	free(b->htab);
	b->htab = NULL;
	b->hmask = 0;
}

/* ---- dead reports ------------------------------------------------------- */

/* Dead servers named in one report: what the primary takes at once; the
 * rest go in the next reports. */
#define REPORT_MAX 1000

struct report_ctx {
	struct bal *b;
	char **urls;
	size_t n;
	uint64_t events_upto; /* outlier events up to this one go with it */
};

static void report_ctx_free(struct report_ctx *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->urls[i]);
	free(r->urls);
	free(r);
}

/* Mark (or unmark) the servers a JSON list of URLs names: a look-up each,
 * where comparing the lists would take their product. */
static void report_mark(struct bal *b, json_t *urls, int on)
{
	size_t i;
	json_t *v;
	json_array_foreach(urls, i, v)
	{
		struct server *s = json_is_string(v) ? srv_find(b, json_string_value(v)) : NULL;
		if (s)
			s->mark = (uint8_t)on;
	}
}

static void report_send(struct bal *b);

static void report_done(void *arg, const struct scaler_http_response *resp)
{
	struct report_ctx *r = arg;
	struct bal *b = r->b;
	b->report_call = NULL;
	b->report_ctx = NULL;
	if (resp->status >= 200 && resp->status < 300) {
		outlier_reported(b, r->events_upto);
		/* servers the primary found healthy itself are looked at again */
		json_t *reply = json_loadb(resp->body, resp->body_len, 0, NULL);
		json_t *alive = json_object_get(reply, "alive");
		report_mark(b, alive, 1);
		for (size_t i = 0; i < r->n; i++) {
			struct server *s = srv_find(b, r->urls[i]);
			int kept = s && s->mark;
			if (s)
				s->mark = 0;
			if (s && s->state == SRV_DEAD && kept) {
				srv_set_state(s, SRV_DISCONNECTED,
				              "the primary found it healthy: checking it again");
			} else if (s && s->state == SRV_DEAD) {
				b->host->log(
				    SCALER_LOG_NOTICE, BAL_WHO,
				    "zone %s: the primary took the report of dead server %s",
				    b->zone, s->url);
				srv_remove(s);
			}
		}
		report_mark(b, alive, 0);
		json_decref(reply);
	} else {
		b->host->log(SCALER_LOG_WARNING, BAL_WHO,
		             "zone %s: reporting %zu dead server(s) and %" PRIu64
		             " outlier event(s) to %s failed: %s%ld; will retry",
		             b->zone, r->n, r->events_upto - b->events_reported,
		             b->monitor_url ? b->monitor_url : "?", resp->status ? "status " : "",
		             resp->status ? resp->status : 0L);
		if (!resp->status && resp->error)
			b->host->log(SCALER_LOG_WARNING, BAL_WHO, "zone %s: %s", b->zone,
			             resp->error);
		report_ctx_free(r);
		return;
	}
	report_ctx_free(r);
	if (b->events_reported < b->events_seq)
		report_send(b); /* events that came while this one was on its way */
}

static void report_send(struct bal *b)
{
	if (b->report_call || !b->monitor_url)
		return;
	size_t n = 0; /* worker 0 reports the dead; every worker its own ejections */
	for (struct server *s = b->servers; s && n < REPORT_MAX && !b->follower; s = s->next)
		n += s->state == SRV_DEAD;
	uint64_t upto;
	json_t *events = outlier_events_unreported(b, &upto);
	if (n == 0 && !events)
		return;
	struct report_ctx *r = calloc(1, sizeof(*r));
	json_t *dead = json_array();
	json_t *body = json_pack("{s:s, s:o}", "zone", b->zone, "dead", dead);
	if (events && body)
		json_object_set(body, "events", events);
	json_decref(events);
	if (!r || !body || !(r->urls = calloc(n ? n : 1, sizeof(char *)))) {
		json_decref(body);
		report_ctx_free(r);
		return;
	}
	r->b = b;
	r->events_upto = upto;
	for (struct server *s = b->servers; s && r->n < n; s = s->next)
		if (s->state == SRV_DEAD && (r->urls[r->n] = strdup(s->url))) {
			json_array_append_new(dead, json_string(s->url));
			r->n++;
		}
	char url[600];
	b->report_ctx = r;
	if (bal_monitor_url(b, "/report", url, sizeof(url)) == 0)
		b->report_call = bal_send_json(b, "PUT", url, body, 5.0, report_done, r);
	else
		json_decref(body);
	if (!b->report_call) {
		b->report_ctx = NULL;
		report_ctx_free(r);
	}
}

void report_now(struct bal *b)
{
	report_send(b);
}

static void report_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	report_send(w->data);
}

void report_start(struct bal *b)
{
	ev_timer_init(&b->report_timer, report_timer_cb, b->conf.report_interval,
	              b->conf.report_interval);
	b->report_timer.data = b;
	ev_timer_start(b->loop, &b->report_timer);
}

void report_stop(struct bal *b)
{
	ev_timer_stop(b->loop, &b->report_timer);
	if (b->report_call) {
		b->host->http_cancel(b->report_call);
		b->report_call = NULL;
		report_ctx_free(b->report_ctx);
		b->report_ctx = NULL;
	}
}
