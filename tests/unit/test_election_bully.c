/* Election plugin "bully": message handling, elections, the lease in Redis,
 * stepping down. The real election_bully.so against a fake host
 * (tests/lib/fakehost.c): the store (epoch, leader, lease) lives in memory,
 * HTTP requests are recorded and answered here. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakehost.h"

#define URL1 "http://127.0.0.1:9001"
#define URL2 "http://127.0.0.1:9002"
#define URL3 "http://127.0.0.1:9003"

/* This node is 2, between a lower (1) and a higher (3) peer. Short timings:
 * checks every 50 ms, answers within 50 ms, lease 200 ms. */
static const char *conf_preempt =
    "election = { plugin = \"bully\"; check_interval = 0.05; timeout = 0.05; lease = 0.2;\n"
    "  peers = ( { id = 1; url = \"" URL1 "\"; }, { id = 2; url = \"" URL2 "\"; },\n"
    "            { id = 3; url = \"" URL3 "/\"; } ); };\n";
static const char *conf_no_preempt =
    "election = { plugin = \"bully\"; check_interval = 0.05; timeout = 0.05; lease = 0.2;\n"
    "  preempt = false;\n"
    "  peers = ( { id = 1; url = \"" URL1 "\"; }, { id = 3; url = \"" URL3 "\"; } ); };\n";

static struct fake_host *h;

static void setup(void)
{
	h = fake_host_new("2", URL2, "secret");
}

static void teardown(void)
{
	fake_host_free(h);
	h = NULL;
}

static void load(const char *conf)
{
	int rc = fake_load(h, "election", "bully", conf);
	ck_assert_msg(rc == 0, "expected the plugin to accept the config, init returned %d (%s)",
	              rc, h->last_log);
	ck_assert_int_eq(fake_start(h), 0);
}

static int is_primary(struct fake_host *fh)
{
	return strcmp(fake_status_str(fh, "state"), "primary") == 0;
}

static int pending_election_to_3(struct fake_host *fh)
{
	return fake_find_call(fh, URL3 "/election/election", FAKE_PENDING, 0) >= 0;
}

static int pending_ping_to_3(struct fake_host *fh)
{
	return fake_find_call(fh, URL3 "/election/ping", FAKE_PENDING, 0) >= 0;
}

static int pending_ping_to_1(struct fake_host *fh)
{
	return fake_find_call(fh, URL1 "/election/ping", FAKE_PENDING, 0) >= 0;
}

static int redis_known_down(struct fake_host *fh)
{
	json_t *j = fake_status(fh);
	int down = json_is_false(json_object_get(j, "redis_ok"));
	json_decref(j);
	return down;
}

static int was_deposed(struct fake_host *fh)
{
	return fh->n_deposed > 0;
}

/* Answer every ping to `url` with (status, body), as they come, until
 * pred(h) or `seconds` pass. */
static int pings_answered_until(const char *url, long status, const char *body,
                                int (*pred)(struct fake_host *), double seconds)
{
	ev_tstamp end = ev_time() + seconds;

	while (!pred(h) && ev_time() < end) {
		fake_answer_all(h, url, status, body);
		fake_run(h, 0.005);
	}
	return pred(h);
}

/* Node 3 is primary at epoch 4 in the store and holds the lease (for
 * `ttl` s); node 2 starts, learns it, and node 3 answers its first ping. */
static void follow_3_at_epoch_4_for(const char *conf, double ttl)
{
	fake_lease_hold(h, "3", 4, ttl);
	strcpy(h->leader_url, URL3);
	load(conf);
	ck_assert_msg(fake_run_until(h, pending_ping_to_3, 1.0),
	              "expected node 2 to ping primary 3 after reading the lease");
	ck_assert_msg(strcmp(h->primary_id, "3") == 0 && h->primary_epoch == 4,
	              "expected events.primary(3, epoch 4), got primary %s epoch %llu",
	              h->primary_id, (unsigned long long)h->primary_epoch);
	ck_assert_str_eq(h->primary_url, URL3);
	fake_answer_all(h, "/election/ping", 200, "{\"state\":\"primary\",\"epoch\":4}");
	ck_assert_str_eq(fake_status_str(h, "state"), "backup");
}

static void follow_3_at_epoch_4(const char *conf)
{
	follow_3_at_epoch_4_for(conf, 60.0);
}

/* Node 2 with an empty store: node 3 is down, node 2 wins epoch 1. */
static void become_primary(const char *conf)
{
	load(conf);
	ck_assert_msg(fake_run_until(h, pending_election_to_3, 1.0),
	              "expected an ELECTION to node 3 when no primary is known");
	fake_answer_all(h, URL3 "/election/election", 0, "Connection refused");
	ck_assert_msg(fake_run_until(h, is_primary, 1.0),
	              "expected node 2 to become primary when node 3 does not answer");
	ck_assert_int_eq(h->n_elected, 1);
	ck_assert_int_eq(h->elected_epoch, 1);
}

START_TEST(a_node_with_no_primary_wins_when_no_higher_node_answers)
{
	int i;

	become_primary(conf_preempt);
	/* ELECTION went only to the higher id, with the token */
	ck_assert_int_eq(fake_count_calls(h, URL1 "/election/election"), 0);
	i = fake_find_call(h, URL3 "/election/election", -1, 0);
	ck_assert_str_eq(h->calls[i].method, "POST");
	ck_assert_str_eq(h->calls[i].auth, "Authorization: Bearer secret");
	ck_assert_msg(strstr(h->calls[i].body, "\"id\":\"2\"") != NULL,
	              "expected the sender id in the ELECTION body, got %s", h->calls[i].body);
	/* the store names node 2 with epoch 1, and its lease; events said so */
	ck_assert_str_eq(h->leader_id, "2");
	ck_assert_int_eq(h->leader_epoch, 1);
	ck_assert_str_eq(h->lease_holder, "2");
	ck_assert_msg(fake_lease_live(h), "expected node 2's lease to be live");
	ck_assert_str_eq(h->primary_id, "2");
	ck_assert_str_eq(h->primary_url, URL2);
	ck_assert_int_eq(h->primary_epoch, 1);
	/* COORDINATOR to every peer, with the new epoch */
	ck_assert_int_eq(fake_count_calls(h, URL1 "/election/coordinator"), 1);
	ck_assert_int_eq(fake_count_calls(h, URL3 "/election/coordinator"), 1);
	i = fake_find_call(h, URL1 "/election/coordinator", -1, 0);
	ck_assert_msg(strstr(h->calls[i].body, "\"epoch\":1") != NULL,
	              "expected epoch 1 in the COORDINATOR, got %s", h->calls[i].body);
	ck_assert_int_eq(fake_status_int(h, "epoch"), 1);
	ck_assert_int_eq(fake_status_int(h, "elections"), 1);
	ck_assert_int_eq(fake_status_int(h, "elections_won"), 1);
}
END_TEST

