/* The access log: one line per request, JSON or a format string of $fields,
 * written by a thread of its own so that no write (a slow disk, a full one)
 * ever holds the loop.
 *
 * The loop appends lines to one buffer; every `flush` seconds, or once the
 * buffer is half full, it hands the buffer to the writer and goes on in the
 * other one. The writer writes a buffer whole (complete lines, O_APPEND:
 * workers of one zone may share the file) and gives it back. When both are
 * taken — the writer still busy with one, the other full — lines are
 * dropped and counted, never waited for. SIGUSR1 makes the writer reopen
 * the file (logrotate's postrotate); its errors are logged by the loop,
 * once per change. A stopping worker hands the writer what is buffered and
 * waits for it as long as it finishes a buffer every AL_STOP_WAIT; a writer
 * that does not is left behind, detached: a write that never returns holds
 * neither a request nor the worker's end. */
#include "config.h"

#include "bal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A path is cut at AL_PATH_MAX bytes: a line fits AL_LINE_MAX. */
#define AL_LINE_MAX 8192
#define AL_PATH_MAX 2048
/* Seconds a stopping worker gives the writer to finish a buffer; a writer
 * stuck longer (a FIFO nobody reads, a hung mount) is left behind. */
#define AL_STOP_WAIT 5

enum al_field {
	AL_LITERAL,
	AL_TIME,
	AL_ZONE,
	AL_CLIENT,
	AL_METHOD,
	AL_PATH,
	AL_PROTOCOL,
	AL_STATUS,
	AL_BYTES,
	AL_UPSTREAM,
	AL_UPSTREAM_TIME,
	AL_TOTAL_TIME,
	AL_RETRIES,
	AL_TLS,
	AL_NFIELDS
};

static const char *const al_names[AL_NFIELDS] = {
    NULL,     "time",  "zone",     "client",        "method",     "path",    "protocol",
    "status", "bytes", "upstream", "upstream_time", "total_time", "retries", "tls"};

struct al_part {
	uint8_t field;
	uint16_t len; /* AL_LITERAL: bytes of fmt at off */
	uint16_t off;
};

struct alog_conf {
	char path[4096];
	char fmt[1024]; /* empty: JSON */
	struct al_part parts[128];
	int nparts;
	double flush;
	size_t buffer;
};

struct alog {
	struct bal *b;
	const struct alog_conf *cf;
	char *cur;   /* filled by the loop */
	size_t len;  /* of cur */
	char *spare; /* the other buffer, NULL while the writer has it */
	uint64_t dropped, dropped_said;
	ev_timer flush_timer;
	ev_signal usr1;
	long tsec; /* the second tbuf holds */
	char tbuf[32];
	size_t tlen, zone_len;
	int said_errno; /* the writer's error last logged */

	/* shared with the writer, under mu */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *todo; /* handed to the writer */
	size_t todo_len;
	int reopen, stop;
	int ended;        /* the writer has returned */
	int werrno;       /* the writer's last error, 0 when it writes */
	uint64_t written; /* bytes written */
};

/* ---- settings ------------------------------------------------------------ */

static int al_parse_format(const struct scaler_host *h, const config_setting_t *s,
                           struct alog_conf *c)
{
	const char *f = c->fmt;
	size_t i = 0, lit = 0, n = strlen(f);
	c->nparts = 0;
	while (i <= n) {
		int at_var = i < n && f[i] == '$' && f[i + 1] != '$';
		if (i == n || at_var || (f[i] == '$' && f[i + 1] == '$')) {
			if (i > lit) {
				if (c->nparts == (int)(sizeof(c->parts) / sizeof(c->parts[0])))
					goto too_many;
				c->parts[c->nparts++] =
				    (struct al_part){.field = AL_LITERAL,
				                     .off = (uint16_t)lit,
				                     .len = (uint16_t)(i - lit)};
			}
			if (i == n)
				break;
			if (!at_var) { /* "$$": one '$', kept as the literal's last byte */
				lit = i + 1;
				i += 2;
				continue;
			}
			size_t e = i + 1;
			while (e < n && ((f[e] >= 'a' && f[e] <= 'z') || f[e] == '_'))
				e++;
			int k = AL_NFIELDS;
			for (k = 1; k < AL_NFIELDS; k++)
				if (strlen(al_names[k]) == e - i - 1 &&
				    memcmp(al_names[k], f + i + 1, e - i - 1) == 0)
					break;
			if (k == AL_NFIELDS)
				return h->conf_error(
				    s,
				    "unknown field \"$%.*s\" (known: $time $zone $client $method "
				    "$path "
				    "$protocol $status $bytes $upstream $upstream_time $total_time "
				    "$retries $tls; $$ for a dollar sign)",
				    (int)(e - i - 1), f + i + 1);
			if (c->nparts == (int)(sizeof(c->parts) / sizeof(c->parts[0])))
				goto too_many;
			c->parts[c->nparts++] = (struct al_part){.field = (uint8_t)k};
			i = lit = e;
			continue;
		}
		i++;
	}
	return 0;
too_many:
	return h->conf_error(s, "at most %zu fields and pieces of text",
	                     sizeof(c->parts) / sizeof(c->parts[0]));
}

