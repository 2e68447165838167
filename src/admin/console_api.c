/* The control loop's part of the console (src/admin/console.c): each
 * zone's history of server counts and metric averages, recorded at every
 * evaluation while this node is primary, and GET /history. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "control.h"
#include "history.h"

#define GUIDES_MAX (2 * CONF_METRICS_MAX * 3)

/* The history to record into, new when the node's term or the zone's
 * metrics or interval changed since the last sample. */
static struct history *czone_history(struct czone *z)
{
	struct controller *c = z->c;
	const char *why = NULL;

	if (!z->hist || z->hist_gen != c->gen)
		why = "this node became primary";
	else if (history_nmetrics(z->hist) != z->nmetrics ||
	         history_interval(z->hist) != z->cz->interval)
		why = "a reload changed the zone's metrics or interval";
	if (!why)
		return z->hist;
	struct history *h = history_new(z->nmetrics, z->cz->interval);
	if (!h)
		return NULL;
	history_free(z->hist);
	z->hist = h;
	z->hist_gen = c->gen;
	z->hist_started = 0;
	z->hist_why = why;
	return h;
}

void czone_history_sample(struct czone *z, int servers, const struct scaler_policy_metric *pms,
                          size_t n)
{
	struct history *h = czone_history(z);
	double values[CONF_METRICS_MAX];
	size_t nw = z->nwindows ? z->nwindows : 1;

	if (!h)
		return;
	for (size_t m = 0; m < z->nmetrics && m < CONF_METRICS_MAX; m++) {
		const struct scaler_policy_metric *pm = m * nw < n ? &pms[m * nw] : NULL;
		values[m] = pm && pm->valid && isfinite(pm->average) ? pm->average : NAN;
	}
	double now = ctl_unix_now();
	if (!z->hist_started)
		z->hist_started = now;
	if (history_add(h, now, servers, values)) {
		z->hist_started = now;
		z->hist_why = "the clock was set back";
	}
}

/* The policy's guides (ABI 1.5), named by metric. */
static json_t *czone_guides_json(const struct czone *z)
{
	json_t *a = json_array();
	const struct scaler_policy_ops *po =
	    z->policy.plugin ? &z->policy.plugin->ops.policy : NULL;
	struct scaler_policy_guide g[GUIDES_MAX];
	size_t n = po && po->guides ? po->guides(z->policy.ctx, g, GUIDES_MAX) : 0;

	for (size_t i = 0; i < n && i < GUIDES_MAX; i++)
		if (g[i].metric < z->nmetrics && g[i].name && isfinite(g[i].value))
			json_array_append_new(a, json_pack("{s:s, s:s, s:f}", "metric",
			                                   z->metrics[g[i].metric].name, "name",
			                                   g[i].name, "value", g[i].value));
	return a;
}

static json_t *czone_history_json(const struct czone *z, double since)
{
	int current = z->hist && z->hist_gen == z->c->gen && z->c->active;
	json_t *metrics = json_array();

	for (size_t m = 0; m < z->nmetrics; m++)
		json_array_append_new(metrics, json_pack("{s:s, s:s}", "name", z->metrics[m].name,
		                                         "unit", z->metrics[m].unit));
	return json_pack(
	    "{s:s, s:f, s:f, s:i, s:i, s:o, s:s?, s:o, s:o, s:o, s:I}", "zone", z->name, "interval",
	    z->cz->interval, "span", HISTORY_SPAN, "min", z->cz->min, "max", z->cz->max, "started",
	    current && z->hist_started ? json_real(z->hist_started) : json_null(), "why",
	    current ? z->hist_why : NULL, "metrics", metrics, "guides", czone_guides_json(z),
	    "points", current ? history_points_json(z->hist, since) : json_array(), "bytes",
	    (json_int_t)(z->hist ? history_bytes(z->hist) : 0));
}

json_t *controller_history_json(struct controller *c, const char *zone, double since)
{
	if (zone && !czone_find(c, zone))
		return NULL;
	json_t *zones = json_array();
	/* in the config's order, as GET /status */
	for (size_t i = 0; i < c->d->conf->nzones; i++) {
		const struct czone *z = czone_find(c, c->d->conf->zones[i].name);
		if (z && (!zone || strcmp(z->name, zone) == 0))
			json_array_append_new(zones, czone_history_json(z, since));
	}
	return json_pack("{s:f, s:b, s:o}", "now", ctl_unix_now(), "primary", c->active, "zones",
	                 zones);
}
