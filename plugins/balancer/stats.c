/* Request statistics per server, as the data path sees them, for GET /stats
 * (the metrics plugin "balancer" reads them to scale on requests).
 *
 * Each server with traffic has a ring of per-second slots (stats_history
 * seconds of them, allocated at its first request, never per request):
 * responses relayed, attempts that ended without one, the integral of its
 * requests in flight over time (in-flight × µs, so an average concurrency
 * over any window is one division) and a latency histogram with fixed
 * buckets (two per octave from 64 µs to ~67 s). A slot is tagged with its
 * second, so stale slots are recognised without clearing the ring.
 *
 * A window [now − W, now] reads the slots it overlaps, the oldest weighed by
 * the share of it inside the window. A window longer than this worker has
 * run is missing, never 0: a restarted worker knows nothing of the time
 * before it (so a restart cannot make a zone look idle).
 *
 * Everything /stats reports per server is a sum or can be made one
 * (requests, busy time, histogram counts), so the views of several workers
 * of one zone add up: concurrency and rps add, histograms merge bucket by
 * bucket and give the percentiles of the whole. */
#include "config.h"

#include "bal.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct st_slot {
	uint32_t sec;      /* the second (since b->st_t0) this slot holds */
	uint32_t requests; /* responses relayed */
	uint32_t failed;   /* attempts that ended without a relayed response */
	uint32_t pad;
	uint64_t busy_us; /* requests in flight × microseconds */
	uint32_t lat[ST_LAT_BUCKETS];
};

static int st_ring_len(const struct bal *b)
{
	/* a window of history seconds overlaps history + 1 slots; one more
	 * for the second being filled */
	return b->conf.stats_history + 2;
}

static struct st_slot *st_slot(struct server *s, uint32_t sec)
{
	struct st_slot *x = &s->st_ring[sec % (uint32_t)st_ring_len(s->b)];
	if (x->sec != sec) {
		memset(x, 0, sizeof(*x));
		x->sec = sec;
	}
	return x;
}

static int st_ready(struct server *s)
{
	if (s->st_ring)
		return 1;
	if (s->b->conf.stats_history <= 0)
		return 0;
	s->st_ring = calloc((size_t)st_ring_len(s->b), sizeof(*s->st_ring));
	return s->st_ring != NULL;
}

/* Add the in-flight time of s from s->st_since to now to its slots. */
static void st_busy(struct server *s, double now)
{
	struct bal *b = s->b;
	double a = s->st_since - b->st_t0, e = now - b->st_t0;
	s->st_since = now;
	if (s->active <= 0 || !s->st_ring || e <= a)
		return;
	if (a < 0)
		a = 0;
	/* only the seconds the ring holds matter (a request may run for hours) */
	if (e - a > st_ring_len(b))
		a = floor(e) - st_ring_len(b) + 1;
	while (a < e) {
		uint32_t sec = (uint32_t)a;
		double end = (double)sec + 1.0;
		if (end > e)
			end = e;
		st_slot(s, sec)->busy_us += (uint64_t)((end - a) * 1e6 * s->active + 0.5);
		a = end;
	}
}

void st_request_start(struct server *s, double now)
{
	if (!st_ready(s))
		return;
	st_busy(s, now);
}

void st_request_end(struct server *s, double now, double latency, int relayed)
{
	if (!s->st_ring)
		return;
	st_busy(s, now);
	struct st_slot *x = st_slot(s, (uint32_t)(now - s->b->st_t0));
	if (!relayed) {
		x->failed++;
		return;
	}
	x->requests++;
	uint64_t v = latency > 0 ? (uint64_t)(latency * 1e6) >> 6 : 0;
	int i = 0;
	if (v) {
		int e = 63 - __builtin_clzll(v);
		i = 1 + 2 * e + (e ? (int)((v >> (e - 1)) & 1) : 0);
		if (i >= ST_LAT_BUCKETS)
			i = ST_LAT_BUCKETS - 1;
	}
	x->lat[i]++;
}

void st_server_free(struct server *s)
{
	free(s->st_ring);
	s->st_ring = NULL;
}

/* Seconds: the bounds of latency bucket i. */
static void st_bucket_bounds(int i, double *lo, double *hi)
{
	if (i == 0) {
		*lo = 0;
		*hi = 64e-6;
		return;
	}
	int e = (i - 1) / 2, h = (i - 1) % 2;
	double base = 64e-6 * ldexp(1.0, e);
	*lo = base * (h ? 1.5 : 1.0);
	*hi = i == ST_LAT_BUCKETS - 1 ? *lo : base * (h ? 2.0 : 1.5);
}

/* ---- a window ----------------------------------------------------------- */

