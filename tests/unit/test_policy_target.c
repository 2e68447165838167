/* policy "target" (target tracking after the Kubernetes HPA), loaded as the
 * built plugin through dlopen. The HPA examples come from
 * kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale
 * ("Algorithm details", "Stabilization window") and the v1.33 configurable
 * tolerance announcement (50 replicas at 90 % with target 75 → 60); with
 * several metrics, "the largest of the desired replica counts is chosen"
 * (the same page, "Algorithm details"). */
#include "config.h"

#include "fakehost.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct scaler_host host;

static const struct scaler_plugin *load(void)
{
	char err[512];
	const struct scaler_plugin *p = fake_plugin_open("policy", "target", err, sizeof(err));

	ck_assert_msg(p, "expected the target plugin to load: %s", err);
	ck_assert_int_eq(p->kind, SCALER_KIND_POLICY);
	ck_assert_ptr_nonnull(p->ops.policy);
	return p;
}

/* init with `text` as the group body (NULL: no group at all) */
static int init(const struct scaler_plugin *p, config_t *cf, const char *text, void **ctx)
{
	return fake_plugin_init(&host, p, cf, text, ctx);
}

struct step {
	double now;
	double avg;
	int valid;
	int cur;
	int want;
	const char *rule;
};

struct scenario {
	const char *what;
	const char *conf;
	int min, max;
	struct step steps[6]; /* ends at rule == NULL */
};

#define NOSTAB "stabilization_down = 0;"

/* clang-format off */
static const struct scenario scenarios[] = {
	{"HPA: 1 server at 100 with target 50 becomes 2", NULL, 1, 10,
	 {{0, 100, 1, 1, 2, "above target"}}},
	{"HPA: a metric at twice the target doubles the count", NULL, 1, 20,
	 {{0, 100, 1, 3, 6, "above target"}}},
	{"HPA: 50 replicas at 90 with target 75 become 60", "target = 75;", 1, 100,
	 {{0, 90, 1, 50, 60, "above target"}}},
	{"HPA: a metric at half the target halves the count", NOSTAB, 1, 10,
	 {{0, 25, 1, 4, 2, "below target"}}},
	{"HPA: within the 10% tolerance nothing changes", NULL, 1, 10,
	 {{0, 54, 1, 4, 4, "tolerance"}, {15, 45.5, 1, 4, 4, "tolerance"},
	  {30, 55, 1, 4, 4, "tolerance"}}},
	{"just outside the tolerance the formula applies", NULL, 1, 10,
	 {{0, 56, 1, 4, 5, "above target"}}},
	{"tolerance = 0 reacts to any difference", "tolerance = 0;", 1, 10,
	 {{0, 51, 1, 4, 5, "above target"}}},
	{"HPA: scale-down takes the highest recommendation of the last 300 s", NULL, 1, 10,
	 {{0, 50, 1, 4, 4, "tolerance"}, {15, 25, 1, 4, 4, "stabilized"},
	  {150, 37.5, 1, 4, 4, "stabilized"}, {301, 25, 1, 4, 3, "stabilized"},
	  {451, 25, 1, 3, 2, "below target"}}},
	{"scale-up is not delayed by the scale-down window", NULL, 1, 10,
	 {{0, 25, 1, 4, 4, "stabilized"}, {15, 100, 1, 4, 8, "above target"}}},
	{"stabilization_up takes the lowest recommendation of its window", "stabilization_up = 60;",
	 1, 20,
	 {{0, 50, 1, 4, 4, "tolerance"}, {10, 100, 1, 4, 4, "stabilized"},
	  {40, 75, 1, 4, 4, "stabilized"}, {61, 100, 1, 4, 6, "stabilized"},
	  {101, 100, 1, 6, 8, "stabilized"}}},
	{"max_step_up limits servers added per evaluation", "max_step_up = 2;", 1, 100,
	 {{0, 200, 1, 4, 6, "step limit"}, {15, 60, 1, 6, 8, "above target"}}},
	{"max_step_up_percent rounds up like the HPA", "max_step_up_percent = 50;", 1, 100,
	 {{0, 200, 1, 3, 5, "step limit"}}},
	{"count and percent limits together allow the larger change",
	 "max_step_up = 1; max_step_up_percent = 100;", 1, 100,
	 {{0, 500, 1, 4, 8, "step limit"}}},
	{"max_step_down limits servers removed per evaluation", NOSTAB "max_step_down = 1;", 1, 10,
	 {{0, 10, 1, 4, 3, "step limit"}}},
	{"max_step_down_percent rounds down like the HPA", NOSTAB "max_step_down_percent = 50;", 1,
	 10, {{0, 10, 1, 5, 2, "step limit"}}},
	{"no load asks for 0 servers (the host clamps to min)", NOSTAB, 1, 10,
	 {{0, 0, 1, 4, 0, "below target"}}},
	{"no servers at all starts the minimum", NULL, 3, 10,
	 {{0, 0, 0, 0, 3, "no servers"}}},
	{"no servers and min 0 starts one", NULL, 0, 10,
	 {{0, 80, 1, 0, 1, "no servers"}}},
	{"a fresh instance does not scale down before one window has passed", NULL, 1, 10,
	 {{0, 10, 1, 4, 4, "stabilized"}, {299, 10, 1, 4, 4, "stabilized"},
	  {300.5, 10, 1, 4, 1, "below target"}}},
	{"missing metrics hold and leave no recommendation behind", NULL, 1, 10,
	 {{0, 0, 0, 4, 4, "metrics missing"}, {400, 0, 0, 4, 4, "metrics missing"},
	  {401, 25, 1, 4, 2, "below target"}}},
};
/* clang-format on */

