/* scaler-app's pure parts: how each load profile moves the CPU target second
 * by second, that the CPU burner spends what it is asked, and how tag values
 * are escaped in InfluxDB line protocol. */
#include "config.h"

#include "load_sim.h"
#include "sinks.h"

#include <check.h>
#include <stdlib.h>
#include <time.h>

static double tu_thread_cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct load_sim *tu_sim(enum load_profile p)
{
	char err[256];
	struct load_sim *sim = load_sim_new(p, err, sizeof(err));
	ck_assert_msg(sim != NULL, "load_sim_new: %s", err);
	return sim;
}

START_TEST(profile_names_parse_and_print)
{
	ck_assert_int_eq(load_profile_parse("high"), LOAD_HIGH);
	ck_assert_int_eq(load_profile_parse("low"), LOAD_LOW);
	ck_assert_int_eq(load_profile_parse("stop"), LOAD_STOP);
	ck_assert_int_eq(load_profile_parse("HIGH"), -1);
	ck_assert_int_eq(load_profile_parse(""), -1);
	ck_assert_int_eq(load_profile_parse(NULL), -1);
	ck_assert_str_eq(load_profile_name(LOAD_HIGH), "high");
	ck_assert_str_eq(load_profile_name(LOAD_LOW), "low");
	ck_assert_str_eq(load_profile_name(LOAD_STOP), "stop");
}
END_TEST

START_TEST(high_rises_from_0_by_1_to_5_points_a_second_then_holds_at_70_to_75)
{
	struct load_sim *sim = tu_sim(LOAD_STOP);
	int seconds = 0;

	ck_assert_int_eq(load_sim_set_profile(sim, LOAD_HIGH), 1);
	ck_assert_msg(load_sim_target(sim) == 0, "high starts at 0, got %g", load_sim_target(sim));
	double prev = 0;
	while (load_sim_target(sim) < 70) {
		load_sim_tick(sim);
		double t = load_sim_target(sim);
		seconds++;
		if (t < 70) {
			ck_assert_msg(t - prev >= 1 && t - prev <= 5,
			              "second %d: expected a rise of 1-5 points, went %g -> %g",
			              seconds, prev, t);
		}
		prev = t;
		ck_assert_msg(seconds <= 70, "high should reach 70 within 70 s, at %g after %d s",
		              t, seconds);
	}
	for (int i = 0; i < 200; i++) {
		load_sim_tick(sim);
		double t = load_sim_target(sim);
		ck_assert_msg(t >= 70 && t <= 75, "the high plateau holds at 70-75, got %g", t);
	}
	load_sim_free(sim);
}
END_TEST

START_TEST(low_starts_at_50_and_falls_by_1_to_5_points_a_second_then_holds_at_1_to_10)
{
	struct load_sim *sim = tu_sim(LOAD_HIGH);
	int seconds = 0;

	load_sim_tick(sim);
	ck_assert_int_eq(load_sim_set_profile(sim, LOAD_LOW), 1);
	ck_assert_msg(load_sim_target(sim) == 50, "low starts at 50, got %g", load_sim_target(sim));
	double prev = 50;
	while (load_sim_target(sim) > 10) {
		load_sim_tick(sim);
		double t = load_sim_target(sim);
		seconds++;
		ck_assert_msg((prev - t >= 1 && prev - t <= 5) || t <= 10,
		              "second %d: expected a fall of 1-5 points, went %g -> %g", seconds,
		              prev, t);
		prev = t;
		ck_assert_msg(seconds <= 50, "low should reach 10 within 50 s");
	}
	for (int i = 0; i < 200; i++) {
		load_sim_tick(sim);
		double t = load_sim_target(sim);
		ck_assert_msg(t >= 1 && t <= 10, "the low plateau holds at 1-10, got %g", t);
	}
	load_sim_free(sim);
}
END_TEST

START_TEST(stop_is_0_and_choosing_the_same_profile_again_changes_nothing)
{
	struct load_sim *sim = tu_sim(LOAD_HIGH);

	for (int i = 0; i < 10; i++)
		load_sim_tick(sim);
	double t = load_sim_target(sim);
	ck_assert_int_eq(load_sim_set_profile(sim, LOAD_HIGH), 0);
	ck_assert_msg(load_sim_target(sim) == t, "high again keeps the ramp at %g, got %g", t,
	              load_sim_target(sim));
	ck_assert_int_eq(load_sim_set_profile(sim, LOAD_STOP), 1);
	ck_assert_int_eq(load_sim_profile(sim), LOAD_STOP);
	load_sim_tick(sim);
	ck_assert_msg(load_sim_target(sim) == 0, "stop is 0, got %g", load_sim_target(sim));
	load_sim_free(sim);
}
END_TEST

START_TEST(burn_spends_the_cpu_time_asked_for)
{
	struct timespec w0, w1;
	clock_gettime(CLOCK_MONOTONIC, &w0);
	double c0 = tu_thread_cpu();
	double spent = load_burn_ms(50, NULL);
	double used = (tu_thread_cpu() - c0) * 1000;
	clock_gettime(CLOCK_MONOTONIC, &w1);
	double wall =
	    (double)(w1.tv_sec - w0.tv_sec) * 1000 + (double)(w1.tv_nsec - w0.tv_nsec) / 1e6;

	/* it stops at 50 ms of CPU, or at 100 ms of wall time when the machine
	 * gives it less than half a core */
	ck_assert_msg(spent <= 80, "load_burn_ms(50) reports %g ms", spent);
	ck_assert_msg(spent >= 49.5 || wall >= 99.5,
	              "load_burn_ms(50) returned after %g ms of CPU and %g ms of wall time: "
	              "expected 50 ms of CPU or 100 ms of wall time",
	              spent, wall);
	ck_assert_msg(used >= spent - 2 && used <= spent + 20,
	              "the thread's clock says %g ms were spent, load_burn_ms says %g", used,
	              spent);
}
END_TEST

START_TEST(line_protocol_tags_escape_commas_spaces_and_equals)
{
	char out[64];

	influx_escape_tag(out, sizeof(out), "zone1");
	ck_assert_str_eq(out, "zone1");
	influx_escape_tag(out, sizeof(out), "a b,c=d\\e");
	ck_assert_str_eq(out, "a\\ b\\,c\\=d\\\\e");
	influx_escape_tag(out, 4, "abcdef");
	ck_assert_str_eq(out, "abc");
	influx_escape_tag(out, 4, "a,bc");
	ck_assert_str_eq(out, "a\\,"); /* never half an escape */
}
END_TEST

static Suite *tu_suite(void)
{
	Suite *s = suite_create("scaler-app");
	TCase *tc = tcase_create("units");

	tcase_add_test(tc, profile_names_parse_and_print);
	tcase_add_test(tc, high_rises_from_0_by_1_to_5_points_a_second_then_holds_at_70_to_75);
	tcase_add_test(tc,
	               low_starts_at_50_and_falls_by_1_to_5_points_a_second_then_holds_at_1_to_10);
	tcase_add_test(tc, stop_is_0_and_choosing_the_same_profile_again_changes_nothing);
	tcase_add_test(tc, burn_spends_the_cpu_time_asked_for);
	tcase_add_test(tc, line_protocol_tags_escape_commas_spaces_and_equals);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tu_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
