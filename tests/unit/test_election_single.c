/* Election plugin "single": always primary, still fenced. The real
 * election_single.so against a fake host (tests/lib/fakehost.c). */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakehost.h"

static struct fake_host *h;

static void setup(void)
{
	h = fake_host_new("1", "http://127.0.0.1:9001", NULL);
}

static void teardown(void)
{
	fake_host_free(h);
}

static int elected(struct fake_host *fh)
{
	return fh->n_elected > 0;
}

static int elected_twice(struct fake_host *fh)
{
	return fh->n_elected > 1;
}

START_TEST(single_node_becomes_primary_with_a_new_epoch)
{
	h->epoch = 41;
	ck_assert_int_eq(fake_load(h, "election", "single", NULL), 0);
	ck_assert_int_eq(fake_start(h), 0);
	ck_assert_msg(fake_run_until(h, elected, 1.0), "expected elected() within 1 s");
	ck_assert_int_eq(h->elected_epoch, 42);
	ck_assert_str_eq(h->leader_id, "1");
	ck_assert_int_eq(h->leader_epoch, 42);
	ck_assert_str_eq(h->primary_id, "1");
	ck_assert_str_eq(h->primary_url, "http://127.0.0.1:9001");
	ck_assert_int_eq(h->primary_epoch, 42);
	ck_assert_str_eq(fake_status_str(h, "state"), "primary");
	ck_assert_int_eq(fake_status_int(h, "epoch"), 42);
}
END_TEST

START_TEST(single_node_waits_for_redis_and_retries)
{
	h->redis_down = 1;
	ck_assert_int_eq(fake_load(h, "election", "single",
	                           "election = { plugin = \"single\"; retry_max = 0.2; };"),
	                 0);
	ck_assert_int_eq(fake_start(h), 0);
	fake_run(h, 0.5);
	ck_assert_msg(h->n_elected == 0, "expected no elected() while Redis is down");
	ck_assert_msg(h->n_epoch_take >= 3,
	              "expected retries with backoff, got %d epoch_take calls", h->n_epoch_take);
	ck_assert_str_ne(fake_status_str(h, "state"), "primary");
	h->redis_down = 0;
	ck_assert_msg(fake_run_until(h, elected, 1.0), "expected elected() once Redis is back");
	ck_assert_int_eq(h->elected_epoch, 1);
}
END_TEST

START_TEST(single_node_fenced_steps_down_then_takes_a_new_epoch)
{
	ck_assert_int_eq(fake_load(h, "election", "single",
	                           "election = { plugin = \"single\"; retry_max = 0.2; };"),
	                 0);
	ck_assert_int_eq(fake_start(h), 0);
	ck_assert(fake_run_until(h, elected, 1.0));
	h->epoch = 5; /* a second (misconfigured) node took epoch 5 */
	h->plugin->ops.election->fenced(h->ctx, 5);
	ck_assert_msg(h->n_deposed == 1, "expected deposed at once after fenced()");
	ck_assert_str_ne(fake_status_str(h, "state"), "primary");
	fake_run(h, 0.1);
	ck_assert_msg(h->n_elected == 1, "expected no new epoch before retry_max (0.2 s)");
	ck_assert_msg(fake_run_until(h, elected_twice, 1.0),
	              "expected a new epoch after retry_max");
	ck_assert_int_eq(h->elected_epoch, 6);
}
END_TEST

START_TEST(single_node_steps_down_even_when_the_current_epoch_is_unknown)
{
	ck_assert_int_eq(fake_load(h, "election", "single", NULL), 0);
	ck_assert_int_eq(fake_start(h), 0);
	ck_assert(fake_run_until(h, elected, 1.0));
	h->plugin->ops.election->fenced(h->ctx, 0);
	ck_assert_msg(h->n_deposed == 1, "expected deposed after fenced(0), got %d", h->n_deposed);
}
END_TEST

START_TEST(single_node_refuses_election_messages)
{
	int status;
	char *r;

	ck_assert_int_eq(fake_load(h, "election", "single", NULL), 0);
	ck_assert_int_eq(fake_start(h), 0);
	ck_assert(fake_run_until(h, elected, 1.0));
	r = fake_message(h, "coordinator", "{\"id\":2,\"epoch\":99}", &status);
	ck_assert_msg(status == 409, "expected 409, got %d %s", status, r);
	free(r);
	r = fake_message(h, "election", "{oops", &status);
	ck_assert_msg(status == 400, "expected 400 for invalid JSON, got %d %s", status, r);
	free(r);
	r = fake_message(h, "ping", NULL, &status);
	ck_assert_msg(status == 200 && strstr(r, "\"primary\""),
	              "expected 200 with state, got %d %s", status, r);
	free(r);
	ck_assert_int_eq(h->n_deposed, 0);
	ck_assert_str_eq(fake_status_str(h, "state"), "primary");
}
END_TEST

START_TEST(single_settings_are_validated)
{
	ck_assert_int_eq(
	    fake_load(h, "election", "single", "election = { plugin = \"single\"; peers = (); };"),
	    -1);
	ck_assert_msg(strstr(h->last_log, "peers") && strstr(h->last_log, "unknown"),
	              "expected an error naming the unknown setting, got %s", h->last_log);
}
END_TEST

static Suite *single_suite(void)
{
	Suite *s = suite_create("election single");
	TCase *tc = tcase_create("single");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, single_node_becomes_primary_with_a_new_epoch);
	tcase_add_test(tc, single_node_waits_for_redis_and_retries);
	tcase_add_test(tc, single_node_fenced_steps_down_then_takes_a_new_epoch);
	tcase_add_test(tc, single_node_steps_down_even_when_the_current_epoch_is_unknown);
	tcase_add_test(tc, single_node_refuses_election_messages);
	tcase_add_test(tc, single_settings_are_validated);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(single_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
