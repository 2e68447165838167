/* A policy's target per metric (targets.h). */
#include "config.h"

#include "targets.h"

#include <stdio.h>
#include <string.h>

int pol_targets_parse(const struct scaler_host *host, const config_setting_t *conf, double def,
                      double hi, struct pol_targets *t)
{
	int bad = 0;
	const config_setting_t *s = conf ? config_setting_get_member(conf, "target") : NULL;

	memset(t, 0, sizeof(*t));
	t->where = s ? s : conf;
	t->target = def;
	if (!s || !config_setting_is_group(s)) {
		if (host->conf_number(conf, "target", def, 0, hi, &t->target) < 0)
			return -1;
		if (t->target <= 0)
			return host->conf_error(s, "target must be above 0, it divides the metric");
		return 0;
	}
	int n = config_setting_length(s);
	if (n < 1 || n > POL_MAX_METRICS)
		bad |= host->conf_error(s, "target names 1 to %d metrics (got %d)", POL_MAX_METRICS,
		                        n);
	for (int i = 0; i < n && i < POL_MAX_METRICS; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		double v;
		if (host->conf_number(s, config_setting_name(e), 0, 0, hi, &v) < 0) {
			bad = -1;
			continue;
		}
		if (v <= 0) {
			bad |=
			    host->conf_error(e, "a target must be above 0, it divides the metric");
			continue;
		}
		snprintf(t->names[t->ntargets], sizeof(t->names[0]), "%s", config_setting_name(e));
		t->targets[t->ntargets++] = v;
	}
	return bad ? -1 : 0;
}

int pol_targets_bind(const struct scaler_host *host, struct pol_targets *t,
                     const char *const *metrics, size_t n)
{
	t->nbound = 0;
	if (n > POL_MAX_METRICS)
		return host->conf_error(t->where, "at most %d metrics", POL_MAX_METRICS);
	if (!t->ntargets) {
		if (n > 1)
			return host->conf_error(t->where,
			                        "the zone has %zu metrics: give each a target, as "
			                        "target = { %s = ...; %s = ...; };",
			                        n, metrics[0], metrics[1]);
		t->bound[0] = t->target;
		t->nbound = n;
		return 0;
	}
	for (int k = 0; k < t->ntargets; k++) {
		size_t i = 0;
		while (i < n && strcmp(metrics[i], t->names[k]))
			i++;
		if (i == n)
			return host->conf_error(
			    t->where, "a target for \"%s\", which is not a metric of the zone",
			    t->names[k]);
	}
	for (size_t i = 0; i < n; i++) {
		int k = 0;
		while (k < t->ntargets && strcmp(metrics[i], t->names[k]))
			k++;
		if (k == t->ntargets)
			return host->conf_error(t->where, "no target for the zone's metric \"%s\"",
			                        metrics[i]);
		t->bound[i] = t->targets[k];
	}
	t->nbound = n;
	return 0;
}

void pol_targets_guides(const struct pol_targets *t, const char *name, double factor,
                        struct scaler_policy_guide *out, size_t max, size_t *n)
{
	for (size_t i = 0; i < t->nbound && *n < max; i++)
		out[(*n)++] = (struct scaler_policy_guide){
		    .metric = i, .name = name, .value = t->bound[i] * factor};
}
