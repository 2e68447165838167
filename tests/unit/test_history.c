/* The console's history ring (src/admin/history.c): bounded to an hour,
 * one sample a second at most, oldest first. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "history.h"

static json_t *points(struct history *h, double since)
{
	json_t *p = history_points_json(h, since);
	ck_assert_ptr_nonnull(p);
	return p;
}

static double at(json_t *pts, size_t i, size_t k)
{
	return json_number_value(json_array_get(json_array_get(pts, i), k));
}

START_TEST(samples_come_back_oldest_first_with_missing_values_as_null)
{
	struct history *h = history_new(2, 10);
	double v1[] = {12.5, NAN}, v2[] = {30, 4};
	history_add(h, 1000.2, 1, v1);
	history_add(h, 1010.2, 2, v2);
	history_add(h, 1020.2, 2, NULL);
	json_t *p = points(h, 0);
	ck_assert_int_eq(json_array_size(p), 3);
	ck_assert(at(p, 0, 0) == 1000.2 && at(p, 0, 1) == 1 && at(p, 0, 2) == 12.5);
	ck_assert_msg(json_is_null(json_array_get(json_array_get(p, 0), 3)),
	              "a missing value is null");
	ck_assert(at(p, 1, 1) == 2 && at(p, 1, 3) == 4);
	ck_assert(json_is_null(json_array_get(json_array_get(p, 2), 2)));
	json_decref(p);
	p = points(h, 1010.2);
	ck_assert_msg(json_array_size(p) == 1 && at(p, 0, 0) == 1020.2,
	              "since: only the samples after it");
	json_decref(p);
	history_free(h);
}
END_TEST

START_TEST(a_sample_in_the_same_second_replaces_the_newest_but_keeps_its_values)
{
	struct history *h = history_new(1, 0.25);
	double a = 10, b = 20;
	history_add(h, 500.1, 1, &a);
	history_add(h, 500.6, 2, NULL);
	json_t *p = points(h, 0);
	ck_assert_int_eq(json_array_size(p), 1);
	ck_assert_msg(at(p, 0, 0) == 500.6 && at(p, 0, 1) == 2 && at(p, 0, 2) == 10,
	              "expected [500.6, 2, 10], the value measured in that second kept");
	json_decref(p);
	history_add(h, 500.9, 2, &b);
	/* the clock went back by less than a second (jitter): dropped */
	ck_assert_int_eq(history_add(h, 500.0, 7, &a), 0);
	p = points(h, 0);
	ck_assert(json_array_size(p) == 1 && at(p, 0, 2) == 20);
	json_decref(p);
	/* shown to the millisecond, 501.9996 is 502.000: in 502's second, so
	 * the next sample of that second replaces it */
	history_add(h, 501.9996, 3, &a);
	history_add(h, 502.3, 4, &b);
	p = points(h, 0);
	ck_assert_int_eq(json_array_size(p), 2);
	ck_assert_msg(at(p, 1, 0) == 502.3 && at(p, 1, 1) == 4,
	              "expected [502.3, 4, 20] as the newest, one sample in second 502");
	json_decref(p);
	history_free(h);
}
END_TEST

START_TEST(a_clock_set_back_starts_the_ring_again_instead_of_freezing_it)
{
	struct history *h = history_new(1, 1);
	double v = 5;
	for (int i = 0; i < 600; i++)
		ck_assert_int_eq(history_add(h, 10000 + i, 1, &v), 0);
	/* NTP steps the clock back an hour: the next sample empties the ring */
	double w = 7;
	ck_assert_msg(history_add(h, 10599 - 3600, 3, &w) == 1,
	              "a sample an hour older than the newest says the ring started again");
	for (int i = 1; i < 10; i++)
		ck_assert_int_eq(history_add(h, 10599 - 3600 + i, 3, &w), 0);
	json_t *p = points(h, 0);
	ck_assert_msg(json_array_size(p) == 10 && at(p, 0, 0) == 10599 - 3600 && at(p, 9, 2) == 7,
	              "expected the 10 samples taken since the clock went back, got %zu",
	              json_array_size(p));
	json_decref(p);
	history_free(h);
}
END_TEST

START_TEST(the_ring_keeps_the_last_hour_and_no_more)
{
	/* interval 1 s: an hour is 3601 samples; interval 0.1 s keeps one a second */
	double intervals[] = {1, 0.1, 30};
	for (size_t k = 0; k < 3; k++) {
		struct history *h = history_new(1, intervals[k]);
		double step = intervals[k] > 1 ? intervals[k] : 1;
		size_t want = (size_t)ceil(HISTORY_SPAN / step) + 1;
		for (int i = 0; i < 10000; i++) {
			double v = i;
			history_add(h, 1e6 + i * step, i % 5, &v);
		}
		ck_assert_msg(history_len(h) == want, "interval %g: expected %zu samples, got %zu",
		              intervals[k], want, history_len(h));
		ck_assert_msg(history_bytes(h) == history_max_bytes(1, intervals[k]),
		              "interval %g: a full ring holds %zu bytes, its bound is %zu",
		              intervals[k], history_bytes(h), history_max_bytes(1, intervals[k]));
		json_t *p = points(h, 0);
		ck_assert_msg(at(p, 0, 2) == 10000 - (double)want && at(p, want - 1, 2) == 9999,
		              "interval %g: the oldest kept is %g, the newest %g", intervals[k],
		              at(p, 0, 2), at(p, want - 1, 2));
		for (size_t i = 1; i < want; i++)
			ck_assert(at(p, i, 0) > at(p, i - 1, 0));
		json_decref(p);
		history_free(h);
	}
}
END_TEST

START_TEST(its_memory_grows_with_the_samples_up_to_the_stated_bound)
{
	/* the figures HACKING.md states: one metric at one sample a second, the
	 * most metrics a zone may have, the default interval */
	ck_assert_msg(history_max_bytes(1, 0.5) < 85 * 1024, "one metric, a sample a second: %zu B",
	              history_max_bytes(1, 0.5));
	ck_assert_msg(history_max_bytes(8, 1) < 282 * 1024, "eight metrics: %zu B",
	              history_max_bytes(8, 1));
	ck_assert_msg(history_max_bytes(1, 10) < 9 * 1024, "interval 10 s: %zu B",
	              history_max_bytes(1, 10));
	struct history *h = history_new(1, 1);
	double v = 1;
	size_t empty = history_bytes(h);
	history_add(h, 1e6, 1, &v);
	size_t one = history_bytes(h);
	ck_assert_msg(empty < one && one < 4096, "empty %zu B, one sample %zu B", empty, one);
	for (int i = 1; i < 20000; i++)
		history_add(h, 1e6 + i, 1, &v);
	ck_assert_msg(history_bytes(h) == history_max_bytes(1, 1), "after 20000 samples: %zu B",
	              history_bytes(h));
	history_free(h);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("history");
	TCase *tc = tcase_create("ring");
	tcase_add_test(tc, samples_come_back_oldest_first_with_missing_values_as_null);
	tcase_add_test(tc, a_sample_in_the_same_second_replaces_the_newest_but_keeps_its_values);
	tcase_add_test(tc, a_clock_set_back_starts_the_ring_again_instead_of_freezing_it);
	tcase_add_test(tc, the_ring_keeps_the_last_hour_and_no_more);
	tcase_add_test(tc, its_memory_grows_with_the_samples_up_to_the_stated_bound);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
