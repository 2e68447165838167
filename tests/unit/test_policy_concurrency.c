/* policy "concurrency" (after Knative's Pod Autoscaler), loaded as the built
 * plugin through dlopen. The examples take Knative's documented behaviour
 * (knative.dev/docs/serving/autoscaling/kpa-specific: stable window 60 s,
 * panic window 10 % of it, no scale-down in panic, panic left after a
 * stable window without reason, the last replica removed only after no
 * traffic for the whole stable window; config-autoscaler defaults:
 * panic-threshold-percentage 200, max-scale-down-rate 2.0) and its
 * arithmetic: pods = ceil(observed concurrency / target per pod), so 50
 * concurrent requests at a target of 10 make 5 pods. */
#include "config.h"

#include "fakehost.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct scaler_host host;

static const struct scaler_plugin *load(void)
{
	char err[512];
	const struct scaler_plugin *p = fake_plugin_open("policy", "concurrency", err, sizeof(err));

	ck_assert_msg(p, "expected the concurrency plugin to load: %s", err);
	ck_assert_int_eq(p->kind, SCALER_KIND_POLICY);
	ck_assert_ptr_nonnull(p->ops.policy->bind);
	return p;
}

static int init(const struct scaler_plugin *p, config_t *cf, const char *text, void **ctx)
{
	return fake_plugin_init(&host, p, cf, text, ctx);
}

static int bind(const struct scaler_plugin *p, void *ctx, const char *const *names, size_t n,
                double *w, size_t *nw)
{
	return p->ops.policy->bind(ctx, names, n, w, nw);
}

#define MISSING -1.0

struct step {
	double now;
	double stable, panic; /* totals over each window; MISSING: no value */
	int cur;
	int want;
	const char *rule;
};

struct scenario {
	const char *what;
	const char *conf;
	int min;
	double idle_timeout;
	struct step steps[6]; /* ends at rule == NULL */
};

/* clang-format off */
static const struct scenario scenarios[] = {
	{"Knative: 50 concurrent requests at a target of 10 per server make 5", "target = 10;", 1, 30,
	 {{0, 50, 50, 3, 5, "stable"}}},
	{"Knative: rps works the same way (450 requests/s at 200 per server make 3)",
	 "target = 200;", 1, 30,
	 {{0, 450, 450, 2, 3, "stable"}}},
	{"a stable count below the current one scales down at once", "target = 10;", 1, 30,
	 {{0, 18, 18, 3, 2, "stable"}}},
	{"Knative: the panic window at twice the target over the servers scales on it at once",
	 "target = 10;", 1, 30,
	 {{0, 12, 41, 2, 5, "panic"}}},
	{"just below the panic threshold the stable window decides", "target = 10;", 1, 30,
	 {{0, 12, 39, 2, 2, "stable"}}},
	{"panic_threshold = 3 needs three times the target", "target = 10; panic_threshold = 3.0;",
	 1, 30,
	 {{0, 12, 50, 2, 2, "stable"}, {1, 12, 60, 2, 6, "panic"}}},
	{"Knative: no scale-down in panic; panic ends a stable window after its last reason",
	 "target = 10;", 1, 30,
	 {{0, 12, 41, 2, 5, "panic"}, {2, 20, 10, 5, 5, "panic"}, {59, 20, 10, 5, 5, "panic"},
	  {60, 20, 10, 5, 2, "stable"}}},
	{"a new burst in panic keeps it a stable window past the burst", "target = 10;", 1, 30,
	 {{0, 12, 41, 2, 5, "panic"}, {30, 30, 120, 5, 12, "panic"}, {61, 20, 10, 12, 12, "panic"},
	  {90, 20, 10, 12, 6, "step limit"}}},
	{"in panic a lower panic value never lowers the count", "target = 10;", 1, 30,
	 {{0, 12, 41, 2, 5, "panic"}, {1, 12, 45, 5, 5, "panic"}, {2, 12, 30, 5, 5, "panic"}}},
	{"Knative: the last server goes after no request over the stable window, then idle_timeout",
	 "target = 10;", 0, 30,
	 {{0, 0, 0, 1, 1, "idle"}, {29, 0, 0, 1, 1, "idle"}, {30, 0, 0, 1, 0, "idle"}}},
	{"a request in between starts the idle time over", "target = 10;", 0, 30,
	 {{0, 0, 0, 1, 1, "idle"}, {20, 0.5, 0.5, 1, 1, "stable"}, {40, 0, 0, 1, 1, "idle"},
	  {69, 0, 0, 1, 1, "idle"}, {70, 0, 0, 1, 0, "idle"}}},
	{"with min 1 an idle zone keeps one", "target = 10;", 1, 30,
	 {{0, 0, 0, 1, 1, "idle"}, {100, 0, 0, 1, 1, "idle"}}},
	{"an unobserved stable window holds and never scales to zero", "target = 10;", 0, 30,
	 {{0, MISSING, 0, 1, 1, "metrics missing"}, {100, MISSING, 0, 1, 1, "metrics missing"},
	  {101, MISSING, MISSING, 3, 3, "metrics missing"}}},
	{"panic still acts when the stable window is missing", "target = 10;", 1, 30,
	 {{0, MISSING, 45, 2, 5, "panic"}}},
	{"max_scale_up_rate bounds a scale-up", "target = 10; max_scale_up_rate = 2.0;", 1, 30,
	 {{0, 12, 100, 2, 4, "step limit"}, {1, 12, 100, 4, 8, "step limit"}}},
	{"Knative: max-scale-down-rate 2.0 at most halves the servers", "target = 10;", 1, 30,
	 {{0, 10, 10, 8, 4, "step limit"}, {1, 10, 10, 4, 2, "step limit"},
	  {2, 10, 10, 2, 1, "stable"}}},
};
/* clang-format on */