int alog_parse_access_log(const struct scaler_host *h, const config_setting_t *g,
                          struct alog_conf **out)
{
	static const char *const known[] = {"path", "format", "flush", "buffer", NULL};
	long long v;
	*out = NULL;
	if (!config_setting_is_group(g))
		return h->conf_error(g, "must be a group (e.g. access_log = { path = "
		                        "\"/var/log/scaler/access.log\"; format = \"json\"; };)");
	struct alog_conf *c = calloc(1, sizeof(*c));
	if (!c)
		return h->conf_error(g, "out of memory");
	int rc = h->conf_check_known(g, known) < 0;
	const config_setting_t *s = config_setting_get_member(g, "path");
	const char *p = s ? config_setting_get_string(s) : NULL;
	if (!s)
		rc |= h->conf_error(
		    g, "path is required (e.g. path = \"/var/log/scaler/access.log\";)");
	else if (!p || p[0] != '/' || strlen(p) >= sizeof(c->path))
		rc |= h->conf_error(s, "must be an absolute file name (e.g. "
		                       "\"/var/log/scaler/access.log\")");
	else
		snprintf(c->path, sizeof(c->path), "%s", p);
	s = config_setting_get_member(g, "format");
	if (s) {
		const char *f = config_setting_get_string(s);
		if (!f || !f[0] || strlen(f) >= sizeof(c->fmt) || strchr(f, '\n'))
			rc |= h->conf_error(s, "must be \"json\" or a format string of $fields on "
			                       "one line (at most 1023 bytes)");
		else if (strcmp(f, "json") != 0) {
			snprintf(c->fmt, sizeof(c->fmt), "%s", f);
			rc |= al_parse_format(h, s, c) < 0;
		}
	}
	rc |= h->conf_number(g, "flush", 1.0, 0.01, 60, &c->flush) < 0;
	rc |= h->conf_integer(g, "buffer", 64 << 10, 2 * AL_LINE_MAX, 64 << 20, &v) < 0;
	c->buffer = (size_t)v;
	if (rc) {
		free(c);
		return -1;
	}
	*out = c;
	return 0;
}

void alog_conf_free(struct alog_conf *c)
{
	free(c);
}

/* ---- the writer thread ---------------------------------------------------- */

static int al_open(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

static void *al_writer(void *arg)
{
	struct alog *a = arg;
	int fd = -1, err = 0;
	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->todo && !a->reopen && !a->stop)
			pthread_cond_wait(&a->cv, &a->mu);
		int reopen = a->reopen || fd < 0;
		a->reopen = 0;
		char *buf = a->todo;
		size_t len = a->todo_len;
		int stop = a->stop && !buf;
		pthread_mutex_unlock(&a->mu);
		if (stop)
			break;
		if (reopen) {
			if (fd >= 0)
				close(fd);
			fd = al_open(a->cf->path);
			err = fd < 0 ? errno : 0;
		}
		size_t done = 0;
		while (buf && fd >= 0 && done < len) {
			ssize_t w = write(fd, buf + done, len - done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				err = w < 0 ? errno : EIO;
				break;
			}
			done += (size_t)w;
			err = 0;
		}
		pthread_mutex_lock(&a->mu);
		a->werrno = err;
		a->written += done;
		if (buf) {
			a->spare = buf;
			a->todo = NULL;
			pthread_cond_broadcast(&a->cv); /* alog_stop may wait for it */
		}
	}
	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&a->mu);
	a->ended = 1;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

/* ---- the loop's side ------------------------------------------------------ */

