/*
 * policy "target": target tracking after the Kubernetes Horizontal Pod
 * Autoscaler (kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale,
 * "Algorithm details" and "Stabilization window"):
 *
 *   desired = ceil(current × average / target)
 *
 * - no change while |average / target − 1| <= tolerance (HPA: 0.1);
 * - every evaluation stores its recommendation; a scale-down goes only as
 *   far as the highest recommendation of the last stabilization_down
 *   seconds (HPA: 300 s), a scale-up only as far as the lowest of the last
 *   stabilization_up seconds (HPA: 0 s), so a short dip or spike does not
 *   make the zone flap;
 * - at most max_step_up / max_step_down servers, or max_step_*_percent of
 *   the current count, per evaluation (0 = unlimited); when both are set
 *   the larger change is allowed, like the HPA's default selectPolicy Max.
 *   Percent limits round like the HPA: up ceil(current × (1 + p/100)),
 *   down floor(current × (1 − p/100));
 * - a new instance (daemon start, failover, reload that swaps the plugin)
 *   has no history: it counts the server count of its first evaluation as
 *   a recommendation for scale-down, so the first scale-down comes one
 *   stabilization_down window after start at the earliest;
 * - no servers at all → max(min, 1): there is nothing to measure;
 * - missing metrics → hold (and no recommendation is stored);
 * - several metrics (ABI 1.3: `target = { cpu = 60; requests = 10; };`, one
 *   target per metric of the zone): each gives its recommendation as above
 *   and the largest wins, as the HPA does with several metrics
 *   ("Algorithm details": "the largest of the desired replica counts");
 *   a metric without a value is left out.
 */
#include "config.h"

#include <scaler/plugin.h>

#include "targets.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tgt_settings {
	struct pol_targets t; /* per metric (bind) */
	double tolerance;
	double stab_down; /* seconds */
	double stab_up;
	int step_up, step_down;  /* servers, 0 = unlimited */
	double pct_up, pct_down; /* percent of current, 0 = unlimited */
};

struct tgt_rec {
	double t;
	int desired;
};

struct tgt_ctx {
	const struct scaler_host *host;
	struct tgt_settings set;
	struct tgt_rec *recs; /* recommendations, oldest first */
	size_t nrecs, cap;
	/* the first evaluation counts as a recommendation to keep the count
	 * then, for scale-down only: a fresh instance (start, failover) has no
	 * history and must not scale down on its first sample */
	int started_set;
	double started;
	int start_count;
};

static const char *const tgt_known[] = {"plugin",
                                        "target",
                                        "tolerance",
                                        "stabilization_down",
                                        "stabilization_up",
                                        "max_step_up",
                                        "max_step_down",
                                        "max_step_up_percent",
                                        "max_step_down_percent",
                                        NULL};

static int tgt_parse(const struct scaler_host *host, const config_setting_t *conf,
                     struct tgt_settings *set)
{
	int bad = 0;
	long long up, down;

	if (conf && !config_setting_is_group(conf))
		return host->conf_error(conf, "the policy settings must be a group { ... }");
	if (conf && host->conf_check_known(conf, tgt_known) < 0)
		bad = -1;
	bad |= pol_targets_parse(host, conf, 50, 1e6, &set->t);
	bad |= host->conf_number(conf, "tolerance", 0.1, 0, 0.99, &set->tolerance);
	bad |= host->conf_number(conf, "stabilization_down", 300, 0, 86400, &set->stab_down);
	bad |= host->conf_number(conf, "stabilization_up", 0, 0, 86400, &set->stab_up);
	bad |= host->conf_integer(conf, "max_step_up", 0, 0, 100000, &up);
	bad |= host->conf_integer(conf, "max_step_down", 0, 0, 100000, &down);
	set->step_up = (int)up;
	set->step_down = (int)down;
	bad |= host->conf_number(conf, "max_step_up_percent", 0, 0, 10000, &set->pct_up);
	bad |= host->conf_number(conf, "max_step_down_percent", 0, 0, 100, &set->pct_down);
	if (bad)
		return -1;
	return 0;
}

static int tgt_init(const struct scaler_host *host, const config_setting_t *conf, void **ctxp)
{
	struct tgt_settings set;
	struct tgt_ctx *ctx;

	if (tgt_parse(host, conf, &set) < 0)
		return -1;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		host->log(SCALER_LOG_ERR, "policy target", "out of memory");
		return -1;
	}
	ctx->host = host;
	ctx->set = set;
	*ctxp = ctx;
	return 0;
}

/* New settings apply from the next evaluation; the recommendations seen so
 * far stay, so a reload does not open a window for a scale-down. */
static int tgt_reload(void *vctx, const config_setting_t *conf)
{
	struct tgt_ctx *ctx = vctx;
	struct tgt_settings set;

	if (tgt_parse(ctx->host, conf, &set) < 0)
		return -1;
	ctx->set = set;
	return 0;
}

