/* One evaluation of a zone: its servers' metrics → the policy → the zone's
 * bounds, cooldowns and pins → create or delete servers (flows.c). A zone
 * outside min..max goes back within them whatever the metrics say; missing
 * metrics never scale down. */
#include "config.h"

#include <ev.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "host_services.h"
#include "log.h"

/* One metric over one window: a query and what it gave. */
struct eval_query {
	struct eval *e;
	size_t metric;      /* index in z->metrics when the query started */
	unsigned abi_minor; /* of its plugin: a reload may replace z->metrics meanwhile */
	double window;
	int failed;
	char err[200];
	struct scaler_policy_metric pm;
	json_t *values; /* per server, for the first window of each metric */
};

struct eval {
	struct czone *z;
	struct conf *conf; /* the zone's config, which the metrics queries may read */
	unsigned gen;
	double t0;
	struct scaler_server *servers;
	size_t n;
	size_t nq, pending;
	struct eval_query q[CONF_METRICS_MAX * SCALER_POLICY_WINDOWS_MAX];
};

static int czone_pin_active(struct czone *z)
{
	if (z->pin_count < 0)
		return 0;
	if (z->pin_until > 0 && ctl_unix_now() >= z->pin_until) {
		czone_event(z, "unpin", z->pin_count, z->pin_count, "pin expired",
		            "the pinned count expired; the policy decides again", NULL);
		z->pin_count = -1;
		return 0;
	}
	return 1;
}

static void czone_hold(struct czone *z, int cur, const char *rule, const char *reason, int blocked)
{
	z->holds++;
	czone_decision(z, "hold", cur, cur, rule, reason);
	log_debug("zone %s: hold at %d: %s (%s)", z->name, cur, reason, rule);
	/* a hold that blocked an action is an event, once per distinct cause */
	if (blocked && strcmp(z->last_hold, rule) != 0) {
		czone_event(z, "hold", cur, cur, rule, reason, NULL);
		snprintf(z->last_hold, sizeof(z->last_hold), "%s", rule);
	}
	if (!blocked)
		z->last_hold[0] = '\0';
}

/* Create or remove servers to go from cur to want (victims: least loaded,
 * newest on a tie; drained first). */
static void czone_resize(struct czone *z, int cur, int want)
{
	for (int i = cur; i < want; i++)
		czone_create(z);
	for (int i = want; i < cur; i++) {
		struct cserver *v = czone_victim(z);
		if (!v || czone_delete(z, v, 1, 0) < 0)
			break;
	}
}

static void czone_act(struct czone *z, int cur, int want, const char *rule, const char *reason,
                      json_t *values, int any_missing)
{
	const struct conf_zone *cz = z->cz;
	double now = ev_now(ctl_loop(z->c));
	char why[512], base[300];

	/* the policy's sentence, without its full stop, so a cause can follow */
	snprintf(base, sizeof(base), "%s", reason);
	size_t bl = strlen(base);
	if (bl && base[bl - 1] == '.')
		base[bl - 1] = '\0';

	if (want == cur) {
		czone_hold(z, cur, rule, reason, 0);
		json_decref(values);
		return;
	}
	if (want > cur && now - z->last_up < cz->cooldown_up) {
		snprintf(why, sizeof(why), "%s; scale-up cooldown: %.1f s left", base,
		         cz->cooldown_up - (now - z->last_up));
		czone_hold(z, cur, "cooldown_up", why, 1);
		json_decref(values);
		return;
	}
	if (want < cur) {
		if (any_missing) {
			snprintf(why, sizeof(why),
			         "%s; not scaling down while a server's metric is missing", base);
			czone_hold(z, cur, "metrics missing", why, 1);
			json_decref(values);
			return;
		}
		if (now - z->last_down < cz->cooldown_down) {
			snprintf(why, sizeof(why), "%s; scale-down cooldown: %.1f s left", base,
			         cz->cooldown_down - (now - z->last_down));
			czone_hold(z, cur, "cooldown_down", why, 1);
			json_decref(values);
			return;
		}
	}
	const char *kind = want > cur ? "scale_up" : "scale_down";
	z->last_hold[0] = '\0';
	czone_decision(z, kind, cur, want, rule, reason);
	if (cz->dry_run) {
		czone_event(z, "dry_run", cur, want, rule, reason,
		            json_pack("{s:s, s:o}", "would", kind, "values", values));
		return;
	}
	czone_event(z, kind, cur, want, rule, reason, json_pack("{s:o}", "values", values));
	if (want > cur) {
		z->ups++;
		z->last_up = now;
	} else {
		z->downs++;
		z->last_down = now;
	}
	czone_resize(z, cur, want);
}

