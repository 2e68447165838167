/*
 * policy "concurrency": scaling on requests after Knative's Pod Autoscaler
 * (knative.dev/docs/serving/autoscaling/kpa-specific, and the defaults of
 * its config-autoscaler: stable-window 60s, panic-window-percentage 10.0,
 * panic-threshold-percentage 200, max-scale-up-rate 1000, max-scale-down-rate
 * 2.0). Made for the "balancer" metrics plugin (requests in flight, or per
 * second with metric = "rps"), it works with any metric:
 *
 * - stable: desired = ceil(total over stable_window / target), the total of
 *   every server's value (what Knative calls the observed concurrency),
 *   target per server;
 * - panic: when the panic-window total reaches panic_threshold × target ×
 *   the current servers (Knative: the panic pod count is at least twice the
 *   ready pods), scale at once on the panic-window total, and never scale
 *   down while in panic ("the Revision will not scale down to avoid
 *   churn"); leave panic once a whole stable window passed without the
 *   condition ("no reason to react quickly during the stable window");
 * - scale to zero (with the zone's min = 0): the last server goes once the
 *   stable window has seen no request for the zone's idle_timeout (Knative:
 *   "no traffic ... for the entire duration of the stable window", then its
 *   scale-to-zero-grace-period);
 * - step limits: at most ceil(max_scale_up_rate × current) servers, at
 *   least floor(current / max_scale_down_rate), per evaluation;
 * - a missing stable-window value (a balancer worker that has not observed
 *   the whole window: restarted) never scales down: the policy holds, and
 *   only panic can act on the panic window;
 * - several metrics (`target = { requests = 10; rps = 200; };`): each gives
 *   its count as above and the largest wins; the reason names its metric.
 *
 * The host queries every metric over [stable_window, panic_window] (bind).
 */
#include "config.h"

#include <scaler/plugin.h>

#include "targets.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CC_WHO "policy concurrency"

struct cc_settings {
	struct pol_targets t; /* per metric (bind) */
	double stable, panic; /* windows, seconds */
	double threshold;     /* panic when the panic total >= threshold x target x current */
	double up_rate, down_rate;
};

struct cc_ctx {
	const struct scaler_host *host;
	struct cc_settings set;
	int panicking;
	double panic_since, last_over; /* monotonic */
	int panic_high; /* the most servers panic asked for: never less while it lasts */
	int idle;       /* the stable window read 0 */
	double idle_since;
};

static const char *const cc_known[] = {"plugin",
                                       "target",
                                       "stable_window",
                                       "panic_window",
                                       "panic_threshold",
                                       "max_scale_up_rate",
                                       "max_scale_down_rate",
                                       NULL};

static int cc_parse(const struct scaler_host *host, const config_setting_t *conf,
                    struct cc_settings *set)
{
	int bad = 0;

	memset(set, 0, sizeof(*set));
	if (conf && !config_setting_is_group(conf))
		return host->conf_error(conf, "the policy settings must be a group { ... }");
	if (conf && host->conf_check_known(conf, cc_known) < 0)
		bad = -1;
	/* Knative's container-concurrency-target-default */
	bad |= pol_targets_parse(host, conf, 100, 1e9, &set->t);
	bad |= host->conf_number(conf, "stable_window", 60, 1, 3600, &set->stable);
	bad |= host->conf_number(conf, "panic_window", set->stable / 10, 0.1, 3600, &set->panic);
	bad |= host->conf_number(conf, "panic_threshold", 2.0, 1.1, 10, &set->threshold);
	bad |= host->conf_number(conf, "max_scale_up_rate", 1000, 1.0, 1e6, &set->up_rate);
	bad |= host->conf_number(conf, "max_scale_down_rate", 2.0, 1.0, 1e6, &set->down_rate);
	if (!bad && set->panic > set->stable)
		return host->conf_error(config_setting_get_member(conf, "panic_window"),
		                        "panic_window (%g s) must not be longer than stable_window "
		                        "(%g s)",
		                        set->panic, set->stable);
	return bad ? -1 : 0;
}

static int cc_init(const struct scaler_host *host, const config_setting_t *conf, void **ctxp)
{
	struct cc_settings set;

	if (cc_parse(host, conf, &set) < 0)
		return -1;
	struct cc_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		host->log(SCALER_LOG_ERR, CC_WHO, "out of memory");
		return -1;
	}
	ctx->host = host;
	ctx->set = set;
	*ctxp = ctx;
	return 0;
}