static void tgt_fini(void *vctx)
{
	struct tgt_ctx *ctx = vctx;

	if (!ctx)
		return;
	free(ctx->recs);
	free(ctx);
}

/* Store a recommendation and forget those older than both windows. */
static int tgt_remember(struct tgt_ctx *ctx, double now, int desired)
{
	double keep = fmax(ctx->set.stab_down, ctx->set.stab_up);
	size_t drop = 0;

	while (drop < ctx->nrecs && now - ctx->recs[drop].t > keep)
		drop++;
	if (drop) {
		memmove(ctx->recs, ctx->recs + drop, (ctx->nrecs - drop) * sizeof(*ctx->recs));
		ctx->nrecs -= drop;
	}
	if (ctx->nrecs == ctx->cap) {
		size_t cap = ctx->cap ? ctx->cap * 2 : 32;
		struct tgt_rec *r = realloc(ctx->recs, cap * sizeof(*r));
		if (!r)
			return -1;
		ctx->recs = r;
		ctx->cap = cap;
	}
	ctx->recs[ctx->nrecs].t = now;
	ctx->recs[ctx->nrecs].desired = desired;
	ctx->nrecs++;
	return 0;
}

/* Lowest recommendation within the last `window` seconds (scale-up bound)
 * and highest (scale-down bound); the newest one is always inside. */
static void tgt_window(const struct tgt_ctx *ctx, double now, int *up, int *down)
{
	size_t i;

	*up = INT_MAX;
	*down = INT_MIN;
	if (now - ctx->started < ctx->set.stab_down)
		*down = ctx->start_count;
	for (i = 0; i < ctx->nrecs; i++) {
		double age = now - ctx->recs[i].t;
		int d = ctx->recs[i].desired;
		if (age <= ctx->set.stab_up && d < *up)
			*up = d;
		if (age <= ctx->set.stab_down && d > *down)
			*down = d;
	}
}

/* The furthest the count may move from cur in one evaluation. */
static int tgt_limit_up(const struct tgt_settings *s, int cur)
{
	long long lim = LLONG_MAX;

	if (s->step_up || s->pct_up) {
		long long by_count = s->step_up ? (long long)cur + s->step_up : LLONG_MIN;
		long long by_pct =
		    s->pct_up ? (long long)ceil(cur * (1.0 + s->pct_up / 100.0)) : LLONG_MIN;
		lim = by_count > by_pct ? by_count : by_pct;
	}
	return lim > INT_MAX ? INT_MAX : (int)lim;
}

static int tgt_limit_down(const struct tgt_settings *s, int cur)
{
	long long lim = LLONG_MIN;

	if (s->step_down || s->pct_down) {
		long long by_count = s->step_down ? (long long)cur - s->step_down : LLONG_MAX;
		long long by_pct =
		    s->pct_down ? (long long)floor(cur * (1.0 - s->pct_down / 100.0)) : LLONG_MAX;
		lim = by_count < by_pct ? by_count : by_pct;
	}
	return lim < 0 ? 0 : (int)lim;
}

/* The target of each of the zone's metrics: `target = N` takes one metric,
 * a group takes exactly the zone's. */
static int tgt_bind(void *vctx, const char *const *metrics, size_t n, double *windows,
                    size_t *nwindows)
{
	struct tgt_ctx *ctx = vctx;
	(void)windows;
	*nwindows = 0; /* the zone's window */
	return pol_targets_bind(ctx->host, &ctx->set.t, metrics, n);
}

/* ceil(cur × value / target) outside the tolerance band, else cur. */
static int tgt_raw(const struct tgt_settings *s, int cur, double value, double target,
                   double *ratio)
{
	*ratio = (value > 0 ? value : 0) / target;
	/* 1e-9: 55 / 50 is 1.1000000000000001 in binary */
	if (fabs(*ratio - 1.0) <= s->tolerance + 1e-9)
		return cur;
	double want = ceil(cur * *ratio);
	return want > INT_MAX / 2 ? INT_MAX / 2 : (int)want;
}

static int tgt_decide(void *vctx, const struct scaler_policy_input *in,
                      struct scaler_policy_decision *out)
{
	struct tgt_ctx *ctx = vctx;
	const struct tgt_settings *s = &ctx->set;
	int cur = in->current, raw, up, down, desired, lim;
	double ratio;
	const char *rule;
	char why[200];