static void st_read(struct server *s, double now, double w, struct st_window *out)
{
	struct bal *b = s->b;
	memset(out, 0, sizeof(*out));
	if (!s->st_ring)
		return;
	st_busy(s, now);
	double e = now - b->st_t0, a = e - w;
	if (a < 0)
		a = 0;
	for (uint32_t sec = (uint32_t)a; (double)sec < e; sec++) {
		const struct st_slot *x = &s->st_ring[sec % (uint32_t)st_ring_len(b)];
		if (x->sec != sec)
			continue;
		/* the slot's data covers [sec, min(sec + 1, e)); weigh by the share
		 * of that inside [a, e] */
		double lo = (double)sec, hi = lo + 1.0 < e ? lo + 1.0 : e;
		double in = hi - (a > lo ? a : lo);
		double wt = hi > lo ? in / (hi - lo) : 0;
		if (wt <= 0)
			continue;
		out->requests += wt * x->requests;
		out->failed += wt * x->failed;
		out->busy_s += wt * (double)x->busy_us / 1e6;
		for (int i = 0; i < ST_LAT_BUCKETS; i++)
			if (x->lat[i])
				out->lat[i] += wt * x->lat[i];
	}
}

void st_window_read(struct server *s, double now, double window, struct st_window *out)
{
	st_read(s, now, window, out);
}

/* The latency under which a share q of the window's responses fell,
 * interpolated within its bucket; NAN without responses. */
static double st_percentile(const struct st_window *w, double q)
{
	double total = 0, seen = 0;
	for (int i = 0; i < ST_LAT_BUCKETS; i++)
		total += w->lat[i];
	if (total <= 0)
		return NAN;
	double rank = q * total;
	for (int i = 0; i < ST_LAT_BUCKETS; i++) {
		if (w->lat[i] <= 0)
			continue;
		if (seen + w->lat[i] >= rank) {
			double lo, hi;
			st_bucket_bounds(i, &lo, &hi);
			return lo + (hi - lo) * (rank - seen) / w->lat[i];
		}
		seen += w->lat[i];
	}
	double lo, hi;
	st_bucket_bounds(ST_LAT_BUCKETS - 1, &lo, &hi);
	return hi;
}

static json_t *st_num(double v)
{
	return isfinite(v) ? json_real(round(v * 1e6) / 1e6) : json_null();
}

static json_t *st_server_json(struct server *s, double now, double window, int observed)
{
	int in_flight;
	board_counts(s, &in_flight, NULL); /* over the zone's workers */
	json_t *o = json_pack("{s:s, s:s, s:i}", "url", s->url, "state", srv_state_name(s->state),
	                      "in_flight", in_flight);
	if (!observed) {
		json_object_set_new(o, "concurrency", json_null());
		json_object_set_new(o, "rps", json_null());
		json_object_set_new(o, "requests", json_null());
		json_object_set_new(o, "latency", json_null());
		return o;
	}
	struct st_window w;
	st_read(s, now, window, &w);
	board_stats_add(s, &w); /* the other workers of the zone */
	json_object_set_new(o, "requests", st_num(w.requests));
	json_object_set_new(o, "failed", st_num(w.failed));
	json_object_set_new(o, "rps", st_num(w.requests / window));
	json_object_set_new(o, "concurrency", st_num(w.busy_s / window));
	json_object_set_new(o, "busy_seconds", st_num(w.busy_s));
	json_object_set_new(o, "latency",
	                    json_pack("{s:o, s:o, s:o}", "p50", st_num(st_percentile(&w, 0.50)),
	                              "p95", st_num(st_percentile(&w, 0.95)), "p99",
	                              st_num(st_percentile(&w, 0.99))));
	json_t *h = json_array();
	for (int i = 0; i < ST_LAT_BUCKETS; i++)
		if (w.lat[i] > 0) {
			double lo, hi;
			st_bucket_bounds(i, &lo, &hi);
			json_array_append_new(
			    h, json_pack("[o, o]", st_num(i == ST_LAT_BUCKETS - 1 ? INFINITY : hi),
			                 st_num(w.lat[i])));
		}
	json_object_set_new(o, "histogram", h);
	return o;
}

int st_window_check(struct bal *b, double window, char *err, size_t errlen)
{
	if (b->conf.stats_history <= 0) {
		snprintf(err, errlen, "this balancer keeps no statistics (stats_history = 0)");
		return -1;
	}
	if (!(window > 0) || window > b->conf.stats_history) {
		snprintf(err, errlen,
		         "window must be a number of seconds above 0 and at most stats_history "
		         "(%d)",
		         b->conf.stats_history);
		return -1;
	}
	return 0;
}

json_t *st_json(struct bal *b, double window, int complete)
{
	double now = ev_now(b->loop), uptime = now - b->st_t0;
	int observed = uptime >= window && complete;
	int held = 0;
	board_stats_sum(b, NULL, NULL, NULL, &held);
	json_t *servers = json_array();
	for (struct server *s = b->servers; s; s = s->next)
		json_array_append_new(servers, st_server_json(s, now, window, observed));
	json_t *o = json_pack("{s:s, s:f, s:f, s:b, s:i, s:i, s:o}", "zone", b->zone, "window",
	                      window, "uptime", round(uptime * 1000) / 1000, "observed", observed,
	                      "history", b->conf.stats_history, "held", held, "servers", servers);
	if (!complete)
		json_object_set_new(o, "missing",
		                    json_sprintf("a worker of this zone did not publish its window "
		                                 "of %g s (restarted, or slow): the values are "
		                                 "missing, not 0",
		                                 window));
	else if (!observed)
		json_object_set_new(o, "missing",
		                    json_sprintf("this worker has run %.1f s, less than the "
		                                 "window of %g s: its values are missing, not 0",
		                                 uptime, window));
	return o;
}
