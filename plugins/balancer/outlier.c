/* Outlier ejection, after Envoy's outlier detection: a server whose
 * attempts end in consecutive_5xx 5xx responses in a row, or in
 * consecutive_failures failures in a row (a connect that fails or times
 * out, a close or reset before the response, a server timeout, a malformed
 * response), leaves the alive pool for base_time × the times it has been
 * ejected (at most max_time), then comes back, with slow start when it is
 * on. The multiplier drops by one for every base_time the server stays
 * in. At most max_percent of the zone's serving servers are out at once
 * (at least one, as Envoy allows), and never the last one serving. The
 * health checks go on meanwhile and still decide disconnected and dead.
 *
 * Any response below 500 ends both runs; a 5xx ends a run of failures (the
 * server answered); a failure leaves a run of 5xx as it is.
 *
 * Ejections and returns are events: the last OUTLIER_EVENTS of them are
 * kept (GET /events on the zone's admin API) and reported to the primary
 * with the dead reports (PUT /report), which records them, fenced, in the
 * zone's event stream.
 *
 * With several workers on a zone (workers = N), each one ejects on what
 * its own requests show and reports its own events (tagged with its
 * index); worker 0's are those GET /events shows. */
#include "config.h"

#include "bal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUTLIER_EVENTS 64

struct outlier_event {
	uint64_t seq;
	double time;   /* unix time */
	double length; /* eject: seconds it is out for; return: seconds it was out */
	int ejections; /* the multiplier at the ejection */
	int worker;    /* which of the zone's workers decided it */
	int in_flight; /* requests the server had in flight then */
	uint8_t eject; /* 1: ejected, 0: returned */
	char server[256];
	char reason[96];
};

static void oe_record(struct server *s, int eject, const char *reason, double length)
{
	struct bal *b = s->b;
	if (!b->events && !(b->events = calloc(OUTLIER_EVENTS, sizeof(*b->events))))
		return;
	struct outlier_event *e = &b->events[b->events_seq % OUTLIER_EVENTS];
	e->seq = ++b->events_seq;
	e->time = bal_wallclock();
	e->length = length;
	e->ejections = s->ejections;
	e->worker = b->windex;
	e->in_flight = s->active;
	e->eject = (uint8_t)eject;
	snprintf(e->server, sizeof(e->server), "%s", s->url);
	snprintf(e->reason, sizeof(e->reason), "%s", reason);
	report_now(b);
}

static void oe_return(struct server *s)
{
	struct bal *b = s->b;
	double now = ev_now(b->loop), out = now - s->ejected_at;
	char why[96];
	ev_timer_stop(b->loop, &s->eject_timer);
	b->nejected--;
	s->ejected_at = 0;
	s->returned_at = now;
	s->c5xx = s->cfail = 0;
	if (s->state == SRV_ALIVE) {
		srv_alive_add(b, s);
		pick_joined(s);
		snprintf(why, sizeof(why), "its ejection time is up");
	} else {
		snprintf(why, sizeof(why), "its ejection time is up (it is %s)",
		         srv_state_name(s->state));
	}
	b->host->log(SCALER_LOG_NOTICE, BAL_WHO,
	             "zone %s: server %s is back from ejection after %.1f s", b->zone, s->url, out);
	oe_record(s, 0, why, out);
}

static void oe_return_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	oe_return(w->data);
}

static void oe_eject(struct server *s, const char *why)
{
	struct bal *b = s->b;
	const struct bal_conf *cf = &b->conf;
	double now = ev_now(b->loop);
	if (s->returned_at > 0 && s->ejections > 0) {
		double behaved = (now - s->returned_at) / cf->eject_base;
		s->ejections = behaved >= s->ejections ? 0 : s->ejections - (int)behaved;
	}
	s->ejections++;
	double length = cf->eject_base * s->ejections;
	if (length > cf->eject_max)
		length = cf->eject_max;
	s->ejected_at = now;
	b->nejected++;
	b->st->ejections++;
	srv_alive_del(b, s);
	pick_forget(s);
	proxy_close_idle(s);
	ev_timer_init(&s->eject_timer, oe_return_cb, length, 0.);
	s->eject_timer.data = s;
	ev_timer_start(b->loop, &s->eject_timer);
	b->host->log(SCALER_LOG_WARNING, BAL_WHO, "zone %s: server %s ejected for %.1f s: %s",
	             b->zone, s->url, length, why);
	oe_record(s, 1, why, length);
}

