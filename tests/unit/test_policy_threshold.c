/* policy "threshold", loaded as the built plugin through dlopen. */
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
	const struct scaler_plugin *p = fake_plugin_open("policy", "threshold", err, sizeof(err));

	ck_assert_msg(p, "expected the threshold plugin to load: %s", err);
	ck_assert_int_eq(p->kind, SCALER_KIND_POLICY);
	ck_assert_ptr_nonnull(p->ops.policy);
	ck_assert_ptr_nonnull(p->ops.policy->decide);
	return p;
}

/* init with `text` as the group body (NULL: no group at all) */
static int init(const struct scaler_plugin *p, config_t *cf, const char *text, void **ctx)
{
	return fake_plugin_init(&host, p, cf, text, ctx);
}

struct step {
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
	struct step steps[6]; /* ends at cur == 0 */
};

/* clang-format off */
static const struct scenario scenarios[] = {
	{"the seed's rule: at or above max_cpu adds one server", NULL, 1, 10,
	 {{70, 1, 2, 3, "above max_cpu"}, {95, 1, 3, 4, "above max_cpu"}}},
	{"at or below min_cpu removes one server while above the minimum", NULL, 1, 10,
	 {{10, 1, 3, 2, "below min_cpu"}, {2, 1, 2, 1, "below min_cpu"},
	  {2, 1, 1, 1, "below min_cpu"}}},
	{"between the thresholds holds", NULL, 1, 10,
	 {{10.5, 1, 3, 3, "within band"}, {69.9, 1, 3, 3, "within band"}}},
	{"missing metrics hold, even when the stale average would scale down", NULL, 1, 10,
	 {{0, 0, 3, 3, "metrics missing"}, {99, 0, 3, 3, "metrics missing"}}},
	{"at the zone maximum a high average holds", NULL, 1, 3,
	 {{90, 1, 3, 3, "above max_cpu"}}},
	{"custom thresholds and step", "max_cpu = 80; min_cpu = 20.5; step = 2;", 1, 10,
	 {{79, 1, 4, 4, "within band"}, {80, 1, 4, 6, "above max_cpu"},
	  {20.5, 1, 6, 4, "below min_cpu"}, {21, 1, 4, 4, "within band"}}},
	{"thresholds above 100 for metrics that count every core", "max_cpu = 350; min_cpu = 100;",
	 1, 10, {{300, 1, 2, 2, "within band"}, {400, 1, 2, 3, "above max_cpu"}}},
	{"within_bounds_trigger waits for N evaluations in a row", "within_bounds_trigger = 3;", 1, 10,
	 {{90, 1, 2, 2, "above max_cpu"}, {90, 1, 2, 2, "above max_cpu"},
	  {90, 1, 2, 3, "above max_cpu"}, {90, 1, 3, 3, "above max_cpu"}}},
	{"a hold in between restarts the trigger count", "within_bounds_trigger = 2;", 1, 10,
	 {{90, 1, 2, 2, "above max_cpu"}, {50, 1, 2, 2, "within band"},
	  {90, 1, 2, 2, "above max_cpu"}, {90, 1, 2, 3, "above max_cpu"}}},
	{"missing metrics restart the trigger count", "within_bounds_trigger = 2;", 1, 10,
	 {{5, 1, 4, 4, "below min_cpu"}, {5, 0, 4, 4, "metrics missing"},
	  {5, 1, 4, 4, "below min_cpu"}, {5, 1, 4, 3, "below min_cpu"}}},
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
	for (i = 0; i < 6 && sc->steps[i].cur; i++) {
		const struct step *st = &sc->steps[i];
		struct scaler_policy_input in = {.current = st->cur,
		                                 .min = sc->min,
		                                 .max = sc->max,
		                                 .average = st->avg,
		                                 .average_valid = st->valid,
		                                 .now = 10.0 * i};
		struct scaler_policy_decision out;

		memset(&out, 0, sizeof(out));
		ck_assert_int_eq(p->ops.policy->decide(ctx, &in, &out), 0);
		ck_assert_msg(out.desired == st->want && !strcmp(out.rule, st->rule),
		              "%s, step %d (average %g%s, %d servers): expected %d by \"%s\", got "
		              "%d by \"%s\" (%s)",
		              sc->what, i + 1, st->avg, st->valid ? "" : " invalid", st->cur,
		              st->want, st->rule, out.desired, out.rule, out.reason);
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
	    .current = 2, .min = 1, .max = 5, .average = 85.25, .average_valid = 1};
	struct scaler_policy_decision out;
	config_t cf;
	void *ctx;

	ck_assert_int_eq(init(p, &cf, NULL, &ctx), 0);
	p->ops.policy->decide(ctx, &in, &out);
	ck_assert_msg(
	    strstr(out.reason, "85.2") && strstr(out.reason, "70") && strstr(out.reason, "2 -> 3"),
	    "expected the reason to name the average, max_cpu and the change, got: %s", out.reason);
	p->fini(ctx);
	config_destroy(&cf);
}
END_TEST

