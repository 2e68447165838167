/*
 * policy "threshold": the seed's rule.
 *
 *   average >= max_cpu                      → current + step
 *   average <= min_cpu and current > min    → current - step
 *   otherwise                               → hold
 *
 * within_bounds_trigger = N makes the rule act only after N consecutive
 * evaluations past the same threshold; any other outcome in between (a
 * hold, the other threshold, missing metrics) starts the count again, and
 * so does acting, so that a new server gets N evaluations to take load.
 *
 * Thresholds are in the metric's unit: percent CPU for the built-in metrics
 * plugins. They may exceed 100 because a metric that counts every core (as
 * `docker stats` does) goes up to 100 × cores.
 */
#include "config.h"

#include <scaler/plugin.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct thr_settings {
	double max_cpu;
	double min_cpu;
	int step;
	int trigger; /* within_bounds_trigger */
};

struct thr_ctx {
	const struct scaler_host *host;
	struct thr_settings set;
	int above; /* consecutive evaluations at or above max_cpu */
	int below; /* consecutive evaluations at or below min_cpu */
};

static const char *const thr_known[] = {
    "plugin", "max_cpu", "min_cpu", "step", "within_bounds_trigger", NULL};

static int thr_parse(const struct scaler_host *host, const config_setting_t *conf,
                     struct thr_settings *set)
{
	int bad = 0;
	long long step, trigger;

	if (conf && !config_setting_is_group(conf))
		return host->conf_error(conf, "the policy settings must be a group { ... }");
	if (conf && host->conf_check_known(conf, thr_known) < 0)
		bad = -1;
	/* every bad value gets its own message, so check them all */
	bad |= host->conf_number(conf, "max_cpu", 70, 0, 1e6, &set->max_cpu);
	bad |= host->conf_number(conf, "min_cpu", 10, 0, 1e6, &set->min_cpu);
	bad |= host->conf_integer(conf, "step", 1, 1, 1000, &step);
	bad |= host->conf_integer(conf, "within_bounds_trigger", 1, 1, 1000, &trigger);
	set->step = (int)step;
	set->trigger = (int)trigger;
	if (bad)
		return -1;
	if (set->min_cpu >= set->max_cpu) {
		config_setting_t *s = config_setting_get_member(conf, "min_cpu");
		if (!s)
			s = config_setting_get_member(conf, "max_cpu");
		return host->conf_error(
		    s,
		    "min_cpu (%g) must be below max_cpu (%g), or the zone would "
		    "scale up and down on the same load",
		    set->min_cpu, set->max_cpu);
	}
	return 0;
}

static int thr_init(const struct scaler_host *host, const config_setting_t *conf, void **ctxp)
{
	struct thr_settings set;
	struct thr_ctx *ctx;

	if (thr_parse(host, conf, &set) < 0)
		return -1;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		host->log(SCALER_LOG_ERR, "policy threshold", "out of memory");
		return -1;
	}
	ctx->host = host;
	ctx->set = set;
	*ctxp = ctx;
	return 0;
}

static int thr_reload(void *vctx, const config_setting_t *conf)
{
	struct thr_ctx *ctx = vctx;
	struct thr_settings set;

	if (thr_parse(ctx->host, conf, &set) < 0)
		return -1;
	ctx->set = set;
	ctx->above = ctx->below = 0;
	return 0;
}

static void thr_fini(void *ctx)
{
	free(ctx);
}

static void thr_out(struct scaler_policy_decision *out, int desired, const char *rule)
{
	out->desired = desired;
	snprintf(out->rule, sizeof(out->rule), "%s", rule);
}

/* "(2 of 3 consecutive evaluations)" or "" without a trigger. */
static const char *thr_streak(const struct thr_ctx *ctx, int n, char *buf, size_t len)
{
	if (ctx->set.trigger <= 1)
		return "";
	snprintf(buf, len, " (%d of %d consecutive evaluations)", n, ctx->set.trigger);
	return buf;
}