static void eval_free(struct eval *e)
{
	for (size_t i = 0; i < e->nq; i++)
		json_decref(e->q[i].values);
	e->z->evaluating = 0;
	czone_metrics_retired_free(e->z);
	czone_unref(e->z);
	conf_free(e->conf);
	free(e->servers);
	free(e);
}

/* Every query of the evaluation is back (or failed): decide. */
static void eval_decide(struct eval *e)
{
	struct czone *z = e->z;
	struct controller *c = z->c;
	char reason[512];

	if (e->gen != c->gen || !c->active || z->removed) {
		eval_free(e);
		return;
	}
	int cur = czone_size(z);
	int min = czone_min(z), max = z->cz->max;
	const struct eval_query *first = e->nq ? &e->q[0] : NULL;
	int any_missing = e->n == 0 || !first;
	struct scaler_policy_metric pms[CONF_METRICS_MAX * SCALER_POLICY_WINDOWS_MAX];
	for (size_t i = 0; i < e->nq; i++) {
		pms[i] = e->q[i].pm;
		if (e->q[i].failed || !e->q[i].pm.complete)
			any_missing = 1;
	}
	czone_history_sample(z, cur, pms, e->nq);
	/* the values of the zone's first metric, as before several metrics */
	json_t *values = first && first->values ? json_deep_copy(first->values) : json_object();

	if (czone_pin_active(z)) {
		int want = z->pin_count < min ? min : z->pin_count > max ? max : z->pin_count;
		snprintf(reason, sizeof(reason), "pinned at %d by an operator", z->pin_count);
		/* a pin is an operator's order: no cooldown, no metrics needed */
		if (want != cur && z->cz->dry_run) {
			czone_decision(z, "dry_run", cur, want, "pinned", reason);
			czone_event(
			    z, "dry_run", cur, want, "pinned", reason,
			    json_pack("{s:s}", "would", want > cur ? "scale_up" : "scale_down"));
		} else if (want != cur) {
			czone_decision(z, want > cur ? "scale_up" : "scale_down", cur, want,
			               "pinned", reason);
			czone_event(z, want > cur ? "scale_up" : "scale_down", cur, want, "pinned",
			            reason, NULL);
			czone_resize(z, cur, want);
		} else {
			czone_hold(z, cur, "pinned", reason, 0);
		}
		json_decref(values);
		eval_free(e);
		return;
	}

	/* a policy that binds its metrics decides what missing values mean;
	 * one that does not is only asked with a valid average */
	int binds = z->binds;
	if (e->n == 0 && cur == 0 && min == 0) {
		/* scaled to zero: nothing blocks, a request at the balancer wakes it */
		czone_hold(
		    z, 0, "at zero",
		    "the zone is at zero servers; its balancer wakes it when a request arrives", 0);
		json_decref(values);
		eval_free(e);
		return;
	}
	if (e->n == 0 || !first || (!binds && (first->failed || !first->pm.valid))) {
		snprintf(reason, sizeof(reason), "no usable metrics (%s); holding at %d",
		         e->n == 0                ? "no serving server to measure"
		         : first && first->failed ? first->err
		                                  : "every server's metric is missing",
		         cur);
		log_debug("zone %s: evaluation: %s", z->name, reason);
		czone_hold(z, cur, "metrics missing", reason, 1);
		json_decref(values);
		eval_free(e);
		return;
	}

	struct scaler_policy_input in = {.current = cur,
	                                 .min = min,
	                                 .max = max,
	                                 .average = first->pm.average,
	                                 .average_valid = first->pm.valid,
	                                 .now = ctl_mono_now(),
	                                 .metrics = pms,
	                                 .nmetrics = e->nq,
	                                 .idle_timeout = z->cz->idle_timeout};
	struct scaler_policy_decision out = {.desired = cur};
	if (z->policy.plugin->ops.policy.decide(z->policy.ctx, &in, &out) < 0) {
		czone_hold(z, cur, "policy error", "the policy plugin failed", 1);
		json_decref(values);
		eval_free(e);
		return;
	}
	int want = out.desired;
	log_debug("zone %s: evaluation: %d server(s), %s %.2f over %d value(s); policy %s: "
	          "%d -> %d (%s)",
	          z->name, cur, first->pm.name, first->pm.average, first->pm.n,
	          z->policy.plugin->name, cur, out.desired, out.reason);
	snprintf(reason, sizeof(reason), "%s", out.reason[0] ? out.reason : out.rule);
	if (want > max) {
		if (cur >= max) {
			char why[600];
			snprintf(why, sizeof(why), "%s; already at max (%d)", reason, max);
			czone_hold(z, cur, "max reached", why, 1);
			json_decref(values);
			eval_free(e);
			return;
		}
		want = max;
	}
	if (want < min)
		want = min;
	if (first->pm.valid)
		json_object_set_new(values, "_average", json_real(first->pm.average));
	if (e->nq > 1) {
		json_t *all = json_array();
		for (size_t i = 0; i < e->nq; i++)
			json_array_append_new(
			    all,
			    json_pack("{s:s, s:f, s:o, s:o}", "metric", e->q[i].pm.name, "window",
			              e->q[i].pm.window, "total",
			              e->q[i].pm.valid ? json_real(e->q[i].pm.total) : json_null(),
			              "average",
			              e->q[i].pm.valid ? json_real(e->q[i].pm.average)
			                               : json_null()));
		json_object_set_new(values, "_metrics", all);
	}
	czone_act(z, cur, want, out.rule[0] ? out.rule : z->policy.plugin->name, reason, values,
	          any_missing);
	eval_free(e);
}