	if (cur <= 0) {
		out->desired = in->min > 1 ? in->min : 1;
		snprintf(out->rule, sizeof(out->rule), "no servers");
		snprintf(out->reason, sizeof(out->reason),
		         "The zone has no servers, so load cannot be measured: starting %d.",
		         out->desired);
		return 0;
	}
	if (!ctx->started_set) {
		ctx->started_set = 1;
		ctx->started = in->now;
		ctx->start_count = cur;
	}
	/* several metrics (bound): the largest recommendation of those with a
	 * value; one: the zone average */
	size_t nm = in->nmetrics > 1 && s->t.nbound == in->nmetrics ? in->nmetrics : 0;
	int best = -1, second = -1, best_raw = 0, second_raw = 0;
	double value = in->average, target = s->t.nbound ? s->t.bound[0] : s->t.target;
	for (size_t i = 0; i < nm; i++) {
		double r;
		if (!in->metrics[i].valid || !isfinite(in->metrics[i].average))
			continue;
		int x = tgt_raw(s, cur, in->metrics[i].average, s->t.bound[i], &r);
		if (best < 0 || x > best_raw) {
			second = best;
			second_raw = best_raw;
			best = (int)i;
			best_raw = x;
		} else if (second < 0 || x > second_raw) {
			second = (int)i;
			second_raw = x;
		}
	}
	if (nm && best >= 0) {
		value = in->metrics[best].average;
		target = s->t.bound[best];
	}
	if ((nm && best < 0) || (!nm && (!in->average_valid || !isfinite(in->average)))) {
		out->desired = cur;
		snprintf(out->rule, sizeof(out->rule), "metrics missing");
		snprintf(out->reason, sizeof(out->reason),
		         "No metric value for any server in the window: holding at %d servers.",
		         cur);
		return 0;
	}

	raw = tgt_raw(s, cur, value, target, &ratio);
	char what[96];
	if (nm)
		snprintf(what, sizeof(what), "%s %.1f", in->metrics[best].name, value);
	else
		snprintf(what, sizeof(what), "Average %.1f", value);
	if (raw == cur && fabs(ratio - 1.0) <= s->tolerance + 1e-9) {
		rule = "tolerance";
		snprintf(why, sizeof(why), "%s is within %g%% of the target %g (ratio %.2f)", what,
		         s->tolerance * 100, target, ratio);
	} else {
		rule = raw > cur ? "above target" : raw < cur ? "below target" : "on target";
		snprintf(why, sizeof(why), "%s against the target %g: ceil(%d x %.2f) = %d servers",
		         what, target, cur, ratio, raw);
	}
	if (nm && second >= 0) {
		size_t l = strlen(why);
		snprintf(why + l, sizeof(why) - l, " (%s asks %d)", in->metrics[second].name,
		         second_raw);
	}
	if (tgt_remember(ctx, in->now, raw) < 0) {
		ctx->host->log(SCALER_LOG_ERR, "policy target", "out of memory: holding");
		raw = cur;
	}

	/* stabilization, as the HPA does it: go up to the lowest recent
	 * recommendation, down to the highest, else stay */
	tgt_window(ctx, in->now, &up, &down);
	if (up > cur)
		desired = up;
	else if (down < cur)
		desired = down;
	else
		desired = cur;

	if (desired != raw) {
		rule = "stabilized";
		snprintf(out->reason, sizeof(out->reason),
		         "%s, but the %s recommendation of the last %gs is %d: %d -> %d servers.",
		         why, raw < cur ? "highest" : "lowest",
		         raw < cur ? s->stab_down : s->stab_up, raw < cur ? down : up, cur,
		         desired);
	} else {
		snprintf(out->reason, sizeof(out->reason), "%s: %d -> %d servers.", why, cur,
		         desired);
	}

	if (desired > cur && desired > (lim = tgt_limit_up(s, cur))) {
		rule = "step limit";
		snprintf(out->reason, sizeof(out->reason),
		         "%s; scale-up limited to %d per evaluation: %d -> %d servers.", why,
		         lim - cur, cur, lim);
		desired = lim;
	} else if (desired < cur && desired < (lim = tgt_limit_down(s, cur))) {
		rule = "step limit";
		snprintf(out->reason, sizeof(out->reason),
		         "%s; scale-down limited to %d per evaluation: %d -> %d servers.", why,
		         cur - lim, cur, lim);
		desired = lim;
	}

	out->desired = desired;
	snprintf(out->rule, sizeof(out->rule), "%s", rule);
	return 0;
}

/* Each metric's target and the tolerance band around it. */
static size_t tgt_guides(void *vctx, struct scaler_policy_guide *out, size_t max)
{
	const struct tgt_settings *s = &((struct tgt_ctx *)vctx)->set;
	size_t n = 0;
	pol_targets_guides(&s->t, "target", 1, out, max, &n);
	if (s->tolerance > 0) {
		pol_targets_guides(&s->t, "tolerance", 1 + s->tolerance, out, max, &n);
		pol_targets_guides(&s->t, "tolerance", 1 - s->tolerance, out, max, &n);
	}
	return n;
}

static const struct scaler_policy_ops tgt_ops = {
    .size = sizeof(struct scaler_policy_ops),
    .decide = tgt_decide,
    .bind = tgt_bind,
    .guides = tgt_guides,
};

SCALER_PLUGIN_DEFINE(SCALER_KIND_POLICY, "target", PACKAGE_VERSION, tgt_init, tgt_reload, tgt_fini,
                     policy, &tgt_ops);