/* New settings from the next evaluation; panic and idle state stay. */
static int cc_reload(void *vctx, const config_setting_t *conf)
{
	struct cc_ctx *ctx = vctx;
	struct cc_settings set;

	if (cc_parse(ctx->host, conf, &set) < 0)
		return -1;
	ctx->set = set;
	return 0;
}

static void cc_fini(void *vctx)
{
	free(vctx);
}

static int cc_bind(void *vctx, const char *const *metrics, size_t n, double *windows,
                   size_t *nwindows)
{
	struct cc_ctx *ctx = vctx;

	windows[0] = ctx->set.stable;
	windows[1] = ctx->set.panic;
	*nwindows = 2;
	return pol_targets_bind(ctx->host, &ctx->set.t, metrics, n);
}

/* "41 in flight", or "41 (requests)" for a metric without a unit. */
static void cc_amount(char *out, size_t len, const struct scaler_policy_metric *m, double v)
{
	if (m->unit && m->unit[0])
		snprintf(out, len, "%.*f %s", v < 10 ? 1 : 0, v, m->unit);
	else
		snprintf(out, len, "%.*f (%s)", v < 10 ? 1 : 0, v, m->name);
}

static int cc_ceil(double v)
{
	double c = ceil(v - 1e-9); /* 30 / 10 is 3, not 3.0000000000000004 */
	return c > INT_MAX / 2 ? INT_MAX / 2 : c < 0 ? 0 : (int)c;
}

/* What one window of every metric asks for: the largest count, and which
 * metric (-1 when none has a value). */
struct cc_view {
	int metric;
	int desired;
	double total, ratio; /* the deciding metric's total, and total / (target x current) */
	int over;            /* some metric is at or past the panic threshold */
};

static void cc_view(const struct cc_ctx *ctx, const struct scaler_policy_input *in, size_t nm,
                    int which, struct cc_view *v)
{
	memset(v, 0, sizeof(*v));
	v->metric = -1;
	for (size_t i = 0; i < nm; i++) {
		const struct scaler_policy_metric *m = &in->metrics[2 * i + (size_t)which];
		double target = ctx->set.t.bound[i];
		if (!m->valid || !isfinite(m->total))
			continue;
		double total = m->total > 0 ? m->total : 0;
		int d = cc_ceil(total / target);
		double ratio = in->current > 0 ? total / (target * in->current) : INFINITY;
		if (ratio >= ctx->set.threshold)
			v->over = 1;
		if (v->metric < 0 || d > v->desired) {
			v->metric = (int)i;
			v->desired = d;
			v->total = total;
			v->ratio = ratio;
		}
	}
}

static int cc_decide(void *vctx, const struct scaler_policy_input *in,
                     struct scaler_policy_decision *out)
{
	struct cc_ctx *ctx = vctx;
	const struct cc_settings *s = &ctx->set;
	int cur = in->current, want;
	char amount[96], why[200];
	const char *rule;

	if (cur <= 0) {
		out->desired = cur;
		snprintf(out->rule, sizeof(out->rule), "no servers");
		snprintf(out->reason, sizeof(out->reason),
		         "The zone has no server; its balancer wakes it when a request arrives: "
		         "holding at 0.");
		return 0;
	}
	size_t nm =
	    ctx->set.t.nbound && in->nmetrics == 2 * ctx->set.t.nbound ? ctx->set.t.nbound : 0;
	if (!nm) {
		out->desired = cur;
		snprintf(out->rule, sizeof(out->rule), "policy error");
		snprintf(out->reason, sizeof(out->reason),
		         "The policy was not given its stable and panic windows: holding at %d.",
		         cur);
		return 0;
	}
	struct cc_view st, pn;
	cc_view(ctx, in, nm, 0, &st);
	cc_view(ctx, in, nm, 1, &pn);
	const struct scaler_policy_metric *pm =
	    pn.metric >= 0 ? &in->metrics[2 * pn.metric + 1] : NULL;
	const struct scaler_policy_metric *sm = st.metric >= 0 ? &in->metrics[2 * st.metric] : NULL;

	/* panic: enter on the condition, stay a stable window past its last sighting */
	if (pn.over) {
		if (!ctx->panicking) {
			ctx->panicking = 1;
			ctx->panic_since = in->now;
			ctx->panic_high = cur;
		}
		ctx->last_over = in->now;
	} else if (ctx->panicking && in->now - ctx->last_over >= s->stable) {
		ctx->panicking = 0;
	}