START_TEST(a_node_that_gets_an_ok_waits_for_the_coordinator_then_starts_again)
{
	load(conf_preempt);
	ck_assert(fake_run_until(h, pending_election_to_3, 1.0));
	fake_answer_all(h, URL3 "/election/election", 200, "{\"ok\":true,\"id\":\"3\"}");
	ck_assert_str_eq(fake_status_str(h, "phase"), "waiting");
	fake_run(h, 0.05); /* less than 2 x timeout */
	ck_assert_msg(fake_find_call(h, URL3 "/election/election", FAKE_PENDING, 0) < 0,
	              "expected no new ELECTION while waiting for the COORDINATOR");
	ck_assert_msg(fake_run_until(h, pending_election_to_3, 1.0),
	              "expected a new ELECTION once 2 x timeout passed without a COORDINATOR");
	ck_assert_int_eq(fake_status_int(h, "elections"), 2);
	ck_assert_int_eq(h->n_elected, 0);
}
END_TEST

START_TEST(an_ok_then_a_coordinator_makes_the_sender_primary)
{
	int status;
	char *r;

	load(conf_preempt);
	ck_assert(fake_run_until(h, pending_election_to_3, 1.0));
	fake_answer_all(h, URL3 "/election/election", 200, "{\"ok\":true,\"id\":\"3\"}");
	fake_lease_hold(h, "3", 7, 60.0); /* node 3 took epoch 7 */
	r = fake_message(h, "coordinator", "{\"id\":3,\"epoch\":7,\"url\":\"" URL3 "\"}", &status);
	ck_assert_msg(status == 200, "expected 200 for a valid COORDINATOR, got %d %s", status, r);
	free(r);
	ck_assert_str_eq(fake_status_str(h, "state"), "backup");
	ck_assert_str_eq(h->primary_id, "3");
	ck_assert_int_eq(h->primary_epoch, 7);
	fake_run(h, 0.2);
	ck_assert_msg(fake_count_calls(h, URL3 "/election/election") == 1,
	              "expected no further ELECTION after the COORDINATOR");
	ck_assert_int_eq(h->n_elected, 0);
}
END_TEST

START_TEST(election_from_a_lower_id_is_answered_ok_and_starts_an_own_election)
{
	int status, before;
	char *r;
	json_t *j;

	follow_3_at_epoch_4(conf_preempt);
	before = fake_count_calls(h, URL3 "/election/election");
	r = fake_message(h, "election", "{\"id\":1,\"epoch\":4}", &status);
	ck_assert_msg(status == 200, "expected 200, got %d %s", status, r);
	j = json_loads(r, 0, NULL);
	ck_assert_msg(json_is_true(json_object_get(j, "ok")), "expected ok:true, got %s", r);
	ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "2");
	json_decref(j);
	free(r);
	ck_assert_msg(fake_count_calls(h, URL3 "/election/election") == before + 1,
	              "expected node 2 to send its own ELECTION to node 3");
	ck_assert_str_eq(fake_status_str(h, "state"), "electing");
}
END_TEST

START_TEST(election_to_a_primary_is_answered_ok_and_the_coordinator_repeated)
{
	int status, before;
	char *r;

	become_primary(conf_preempt);
	before = fake_count_calls(h, URL1 "/election/coordinator");
	r = fake_message(h, "election", "{\"id\":\"1\",\"epoch\":0}", &status);
	ck_assert_msg(status == 200 && strstr(r, "\"ok\":true"), "expected 200 ok, got %d %s",
	              status, r);
	free(r);
	ck_assert_msg(fake_count_calls(h, URL1 "/election/coordinator") == before + 1,
	              "expected the COORDINATOR to be sent again to node 1");
	ck_assert_int_eq(h->n_lease_take, 1); /* no new epoch */
	ck_assert_msg(is_primary(h), "expected node 2 to stay primary");
}
END_TEST

START_TEST(election_is_answered_not_ok_when_this_node_cannot_reach_redis)
{
	int status;
	char *r;

	h->redis_down = 1;
	load(conf_preempt);
	ck_assert_msg(fake_run_until(h, redis_known_down, 2.0),
	              "expected the node to notice that Redis is down");
	h->redis_refuse = 1; /* not connected: nothing can be sent */
	r = fake_message(h, "election", "{\"id\":1}", &status);
	ck_assert_msg(status == 200 && strstr(r, "\"ok\":false"),
	              "expected 200 ok:false from a node without Redis, got %d %s", status, r);
	free(r);
	ck_assert_msg(fake_count_calls(h, "/election/election") == 0,
	              "expected no election without Redis");
}
END_TEST

/* #22: after a Redis restart, a node whose last store call failed answers
 * an ELECTION from what Redis says now, not from that stale failure: the
 * highest live id leads, and only one epoch is taken. */