/* Hand the filled buffer to the writer if it is free; 0 when it is busy. */
static int al_handover(struct alog *a)
{
	int ok = 0;
	pthread_mutex_lock(&a->mu);
	if (!a->todo && a->spare) {
		a->todo = a->cur;
		a->todo_len = a->len;
		a->cur = a->spare;
		a->spare = NULL;
		a->len = 0;
		ok = 1;
		pthread_cond_broadcast(&a->cv);
	}
	int werr = a->werrno;
	pthread_mutex_unlock(&a->mu);
	if (werr != a->said_errno) {
		struct bal *b = a->b;
		if (werr)
			b->host->log(SCALER_LOG_ERR, BAL_WHO, "zone %s: access log %s: %s", b->zone,
			             a->cf->path, strerror(werr));
		else
			b->host->log(SCALER_LOG_NOTICE, BAL_WHO,
			             "zone %s: access log %s: writing again", b->zone, a->cf->path);
		a->said_errno = werr;
	}
	return ok;
}

static void al_flush_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct alog *a = w->data;
	(void)loop;
	(void)revents;
	al_handover(a); /* with nothing to write, for the writer's news */
	if (a->dropped != a->dropped_said) {
		a->b->host->log(SCALER_LOG_WARNING, BAL_WHO,
		                "zone %s: access log: %" PRIu64
		                " line(s) dropped (the file is not written fast enough)",
		                a->b->zone, a->dropped - a->dropped_said);
		a->dropped_said = a->dropped;
	}
}

static void al_usr1_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct alog *a = w->data;
	(void)loop;
	(void)revents;
	pthread_mutex_lock(&a->mu);
	a->reopen = 1;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	a->b->host->log(SCALER_LOG_INFO, BAL_WHO, "zone %s: reopening the access log %s",
	                a->b->zone, a->cf->path);
}

struct alog *alog_start(struct bal *b, const struct alog_conf *cf)
{
	struct alog *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->b = b;
	a->cf = cf;
	a->zone_len = strlen(b->zone);
	a->cur = malloc(cf->buffer);
	a->spare = malloc(cf->buffer);
	a->tsec = -1;
	a->reopen = 1;
	pthread_mutex_init(&a->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* alog_stop's deadline */
	pthread_cond_init(&a->cv, &ca);
	pthread_condattr_destroy(&ca);
	/* the writer takes no signal: they are the loop's */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = a->cur && a->spare ? pthread_create(&a->thread, NULL, al_writer, a) : ENOMEM;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		b->host->log(SCALER_LOG_ERR, BAL_WHO,
		             "zone %s: access log: cannot start its writer: %s", b->zone,
		             strerror(rc));
		pthread_mutex_destroy(&a->mu);
		pthread_cond_destroy(&a->cv);
		free(a->cur);
		free(a->spare);
		free(a);
		return NULL;
	}
	ev_timer_init(&a->flush_timer, al_flush_cb, cf->flush, cf->flush);
	a->flush_timer.data = a;
	ev_timer_start(b->loop, &a->flush_timer);
	ev_unref(b->loop); /* the log alone does not keep the worker running */
	ev_signal_init(&a->usr1, al_usr1_cb, SIGUSR1);
	a->usr1.data = a;
	ev_signal_start(b->loop, &a->usr1);
	ev_unref(b->loop);
	return a;
}

void alog_stop(struct alog *a)
{
	if (!a)
		return;
	struct ev_loop *loop = a->b->loop;
	ev_ref(loop);
	ev_timer_stop(loop, &a->flush_timer);
	ev_ref(loop);
	ev_signal_stop(loop, &a->usr1);
	/* what is buffered is handed to the writer as soon as it is free, then
	 * the writer is told to end; it is given up as stuck only after
	 * AL_STOP_WAIT without finishing a single buffer */
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += AL_STOP_WAIT;
	int stuck = 0;
	pthread_mutex_lock(&a->mu);
	uint64_t seen = a->written;
	while (!a->ended) {
		if (!a->todo && a->len && a->spare) {
			a->todo = a->cur;
			a->todo_len = a->len;
			a->cur = a->spare;
			a->spare = NULL;
			a->len = 0;
		}
		if (!a->len)
			a->stop = 1; /* it ends once it has nothing left to write */
		pthread_cond_broadcast(&a->cv);
		if (pthread_cond_timedwait(&a->cv, &a->mu, &until) != ETIMEDOUT || a->ended)
			continue;
		if (a->written == seen) {
			stuck = 1;
			break;
		}
		seen = a->written; /* it finished a buffer meanwhile: another period */
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += AL_STOP_WAIT;
	}
	size_t lost = a->len + (a->todo ? a->todo_len : 0);
	if (stuck) {
		a->len = 0;
		a->stop = 1; /* should its call ever return, it ends */
	}
	pthread_mutex_unlock(&a->mu);
	if (stuck) {
		/* it is blocked in open, write or close, maybe for good (a FIFO
		 * nobody reads, a dead NFS server): neither cancelled (it might
		 * not return from that either, and cancelled in a wait it would
		 * end holding mu) nor joined. It is detached with its state,
		 * which stays allocated: it may still use it, and the worker is
		 * ending. */
		a->b->host->log(SCALER_LOG_ERR, BAL_WHO,
		                "zone %s: access log %s: not written for %d s; %zu byte(s) of "
		                "lines lost",
		                a->b->zone, a->cf->path, AL_STOP_WAIT, lost);
		pthread_detach(a->thread);
		return;
	}
	pthread_join(a->thread, NULL);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	free(a->cur);
	free(a->spare);
	free(a->todo);
	free(a);
}