static void eval_query_done(void *arg, int status, const struct scaler_metrics_result *res,
                            const char *err)
{
	struct eval_query *q = arg;
	struct eval *e = q->e;
	struct czone *z = e->z;
	struct controller *c = z->c;

	c->metric_queries++;
	c->metric_seconds += ev_time() - e->t0;
	if (status != 0 || !res) {
		c->metric_errors++;
		q->failed = 1;
		snprintf(q->err, sizeof(q->err), "%s: %s", q->pm.name, err ? err : "query failed");
	} else {
		int first_window = q == e->q || q[-1].metric != q->metric;
		double sum = 0;
		int good = 0;
		if (first_window)
			q->values = json_object();
		for (size_t i = 0; i < res->n; i++) {
			const struct scaler_metric_value *v = &res->values[i];
			int ok = !v->missing && isfinite(v->value);
			if (ok) {
				sum += v->value;
				good++;
			}
			if (!first_window)
				continue;
			json_object_set_new(q->values, v->server_id,
			                    ok ? json_real(v->value) : json_null());
			/* a server's own metric: the zone's first one */
			struct cserver *s = q->metric == 0 ? czone_server(z, v->server_id) : NULL;
			if (s) {
				s->metric_valid = ok;
				s->metric = v->value;
			}
		}
		q->pm.total = sum;
		/* the host's average (a 1.1 plugin's own) */
		q->pm.valid = metrics_average(res, q->abi_minor, &q->pm.average);
		q->pm.n = good;
		q->pm.complete = (size_t)good == e->n && res->n >= e->n;
	}
	if (--e->pending == 0)
		eval_decide(e);
}