START_TEST(election_after_redis_came_back_is_answered_ok_before_the_next_check)
{
	int status;
	char *r;

	follow_3_at_epoch_4(conf_preempt);
	/* Redis restarts empty: node 2's next check fails... */
	h->redis_down = 1;
	ck_assert_msg(fake_run_until(h, redis_known_down, 1.0),
	              "expected node 2 to notice that Redis is down");
	/* ...and Redis is back, with no epoch and no lease, before its next check */
	h->redis_down = 0;
	h->epoch = 0;
	h->lease_holder[0] = '\0';
	h->leader_id[0] = '\0';
	r = fake_message(h, "election", "{\"id\":1,\"epoch\":0}", &status);
	ck_assert_msg(status == 200 && strstr(r, "\"ok\":true"),
	              "expected ok:true from a node whose Redis is back, got %d %s", status, r);
	free(r);
	ck_assert_msg(fake_run_until(h, pending_election_to_3, 1.0),
	              "expected node 2 to look at Redis and run its own election");
	ck_assert_int_eq(h->n_lease_take, 0);
}
END_TEST

START_TEST(election_is_answered_not_ok_while_a_store_call_goes_unanswered)
{
	int status;
	char *r;

	follow_3_at_epoch_4(conf_preempt);
	h->redis_hang = 1;       /* cut from Redis: calls are sent, nothing comes back */
	fake_run(h, 0.05 + 0.1); /* the next check, then longer than timeout (0.05 s) */
	r = fake_message(h, "election", "{\"id\":1}", &status);
	ck_assert_msg(status == 200 && strstr(r, "\"ok\":false") && strstr(r, "does not answer"),
	              "expected ok:false while Redis does not answer, got %d %s", status, r);
	free(r);
	ck_assert_int_eq(fake_count_calls(h, "/election/election"), 0);
}
END_TEST

static int two_elections_to_3(struct fake_host *fh)
{
	return fake_count_calls(fh, URL3 "/election/election") == 2 &&
	       fake_find_call(fh, URL3 "/election/election", FAKE_PENDING, 0) >= 0;
}

/* #22: after a Redis restart the nodes reconnect moments apart; a higher
 * node that answers "no Redis" is asked again before this node leads. */
START_TEST(a_higher_node_without_redis_yet_is_asked_again_before_taking_the_lead)
{
	static const char *no =
	    "{\"ok\":false,\"id\":\"3\",\"reason\":\"this node cannot reach Redis\"}";

	load(conf_preempt);
	ck_assert(fake_run_until(h, pending_election_to_3, 1.0));
	fake_answer_all(h, URL3 "/election/election", 200, no);
	fake_run(h, 0.02);
	ck_assert_msg(h->n_lease_take == 0, "expected no lead taken at node 3's first no");
	ck_assert_msg(fake_run_until(h, two_elections_to_3, 1.0),
	              "expected a second ELECTION to node 3 after timeout");
	fake_answer_all(h, URL3 "/election/election", 200, "{\"ok\":true,\"id\":\"3\"}");
	ck_assert_str_eq(fake_status_str(h, "phase"), "waiting");
	ck_assert_int_eq(h->n_lease_take, 0);
	ck_assert_int_eq(fake_status_int(h, "elections"), 1);
}
END_TEST

START_TEST(a_higher_node_still_without_redis_is_passed_over)
{
	static const char *no =
	    "{\"ok\":false,\"id\":\"3\",\"reason\":\"Redis does not answer this node\"}";

	load(conf_preempt);
	ck_assert(fake_run_until(h, pending_election_to_3, 1.0));
	fake_answer_all(h, URL3 "/election/election", 200, no);
	ck_assert(fake_run_until(h, two_elections_to_3, 1.0));
	fake_answer_all(h, URL3 "/election/election", 200, no);
	ck_assert_msg(fake_run_until(h, is_primary, 1.0),
	              "expected node 2 to lead when node 3 still cannot reach Redis");
	ck_assert_int_eq(h->elected_epoch, 1);
}
END_TEST

START_TEST(coordinator_with_an_older_epoch_is_refused)
{
	int status;
	char *r;

	follow_3_at_epoch_4(conf_preempt);
	r = fake_message(h, "coordinator", "{\"id\":3,\"epoch\":3}", &status);
	ck_assert_msg(status == 409, "expected 409 for epoch 3 < 4, got %d %s", status, r);
	ck_assert_msg(strstr(r, "\"error\"") != NULL, "expected a JSON error, got %s", r);
	free(r);
	/* same epoch, another sender: two winners can never share an epoch */
	r = fake_message(h, "coordinator", "{\"id\":1,\"epoch\":4}", &status);
	ck_assert_msg(status == 409, "expected 409 for epoch 4 from node 1, got %d %s", status, r);
	free(r);
	ck_assert_str_eq(h->primary_id, "3");
	ck_assert_int_eq(h->primary_epoch, 4);
	ck_assert_int_eq(h->n_primary, 1);
	ck_assert_str_eq(fake_status_str(h, "state"), "backup");
	ck_assert_int_eq(fake_status_int(h, "messages_refused"), 2);
}
END_TEST

START_TEST(coordinator_from_a_lower_id_is_followed_then_asked_to_release_with_preempt)
{
	int status;
	char *r;

	/* Node 1 won while node 2 could not answer; it holds the lease. Node 2
	 * follows it (Redis says so), then preempts by asking it to release. */
	follow_3_at_epoch_4(conf_preempt);
	fake_lease_hold(h, "1", 5, 60.0);
	r = fake_message(h, "coordinator", "{\"id\":1,\"epoch\":5}", &status);
	ck_assert_msg(status == 200, "expected 200 for a COORDINATOR from lower id 1, got %d %s",
	              status, r);
	free(r);
	ck_assert_str_eq(h->primary_id, "1");
	ck_assert_str_eq(fake_status_str(h, "state"), "backup");
	ck_assert(fake_run_until(h, pending_ping_to_1, 1.0));
	fake_answer_all(h, URL1 "/election/ping", 200, "{\"state\":\"primary\",\"epoch\":5}");
	ck_assert_msg(fake_find_call(h, URL1 "/election/release", FAKE_PENDING, 0) >= 0,
	              "expected node 2 to ask node 1 to release the lead");
	ck_assert_int_eq(h->n_lease_take, 0);
}
END_TEST

