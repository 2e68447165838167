/* What every host does for its plugins (src/lib/host_services.c): deferred
 * calls and the zone average of a metrics result. */
#include "config.h"

#include <check.h>
#include <ev.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host_services.h"

static char order[64];

static void note(void *arg)
{
	strncat(order, arg, sizeof(order) - strlen(order) - 1);
}

static void stop(void *arg)
{
	ev_break(arg, EVBREAK_ALL);
}

START_TEST(a_deferred_call_runs_on_the_next_iteration_never_inside_defer)
{
	struct ev_loop *loop = ev_loop_new(0);
	order[0] = '\0';
	ck_assert_ptr_nonnull(defer_on(loop, note, "a"));
	ck_assert_ptr_nonnull(defer_on(loop, note, "b"));
	ck_assert_msg(order[0] == '\0', "nothing runs before the loop does, got \"%s\"", order);
	ck_assert_ptr_nonnull(defer_on(loop, stop, loop));
	ev_run(loop, 0);
	ck_assert_msg(strchr(order, 'a') && strchr(order, 'b') && strlen(order) == 2,
	              "both deferred calls ran once, got \"%s\"", order);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(a_cancelled_deferred_call_never_runs)
{
	struct ev_loop *loop = ev_loop_new(0);
	order[0] = '\0';
	struct scaler_deferred *d = defer_on(loop, note, "x");
	ck_assert_ptr_nonnull(defer_on(loop, note, "y"));
	defer_cancel(d);
	ck_assert_ptr_nonnull(defer_on(loop, stop, loop));
	ev_run(loop, 0);
	ck_assert_str_eq(order, "y");
	ck_assert_ptr_null(defer_on(NULL, note, "z"));
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(the_host_averages_the_values_not_missing)
{
	struct scaler_metric_value v[] = {
	    {"a", 30.0, 0}, {"b", 0.0, 1}, {"c", 50.5, 0}, {"d", NAN, 0}};
	struct scaler_metrics_result res = {.values = v, .n = 4, .average = 99, .average_valid = 1};
	double avg = -1;

	ck_assert_int_eq(metrics_average(&res, 2, &avg), 1);
	ck_assert_msg(fabs(avg - 40.25) < 1e-9, "mean of 30 and 50.5, got %g", avg);
	v[0].missing = v[2].missing = 1;
	ck_assert_int_eq(metrics_average(&res, 2, &avg), 0);
	/* a plugin built against ABI 1.1 gives its own */
	ck_assert_int_eq(metrics_average(&res, 1, &avg), 1);
	ck_assert_msg(avg == 99, "the 1.1 plugin's own average, got %g", avg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("host services");
	TCase *tc = tcase_create("services");
	tcase_add_test(tc, a_deferred_call_runs_on_the_next_iteration_never_inside_defer);
	tcase_add_test(tc, a_cancelled_deferred_call_never_runs);
	tcase_add_test(tc, the_host_averages_the_values_not_missing);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