/* A zone outside its bounds goes back within them whatever the metrics say. */
static void czone_bound(struct czone *z, int cur, int to, const char *rule, const char *kind,
                        const char *would, const char *reason)
{
	czone_decision(z, kind, cur, to, rule, reason);
	if (z->cz->dry_run) {
		czone_event(z, "dry_run", cur, to, rule, reason,
		            json_pack("{s:s}", "would", would));
		return;
	}
	czone_event(z, kind, cur, to, rule, reason, NULL);
	czone_resize(z, cur, to);
}

void czone_evaluate(struct czone *z)
{
	struct controller *c = z->c;
	if (!c->active || z->removed || z->evaluating || c->reconcile)
		return;
	if (!z->loaded) {
		czone_load(z);
		return;
	}
	z->evaluations++;
	int cur = czone_size(z);

	/* wait for servers still starting or being deleted before deciding more */
	for (size_t i = 0; i < z->nsrv; i++)
		if (z->srv[i].owner) {
			czone_history_sample(z, cur, NULL, 0); /* the count moves meanwhile */
			return;
		}
	char reason[128];
	int min = czone_min(z);
	if (cur < min && !czone_pin_active(z)) {
		if (min > z->cz->min)
			snprintf(reason, sizeof(reason),
			         "woken from zero: at least %d server for idle_timeout (%d < %d)",
			         min, cur, min);
		else
			snprintf(reason, sizeof(reason), "below the zone's minimum (%d < %d)", cur,
			         min);
		czone_bound(z, cur, min, "min", "fill", "fill", reason);
		return;
	}
	if (cur > z->cz->max && !czone_pin_active(z)) {
		/* max was lowered by a reload */
		snprintf(reason, sizeof(reason), "above the zone's maximum (%d > %d)", cur,
		         z->cz->max);
		czone_bound(z, cur, z->cz->max, "max", "scale_down", "trim", reason);
		return;
	}

	struct eval *e = calloc(1, sizeof(*e));
	if (!e)
		return;
	e->z = z;
	e->conf = conf_ref(z->conf);
	e->gen = c->gen;
	e->t0 = ev_time();
	e->servers = calloc(z->nsrv + 1, sizeof(*e->servers));
	for (size_t i = 0; e->servers && i < z->nsrv; i++)
		if (strcmp(z->srv[i].rec.state, "serving") == 0)
			e->servers[e->n++] = z->srv[i].rec.srv;
	z->refs++;
	z->evaluating = 1;
	if (e->n == 0) {
		/* nothing to measure: only the pin or the minimum can act */
		eval_decide(e);
		return;
	}
	size_t nw = z->nwindows ? z->nwindows : 1;
	for (size_t m = 0; m < z->nmetrics; m++)
		for (size_t w = 0; w < nw; w++) {
			struct eval_query *q = &e->q[e->nq++];
			q->e = e;
			q->metric = m;
			q->window = z->nwindows ? z->windows[w] : z->cz->window;
			q->pm.name = z->metrics[m].name;
			q->pm.unit = z->metrics[m].unit;
			q->abi_minor = z->metrics[m].pi.plugin->desc->abi_minor;
			q->pm.window = q->window;
		}
	e->pending = e->nq + 1; /* held until every query is started */
	for (size_t i = 0; i < e->nq; i++) {
		struct eval_query *q = &e->q[i];
		const struct plugin_instance *pi = &z->metrics[q->metric].pi;
		if (pi->plugin->ops.metrics.query(pi->ctx, &z->cz->pub, e->servers, e->n, q->window,
		                                  eval_query_done, q) < 0)
			eval_query_done(q, -1, NULL, "the metrics plugin refused the query");
	}
	if (--e->pending == 0)
		eval_decide(e);
}