START_TEST(coordinator_from_a_lower_id_is_accepted_without_preempt)
{
	int status;
	char *r;

	follow_3_at_epoch_4(conf_no_preempt);
	r = fake_message(h, "coordinator", "{\"id\":1,\"epoch\":5}", &status);
	ck_assert_msg(status == 200, "expected 200 with preempt = false, got %d %s", status, r);
	free(r);
	ck_assert_str_eq(h->primary_id, "1");
	ck_assert_int_eq(h->primary_epoch, 5);
	ck_assert_str_eq(h->primary_url, URL1);
}
END_TEST

static int follows_3_at_4(struct fake_host *fh)
{
	json_t *j = fake_status(fh);
	json_t *p = json_object_get(j, "primary");
	int ok = p && json_integer_value(json_object_get(p, "epoch")) == 4 &&
	         strcmp(json_string_value(json_object_get(p, "id")), "3") == 0;
	json_decref(j);
	return ok;
}

START_TEST(an_epoch_beyond_redis_is_corrected_from_redis)
{
	int status;
	char *r;

	/* Redis is the ground truth: epochs only grow there, so an epoch a
	 * message claims beyond Redis's is a lie (or Redis lost its data). */
	follow_3_at_epoch_4(conf_preempt);
	r = fake_message(h, "coordinator", "{\"id\":3,\"epoch\":100}", &status);
	ck_assert_msg(status == 200, "expected 200 (node 3 is higher), got %d %s", status, r);
	free(r);
	ck_assert_int_eq(h->primary_epoch, 100);
	ck_assert_msg(fake_run_until(h, follows_3_at_4, 1.0),
	              "expected node 2 to go back to Redis's epoch 4 for primary 3");
	/* the real next COORDINATOR (epoch 5) is not refused as stale */
	fake_lease_hold(h, "3", 5, 60.0);
	r = fake_message(h, "coordinator", "{\"id\":3,\"epoch\":5}", &status);
	ck_assert_msg(status == 200, "expected 200 for the real epoch 5, got %d %s", status, r);
	free(r);
	ck_assert_int_eq(h->primary_epoch, 5);
}
END_TEST

START_TEST(invalid_messages_are_refused_and_change_nothing)
{
	static const struct {
		const char *type, *body;
		int status;
	} cases[] = {
	    {"coordinator", "{\"id\":3,", 400},
	    {"coordinator", "[1,2]", 400},
	    {"coordinator", "\"x\"", 400},
	    {"coordinator", "{\"id\":3}", 400},
	    {"coordinator", "{\"id\":3,\"epoch\":-1}", 400},
	    {"coordinator", "{\"id\":3,\"epoch\":\"9\"}", 400},
	    {"coordinator", "{\"id\":0,\"epoch\":9}", 400},
	    {"coordinator", "{\"id\":\"3x\",\"epoch\":9}", 400},
	    {"coordinator", "{\"id\":9,\"epoch\":9}", 400},
	    {"coordinator", "{\"id\":2,\"epoch\":9}", 400},
	    {"coordinator", "{\"id\":3,\"epoch\":9,\"url\":5}", 400},
	    {"coordinator", "{\"id\":3,\"id\":3,\"epoch\":9}", 400},
	    {"election", "{}", 400},
	    {"election", "{\"id\":9}", 400},
	    {"election", "{\"id\":3}", 409},
	    {"election", "not json", 400},
	    {"promote", "{}", 404},
	    {"", "{}", 404},
	};
	int status;
	char *r;

	follow_3_at_epoch_4(conf_preempt);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = fake_message(h, cases[i].type, cases[i].body, &status);
		ck_assert_msg(status == cases[i].status, "%s %s: expected %d, got %d %s",
		              cases[i].type, cases[i].body, cases[i].status, status, r ? r : "");
		ck_assert_msg(r && strstr(r, "\"error\""), "%s %s: expected a JSON error, got %s",
		              cases[i].type, cases[i].body, r ? r : "(null)");
		free(r);
	}
	ck_assert_str_eq(h->primary_id, "3");
	ck_assert_int_eq(h->primary_epoch, 4);
	ck_assert_int_eq(h->n_primary, 1);
	ck_assert_str_eq(fake_status_str(h, "state"), "backup");
	ck_assert_msg(fake_count_calls(h, "/election/election") == 0,
	              "expected no election caused by invalid messages");
}
END_TEST

START_TEST(ping_answers_state_and_epoch)
{
	int status;
	char *r;
	json_t *j;

	become_primary(conf_preempt);
	r = fake_message(h, "ping", "", &status);
	ck_assert_int_eq(status, 200);
	j = json_loads(r, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "primary");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "epoch")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "plugin")), "bully");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "primary"), "id")),
	                 "2");
	json_decref(j);
	free(r);
}
END_TEST

START_TEST(fenced_deposes_the_primary_at_once)
{
	become_primary(conf_preempt);
	h->plugin->ops.election->fenced(h->ctx, 9);
	ck_assert_msg(h->n_deposed == 1, "expected deposed at once, got %d deposed", h->n_deposed);
	ck_assert_msg(strstr(h->deposed_reason, "fenced"),
	              "expected a reason naming the fence, got %s", h->deposed_reason);
	ck_assert_str_ne(fake_status_str(h, "state"), "primary");
	ck_assert_int_eq(fake_status_int(h, "deposed"), 1);
}
END_TEST