START_TEST(decides_like_the_table)
{
	const struct scenario *sc = &scenarios[_i];
	const struct scaler_plugin *p = load();
	config_t cf;
	void *ctx = NULL;
	int i;

	ck_assert_msg(init(p, &cf, sc->conf, &ctx) == 0, "%s: expected init to accept %s: %s",
	              sc->what, sc->conf ? sc->conf : "no group", fake_messages());
	for (i = 0; i < 6 && sc->steps[i].rule; i++) {
		const struct step *st = &sc->steps[i];
		struct scaler_policy_input in = {.current = st->cur,
		                                 .min = sc->min,
		                                 .max = sc->max,
		                                 .average = st->avg,
		                                 .average_valid = st->valid,
		                                 .now = 1000 + st->now};
		struct scaler_policy_decision out;

		memset(&out, 0, sizeof(out));
		ck_assert_int_eq(p->ops.policy->decide(ctx, &in, &out), 0);
		ck_assert_msg(out.desired == st->want && !strcmp(out.rule, st->rule),
		              "%s, step %d (t=%gs, average %g%s, %d servers): expected %d by "
		              "\"%s\", got %d by \"%s\" (%s)",
		              sc->what, i + 1, st->now, st->avg, st->valid ? "" : " invalid",
		              st->cur, st->want, st->rule, out.desired, out.rule, out.reason);
		ck_assert_msg(out.reason[0], "%s: every decision explains itself", sc->what);
	}
	p->fini(ctx);
	config_destroy(&cf);
}
END_TEST

START_TEST(reason_names_the_numbers)
{
	const struct scaler_plugin *p = load();
	struct scaler_policy_input in = {
	    .current = 1, .min = 1, .max = 5, .average = 100, .average_valid = 1, .now = 5};
	struct scaler_policy_decision out;
	config_t cf;
	void *ctx;

	ck_assert_int_eq(init(p, &cf, NULL, &ctx), 0);
	p->ops.policy->decide(ctx, &in, &out);
	ck_assert_msg(strstr(out.reason, "100.0") && strstr(out.reason, "target 50") &&
	                  strstr(out.reason, "1 -> 2"),
	              "expected the reason to name the average, the target and the change, got: %s",
	              out.reason);
	p->fini(ctx);
	config_destroy(&cf);
}
END_TEST

/* bind the zone's metric names; -1 when the policy refuses them */
static int bind(const struct scaler_plugin *p, void *ctx, const char *const *names, size_t n)
{
	double w[SCALER_POLICY_WINDOWS_MAX];
	size_t nw = 99;
	int r = p->ops.policy->bind(ctx, names, n, w, &nw);
	if (r == 0)
		ck_assert_msg(nw == 0, "target asks for no window of its own, got %zu", nw);
	return r;
}