static int thr_decide(void *vctx, const struct scaler_policy_input *in,
                      struct scaler_policy_decision *out)
{
	struct thr_ctx *ctx = vctx;
	const struct thr_settings *s = &ctx->set;
	char streak[64];
	int cur = in->current;

	if (!in->average_valid || !isfinite(in->average)) {
		ctx->above = ctx->below = 0;
		thr_out(out, cur, "metrics missing");
		snprintf(out->reason, sizeof(out->reason),
		         "No metric value for any server in the window: holding at %d servers.",
		         cur);
		return 0;
	}

	if (in->average >= s->max_cpu) {
		ctx->below = 0;
		ctx->above++;
		thr_out(out, cur, "above max_cpu");
		if (cur >= in->max) {
			ctx->above = 0;
			snprintf(out->reason, sizeof(out->reason),
			         "Average %.1f is at or above max_cpu %g but the zone already has "
			         "its maximum of %d servers.",
			         in->average, s->max_cpu, in->max);
		} else if (ctx->above < s->trigger) {
			snprintf(out->reason, sizeof(out->reason),
			         "Average %.1f is at or above max_cpu %g%s: holding at %d servers "
			         "until %d in a row.",
			         in->average, s->max_cpu,
			         thr_streak(ctx, ctx->above, streak, sizeof(streak)), cur,
			         s->trigger);
		} else {
			out->desired = cur + s->step;
			snprintf(out->reason, sizeof(out->reason),
			         "Average %.1f is at or above max_cpu %g%s: %d -> %d servers.",
			         in->average, s->max_cpu,
			         thr_streak(ctx, ctx->above, streak, sizeof(streak)), cur,
			         out->desired);
			ctx->above = 0;
		}
		return 0;
	}

	if (in->average <= s->min_cpu) {
		ctx->above = 0;
		ctx->below++;
		thr_out(out, cur, "below min_cpu");
		if (cur <= in->min) {
			ctx->below = 0;
			snprintf(out->reason, sizeof(out->reason),
			         "Average %.1f is at or below min_cpu %g but the zone already has "
			         "its minimum of %d servers.",
			         in->average, s->min_cpu, in->min);
		} else if (ctx->below < s->trigger) {
			snprintf(out->reason, sizeof(out->reason),
			         "Average %.1f is at or below min_cpu %g%s: holding at %d servers "
			         "until %d in a row.",
			         in->average, s->min_cpu,
			         thr_streak(ctx, ctx->below, streak, sizeof(streak)), cur,
			         s->trigger);
		} else {
			out->desired = cur - s->step;
			snprintf(out->reason, sizeof(out->reason),
			         "Average %.1f is at or below min_cpu %g%s: %d -> %d servers.",
			         in->average, s->min_cpu,
			         thr_streak(ctx, ctx->below, streak, sizeof(streak)), cur,
			         out->desired);
			ctx->below = 0;
		}
		return 0;
	}

	ctx->above = ctx->below = 0;
	thr_out(out, cur, "within band");
	snprintf(out->reason, sizeof(out->reason),
	         "Average %.1f is between min_cpu %g and max_cpu %g: holding at %d servers.",
	         in->average, s->min_cpu, s->max_cpu, cur);
	return 0;
}

static size_t thr_guides(void *vctx, struct scaler_policy_guide *out, size_t max)
{
	const struct thr_settings *s = &((struct thr_ctx *)vctx)->set;
	const struct scaler_policy_guide g[] = {{0, "max_cpu", s->max_cpu},
	                                        {0, "min_cpu", s->min_cpu}};
	size_t n = max < 2 ? max : 2;
	memcpy(out, g, n * sizeof(*out));
	return n;
}

static const struct scaler_policy_ops thr_ops = {
    .size = sizeof(struct scaler_policy_ops),
    .decide = thr_decide,
    .guides = thr_guides,
};

SCALER_PLUGIN_DEFINE(SCALER_KIND_POLICY, "threshold", PACKAGE_VERSION, thr_init, thr_reload,
                     thr_fini, policy, &thr_ops);
