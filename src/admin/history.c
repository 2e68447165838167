/* The console's per-zone history ring (history.h). */
#include "config.h"

#include "history.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct history {
	size_t nmetrics;
	double interval;
	size_t cap;   /* rows the ring may hold */
	size_t alloc; /* rows allocated (grows to cap) */
	size_t first; /* oldest row, once the ring is full */
	size_t len;
	double *rows; /* alloc rows of (2 + nmetrics): t, servers, values */
};

static size_t hist_width(const struct history *h)
{
	return 2 + h->nmetrics;
}

static size_t hist_cap(double interval)
{
	return (size_t)ceil(HISTORY_SPAN / (interval > 1 ? interval : 1)) + 1;
}

struct history *history_new(size_t nmetrics, double interval)
{
	struct history *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->nmetrics = nmetrics;
	h->interval = interval;
	h->cap = hist_cap(interval);
	return h;
}

void history_free(struct history *h)
{
	if (!h)
		return;
	free(h->rows);
	free(h);
}

size_t history_nmetrics(const struct history *h)
{
	return h->nmetrics;
}

size_t history_len(const struct history *h)
{
	return h->len;
}

double history_interval(const struct history *h)
{
	return h->interval;
}

size_t history_bytes(const struct history *h)
{
	return sizeof(*h) + h->alloc * hist_width(h) * sizeof(double);
}

size_t history_max_bytes(size_t nmetrics, double interval)
{
	return sizeof(struct history) + hist_cap(interval) * (2 + nmetrics) * sizeof(double);
}

static double *hist_row(const struct history *h, size_t i)
{
	return h->rows + ((h->first + i) % h->alloc) * hist_width(h);
}

/* Room for one more row at the end: grow while not at cap, else drop the
 * oldest. NULL when out of memory. */
static double *hist_push(struct history *h)
{
	if (h->len == h->alloc && h->alloc < h->cap) {
		size_t n = h->alloc ? h->alloc * 2 : 64;
		if (n > h->cap)
			n = h->cap;
		double *r = realloc(h->rows, n * hist_width(h) * sizeof(double));
		if (!r)
			return NULL;
		h->rows = r;
		h->alloc = n; /* first is 0 until the ring is full */
	}
	if (h->len == h->alloc) {
		double *row = hist_row(h, 0);
		h->first = (h->first + 1) % h->alloc;
		return row;
	}
	return hist_row(h, h->len++);
}

int history_add(struct history *h, double t, int servers, const double *values)
{
	double *row = h->len ? hist_row(h, h->len - 1) : NULL;
	int reset = 0;
	/* kept as shown (to the millisecond), so that the second a sample is
	 * merged by is the second it is shown in: 10.9996 is 11.000 */
	t = round(t * 1000) / 1000;
	if (row && t < row[0] - HISTORY_STEP_BACK) {
		/* the clock was set back (NTP, an operator): samples are ordered by
		 * it, so keeping the old ones would drop every new one until the
		 * clock caught up with them; start again from now */
		h->len = 0;
		h->first = 0;
		row = NULL;
		reset = 1;
	} else if (row && t < row[0]) {
		return 0; /* jitter: keep the ring in order */
	}
	int merge = row && floor(t) == floor(row[0]);
	if (!merge)
		row = hist_push(h);
	if (!row)
		return reset;
	row[0] = t;
	row[1] = servers;
	for (size_t i = 0; i < h->nmetrics; i++) {
		double v = values ? values[i] : NAN;
		if (!merge || isfinite(v))
			row[2 + i] = v;
	}
	return reset;
}

json_t *history_points_json(const struct history *h, double since)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < h->len; i++) {
		const double *row = hist_row(h, i);
		double t = row[0]; /* to the millisecond: since is one of these */
		if (t <= since)
			continue;
		json_t *p = json_array();
		json_array_append_new(p, json_real(t));
		json_array_append_new(p, json_integer((json_int_t)row[1]));
		for (size_t k = 0; k < h->nmetrics; k++)
			json_array_append_new(p, isfinite(row[2 + k]) ? json_real(row[2 + k])
			                                              : json_null());
		json_array_append_new(a, p);
	}
	return a;
}
