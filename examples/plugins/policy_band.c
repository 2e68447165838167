/* policy "band": one server more while the zone's average is above `high`,
 * one fewer while it is below `low`, none in between. A policy is pure: no
 * I/O, its state in ctx (one instance per zone).
 *
 *   policy = { plugin = "band"; low = 20.0; high = 60.0; };
 */
#include <stdio.h>
#include <stdlib.h>

#include <scaler/plugin.h>

struct band {
	double low, high;
};

static int band_init(const struct scaler_host *host, const config_setting_t *conf, void **ctx)
{
	static const char *const known[] = {"plugin", "low", "high", NULL};
	struct band b, *p;

	if (conf && host->conf_check_known(conf, known) < 0)
		return -1;
	if (host->conf_number(conf, "low", 20.0, 0, 1e9, &b.low) < 0 ||
	    host->conf_number(conf, "high", 60.0, 0, 1e9, &b.high) < 0)
		return -1;
	if (b.low >= b.high)
		return host->conf_error(conf, "low (%g) must be below high (%g)", b.low, b.high);
	if (!(p = malloc(sizeof(*p))))
		return -1;
	*p = b;
	*ctx = p;
	return 0;
}

static void band_fini(void *ctx)
{
	free(ctx);
}

static int band_decide(void *ctx, const struct scaler_policy_input *in,
                       struct scaler_policy_decision *out)
{
	const struct band *b = ctx;

	if (in->average > b->high) {
		out->desired = in->current + 1;
		snprintf(out->rule, sizeof(out->rule), "above high");
	} else if (in->average < b->low) {
		out->desired = in->current - 1;
		snprintf(out->rule, sizeof(out->rule), "below low");
	} else {
		out->desired = in->current;
		snprintf(out->rule, sizeof(out->rule), "within band");
	}
	snprintf(out->reason, sizeof(out->reason), "average %.1f, band %.1f..%.1f", in->average,
	         b->low, b->high);
	return 0;
}

static const struct scaler_policy_ops band_ops = {.size = sizeof(band_ops), .decide = band_decide};

SCALER_PLUGIN_DEFINE(SCALER_KIND_POLICY, "band", "1.0", band_init, NULL, band_fini, policy,
                     &band_ops);