uint64_t alog_dropped(const struct alog *a)
{
	return a ? a->dropped : 0;
}

/* ---- formatting ----------------------------------------------------------- */

struct al_out {
	char *p, *end;
};

static inline void al_put(struct al_out *o, const char *s, size_t n)
{
	if (n > (size_t)(o->end - o->p))
		n = (size_t)(o->end - o->p);
	memcpy(o->p, s, n);
	o->p += n;
}

static void al_put_u64(struct al_out *o, uint64_t v)
{
	char t[24];
	int i = sizeof(t);
	do {
		t[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	al_put(o, t + i, sizeof(t) - (size_t)i);
}

/* Seconds with microseconds ("0.000250"). */
static void al_put_secs(struct al_out *o, double s)
{
	uint64_t us = s > 0 ? (uint64_t)(s * 1e6 + 0.5) : 0;
	char frac[7];
	al_put_u64(o, us / 1000000);
	for (int i = 5; i >= 0; i--, us /= 10)
		frac[i] = (char)('0' + us % 10);
	frac[6] = '\0';
	al_put(o, ".", 1);
	al_put(o, frac, 6);
}

/* Bytes written as they are: printable ASCII but '"' and '\\'. */
static const uint8_t al_plain[256] = {[' '] = 1, ['!'] = 1, ['#' ... '['] = 1, [']' ... '~'] = 1};

/* Text as a JSON string's content (json) or with quotes and backslashes as
 * \xHH; bytes below 0x20 and from 0x7f as \u00HH / \xHH either way. Runs
 * of plain bytes are copied whole. */
static void al_put_text(struct al_out *o, const char *s, size_t n, int json)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && al_plain[(unsigned char)s[j]])
			j++;
		al_put(o, s + i, j - i);
		if (j == n)
			return;
		unsigned char ch = (unsigned char)s[j];
		char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
		if (json && (ch == '"' || ch == '\\'))
			al_put(o, esc, 1), al_put(o, (const char *)&ch, 1);
		else if (json)
			al_put(o, esc, 6);
		else
			al_put(o, "\\x", 2), al_put(o, esc + 4, 2);
		i = j + 1;
	}
}