START_TEST(decides_like_the_table)
{
	const struct scenario *sc = &scenarios[_i];
	const struct scaler_plugin *p = load();
	static const char *const names[] = {"balancer"};
	double w[SCALER_POLICY_WINDOWS_MAX];
	size_t nw = 0;
	config_t cf;
	void *ctx = NULL;

	ck_assert_msg(init(p, &cf, sc->conf, &ctx) == 0, "%s: init of %s: %s", sc->what, sc->conf,
	              fake_messages());
	ck_assert_msg(bind(p, ctx, names, 1, w, &nw) == 0, "%s: bind: %s", sc->what,
	              fake_messages());
	ck_assert_uint_eq(nw, 2);
	for (int i = 0; i < 6 && sc->steps[i].rule; i++) {
		const struct step *st = &sc->steps[i];
		struct scaler_policy_metric m[2] = {{.name = "balancer",
		                                     .unit = "in flight",
		                                     .window = w[0],
		                                     .total = st->stable < 0 ? 0 : st->stable,
		                                     .valid = st->stable >= 0,
		                                     .complete = st->stable >= 0,
		                                     .n = st->cur},
		                                    {.name = "balancer",
		                                     .unit = "in flight",
		                                     .window = w[1],
		                                     .total = st->panic < 0 ? 0 : st->panic,
		                                     .valid = st->panic >= 0,
		                                     .complete = st->panic >= 0,
		                                     .n = st->cur}};
		struct scaler_policy_input in = {.current = st->cur,
		                                 .min = sc->min,
		                                 .max = 100,
		                                 .average = m[0].total / st->cur,
		                                 .average_valid = m[0].valid,
		                                 .now = 1000 + st->now,
		                                 .metrics = m,
		                                 .nmetrics = 2,
		                                 .idle_timeout = sc->idle_timeout};
		struct scaler_policy_decision out;

		memset(&out, 0, sizeof(out));
		ck_assert_int_eq(p->ops.policy->decide(ctx, &in, &out), 0);
		ck_assert_msg(
		    out.desired == st->want && !strcmp(out.rule, st->rule),
		    "%s, step %d (t=%gs, stable %g, panic %g, %d servers): expected %d by "
		    "\"%s\", got %d by \"%s\" (%s)",
		    sc->what, i + 1, st->now, st->stable, st->panic, st->cur, st->want, st->rule,
		    out.desired, out.rule, out.reason);
		ck_assert_msg(out.reason[0], "%s: every decision explains itself", sc->what);
	}
	p->fini(ctx);
	config_destroy(&cf);
}
END_TEST