void outlier_result(struct server *s, int status)
{
	struct bal *b = s->b;
	const struct bal_conf *cf = &b->conf;
	if (!cf->eject_5xx && !cf->eject_failures)
		return;
	if (status > 0 && status < 500) {
		s->c5xx = s->cfail = 0;
		return;
	}
	char why[96];
	if (status >= 500) {
		s->c5xx++;
		s->cfail = 0;
		if (!cf->eject_5xx || s->c5xx < cf->eject_5xx)
			return;
		snprintf(why, sizeof(why), "%d consecutive 5xx responses", s->c5xx);
	} else {
		s->cfail++;
		if (!cf->eject_failures || s->cfail < cf->eject_failures)
			return;
		snprintf(why, sizeof(why), "%d consecutive failed attempts", s->cfail);
	}
	if (s->ejected_at || s->removed || s->alive_idx < 0 || b->nalive <= 1)
		return; /* out already, or the last one serving */
	int cap = (b->nalive + b->nejected) * cf->eject_max_percent / 100;
	if (b->nejected >= (cap < 1 ? 1 : cap))
		return; /* max_percent: the run goes on, and is looked at again */
	oe_eject(s, why);
}

void outlier_forget(struct server *s)
{
	if (!s->ejected_at)
		return;
	ev_timer_stop(s->b->loop, &s->eject_timer);
	s->ejected_at = 0;
	s->b->nejected--;
}

void outlier_server_json(const struct server *s, json_t *o)
{
	const struct bal *b = s->b;
	double until = 0;
	if (s->ejected_at)
		until = bal_wallclock() + ev_timer_remaining(b->loop, (ev_timer *)&s->eject_timer);
	json_object_set_new(o, "ejected_until", until > 0 ? json_real(until) : json_null());
	json_object_set_new(o, "ejections", json_integer(s->ejections));
	json_object_set_new(o, "consecutive_5xx", json_integer(s->c5xx));
	json_object_set_new(o, "consecutive_failed_attempts", json_integer(s->cfail));
}

static json_t *oe_event_json(const struct outlier_event *e)
{
	return json_pack("{s:I, s:f, s:s, s:s, s:s, s:f, s:i, s:i, s:i}", "seq", (json_int_t)e->seq,
	                 "time", e->time, "kind", e->eject ? "eject" : "return", "server",
	                 e->server, "reason", e->reason, e->eject ? "duration" : "ejected_for",
	                 e->length, "ejections", e->ejections, "worker", e->worker, "in_flight",
	                 e->in_flight);
}

/* Events with seq in (from, b->events_seq], oldest first, that the ring holds. */
static json_t *oe_events_since(struct bal *b, uint64_t from)
{
	json_t *a = json_array();
	uint64_t first = b->events_seq > OUTLIER_EVENTS ? b->events_seq - OUTLIER_EVENTS : 0;
	if (from < first)
		from = first;
	for (uint64_t q = from; a && b->events && q < b->events_seq; q++)
		json_array_append_new(a, oe_event_json(&b->events[q % OUTLIER_EVENTS]));
	return a;
}

json_t *outlier_events_json(struct bal *b)
{
	return json_pack("{s:o, s:I, s:I}", "events", oe_events_since(b, 0), "recorded",
	                 (json_int_t)b->events_seq, "reported", (json_int_t)b->events_reported);
}

json_t *outlier_events_unreported(struct bal *b, uint64_t *upto)
{
	*upto = b->events_seq;
	if (b->events_reported >= b->events_seq)
		return NULL;
	return oe_events_since(b, b->events_reported);
}

void outlier_reported(struct bal *b, uint64_t upto)
{
	if (upto > b->events_reported)
		b->events_reported = upto;
}

void outlier_stop(struct bal *b)
{
	free(b->events);
	b->events = NULL;
}