/* ISO 8601 UTC with milliseconds, formatted once per second. */
static void al_put_time(struct alog *a, struct al_out *o, double t)
{
	long sec = (long)t;
	if (sec != a->tsec) {
		time_t tt = (time_t)sec;
		struct tm tm;
		gmtime_r(&tt, &tm);
		a->tlen = strftime(a->tbuf, sizeof(a->tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
		a->tsec = sec;
	}
	int ms = (int)((t - (double)sec) * 1000);
	char f[6] = {'.',
	             (char)('0' + ms / 100 % 10),
	             (char)('0' + ms / 10 % 10),
	             (char)('0' + ms % 10),
	             'Z',
	             0};
	al_put(o, a->tbuf, a->tlen);
	al_put(o, f, 5);
}

/* A string that needs no escape (an address, a token, a constant),
 * quoted for JSON. */
static inline void al_put_plain(struct al_out *o, const char *str, size_t len, int json)
{
	if (json)
		al_put(o, "\"", 1);
	al_put(o, str, len);
	if (json)
		al_put(o, "\"", 1);
}

/* One field's value; JSON strings quoted, null for what is missing. Only
 * the path and the server's URL can hold bytes to escape: the method is a
 * token, the rest are addresses and constants. */
static void al_put_field(struct alog *a, struct al_out *o, int k, const struct alog_entry *e,
                         int json)
{
	const char *str = NULL;
	switch (k) {
	case AL_TIME:
		if (json)
			al_put(o, "\"", 1);
		al_put_time(a, o, e->end);
		if (json)
			al_put(o, "\"", 1);
		return;
	case AL_STATUS:
		al_put_u64(o, (uint64_t)e->status);
		return;
	case AL_BYTES:
		al_put_u64(o, e->bytes);
		return;
	case AL_RETRIES:
		al_put_u64(o, (uint64_t)e->retries);
		return;
	case AL_TOTAL_TIME:
		al_put_secs(o, e->end - e->start);
		return;
	case AL_UPSTREAM_TIME:
		if (e->upstream_time < 0)
			break;
		al_put_secs(o, e->upstream_time);
		return;
	case AL_ZONE:
		al_put_plain(o, a->b->zone, a->zone_len, json);
		return;
	case AL_METHOD:
		if (!e->method)
			break;
		al_put_plain(o, e->method, e->method_len, json);
		return;
	case AL_CLIENT:
	case AL_PROTOCOL:
	case AL_TLS:
		str = k == AL_CLIENT ? e->client : k == AL_PROTOCOL ? e->protocol : e->tls;
		if (!str)
			break;
		al_put_plain(o, str, strlen(str), json);
		return;
	case AL_PATH:
	case AL_UPSTREAM:
		str = k == AL_PATH ? e->path : e->upstream;
		if (!str)
			break;
		if (json)
			al_put(o, "\"", 1);
		al_put_text(o, str,
		            k == AL_UPSTREAM
		                ? strlen(str)
		                : (e->path_len < AL_PATH_MAX ? e->path_len : AL_PATH_MAX),
		            json);
		if (json)
			al_put(o, "\"", 1);
		return;
	}
	if (json)
		al_put(o, "null", 4);
	else
		al_put(o, "-", 1);
}

void alog_request(struct alog *a, const struct alog_entry *e)
{
	/* the JSON keys, with what comes before and after them */
	static const struct {
		const char *s;
		uint8_t n;
	} keys[AL_NFIELDS] = {
#define AL_KEY(k, name, first) \
	[AL_##k] = {first ? "{\"" name "\":" : ",\"" name "\":", sizeof(name) + 3}
	    AL_KEY(TIME, "time", 1),
	    AL_KEY(ZONE, "zone", 0),
	    AL_KEY(CLIENT, "client", 0),
	    AL_KEY(METHOD, "method", 0),
	    AL_KEY(PATH, "path", 0),
	    AL_KEY(PROTOCOL, "protocol", 0),
	    AL_KEY(STATUS, "status", 0),
	    AL_KEY(BYTES, "bytes", 0),
	    AL_KEY(UPSTREAM, "upstream", 0),
	    AL_KEY(UPSTREAM_TIME, "upstream_time", 0),
	    AL_KEY(TOTAL_TIME, "total_time", 0),
	    AL_KEY(RETRIES, "retries", 0),
	    AL_KEY(TLS, "tls", 0)
#undef AL_KEY
	};
	const struct alog_conf *cf = a->cf;
	/* into the buffer itself when a whole line fits (buffer >= 2 lines) */
	if (a->cf->buffer - a->len < AL_LINE_MAX && !al_handover(a)) {
		a->dropped++;
		return;
	}
	struct al_out o = {a->cur + a->len, a->cur + a->len + AL_LINE_MAX - 1};
	char *start = o.p;
	if (!cf->fmt[0]) {
		for (int k = 1; k < AL_NFIELDS; k++) {
			al_put(&o, keys[k].s, keys[k].n);
			al_put_field(a, &o, k, e, 1);
		}
		al_put(&o, "}", 1);
	} else {
		for (int i = 0; i < cf->nparts; i++) {
			const struct al_part *p = &cf->parts[i];
			if (p->field == AL_LITERAL)
				al_put(&o, cf->fmt + p->off, p->len);
			else
				al_put_field(a, &o, p->field, e, 0);
		}
	}
	*o.p++ = '\n';
	a->len += (size_t)(o.p - start);
	if (a->len > a->cf->buffer / 2)
		al_handover(a);
}