START_TEST(a_primary_without_redis_for_the_lease_is_deposed)
{
	become_primary(conf_preempt);
	h->redis_down = 1;
	fake_run(h, 0.1); /* half the lease */
	ck_assert_msg(h->n_deposed == 0, "expected no step down before the lease (0.2 s) ran out");
	ck_assert_msg(fake_run_until(h, was_deposed, 0.5),
	              "expected the primary to step down once the 0.2 s lease ran out");
	ck_assert_msg(strstr(h->deposed_reason, "lost Redis"), "expected \"lost Redis\", got %s",
	              h->deposed_reason);
	ck_assert_str_eq(fake_status_str(h, "state"), "backup");
	/* no election without Redis, and no OK to others */
	fake_run(h, 0.2);
	ck_assert_int_eq(h->n_lease_take, 1);
}
END_TEST

START_TEST(a_primary_that_sees_a_newer_epoch_in_redis_steps_down)
{
	become_primary(conf_preempt);
	h->epoch = 2; /* someone else took epoch 2 */
	strcpy(h->leader_id, "3");
	h->leader_epoch = 2;
	ck_assert_msg(fake_run_until(h, was_deposed, 0.5),
	              "expected a step down once the leader record shows epoch 2");
	ck_assert_msg(strstr(h->deposed_reason, "epoch 2"),
	              "expected the new epoch in the reason, got %s", h->deposed_reason);
}
END_TEST

START_TEST(a_primary_renews_its_lease_at_every_check)
{
	int before;

	become_primary(conf_preempt);
	before = h->n_lease_renew;
	fake_run(h, 0.5); /* lease 0.2 s, checks every 0.05 s */
	ck_assert_msg(h->n_lease_renew >= before + 5, "expected about 10 renewals in 0.5 s, got %d",
	              h->n_lease_renew - before);
	ck_assert_msg(is_primary(h) && h->n_deposed == 0,
	              "expected node 2 to stay primary for 0.5 s, more than its 0.2 s lease");
	ck_assert_msg(fake_lease_live(h) && strcmp(h->lease_holder, "2") == 0,
	              "expected node 2's lease to be live in the store");
}
END_TEST

START_TEST(a_primary_is_not_deposed_by_a_coordinator_unless_redis_says_so)
{
	int status;
	char *r;

	become_primary(conf_preempt);
	/* a COORDINATOR that Redis does not back: refused, nothing changes */
	r = fake_message(h, "coordinator", "{\"id\":3,\"epoch\":2,\"url\":\"" URL3 "\"}", &status);
	ck_assert_msg(status == 409, "expected 409 from a primary, got %d %s", status, r);
	free(r);
	fake_run(h, 0.1);
	ck_assert_msg(is_primary(h) && h->n_deposed == 0,
	              "expected node 2 to stay primary: Redis shows its own lease");
	/* node 3 really took epoch 2 (node 2's lease had lapsed in Redis) */
	fake_lease_hold(h, "3", 2, 60.0);
	r = fake_message(h, "coordinator", "{\"id\":3,\"epoch\":2,\"url\":\"" URL3 "\"}", &status);
	free(r);
	ck_assert_msg(fake_run_until(h, was_deposed, 0.5),
	              "expected a step down once Redis shows epoch 2");
	ck_assert_msg(fake_run_until(h, pending_ping_to_3, 0.5),
	              "expected node 2 to follow the holder of the lease, node 3");
	ck_assert_str_eq(h->primary_id, "3");
	ck_assert_int_eq(h->primary_epoch, 2);
}
END_TEST

START_TEST(a_backup_whose_dead_primary_fails_a_check_breaks_its_lease_and_takes_over)
{
	follow_3_at_epoch_4(conf_preempt);
	h->lease_gone = 1; /* node 3 was killed: Redis closed its connection */
	ck_assert(fake_run_until(h, pending_ping_to_3, 1.0));
	fake_answer_all(h, URL3 "/election/ping", 0, "Connection refused");
	ck_assert_msg(fake_run_until(h, pending_election_to_3, 0.5),
	              "expected an ELECTION once the dead primary's lease was broken");
	ck_assert_int_eq(h->n_lease_break, 1);
	fake_answer_all(h, URL3 "/election/election", 0, "Connection refused");
	ck_assert_msg(fake_run_until(h, is_primary, 1.0), "expected node 2 to take over");
	ck_assert_int_eq(h->elected_epoch, 5);
	ck_assert_int_eq(fake_status_int(h, "checks_failed"), 1);
}
END_TEST

static int lease_lapsed(struct fake_host *fh)
{
	return !fake_lease_live(fh);
}

/* #25: the primary is cut off from this node but still renews its lease in
 * Redis (its connection is open): nobody takes the role nor an epoch. */
START_TEST(a_primary_that_does_not_answer_but_holds_its_lease_keeps_the_role)
{
	follow_3_at_epoch_4(conf_preempt);
	for (int i = 0; i < 6; i++) {
		ck_assert(fake_run_until(h, pending_ping_to_3, 1.0));
		fake_answer_all(h, URL3 "/election/ping", 0, "Operation timed out");
		fake_lease_hold(h, "3", 4, 60.0); /* node 3 renews */
		fake_run(h, 0.01);
	}
	ck_assert_msg(fake_count_calls(h, "/election/election") == 0 && h->n_lease_take == 0,
	              "expected no election while node 3's lease is live");
	ck_assert_msg(h->n_lease_break >= 1, "expected node 2 to ask Redis about node 3");
	ck_assert_str_eq(fake_status_str(h, "state"), "backup");
	ck_assert_str_eq(h->primary_id, "3");
	ck_assert_int_eq(h->epoch, 4);
	/* healed: node 3 answers again and nothing changes */
	ck_assert(fake_run_until(h, pending_ping_to_3, 1.0));
	fake_answer_all(h, URL3 "/election/ping", 200, "{\"state\":\"primary\",\"epoch\":4}");
	fake_run(h, 0.2);
	fake_answer_all(h, URL3 "/election/ping", 200, "{\"state\":\"primary\",\"epoch\":4}");
	ck_assert_int_eq(h->n_primary, 1);
	ck_assert_int_eq(h->n_lease_take, 0);
}
END_TEST