START_TEST(several_metrics_take_the_largest_recommendation_and_name_it)
{
	const struct scaler_plugin *p = load();
	static const char *const names[] = {"cpu", "requests"};
	struct scaler_policy_metric m[2] = {
	    {.name = "cpu", .unit = "", .window = 10, .average = 30, .valid = 1, .complete = 1},
	    {.name = "requests",
	     .unit = "in flight",
	     .window = 10,
	     .average = 25,
	     .valid = 1,
	     .complete = 1}};
	struct scaler_policy_input in = {.current = 2,
	                                 .min = 1,
	                                 .max = 10,
	                                 .average = 30,
	                                 .average_valid = 1,
	                                 .now = 5,
	                                 .metrics = m,
	                                 .nmetrics = 2};
	struct scaler_policy_decision out;
	config_t cf;
	void *ctx;

	ck_assert_int_eq(init(p, &cf, "target = { cpu = 60.0; requests = 10; };", &ctx), 0);
	ck_assert_int_eq(bind(p, ctx, names, 2), 0);
	/* cpu: ceil(2 x 30/60) = 1; requests: ceil(2 x 25/10) = 5 → 5 */
	memset(&out, 0, sizeof(out));
	ck_assert_int_eq(p->ops.policy->decide(ctx, &in, &out), 0);
	ck_assert_msg(out.desired == 5 && !strcmp(out.rule, "above target"),
	              "expected 5 by \"above target\", got %d by \"%s\" (%s)", out.desired,
	              out.rule, out.reason);
	ck_assert_msg(strstr(out.reason, "requests 25.0") && strstr(out.reason, "target 10") &&
	                  strstr(out.reason, "cpu asks 1"),
	              "the reason names the deciding metric and the other's count: %s", out.reason);
	/* cpu now decides: ceil(2 x 150/60) = 5 against requests' ceil(2 x 1) = 2 */
	m[0].average = 150;
	m[1].average = 10;
	in.now += 1; /* each decision at its own time: stabilization_up is 0 s */
	ck_assert_int_eq(p->ops.policy->decide(ctx, &in, &out), 0);
	ck_assert_msg(out.desired == 5 && strstr(out.reason, "cpu 150.0"), "cpu decides: %d (%s)",
	              out.desired, out.reason);
	/* a metric without a value is left out; with none the policy holds */
	m[0].valid = 0;
	m[1].average = 40;
	in.now += 1;
	ck_assert_int_eq(p->ops.policy->decide(ctx, &in, &out), 0);
	ck_assert_msg(out.desired == 8 && strstr(out.reason, "requests 40.0"),
	              "requests alone: %d (%s)", out.desired, out.reason);
	m[1].valid = 0;
	in.now += 1;
	ck_assert_int_eq(p->ops.policy->decide(ctx, &in, &out), 0);
	ck_assert_msg(out.desired == 2 && !strcmp(out.rule, "metrics missing"), "holds: %d (%s)",
	              out.desired, out.reason);
	p->fini(ctx);
	config_destroy(&cf);
}
END_TEST