START_TEST(the_windows_are_knatives_by_default)
{
	const struct scaler_plugin *p = load();
	static const char *const names[] = {"balancer"};
	double w[SCALER_POLICY_WINDOWS_MAX];
	size_t nw = 0;
	config_t cf;
	void *ctx;

	ck_assert_int_eq(init(p, &cf, NULL, &ctx), 0);
	ck_assert_int_eq(bind(p, ctx, names, 1, w, &nw), 0);
	ck_assert_msg(nw == 2 && w[0] == 60 && fabs(w[1] - 6) < 1e-9,
	              "stable 60 s, panic 6 s; got %zu windows: %g, %g", nw, w[0], w[1]);
	p->fini(ctx);
	config_destroy(&cf);
	ck_assert_int_eq(init(p, &cf, "stable_window = 10;", &ctx), 0);
	ck_assert_int_eq(bind(p, ctx, names, 1, w, &nw), 0);
	ck_assert_msg(w[0] == 10 && fabs(w[1] - 1) < 1e-9, "panic is 10 %% of stable: %g, %g", w[0],
	              w[1]);
	p->fini(ctx);
	config_destroy(&cf);
	ck_assert_int_eq(init(p, &cf, "stable_window = 30; panic_window = 2.5;", &ctx), 0);
	ck_assert_int_eq(bind(p, ctx, names, 1, w, &nw), 0);
	ck_assert_msg(w[0] == 30 && w[1] == 2.5, "both set: %g, %g", w[0], w[1]);
	p->fini(ctx);
	config_destroy(&cf);
}
END_TEST

START_TEST(the_reason_says_panic_with_its_numbers)
{
	const struct scaler_plugin *p = load();
	static const char *const names[] = {"requests"};
	double w[SCALER_POLICY_WINDOWS_MAX];
	size_t nw;
	struct scaler_policy_metric m[2] = {{.name = "requests",
	                                     .unit = "in flight",
	                                     .window = 60,
	                                     .total = 12,
	                                     .valid = 1,
	                                     .complete = 1,
	                                     .n = 2},
	                                    {.name = "requests",
	                                     .unit = "in flight",
	                                     .window = 6,
	                                     .total = 42,
	                                     .valid = 1,
	                                     .complete = 1,
	                                     .n = 2}};
	struct scaler_policy_input in = {.current = 2,
	                                 .min = 1,
	                                 .max = 10,
	                                 .average = 6,
	                                 .average_valid = 1,
	                                 .now = 5,
	                                 .metrics = m,
	                                 .nmetrics = 2,
	                                 .idle_timeout = 30};
	struct scaler_policy_decision out;
	config_t cf;
	void *ctx;

	ck_assert_int_eq(init(p, &cf, "target = 10;", &ctx), 0);
	ck_assert_int_eq(bind(p, ctx, names, 1, w, &nw), 0);
	p->ops.policy->decide(ctx, &in, &out);
	ck_assert_msg(strstr(out.reason, "panic: 42 in flight over 6 s, 2.1x the target of 10 per "
	                                 "server: 2 -> 5 servers."),
	              "the panic sentence: %s", out.reason);
	p->fini(ctx);
	config_destroy(&cf);
}
END_TEST

START_TEST(several_metrics_take_the_largest_count_and_name_its_metric)
{
	const struct scaler_plugin *p = load();
	static const char *const names[] = {"requests", "rps"};
	double w[SCALER_POLICY_WINDOWS_MAX];
	size_t nw;
	/* requests: 25 in flight / 10 = 3; rps: 900 / 200 = 5 (stable), no panic */
	struct scaler_policy_metric m[4] = {{.name = "requests",
	                                     .unit = "in flight",
	                                     .window = 60,
	                                     .total = 25,
	                                     .valid = 1,
	                                     .complete = 1,
	                                     .n = 4},
	                                    {.name = "requests",
	                                     .unit = "in flight",
	                                     .window = 6,
	                                     .total = 25,
	                                     .valid = 1,
	                                     .complete = 1,
	                                     .n = 4},
	                                    {.name = "rps",
	                                     .unit = "requests/s",
	                                     .window = 60,
	                                     .total = 900,
	                                     .valid = 1,
	                                     .complete = 1,
	                                     .n = 4},
	                                    {.name = "rps",
	                                     .unit = "requests/s",
	                                     .window = 6,
	                                     .total = 900,
	                                     .valid = 1,
	                                     .complete = 1,
	                                     .n = 4}};
	struct scaler_policy_input in = {.current = 4,
	                                 .min = 1,
	                                 .max = 10,
	                                 .average = 6.25,
	                                 .average_valid = 1,
	                                 .now = 5,
	                                 .metrics = m,
	                                 .nmetrics = 4,
	                                 .idle_timeout = 30};
	struct scaler_policy_decision out;
	config_t cf;
	void *ctx;

	ck_assert_int_eq(init(p, &cf, "target = { requests = 10; rps = 200; };", &ctx), 0);
	ck_assert_int_eq(bind(p, ctx, names, 2, w, &nw), 0);
	ck_assert_int_eq(p->ops.policy->decide(ctx, &in, &out), 0);
	ck_assert_msg(out.desired == 5 && strstr(out.reason, "900 requests/s") &&
	                  strstr(out.reason, "target of 200"),
	              "rps decides 5: %d (%s)", out.desired, out.reason);
	/* one target for two metrics is refused, naming the setting */
	p->fini(ctx);
	config_destroy(&cf);
	ck_assert_int_eq(init(p, &cf, "target = 10;", &ctx), 0);
	ck_assert_int_eq(bind(p, ctx, names, 2, w, &nw), -1);
	ck_assert_msg(strstr(fake_messages(), "g.target: the zone has 2 metrics"), "got: %s",
	              fake_messages());
	p->fini(ctx);
	config_destroy(&cf);
}
END_TEST