START_TEST(a_hung_primary_is_replaced_once_its_lease_lapses)
{
	follow_3_at_epoch_4_for(conf_preempt, 0.3);
	while (fake_lease_live(h)) {
		ck_assert_msg(fake_count_calls(h, "/election/election") == 0 &&
		                  h->n_lease_take == 0,
		              "expected no election while the lease is live");
		fake_answer_all(h, URL3 "/election/ping", 0, "Operation timed out");
		fake_run(h, 0.005);
	}
	ck_assert_msg(h->n_lease_break >= 1, "expected node 2 to ask Redis about node 3");
	ck_assert_msg(pings_answered_until(URL3 "/election/ping", 0, "Operation timed out",
	                                   pending_election_to_3, 0.5),
	              "expected an election right after the lease lapsed");
	fake_answer_all(h, URL3 "/election/election", 0, "Operation timed out");
	ck_assert_msg(fake_run_until(h, is_primary, 1.0), "expected node 2 to take over");
	ck_assert_int_eq(h->elected_epoch, 5);
}
END_TEST

START_TEST(a_ping_answer_saying_backup_counts_as_a_failure)
{
	follow_3_at_epoch_4_for(conf_preempt, 0.3);
	ck_assert(fake_run_until(h, pending_ping_to_3, 1.0));
	fake_answer_all(h, URL3 "/election/ping", 200, "{\"state\":\"backup\",\"epoch\":0}");
	ck_assert_int_eq(fake_status_int(h, "checks_failed"), 1);
	ck_assert_msg(fake_count_calls(h, "/election/election") == 0,
	              "expected no ELECTION while node 3's lease is live");
	ck_assert_msg(pings_answered_until(URL3 "/election/ping", 200,
	                                   "{\"state\":\"backup\",\"epoch\":0}",
	                                   pending_election_to_3, 1.0),
	              "expected an ELECTION once the former primary's lease lapsed");
}
END_TEST

/* #23: different tokens are a configuration error, not a dead primary. */
START_TEST(a_primary_that_refuses_our_token_is_not_taken_for_dead)
{
	int errs;

	follow_3_at_epoch_4(conf_preempt);
	errs = h->n_err_logs;
	for (int i = 0; i < 5; i++) {
		ck_assert(fake_run_until(h, pending_ping_to_3, 1.0));
		fake_answer_all(h, URL3 "/election/ping", 401, "{\"error\":\"bad token\"}");
	}
	ck_assert_msg(fake_count_calls(h, "/election/election") == 0 && h->n_lease_take == 0 &&
	                  h->n_lease_break == 0,
	              "expected no election over a 401");
	ck_assert_int_eq(fake_status_int(h, "checks_failed"), 0);
	ck_assert_msg(h->n_err_logs == errs + 1, "expected one error logged for 5 refusals, got %d",
	              h->n_err_logs - errs);
	ck_assert_str_eq(h->primary_id, "3");
	ck_assert_str_eq(fake_status_str(h, "state"), "backup");
	/* 403 too */
	ck_assert(fake_run_until(h, pending_ping_to_3, 1.0));
	fake_answer_all(h, URL3 "/election/ping", 403, "{\"error\":\"forbidden\"}");
	ck_assert_int_eq(fake_count_calls(h, "/election/election"), 0);
}
END_TEST

START_TEST(the_refusal_is_logged_again_after_the_peer_accepted_our_token)
{
	int errs;

	follow_3_at_epoch_4(conf_preempt);
	errs = h->n_err_logs;
	ck_assert(fake_run_until(h, pending_ping_to_3, 1.0));
	fake_answer_all(h, URL3 "/election/ping", 401, "{}");
	ck_assert(fake_run_until(h, pending_ping_to_3, 1.0));
	fake_answer_all(h, URL3 "/election/ping", 200, "{\"state\":\"primary\",\"epoch\":4}");
	ck_assert(fake_run_until(h, pending_ping_to_3, 1.0));
	fake_answer_all(h, URL3 "/election/ping", 401, "{}");
	ck_assert_int_eq(h->n_err_logs, errs + 2);
	ck_assert_msg(strstr(h->last_log, "node 3") != NULL || h->n_err_logs == errs + 2,
	              "expected the log to name node 3");
}
END_TEST

START_TEST(a_live_lower_primary_is_not_preempted_with_preempt_off)
{
	/* node 2 restarts while node 1 leads */
	fake_lease_hold(h, "1", 4, 60.0);
	load(conf_no_preempt);
	ck_assert(fake_run_until(h, pending_ping_to_1, 2.0));
	ck_assert_int_eq(
	    fake_answer_all(h, URL1 "/election/ping", 200, "{\"state\":\"primary\",\"epoch\":4}"),
	    1);
	fake_run(h, 0.2);
	fake_answer_all(h, URL1 "/election/ping", 200, "{\"state\":\"primary\",\"epoch\":4}");
	ck_assert_msg(fake_count_calls(h, "/election/election") == 0 && h->n_lease_take == 0 &&
	                  fake_count_calls(h, "/election/release") == 0,
	              "expected no election against a live primary with preempt = false");
	ck_assert_str_eq(fake_status_str(h, "state"), "backup");
	ck_assert_str_eq(h->primary_id, "1");
}
END_TEST