START_TEST(targets_must_fit_the_zones_metrics)
{
	const struct scaler_plugin *p = load();
	static const char *const two[] = {"cpu", "requests"};
	static const char *const one[] = {"balancer"};
	static const struct {
		const char *conf;
		const char *const *names;
		size_t n;
		const char *message; /* NULL: bound */
	} cases[] = {
	    {"target = 10;", one, 1, NULL},
	    {"target = { balancer = 10; };", one, 1, NULL},
	    {"target = 10;", two, 2, "g.target: the zone has 2 metrics: give each a target"},
	    {"target = { cpu = 60; };", two, 2,
	     "g.target: no target for the zone's metric \"requests\""},
	    {"target = { cpu = 60; requests = 10; ram = 80; };", two, 2,
	     "g.target: a target for \"ram\", which is not a metric of the zone"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		config_t cf;
		void *ctx;
		ck_assert_msg(init(p, &cf, cases[i].conf, &ctx) == 0, "init of %s: %s",
		              cases[i].conf, fake_messages());
		int r = bind(p, ctx, cases[i].names, cases[i].n);
		if (!cases[i].message)
			ck_assert_msg(r == 0, "%s binds: %s", cases[i].conf, fake_messages());
		else
			ck_assert_msg(r == -1 && strstr(fake_messages(), cases[i].message),
			              "%s with %zu metrics: expected \"%s\", got %d:\n%s",
			              cases[i].conf, cases[i].n, cases[i].message, r,
			              fake_messages());
		p->fini(ctx);
		config_destroy(&cf);
	}
}
END_TEST

/* The lines a console draws across the metric (ABI 1.5): the target and
 * its tolerance band. */
START_TEST(guides_are_the_target_and_its_tolerance_band)
{
	const struct scaler_plugin *p = load();
	static const char *const names[] = {"cpu"};
	struct scaler_policy_guide g[8];
	config_t cf;
	void *ctx;

	ck_assert_int_eq(init(p, &cf, "target = 60; tolerance = 0.25;", &ctx), 0);
	ck_assert_int_eq(bind(p, ctx, names, 1), 0);
	ck_assert_uint_eq(p->ops.policy->guides(ctx, g, 8), 3);
	ck_assert_msg(!strcmp(g[0].name, "target") && g[0].value == 60 &&
	                  !strcmp(g[1].name, "tolerance") && g[1].value == 75 &&
	                  !strcmp(g[2].name, "tolerance") && g[2].value == 45,
	              "expected target 60 and the band 45..75, got %s %g, %s %g, %s %g", g[0].name,
	              g[0].value, g[1].name, g[1].value, g[2].name, g[2].value);
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
    {"target = { cpu = 0; };", "g.target.cpu: a target must be above 0"},
    {"target = { cpu = \"x\"; };", "g.target.cpu: cpu must be a number"},
    {"target = {};", "g.target: target names 1 to 8 metrics (got 0)"},
    {"target = -10;", "g.target: target must be between 0 and"},
    {"target = \"50%\";", "g.target: target must be a number"},
    {"tolerance = 1.5;", "g.tolerance: tolerance must be between 0 and 0.99, not 1.5"},
    {"stabilization_down = -1;", "g.stabilization_down: stabilization_down must be between"},
    {"max_step_up = -1;", "g.max_step_up: max_step_up must be between 0 and"},
    {"max_step_down = 0.5;", "g.max_step_down: max_step_down must be an integer"},
    {"max_step_down_percent = 150;", "max_step_down_percent must be between 0 and 100"},
    {"stabilisation_down = 60;", "g.stabilisation_down: unknown setting stabilisation_down"},
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

START_TEST(a_bad_reload_changes_nothing)
{
	const struct scaler_plugin *p = load();
	struct scaler_policy_input in = {
	    .current = 2, .min = 1, .max = 10, .average = 100, .average_valid = 1, .now = 1};
	struct scaler_policy_decision out;
	config_setting_t *g;
	config_t cf, cf2;
	char err[256];
	void *ctx;

	ck_assert_int_eq(init(p, &cf, "target = 50;", &ctx), 0);
	g = fake_group(&cf2, "target = 0;", err, sizeof(err));
	ck_assert_ptr_nonnull(g);
	ck_assert_msg(p->reload(ctx, g) == -1, "expected reload to refuse target = 0");
	p->ops.policy->decide(ctx, &in, &out);
	ck_assert_msg(out.desired == 4, "expected target 50 to stay: 2 at 100 -> 4, got %d (%s)",
	              out.desired, out.reason);
	config_destroy(&cf2);
	p->fini(ctx);
	config_destroy(&cf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("policy target");
	TCase *tc = tcase_create("target");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, decides_like_the_table, 0,
	                    (int)(sizeof(scenarios) / sizeof(scenarios[0])));
	tcase_add_test(tc, reason_names_the_numbers);
	tcase_add_test(tc, several_metrics_take_the_largest_recommendation_and_name_it);
	tcase_add_test(tc, targets_must_fit_the_zones_metrics);
	tcase_add_test(tc, guides_are_the_target_and_its_tolerance_band);
	tcase_add_loop_test(tc, bad_settings_are_refused_with_a_clear_error, 0,
	                    (int)(sizeof(bad_confs) / sizeof(bad_confs[0])));
	tcase_add_test(tc, a_bad_reload_changes_nothing);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