/* The lines a console draws across each metric (ABI 1.5): its target per
 * server, and where the panic window panics. */
START_TEST(guides_are_each_metrics_target_and_panic_threshold)
{
	const struct scaler_plugin *p = load();
	static const char *const names[] = {"requests", "rps"};
	struct scaler_policy_guide g[8];
	double w[SCALER_POLICY_WINDOWS_MAX];
	size_t nw;
	config_t cf;
	void *ctx;

	ck_assert_int_eq(
	    init(p, &cf, "target = { rps = 200; requests = 10; }; panic_threshold = 3;", &ctx), 0);
	ck_assert_int_eq(bind(p, ctx, names, 2, w, &nw), 0);
	ck_assert_uint_eq(p->ops.policy->guides(ctx, g, 8), 4);
	struct {
		size_t metric;
		const char *name;
		double value;
	} want[] = {{0, "target", 10},
	            {1, "target", 200},
	            {0, "panic_threshold", 30},
	            {1, "panic_threshold", 600}};
	for (size_t i = 0; i < 4; i++)
		ck_assert_msg(g[i].metric == want[i].metric && !strcmp(g[i].name, want[i].name) &&
		                  g[i].value == want[i].value,
		              "guide %zu: expected %zu %s %g, got %zu %s %g", i, want[i].metric,
		              want[i].name, want[i].value, g[i].metric, g[i].name, g[i].value);
	p->fini(ctx);
	config_destroy(&cf);
}
END_TEST

struct bad_conf {
	const char *conf;
	const char *message;
};

static const struct bad_conf bad_confs[] = {
    {"target = 0;", "g.target: target must be above 0"},
    {"target = { requests = -1; };", "g.target.requests: requests must be between 0"},
    {"stable_window = 0.5;", "g.stable_window: stable_window must be between 1 and 3600"},
    {"stable_window = 10; panic_window = 20;",
     "g.panic_window: panic_window (20 s) must not be longer than stable_window (10 s)"},
    {"panic_threshold = 1.0;", "g.panic_threshold: panic_threshold must be between 1.1 and 10"},
    {"max_scale_down_rate = 0.5;", "g.max_scale_down_rate: max_scale_down_rate must be between"},
    {"idle_timeout = 30;", "g.idle_timeout: unknown setting idle_timeout"},
};

START_TEST(bad_settings_are_refused_with_a_clear_error)
{
	const struct bad_conf *bc = &bad_confs[_i];
	const struct scaler_plugin *p = load();
	void *ctx = NULL;
	config_t cf;

	ck_assert_msg(init(p, &cf, bc->conf, &ctx) == -1, "expected init to refuse \"%s\"",
	              bc->conf);
	ck_assert_msg(strstr(fake_messages(), bc->message),
	              "for \"%s\" expected an error containing \"%s\", got:\n%s", bc->conf,
	              bc->message, fake_messages());
	config_destroy(&cf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("policy_concurrency");
	TCase *tc = tcase_create("concurrency");

	tcase_add_loop_test(tc, decides_like_the_table, 0,
	                    (int)(sizeof(scenarios) / sizeof(scenarios[0])));
	tcase_add_test(tc, the_windows_are_knatives_by_default);
	tcase_add_test(tc, the_reason_says_panic_with_its_numbers);
	tcase_add_test(tc, several_metrics_take_the_largest_count_and_name_its_metric);
	tcase_add_test(tc, guides_are_each_metrics_target_and_panic_threshold);
	tcase_add_loop_test(tc, bad_settings_are_refused_with_a_clear_error, 0,
	                    (int)(sizeof(bad_confs) / sizeof(bad_confs[0])));
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