START_TEST(a_live_lower_primary_is_asked_to_release_with_preempt_on)
{
	int i;

	fake_lease_hold(h, "1", 4, 60.0);
	load(conf_preempt);
	ck_assert(fake_run_until(h, pending_ping_to_1, 2.0));
	ck_assert_int_eq(
	    fake_answer_all(h, URL1 "/election/ping", 200, "{\"state\":\"primary\",\"epoch\":4}"),
	    1);
	i = fake_find_call(h, URL1 "/election/release", FAKE_PENDING, 0);
	ck_assert_msg(i >= 0, "expected node 2 to ask node 1 to release the lead");
	ck_assert_str_eq(h->calls[i].auth, "Authorization: Bearer secret");
	ck_assert_msg(h->n_lease_take == 0 && fake_count_calls(h, "/election/election") == 0,
	              "expected no election before node 1 released its lease");
	/* node 1 steps down and drops its lease */
	h->lease_holder[0] = '\0';
	fake_answer(h, i, 200, "{\"ok\":true,\"epoch\":4}");
	ck_assert_msg(pending_election_to_3(h), "expected node 2 to start an election");
	fake_answer_all(h, URL3 "/election/election", 0, "Connection refused");
	ck_assert_msg(fake_run_until(h, is_primary, 1.0), "expected node 2 to take over");
	ck_assert_int_eq(h->elected_epoch, 5);
	ck_assert_int_eq(h->n_lease_take, 1);
}
END_TEST

START_TEST(a_refused_release_changes_nothing)
{
	fake_lease_hold(h, "1", 4, 60.0);
	load(conf_preempt);
	ck_assert(fake_run_until(h, pending_ping_to_1, 2.0));
	fake_answer_all(h, URL1 "/election/ping", 200, "{\"state\":\"primary\",\"epoch\":4}");
	ck_assert_int_eq(fake_answer_all(h, URL1 "/election/release", 409, "{\"error\":\"no\"}"),
	                 1);
	fake_run(h, 0.1);
	ck_assert_msg(h->n_lease_take == 0 && fake_count_calls(h, "/election/election") == 0,
	              "expected no election when node 1 keeps the lead");
	ck_assert_str_eq(h->primary_id, "1");
}
END_TEST

START_TEST(a_primary_releases_the_lead_to_a_higher_id_only)
{
	static const struct {
		const char *body;
		int status;
	} refused[] = {
	    {"{\"id\":1}", 409}, /* a lower id */
	    {"{\"id\":9}", 400}, /* not a peer */
	    {"{}", 400},
	    {"{\"id\":\"x\"}", 400},
	};
	int status;
	char *r;

	become_primary(conf_preempt);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		r = fake_message(h, "release", refused[i].body, &status);
		ck_assert_msg(status == refused[i].status, "release %s: expected %d, got %d %s",
		              refused[i].body, refused[i].status, status, r);
		free(r);
	}
	ck_assert_msg(is_primary(h) && fake_lease_live(h), "expected node 2 to keep the lead");
	r = fake_message(h, "release", "{\"id\":3,\"epoch\":1}", &status);
	ck_assert_msg(status == 200, "expected 200 for node 3's release, got %d %s", status, r);
	free(r);
	ck_assert_msg(h->n_deposed == 1 && !is_primary(h), "expected node 2 to step down at once");
	ck_assert_msg(fake_run_until(h, lease_lapsed, 0.1), "expected node 2 to drop its lease");
	/* a backup has nothing to release */
	r = fake_message(h, "release", "{\"id\":3}", &status);
	ck_assert_msg(status == 409, "expected 409 from a backup, got %d %s", status, r);
	free(r);
}
END_TEST

START_TEST(a_winner_that_finds_the_lease_taken_follows_its_holder)
{
	load(conf_preempt);
	ck_assert(fake_run_until(h, pending_election_to_3, 1.0));
	fake_lease_hold(h, "3", 1, 60.0); /* node 3 took the lead meanwhile */
	fake_answer_all(h, URL3 "/election/election", 0, "Connection refused");
	fake_run(h, 0.02);
	ck_assert_msg(h->n_elected == 0, "expected no primary while node 3 holds the lease");
	ck_assert_int_eq(h->n_lease_take, 1);
	ck_assert_int_eq(h->epoch, 1);
	ck_assert_str_ne(fake_status_str(h, "state"), "primary");
	ck_assert_str_eq(h->primary_id, "3");
	ck_assert_msg(fake_run_until(h, pending_ping_to_3, 1.0), "expected node 2 to watch node 3");
}
END_TEST

static double lease_remaining(struct fake_host *fh)
{
	json_t *j = fake_status(fh);
	double v = json_real_value(json_object_get(json_object_get(j, "lease"), "remaining"));

	json_decref(j);
	return v;
}

START_TEST(a_primary_stops_acting_when_its_renewals_go_unanswered)
{
	become_primary(conf_preempt);
	fake_run(h, 0.12);
	/* the primary counts its lease from when it sent the renewal, the store
	 * from when it ran it: the primary's own view never outlasts Redis's */
	ck_assert_msg(lease_remaining(h) <= h->lease_until - ev_now(h->loop) &&
	                  lease_remaining(h) > 0,
	              "expected the primary's lease (%.3f s left) to end no later than the "
	              "store's (%.3f s left)",
	              lease_remaining(h), h->lease_until - ev_now(h->loop));
	h->redis_hang = 1; /* cut from Redis: renewals are sent, never answered */
	fake_run(h, 0.1);
	ck_assert_msg(is_primary(h), "expected node 2 to act while its lease is live");
	ck_assert_msg(fake_run_until(h, was_deposed, 0.5),
	              "expected the primary to step down within its 0.2 s lease");
	ck_assert_msg(strstr(h->deposed_reason, "lost Redis"), "expected \"lost Redis\", got %s",
	              h->deposed_reason);
}
END_TEST

