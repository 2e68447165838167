/* A policy's `target`: one number for a zone's one metric, or a group with a
 * target per metric name (target = { cpu = 60.0; requests = 10.0; };), bound
 * to the zone's metrics by the policy's bind (ABI 1.3). Shared by the
 * "target" and "concurrency" policies (each plugin has its own copy). */
#ifndef SCALER_POLICY_TARGETS_H
#define SCALER_POLICY_TARGETS_H

#include <scaler/plugin.h>

#define POL_MAX_METRICS 8

struct pol_targets {
	double target; /* the one metric's */
	char names[POL_MAX_METRICS][64];
	double targets[POL_MAX_METRICS];
	int ntargets;                  /* > 0: a group */
	const config_setting_t *where; /* the target setting (or the group), for bind's errors */
	/* bound: the target of each of the zone's metrics, in its order */
	double bound[POL_MAX_METRICS];
	size_t nbound;
};

/* Read `target` of conf (default def, above 0, at most hi): -1 after
 * conf_error. */
int pol_targets_parse(const struct scaler_host *host, const config_setting_t *conf, double def,
                      double hi, struct pol_targets *t);
/* Bind to the zone's metric names: a number takes one metric, a group
 * exactly the zone's; -1 after conf_error (naming the target setting). */
int pol_targets_bind(const struct scaler_host *host, struct pol_targets *t,
                     const char *const *metrics, size_t n);
/* Guides (ABI 1.5) for the bound targets, each times factor, named name,
 * appended to out (holding *n of max). */
void pol_targets_guides(const struct pol_targets *t, const char *name, double factor,
                        struct scaler_policy_guide *out, size_t max, size_t *n);

#endif
