#include "config.h"

#include "host_services.h"

#include <ev.h>
#include <math.h>
#include <stdlib.h>

struct scaler_deferred {
	struct ev_loop *loop;
	ev_timer w; /* 0 s: the next iteration, after the call that deferred returned */
	void (*fn)(void *arg);
	void *arg;
};

static void defer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct scaler_deferred *d = w->data;
	(void)loop;
	(void)revents;
	void (*fn)(void *) = d->fn;
	void *arg = d->arg;
	free(d); /* before fn: fn may defer again, or end the loop */
	fn(arg);
}

struct scaler_deferred *defer_on(struct ev_loop *loop, void (*fn)(void *arg), void *arg)
{
	struct scaler_deferred *d;

	if (!loop || !fn || !(d = calloc(1, sizeof(*d))))
		return NULL;
	d->loop = loop;
	d->fn = fn;
	d->arg = arg;
	ev_timer_init(&d->w, defer_cb, 0., 0.);
	d->w.data = d;
	ev_timer_start(loop, &d->w);
	return d;
}

void defer_cancel(struct scaler_deferred *d)
{
	if (!d)
		return;
	ev_timer_stop(d->loop, &d->w);
	free(d);
}

int metrics_average(const struct scaler_metrics_result *res, unsigned plugin_abi_minor,
                    double *average)
{
	double sum = 0;
	size_t good = 0;

	if (plugin_abi_minor < 2) {
		*average = res->average;
		return res->average_valid;
	}
	for (size_t i = 0; i < res->n; i++)
		if (!res->values[i].missing && isfinite(res->values[i].value)) {
			sum += res->values[i].value;
			good++;
		}
	*average = good ? sum / (double)good : 0;
	return good > 0;
}