START_TEST(settings_are_validated)
{
	static const struct {
		const char *conf, *expect;
	} cases[] = {
	    {"election = { plugin = \"bully\"; check_intervall = 1; };", "unknown"},
	    {"election = { plugin = \"bully\"; check_interval = 0; };", "between"},
	    {"election = { plugin = \"bully\"; check_interval = \"5\"; };", "number"},
	    {"election = { plugin = \"bully\"; timeout = -1.0; };", "between"},
	    {"election = { plugin = \"bully\"; check_interval = 1; lease = 0.5; };", "longer"},
	    {"election = { plugin = \"bully\"; failures_before_election = 0; };", "1 to 1000"},
	    {"election = { plugin = \"bully\"; preempt = 1; };", "true or false"},
	    {"election = { plugin = \"bully\"; peers = ( { id = 3; } ); };", "url"},
	    {"election = { plugin = \"bully\"; peers = ( { id = 0; url = \"http://a:1\"; } ); };",
	     "positive"},
	    {"election = { plugin = \"bully\"; peers = ( { id = 3; url = \"ftp://a:1\"; } ); };",
	     "http://"},
	    {"election = { plugin = \"bully\"; peers = ( { id = 3; url = \"http://a:1\"; },"
	     " { id = 3; url = \"http://b:1\"; } ); };",
	     "twice"},
	    {"election = { plugin = \"bully\"; peers = ( { id = 3; url = \"http://a:1\"; x = 1; } "
	     "); };",
	     "unknown"},
	    {"election = { plugin = \"bully\"; peers = \"http://a:1\"; };", "list"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake_host *fh = fake_host_new("2", URL2, NULL);
		int rc = fake_load(fh, "election", "bully", cases[i].conf);
		ck_assert_msg(rc == -1, "%s: expected init to refuse it, got %d", cases[i].conf,
		              rc);
		ck_assert_msg(strstr(fh->last_log, cases[i].expect) != NULL,
		              "%s: expected an error mentioning \"%s\", got \"%s\"", cases[i].conf,
		              cases[i].expect, fh->last_log);
		fake_host_free(fh);
	}
	/* a non-numeric node id cannot be compared */
	{
		struct fake_host *fh = fake_host_new("alpha", URL2, NULL);
		ck_assert_int_eq(fake_load(fh, "election", "bully", NULL), -1);
		fake_host_free(fh);
	}
}
END_TEST

START_TEST(defaults_need_no_settings)
{
	json_t *j;

	ck_assert_int_eq(fake_load(h, "election", "bully", NULL), 0);
	j = fake_status(h);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "backup");
	ck_assert(json_is_true(json_object_get(j, "preempt")));
	ck_assert(json_is_null(json_object_get(j, "primary")));
	json_decref(j);
}
END_TEST

START_TEST(without_a_token_no_authorization_header_is_sent)
{
	fake_host_free(h);
	h = fake_host_new("2", URL2, NULL);
	load(conf_preempt);
	ck_assert(fake_run_until(h, pending_election_to_3, 1.0));
	ck_assert_str_eq(h->calls[fake_find_call(h, URL3 "/election/election", -1, 0)].auth, "");
}
END_TEST

static Suite *bully_suite(void)
{
	Suite *s = suite_create("election bully");
	TCase *tc = tcase_create("bully");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, a_node_with_no_primary_wins_when_no_higher_node_answers);
	tcase_add_test(tc, a_node_that_gets_an_ok_waits_for_the_coordinator_then_starts_again);
	tcase_add_test(tc, an_ok_then_a_coordinator_makes_the_sender_primary);
	tcase_add_test(tc, election_from_a_lower_id_is_answered_ok_and_starts_an_own_election);
	tcase_add_test(tc, election_to_a_primary_is_answered_ok_and_the_coordinator_repeated);
	tcase_add_test(tc, election_is_answered_not_ok_when_this_node_cannot_reach_redis);
	tcase_add_test(tc, election_after_redis_came_back_is_answered_ok_before_the_next_check);
	tcase_add_test(tc, election_is_answered_not_ok_while_a_store_call_goes_unanswered);
	tcase_add_test(tc, a_higher_node_without_redis_yet_is_asked_again_before_taking_the_lead);
	tcase_add_test(tc, a_higher_node_still_without_redis_is_passed_over);
	tcase_add_test(tc, coordinator_with_an_older_epoch_is_refused);
	tcase_add_test(tc,
	               coordinator_from_a_lower_id_is_followed_then_asked_to_release_with_preempt);
	tcase_add_test(tc, coordinator_from_a_lower_id_is_accepted_without_preempt);
	tcase_add_test(tc, an_epoch_beyond_redis_is_corrected_from_redis);
	tcase_add_test(tc, invalid_messages_are_refused_and_change_nothing);
	tcase_add_test(tc, ping_answers_state_and_epoch);
	tcase_add_test(tc, fenced_deposes_the_primary_at_once);
	tcase_add_test(tc, a_primary_without_redis_for_the_lease_is_deposed);
	tcase_add_test(tc, a_primary_that_sees_a_newer_epoch_in_redis_steps_down);
	tcase_add_test(tc, a_primary_renews_its_lease_at_every_check);
	tcase_add_test(tc, a_primary_is_not_deposed_by_a_coordinator_unless_redis_says_so);
	tcase_add_test(tc,
	               a_backup_whose_dead_primary_fails_a_check_breaks_its_lease_and_takes_over);
	tcase_add_test(tc, a_primary_that_does_not_answer_but_holds_its_lease_keeps_the_role);
	tcase_add_test(tc, a_hung_primary_is_replaced_once_its_lease_lapses);
	tcase_add_test(tc, a_ping_answer_saying_backup_counts_as_a_failure);
	tcase_add_test(tc, a_primary_that_refuses_our_token_is_not_taken_for_dead);
	tcase_add_test(tc, the_refusal_is_logged_again_after_the_peer_accepted_our_token);
	tcase_add_test(tc, a_live_lower_primary_is_not_preempted_with_preempt_off);
	tcase_add_test(tc, a_live_lower_primary_is_asked_to_release_with_preempt_on);
	tcase_add_test(tc, a_refused_release_changes_nothing);
	tcase_add_test(tc, a_primary_releases_the_lead_to_a_higher_id_only);
	tcase_add_test(tc, a_winner_that_finds_the_lease_taken_follows_its_holder);
	tcase_add_test(tc, a_primary_stops_acting_when_its_renewals_go_unanswered);
	tcase_add_test(tc, settings_are_validated);
	tcase_add_test(tc, defaults_need_no_settings);
	tcase_add_test(tc, without_a_token_no_authorization_header_is_sent);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(bully_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