/* The lines a console draws across the zone's metric (ABI 1.5). */
START_TEST(guides_are_max_cpu_and_min_cpu)
{
	const struct scaler_plugin *p = load();
	struct scaler_policy_guide g[4];
	config_t cf;
	void *ctx;

	ck_assert_ptr_nonnull(p->ops.policy->guides);
	ck_assert_int_eq(init(p, &cf, "max_cpu = 80.0; min_cpu = 15.0;", &ctx), 0);
	ck_assert_uint_eq(p->ops.policy->guides(ctx, g, 4), 2);
	ck_assert_msg(g[0].metric == 0 && !strcmp(g[0].name, "max_cpu") && g[0].value == 80 &&
	                  g[1].metric == 0 && !strcmp(g[1].name, "min_cpu") && g[1].value == 15,
	              "expected max_cpu 80 and min_cpu 15, got %s %g and %s %g", g[0].name,
	              g[0].value, g[1].name, g[1].value);
	ck_assert_uint_eq(p->ops.policy->guides(ctx, g, 1), 1);
	p->fini(ctx);
	config_destroy(&cf);
}
END_TEST

struct bad_conf {
	const char *conf;
	const char *message; /* expected in the logged config error */
};

static const struct bad_conf bad_confs[] = {
    {"max_cpu = 50; min_cpu = 60;", "g.min_cpu: min_cpu (60) must be below max_cpu (50)"},
    {"min_cpu = 70;", "min_cpu (70) must be below max_cpu (70)"},
    {"max_cpu = -5;", "g.max_cpu: max_cpu must be between 0 and"},
    {"max_cpu = \"high\";", "g.max_cpu: max_cpu must be a number"},
    {"step = 0;", "g.step: step must be between 1 and 1000, not 0"},
    {"step = 1.5;", "g.step: step must be an integer"},
    {"within_bounds_trigger = 0;", "within_bounds_trigger must be between 1 and 1000"},
    {"max_cpus = 80;", "g.max_cpus: unknown setting max_cpus"},
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

START_TEST(every_bad_value_is_reported_not_just_the_first)
{
	const struct scaler_plugin *p = load();
	void *ctx = NULL;
	config_t cf;

	ck_assert_int_eq(init(p, &cf, "step = 0;\nmax_cpu = \"x\";\nfoo = 1;", &ctx), -1);
	ck_assert_msg(strstr(fake_messages(), "g.step") && strstr(fake_messages(), "g.max_cpu") &&
	                  strstr(fake_messages(), "g.foo"),
	              "expected errors for step, max_cpu and foo, got:\n%s", fake_messages());
	ck_assert_msg(strstr(fake_messages(), "<string>:3: g.max_cpu"),
	              "expected the error to name the line of max_cpu, got:\n%s", fake_messages());
	config_destroy(&cf);
}
END_TEST

START_TEST(a_bad_reload_changes_nothing)
{
	const struct scaler_plugin *p = load();
	struct scaler_policy_input in = {
	    .current = 2, .min = 1, .max = 5, .average = 75, .average_valid = 1};
	struct scaler_policy_decision out;
	config_setting_t *g;
	config_t cf, cf2;
	char err[256];
	void *ctx;

	ck_assert_int_eq(init(p, &cf, "max_cpu = 70;", &ctx), 0);
	g = fake_group(&cf2, "max_cpu = 90; min_cpu = 95;", err, sizeof(err));
	ck_assert_ptr_nonnull(g);
	ck_assert_msg(p->reload(ctx, g) == -1, "expected reload to refuse min_cpu > max_cpu");
	p->ops.policy->decide(ctx, &in, &out);
	ck_assert_msg(out.desired == 3,
	              "expected the old max_cpu 70 to stay in force after a bad reload: "
	              "75%% should scale 2 -> 3, got %d (%s)",
	              out.desired, out.reason);
	config_destroy(&cf2);

	g = fake_group(&cf2, "max_cpu = 80;", err, sizeof(err));
	ck_assert_int_eq(p->reload(ctx, g), 0);
	p->ops.policy->decide(ctx, &in, &out);
	ck_assert_msg(out.desired == 2, "expected max_cpu 80 after a good reload, got %d (%s)",
	              out.desired, out.reason);
	p->fini(ctx);
	config_destroy(&cf2);
	config_destroy(&cf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("policy threshold");
	TCase *tc = tcase_create("threshold");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, decides_like_the_table, 0,
	                    (int)(sizeof(scenarios) / sizeof(scenarios[0])));
	tcase_add_test(tc, reason_names_the_numbers);
	tcase_add_test(tc, guides_are_max_cpu_and_min_cpu);
	tcase_add_loop_test(tc, bad_settings_are_refused_with_a_clear_error, 0,
	                    (int)(sizeof(bad_confs) / sizeof(bad_confs[0])));
	tcase_add_test(tc, every_bad_value_is_reported_not_just_the_first);
	tcase_add_test(tc, a_bad_reload_changes_nothing);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