	if (ctx->panicking) {
		int asked = pm ? pn.desired : 0;
		want = asked > cur ? asked : cur;
		if (want < ctx->panic_high)
			want = ctx->panic_high;
		ctx->panic_high = want;
		ctx->idle = 0;
		rule = "panic";
		if (pm && pn.over) {
			cc_amount(amount, sizeof(amount), pm, pn.total);
			snprintf(why, sizeof(why),
			         "panic: %s over %g s, %.1fx the target of %g per server", amount,
			         pm->window, pn.ratio, ctx->set.t.bound[pn.metric]);
		} else {
			snprintf(why, sizeof(why),
			         "panic since %.0f s (it ends %g s after the panic window last "
			         "reached %gx the target): no scale-down",
			         in->now - ctx->panic_since, s->stable, s->threshold);
		}
	} else if (!sm) {
		/* the stable window is missing: never scale down on it */
		out->desired = cur;
		snprintf(out->rule, sizeof(out->rule), "metrics missing");
		snprintf(out->reason, sizeof(out->reason),
		         "No value over the stable window of %g s (a balancer that has not "
		         "observed it all knows nothing of it): holding at %d.",
		         s->stable, cur);
		ctx->idle = 0;
		return 0;
	} else {
		want = st.desired;
		cc_amount(amount, sizeof(amount), sm, st.total);
		rule = "stable";
		snprintf(
		    why, sizeof(why),
		    "stable: %s over %g s against the target of %g per server: ceil(%.2f) = %d",
		    amount, sm->window, ctx->set.t.bound[st.metric],
		    st.total / ctx->set.t.bound[st.metric], st.desired);
		if (want == 0) {
			/* every metric read 0 over the stable window: idle */
			if (!ctx->idle) {
				ctx->idle = 1;
				ctx->idle_since = in->now;
			}
			double idle_for = in->now - ctx->idle_since;
			rule = "idle";
			if (in->min > 0 || idle_for < in->idle_timeout) {
				want = 1;
				if (in->min > 0)
					snprintf(
					    why, sizeof(why),
					    "idle: no request over the last %g s, and the zone's "
					    "min is %d",
					    sm->window, in->min);
				else
					snprintf(
					    why, sizeof(why),
					    "idle: no request over the last %g s, for %.0f s of "
					    "idle_timeout (%g s): keeping one server",
					    sm->window, idle_for, in->idle_timeout);
			} else {
				snprintf(
				    why, sizeof(why),
				    "idle: no request over the last %g s, for idle_timeout (%g s): "
				    "scaling to zero",
				    sm->window, in->idle_timeout);
			}
		} else {
			ctx->idle = 0;
		}
	}

	/* step limits, as Knative's max-scale-up-rate and max-scale-down-rate */
	double up = ceil(s->up_rate * cur), down = floor(cur / s->down_rate);
	if (want > cur && want > up) {
		snprintf(
		    out->reason, sizeof(out->reason),
		    "%s; scale-up limited to %gx the servers per evaluation: %d -> %d servers.",
		    why, s->up_rate, cur, (int)up);
		want = (int)up;
		rule = "step limit";
	} else if (want < cur && want < down) {
		snprintf(out->reason, sizeof(out->reason),
		         "%s; scale-down limited to 1/%g of the servers per evaluation: %d -> %d "
		         "servers.",
		         why, s->down_rate, cur, (int)down);
		want = (int)down;
		rule = "step limit";
	} else {
		snprintf(out->reason, sizeof(out->reason), "%s: %d -> %d servers.", why, cur, want);
	}
	if (ctx->panicking && want > ctx->panic_high)
		ctx->panic_high = want;
	out->desired = want;
	snprintf(out->rule, sizeof(out->rule), "%s", rule);
	return 0;
}

/* Each metric's target per server, and where the panic window panics. */
static size_t cc_guides(void *vctx, struct scaler_policy_guide *out, size_t max)
{
	const struct cc_settings *s = &((struct cc_ctx *)vctx)->set;
	size_t n = 0;
	pol_targets_guides(&s->t, "target", 1, out, max, &n);
	pol_targets_guides(&s->t, "panic_threshold", s->threshold, out, max, &n);
	return n;
}

static const struct scaler_policy_ops cc_ops = {
    .size = sizeof(struct scaler_policy_ops),
    .decide = cc_decide,
    .bind = cc_bind,
    .guides = cc_guides,
};

SCALER_PLUGIN_DEFINE(SCALER_KIND_POLICY, "concurrency", PACKAGE_VERSION, cc_init, cc_reload,
                     cc_fini, policy, &cc_ops);
