// policy "band_cxx": policy_band.c written in C++ (-std=c++17 or later).
// SCALER_PLUGIN_DEFINE gives C++ its own expansion: the descriptor has C
// linkage and default visibility, as scalerd looks it up.
//
//   policy = { plugin = "band_cxx"; low = 20.0; high = 60.0; };
#include <cstdio>
#include <new>

#include <scaler/plugin.h>

namespace
{

struct band {
	double low = 20.0, high = 60.0;
};

int band_init(const struct scaler_host *host, const config_setting_t *conf, void **ctx)
{
	static const char *const known[] = {"plugin", "low", "high", nullptr};
	band b;

	if (conf && host->conf_check_known(conf, known) < 0)
		return -1;
	if (host->conf_number(conf, "low", b.low, 0, 1e9, &b.low) < 0 ||
	    host->conf_number(conf, "high", b.high, 0, 1e9, &b.high) < 0)
		return -1;
	if (b.low >= b.high)
		return host->conf_error(conf, "low (%g) must be below high (%g)", b.low, b.high);
	band *p = new (std::nothrow) band(b);
	if (!p)
		return -1;
	*ctx = p;
	return 0;
}

void band_fini(void *ctx)
{
	delete static_cast<band *>(ctx);
}

int band_decide(void *ctx, const struct scaler_policy_input *in, struct scaler_policy_decision *out)
{
	const band *b = static_cast<const band *>(ctx);
	const char *rule = "within band";

	out->desired = in->current;
	if (in->average > b->high) {
		out->desired = in->current + 1;
		rule = "above high";
	} else if (in->average < b->low) {
		out->desired = in->current - 1;
		rule = "below low";
	}
	std::snprintf(out->rule, sizeof(out->rule), "%s", rule);
	std::snprintf(out->reason, sizeof(out->reason), "average %.1f, band %.1f..%.1f",
	              in->average, b->low, b->high);
	return 0;
}

const struct scaler_policy_ops band_ops = {sizeof(scaler_policy_ops), band_decide};

} // namespace

SCALER_PLUGIN_DEFINE(SCALER_KIND_POLICY, "band_cxx", "1.0", band_init, nullptr, band_fini, policy,
                     &band_ops);
