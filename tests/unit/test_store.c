/* The Redis connection and the fenced state store, against a real
 * redis-server started by each test on a free loopback port. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "log.h"
#include "redis_conn.h"
#include "store.h"

/* ---- a throwaway redis-server ------------------------------------------- */

struct redis_proc {
	pid_t pid;
	int port;
	char dir[64];
};

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static int port_answers(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons(port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
	ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

static const char *redis_extra[8]; /* more redis-server arguments, NULL-terminated */

static void redis_start(struct redis_proc *p)
{
	char port[16];
	const char *argv[32];
	int n = 0;
	if (!p->dir[0]) {
		snprintf(p->dir, sizeof(p->dir), "/tmp/test_store-XXXXXX");
		ck_assert_msg(mkdtemp(p->dir) != NULL, "mkdtemp: %s", strerror(errno));
	}
	if (!p->port)
		p->port = free_port();
	snprintf(port, sizeof(port), "%d", p->port);
	p->pid = fork();
	ck_assert_int_ge(p->pid, 0);
	if (p->pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test leaves no server behind */
		dup2(null, 1);
		dup2(null, 2);
		const char *base[] = {
		    "redis-server", "--port",        port,     "--bind", "127.0.0.1",
		    "--dir",        p->dir,          "--save", "",       "--appendonly",
		    "yes",          "--appendfsync", "always"};
		for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
			argv[n++] = base[i];
		for (int i = 0; redis_extra[i]; i++)
			argv[n++] = redis_extra[i];
		argv[n] = NULL;
		execvp("redis-server", (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 500 && !port_answers(p->port); i++)
		usleep(10000);
	ck_assert_msg(port_answers(p->port), "redis-server did not listen on port %d", p->port);
}

static void redis_kill(struct redis_proc *p)
{
	if (p->pid > 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		p->pid = 0;
	}
}

static void redis_cleanup(struct redis_proc *p)
{
	char cmd[128];
	redis_kill(p);
	if (p->dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", p->dir);
	}
}

/* ---- loop helpers ------------------------------------------------------- */

static struct ev_loop *loop;
static struct redis_proc rp;
static struct redis_conn *rc;
static struct store *st;

static void run_until(const int *flag, double timeout, const char *what)
{
	ev_tstamp end = ev_time() + timeout;
	while (!*flag && ev_time() < end) {
		ev_now_update(loop);
		ev_run(loop, EVRUN_NOWAIT);
		usleep(2000);
	}
	ck_assert_msg(*flag, "timed out after %.1fs waiting for %s", timeout, what);
}

static void state_cb(void *arg, int connected)
{
	*(int *)arg = connected ? 1 : -1;
}

static int state;

static void setup(void)
{
	char err[256], url[64];
	log_setup("test_store", SCALER_LOG_WARNING, 0);
	loop = ev_default_loop(0);
	memset(&rp, 0, sizeof(rp));
	redis_start(&rp);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/2", rp.port);
	rc = redis_conn_new(loop, url, err, sizeof(err));
	ck_assert_msg(rc != NULL, "redis_conn_new(%s): %s", url, err);
	state = 0;
	redis_conn_on_state(rc, state_cb, &state);
	run_until(&state, 5, "the connection to redis");
	ck_assert_int_eq(state, 1);
	st = store_new(rc, "t1");
	ck_assert_ptr_nonnull(st);
}

static void teardown(void)
{
	store_free(st);
	redis_conn_free(rc);
	redis_cleanup(&rp);
}

/* Synchronous wrappers: one operation, run the loop until it completes. */
struct result {
	int done;
	enum store_status st;
	char err[512];
	uint64_t epoch, current;
	struct store_leader leader;
	struct store_server servers[64];
	size_t n;
	json_t *events;
	char last_id[64];
};

static void done_cb(void *arg, enum store_status s, const char *err)
{
	struct result *r = arg;
	r->st = s;
	snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
	r->done = 1;
}

static void epoch_cb(void *arg, enum store_status s, uint64_t epoch, const char *err)
{
	struct result *r = arg;
	r->st = s;
	r->epoch = epoch;
	snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
	r->done = 1;
}

static void leader_cb(void *arg, enum store_status s, const struct store_leader *l,
                      uint64_t current)
{
	struct result *r = arg;
	r->st = s;
	r->current = current;
	if (l)
		r->leader = *l;
	r->done = 1;
}

static void servers_cb(void *arg, enum store_status s, const struct store_server *srv, size_t n)
{
	struct result *r = arg;
	r->st = s;
	r->n = n < 64 ? n : 64;
	if (n)
		memcpy(r->servers, srv, r->n * sizeof(*srv));
	r->done = 1;
}

static void events_cb(void *arg, enum store_status s, json_t *events, const char *last_id)
{
	struct result *r = arg;
	r->st = s;
	r->events = events ? json_incref(events) : NULL;
	snprintf(r->last_id, sizeof(r->last_id), "%s", last_id ? last_id : "");
	r->done = 1;
}

static uint64_t take_epoch(void)
{
	struct result r = {0};
	ck_assert_int_eq(store_epoch_take(st, epoch_cb, &r), 0);
	run_until(&r.done, 5, "epoch_take");
	ck_assert_msg(r.st == STORE_OK, "epoch_take: expected ok, got %d (%s)", r.st, r.err);
	return r.epoch;
}

static struct store_server mkserver(const char *zone, const char *id, const char *state_)
{
	struct store_server s;
	memset(&s, 0, sizeof(s));
	snprintf(s.srv.id, sizeof(s.srv.id), "%s", id);
	snprintf(s.srv.zone, sizeof(s.srv.zone), "%s", zone);
	snprintf(s.srv.address, sizeof(s.srv.address), "http://127.0.0.1:9000");
	snprintf(s.srv.ref, sizeof(s.srv.ref), "ref-%s", id);
	s.srv.created = 1700000000.5;
	snprintf(s.driver, sizeof(s.driver), "process");
	snprintf(s.state, sizeof(s.state), "%s", state_);
	return s;
}

static struct result put(uint64_t epoch, const struct store_server *s)
{
	struct result r = {0};
	ck_assert_int_eq(store_server_put(st, epoch, s, done_cb, &r), 0);
	run_until(&r.done, 5, "server_put");
	return r;
}

static struct result del(uint64_t epoch, const char *zone, const char *id)
{
	struct result r = {0};
	ck_assert_int_eq(store_server_del(st, epoch, zone, id, done_cb, &r), 0);
	run_until(&r.done, 5, "server_del");
	return r;
}

static struct result list(const char *zone)
{
	struct result r = {0};
	ck_assert_int_eq(store_servers_list(st, zone, servers_cb, &r), 0);
	run_until(&r.done, 5, "servers_list");
	ck_assert_msg(r.st == STORE_OK, "servers_list: expected ok, got %d", r.st);
	return r;
}

static const struct store_server *find(const struct result *r, const char *id)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->servers[i].srv.id, id) == 0)
			return &r->servers[i];
	return NULL;
}

/* ---- tests -------------------------------------------------------------- */

START_TEST(redis_urls_are_validated_with_a_clear_error)
{
	static const struct {
		const char *url;
		int ok;
		const char *msg; /* part of the error */
	} cases[] = {
	    {"redis://127.0.0.1:1", 1, NULL},
	    {"redis://127.0.0.1:1/3", 1, NULL},
	    {"redis://:secret@127.0.0.1:1/0", 1, NULL},
	    {"redis://user:p%40ss@localhost:1", 1, NULL},
	    {"redis://[::1]:1/1", 1, NULL},
	    {"redis://localhost", 1, NULL},
	    {"unix:/tmp/redis.sock", 1, NULL},
	    {"unix:/tmp/redis.sock?db=4", 1, NULL},
	    {"", 0, "empty"},
	    {"http://127.0.0.1:6379", 0, "expected redis://"},
	    {"redis://127.0.0.1:0", 0, "port"},
	    {"redis://127.0.0.1:99999", 0, "port"},
	    {"redis://127.0.0.1:abc", 0, "port"},
	    {"redis://:6379", 0, "no host"},
	    {"redis://127.0.0.1:6379/x", 0, "db"},
	    {"redis://pw@127.0.0.1:6379", 0, "credentials"},
	    {"unix:relative.sock", 0, "absolute"},
	    {"unix:/tmp/r.sock?db=-1", 0, "db"},
	    {"unix:/tmp/r.sock?foo=1", 0, "unknown parameter"},
	};
	struct ev_loop *l = ev_loop_new(0);
	log_setup("test_store", SCALER_LOG_ERR, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[256] = "";
		struct redis_conn *r = redis_conn_new(l, cases[i].url, err, sizeof(err));
		if (cases[i].ok) {
			ck_assert_msg(r != NULL, "%s: expected accepted, got error: %s",
			              cases[i].url, err);
			ck_assert_int_eq(redis_conn_connected(r), 0);
		} else {
			ck_assert_msg(r == NULL, "%s: expected an error, was accepted",
			              cases[i].url);
			ck_assert_msg(strstr(err, cases[i].msg) != NULL,
			              "%s: expected the error to mention \"%s\", got \"%s\"",
			              cases[i].url, cases[i].msg, err);
		}
		redis_conn_free(r);
	}
	ev_loop_destroy(l);
}
END_TEST

START_TEST(commands_fail_fast_when_redis_is_not_connected)
{
	char err[256], url[64];
	struct ev_loop *l = ev_loop_new(0);
	struct result r = {0};
	log_setup("test_store", SCALER_LOG_ERR, 0);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", free_port());
	struct redis_conn *c = redis_conn_new(l, url, err, sizeof(err));
	ck_assert_ptr_nonnull(c);
	struct store *s = store_new(c, "t1");
	ck_assert_int_eq(redis_conn_connected(c), 0);
	ck_assert_int_eq(redis_conn_command(c, NULL, NULL, "PING"), -1);
	ck_assert_int_eq(store_epoch_take(s, epoch_cb, &r), -1);
	struct store_server srv = mkserver("z", "a", "serving");
	ck_assert_int_eq(store_server_put(s, 1, &srv, done_cb, &r), -1);
	ck_assert_int_eq(r.done, 0);
	store_free(s);
	redis_conn_free(c);
	ev_loop_destroy(l);
}
END_TEST

START_TEST(epoch_take_is_strictly_increasing)
{
	uint64_t prev = 0;
	struct result g = {0};
	for (int i = 0; i < 20; i++) {
		uint64_t e = take_epoch();
		ck_assert_msg(e > prev, "expected epoch > %" PRIu64 ", got %" PRIu64, prev, e);
		prev = e;
	}
	ck_assert_int_eq(store_epoch_get(st, epoch_cb, &g), 0);
	run_until(&g.done, 5, "epoch_get");
	ck_assert_msg(g.epoch == prev, "epoch_get: expected %" PRIu64 ", got %" PRIu64, prev,
	              g.epoch);
}
END_TEST

START_TEST(a_write_with_a_stale_epoch_is_refused_and_changes_nothing)
{
	uint64_t e1 = take_epoch();
	struct store_server a = mkserver("z1", "z1-a", "serving");
	struct result r = put(e1, &a);
	ck_assert_msg(r.st == STORE_OK, "put with the current epoch: expected ok, got %d (%s)",
	              r.st, r.err);
	struct result lr = {0};
	ck_assert_int_eq(store_leader_set(st, e1, "1", "http://127.0.0.1:1", done_cb, &lr), 0);
	run_until(&lr.done, 5, "leader_set");
	ck_assert_int_eq(lr.st, STORE_OK);

	uint64_t e2 = take_epoch(); /* somebody else takes over */
	struct store_server changed = mkserver("z1", "z1-a", "deleting");
	r = put(e1, &changed);
	ck_assert_msg(r.st == STORE_STALE, "put with a stale epoch: expected STORE_STALE, got %d",
	              r.st);
	ck_assert_msg(store_stale_current(r.err) == e2,
	              "stale error should name the current epoch %" PRIu64 ": \"%s\"", e2, r.err);
	struct store_server b = mkserver("z1", "z1-b", "starting");
	r = put(e1, &b);
	ck_assert_int_eq(r.st, STORE_STALE);
	r = del(e1, "z1", "z1-a");
	ck_assert_int_eq(r.st, STORE_STALE);
	lr = (struct result){0};
	ck_assert_int_eq(store_leader_set(st, e1, "2", "http://127.0.0.1:2", done_cb, &lr), 0);
	run_until(&lr.done, 5, "leader_set");
	ck_assert_int_eq(lr.st, STORE_STALE);
	ck_assert_int_eq(store_stale_current(lr.err), e2);

	struct result l = list("z1");
	ck_assert_msg(l.n == 1,
	              "expected exactly the one record written with the current epoch, "
	              "got %zu",
	              l.n);
	ck_assert_str_eq(l.servers[0].srv.id, "z1-a");
	ck_assert_str_eq(l.servers[0].state, "serving");

	struct result g = {0};
	ck_assert_int_eq(store_leader_get(st, leader_cb, &g), 0);
	run_until(&g.done, 5, "leader_get");
	ck_assert_int_eq(g.st, STORE_OK);
	ck_assert_str_eq(g.leader.id, "1");
	ck_assert_str_eq(g.leader.url, "http://127.0.0.1:1");
	ck_assert_int_eq(g.leader.epoch, e1);
	ck_assert_int_eq(g.current, e2);

	/* the new epoch writes fine */
	r = put(e2, &b);
	ck_assert_msg(r.st == STORE_OK, "put with the new epoch: expected ok, got %d (%s)", r.st,
	              r.err);
}
END_TEST

START_TEST(leader_get_without_a_leader_is_not_found)
{
	struct result g = {0};
	ck_assert_int_eq(store_leader_get(st, leader_cb, &g), 0);
	run_until(&g.done, 5, "leader_get");
	ck_assert_int_eq(g.st, STORE_NOTFOUND);
	ck_assert_int_eq(g.current, 0);
}
END_TEST

START_TEST(server_records_are_put_listed_and_deleted_per_zone)
{
	uint64_t e = take_epoch();
	struct store_server a = mkserver("z1", "z1-a", "starting");
	struct store_server b = mkserver("z1", "z1-b", "serving");
	struct store_server c = mkserver("z2", "z2-c", "serving");
	ck_assert_int_eq(put(e, &a).st, STORE_OK);
	ck_assert_int_eq(put(e, &b).st, STORE_OK);
	ck_assert_int_eq(put(e, &c).st, STORE_OK);
	snprintf(a.state, sizeof(a.state), "serving");
	snprintf(a.srv.address, sizeof(a.srv.address), "http://127.0.0.1:9001");
	ck_assert_int_eq(put(e, &a).st, STORE_OK); /* update in place */

	struct result l = list("z1");
	ck_assert_msg(l.n == 2, "zone z1: expected 2 records, got %zu", l.n);
	const struct store_server *got = find(&l, "z1-a");
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got->state, "serving");
	ck_assert_str_eq(got->srv.address, "http://127.0.0.1:9001");
	ck_assert_str_eq(got->srv.ref, "ref-z1-a");
	ck_assert_str_eq(got->driver, "process");
	ck_assert(got->srv.created == 1700000000.5);
	ck_assert_msg(got->updated > 1700000000, "updated should be set by put, got %f",
	              got->updated);

	l = list(NULL);
	ck_assert_msg(l.n == 3, "every zone: expected 3 records, got %zu", l.n);
	ck_assert_ptr_nonnull(find(&l, "z2-c"));

	ck_assert_int_eq(del(e, "z1", "z1-a").st, STORE_OK);
	ck_assert_int_eq(del(e, "z1", "z1-a").st, STORE_OK); /* already gone: still done */
	ck_assert_int_eq(del(e, "z2", "z2-c").st, STORE_OK);
	l = list(NULL);
	ck_assert_msg(l.n == 1 && strcmp(l.servers[0].srv.id, "z1-b") == 0,
	              "after deleting z1-a and z2-c expected only z1-b, got %zu records", l.n);
	l = list("nosuchzone");
	ck_assert_int_eq(l.n, 0);
}
END_TEST

static void raw_cb(void *arg, const void *reply)
{
	*(int *)arg = reply ? 1 : -1;
}

START_TEST(a_malformed_record_in_redis_is_skipped)
{
	uint64_t e = take_epoch();
	struct store_server a = mkserver("z1", "z1-a", "serving");
	int done = 0;
	ck_assert_int_eq(put(e, &a).st, STORE_OK);
	ck_assert_int_eq(
	    redis_conn_command(rc, raw_cb, &done, "HSET t1:servers:z1 bad %s", "{\"id\": 5}"), 0);
	run_until(&done, 5, "raw HSET");
	struct result l = list("z1");
	ck_assert_msg(l.n == 1, "expected the malformed record to be skipped, got %zu", l.n);
}
END_TEST

START_TEST(server_json_is_validated)
{
	static const struct {
		const char *json;
		int ok;
	} cases[] = {
	    {"{\"id\":\"a\",\"zone\":\"z\",\"state\":\"serving\"}", 1},
	    {"{\"id\":\"a\",\"zone\":\"z\",\"state\":\"starting\",\"address\":\"http://x:1\","
	     "\"ref\":\"r\",\"created\":1.5,\"updated\":2,\"driver\":\"docker\"}",
	     1},
	    {"[]", 0},
	    {"{\"zone\":\"z\",\"state\":\"serving\"}", 0},
	    {"{\"id\":\"\",\"zone\":\"z\",\"state\":\"serving\"}", 0},
	    {"{\"id\":5,\"zone\":\"z\",\"state\":\"serving\"}", 0},
	    {"{\"id\":\"a\",\"zone\":\"z\",\"state\":\"running\"}", 0},
	    {"{\"id\":\"a\",\"zone\":\"z\",\"state\":\"serving\",\"created\":\"now\"}", 0},
	    {"{\"id\":\"a\",\"zone\":\"z\",\"state\":\"serving\",\"created\":-1}", 0},
	    {"{\"id\":\"a\",\"zone\":\"z\",\"state\":\"serving\",\"address\":[]}", 0},
	    {"{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
	     "\"zone\":\"z\",\"state\":\"serving\"}",
	     0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct store_server s;
		json_t *j = json_loads(cases[i].json, 0, NULL);
		ck_assert_ptr_nonnull(j);
		int got = store_server_from_json(j, &s);
		ck_assert_msg((got == 0) == cases[i].ok, "%s: expected %s, got %d", cases[i].json,
		              cases[i].ok ? "accepted" : "refused", got);
		json_decref(j);
	}
	struct store_server a = mkserver("z", "id1", "deleting"), b;
	json_t *j = store_server_to_json(&a);
	ck_assert_int_eq(store_server_from_json(j, &b), 0);
	json_decref(j);
	ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
}
END_TEST

static struct result add_event(const char *zone, int from, int to, json_t *extra)
{
	struct result r = {0};
	ck_assert_int_eq(
	    store_event_add(st, zone, "scale", from, to, "above max_cpu", extra, done_cb, &r), 0);
	run_until(&r.done, 5, "event_add");
	ck_assert_msg(r.st == STORE_OK, "event_add: expected ok, got %d (%s)", r.st, r.err);
	return r;
}

static struct result read_events(const char *zone, const char *after, size_t max)
{
	struct result r = {0};
	ck_assert_int_eq(store_events_read(st, zone, after, max, events_cb, &r), 0);
	run_until(&r.done, 5, "events_read");
	ck_assert_msg(r.st == STORE_OK, "events_read: expected ok, got %d", r.st);
	return r;
}

START_TEST(events_are_added_read_by_zone_and_capped)
{
	json_t *extra = json_pack("{s:f, s:s}", "average", 81.5, "kind", "overridden?");
	add_event("z1", 1, 2, extra);
	json_decref(extra);
	add_event("z2", 2, 1, NULL);
	add_event("z1", 2, 3, NULL);

	struct result r = read_events(NULL, "0", 10);
	ck_assert_int_eq(json_array_size(r.events), 3);
	json_t *e0 = json_array_get(r.events, 0);
	ck_assert_str_eq(json_string_value(json_object_get(e0, "zone")), "z1");
	ck_assert_str_eq(json_string_value(json_object_get(e0, "kind")), "scale");
	ck_assert_str_eq(json_string_value(json_object_get(e0, "reason")), "above max_cpu");
	ck_assert_int_eq(json_integer_value(json_object_get(e0, "from")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(e0, "to")), 2);
	ck_assert(json_real_value(json_object_get(e0, "average")) == 81.5);
	ck_assert(json_is_string(json_object_get(e0, "id")));
	ck_assert(json_number_value(json_object_get(e0, "time")) > 1.6e9);
	char last[64];
	snprintf(last, sizeof(last), "%s", r.last_id);
	json_decref(r.events);

	r = read_events("z1", "0", 10);
	ck_assert_msg(json_array_size(r.events) == 2, "zone z1: expected 2 events, got %zu",
	              json_array_size(r.events));
	json_decref(r.events);

	r = read_events(NULL, last, 10);
	ck_assert_msg(json_array_size(r.events) == 0, "after the last id: expected none, got %zu",
	              json_array_size(r.events));
	json_decref(r.events);

	r = read_events(NULL, "$", 10);
	ck_assert_int_eq(json_array_size(r.events), 0);
	ck_assert_str_eq(r.last_id, last);
	json_decref(r.events);

	/* a zone filter reads past batches full of other zones */
	for (int i = 0; i < 30; i++)
		add_event("z2", i, i + 1, NULL);
	add_event("z1", 9, 10, NULL);
	r = read_events("z1", last, 2);
	ck_assert_msg(json_array_size(r.events) == 1,
	              "expected the one z1 event behind 30 of z2, "
	              "got %zu",
	              json_array_size(r.events));
	json_decref(r.events);

	/* cap: approximate trimming keeps the stream near the cap */
	store_set_events_cap(st, 200);
	for (int i = 0; i < 1000; i++) {
		struct result a = {0};
		ck_assert_int_eq(store_event_add(st, "z3", "scale", 0, 1, "x", NULL, done_cb, &a),
		                 0);
		if (i % 100 == 99)
			run_until(&a.done, 5, "event_add batch");
	}
	int done = 0;
	long long len = -1;
	ck_assert_int_eq(redis_conn_command(rc, raw_cb, &done, "XLEN t1:events"), 0);
	run_until(&done, 5, "XLEN");
	r = read_events(NULL, "0", 100000);
	len = (long long)json_array_size(r.events);
	json_decref(r.events);
	ck_assert_msg(len >= 200 && len <= 400, "expected the stream capped near 200, got %lld",
	              len);
}
END_TEST

static struct result tail_events(const char *zone, size_t max)
{
	struct result r = {0};
	ck_assert_int_eq(store_events_tail(st, zone, max, events_cb, &r), 0);
	run_until(&r.done, 5, "events_tail");
	ck_assert_msg(r.st == STORE_OK, "events_tail: expected ok, got %d", r.st);
	return r;
}

START_TEST(the_newest_events_are_read_oldest_first_with_the_newest_id)
{
	struct result r = tail_events(NULL, 5);
	ck_assert_msg(json_array_size(r.events) == 0 && strcmp(r.last_id, "0-0") == 0,
	              "an empty stream: expected no events and 0-0, got %zu and %s",
	              json_array_size(r.events), r.last_id);
	json_decref(r.events);
	add_event("z1", 1, 2, NULL);
	/* z1's newest events sit behind more than a batch of z2's */
	for (int i = 0; i < 1100; i++) {
		struct result a = {0};
		ck_assert_int_eq(
		    store_event_add(st, "z2", "scale", i, i + 1, "x", NULL, done_cb, &a), 0);
		if (i % 100 == 99 || i == 1099)
			run_until(&a.done, 5, "event_add batch");
	}
	add_event("z1", 2, 3, NULL);
	add_event("z2", 5, 6, NULL);
	struct result all = read_events(NULL, "$", 1);
	char newest[64];
	snprintf(newest, sizeof(newest), "%s", all.last_id);
	json_decref(all.events);

	r = tail_events(NULL, 3);
	ck_assert_int_eq(json_array_size(r.events), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(r.events, 1), "to")), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(r.events, 2), "to")), 6);
	ck_assert_str_eq(r.last_id, newest);
	json_decref(r.events);

	r = tail_events("z1", 10);
	ck_assert_msg(json_array_size(r.events) == 2,
	              "z1's two events behind 1100 of z2: expected 2, got %zu",
	              json_array_size(r.events));
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(r.events, 0), "to")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(r.events, 1), "to")), 3);
	ck_assert_str_eq(r.last_id, newest);
	json_decref(r.events);
}
END_TEST

static void dbsize_cb(void *arg, const void *reply_)
{
	const redisReply *reply = reply_;
	*(int *)arg = reply && reply->type == REDIS_REPLY_INTEGER ? (int)reply->integer : -1;
}

static void pending_cb(void *arg, const void *reply)
{
	*(int *)arg = reply ? 1 : 2;
}

START_TEST(a_fenced_event_is_recorded_only_with_the_current_epoch)
{
	uint64_t e1 = take_epoch();
	struct result before = read_events("zf", "0", 100);
	struct result a = {0};
	ck_assert_int_eq(
	    store_event_add_fenced(st, e1, "zf", "scale_up", 1, 2, "current", NULL, done_cb, &a),
	    0);
	run_until(&a.done, 5, "fenced event with the current epoch");
	ck_assert_msg(a.st == STORE_OK, "fenced event with the current epoch: got %d (%s)", a.st,
	              a.err);
	take_epoch(); /* somebody else takes over */
	struct result b = {0};
	ck_assert_int_eq(
	    store_event_add_fenced(st, e1, "zf", "scale_down", 2, 1, "stale", NULL, done_cb, &b),
	    0);
	run_until(&b.done, 5, "fenced event with a stale epoch");
	ck_assert_msg(b.st == STORE_STALE,
	              "fenced event with a stale epoch: expected STORE_STALE, "
	              "got %d",
	              b.st);
	struct result after = read_events("zf", "0", 100);
	size_t nb = json_array_size(before.events), na = json_array_size(after.events);
	ck_assert_msg(na == nb + 1,
	              "expected only the current epoch's event recorded: %zu before, %zu after", nb,
	              na);
	json_t *last = json_array_get(after.events, na - 1);
	ck_assert_str_eq(json_string_value(json_object_get(last, "reason")), "current");
	json_decref(before.events);
	json_decref(after.events);
}
END_TEST

/* ---- the primary's lease ------------------------------------------------ */

struct lease_result {
	int done;
	enum store_status st;
	struct store_lease l;
};

static void lease_cb(void *arg, enum store_status s, const struct store_lease *l)
{
	struct lease_result *r = arg;
	r->st = s;
	memset(&r->l, 0, sizeof(r->l));
	if (l)
		r->l = *l;
	r->done = 1;
}

enum lease_op { L_TAKE, L_RENEW, L_RELEASE, L_GET, L_BREAK };

static struct lease_result lease(struct store *s, enum lease_op op, const char *id, uint64_t epoch,
                                 double ttl, const char *ref)
{
	struct lease_result r = {0};
	int sent = -1;
	switch (op) {
	case L_TAKE:
		sent = store_lease_take(s, id, "http://127.0.0.1:1", ttl, lease_cb, &r);
		break;
	case L_RENEW:
		sent = store_lease_renew(s, id, epoch, ttl, lease_cb, &r);
		break;
	case L_RELEASE:
		sent = store_lease_release(s, id, epoch, lease_cb, &r);
		break;
	case L_GET:
		sent = store_lease_get(s, lease_cb, &r);
		break;
	case L_BREAK:
		sent = store_lease_break(s, ref, lease_cb, &r);
		break;
	}
	ck_assert_msg(sent == 0, "lease op %d: expected it sent", op);
	run_until(&r.done, 5, "a lease op");
	return r;
}

/* A second node: its own connection and store on the same Redis. */
static struct redis_conn *rc2;
static struct store *st2;

static void second_node(void)
{
	char err[256], url[64];
	int connected = 0;
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/2", rp.port);
	rc2 = redis_conn_new(loop, url, err, sizeof(err));
	ck_assert_ptr_nonnull(rc2);
	redis_conn_on_state(rc2, state_cb, &connected);
	run_until(&connected, 5, "the second node's connection");
	ck_assert_msg(redis_conn_client_id(rc2) > 0 && redis_conn_client_id(rc) > 0 &&
	                  redis_conn_client_id(rc2) != redis_conn_client_id(rc),
	              "expected two CLIENT IDs, got %llu and %llu", redis_conn_client_id(rc),
	              redis_conn_client_id(rc2));
	st2 = store_new(rc2, "t1");
	ck_assert_ptr_nonnull(st2);
}

static void second_node_gone(void)
{
	store_free(st2);
	redis_conn_free(rc2);
	st2 = NULL;
	rc2 = NULL;
}

START_TEST(a_live_lease_keeps_every_other_node_from_taking_an_epoch)
{
	struct lease_result a, b;
	second_node();
	a = lease(st, L_TAKE, "1", 0, 0.3, NULL);
	ck_assert_msg(a.st == STORE_OK && a.l.epoch == 1 && !strcmp(a.l.holder, "1"),
	              "node 1 takes: expected ok, epoch 1, holder 1; got %d, %llu, \"%s\"", a.st,
	              (unsigned long long)a.l.epoch, a.l.holder);
	ck_assert_msg(a.l.remaining > 0.2 && a.l.remaining <= 0.3, "expected ~0.3 s left, got %g",
	              a.l.remaining);
	b = lease(st2, L_TAKE, "2", 0, 0.3, NULL);
	ck_assert_msg(b.st == STORE_HELD && !strcmp(b.l.holder, "1") && b.l.current_epoch == 1,
	              "node 2 takes while node 1's lease is live: expected held by 1 at epoch 1, "
	              "got %d \"%s\" %llu",
	              b.st, b.l.holder, (unsigned long long)b.l.current_epoch);
	/* renewals keep it; the leader record names node 1 */
	for (int i = 0; i < 4; i++) {
		usleep(150000);
		ck_assert_int_eq(lease(st, L_RENEW, "1", 1, 0.3, NULL).st, STORE_OK);
		ck_assert_int_eq(lease(st2, L_TAKE, "2", 0, 0.3, NULL).st, STORE_HELD);
	}
	struct result g = {0};
	ck_assert_int_eq(store_leader_get(st, leader_cb, &g), 0);
	run_until(&g.done, 5, "leader_get");
	ck_assert_str_eq(g.leader.id, "1");
	ck_assert_int_eq(g.leader.epoch, 1);
	/* not renewed: it lapses, node 2 takes epoch 2, node 1's renewal is stale */
	usleep(350000);
	b = lease(st2, L_TAKE, "2", 0, 0.3, NULL);
	ck_assert_msg(b.st == STORE_OK && b.l.epoch == 2,
	              "expected node 2 to take epoch 2, got %d %llu", b.st,
	              (unsigned long long)b.l.epoch);
	a = lease(st, L_RENEW, "1", 1, 0.3, NULL);
	ck_assert_msg(
	    a.st == STORE_STALE && a.l.current_epoch == 2 && !strcmp(a.l.holder, "2"),
	    "expected node 1's renewal stale (epoch 2, node 2's lease), got %d %llu \"%s\"", a.st,
	    (unsigned long long)a.l.current_epoch, a.l.holder);
	ck_assert_str_eq(lease(st, L_GET, NULL, 0, 0, NULL).l.holder, "2");
	second_node_gone();
}
END_TEST

START_TEST(a_lease_breaks_only_once_its_holders_connection_is_closed)
{
	struct lease_result a, b;
	char ref[sizeof(a.l.ref)];
	second_node();
	a = lease(st2, L_TAKE, "2", 0, 30.0, NULL);
	ck_assert_int_eq(a.st, STORE_OK);
	snprintf(ref, sizeof(ref), "%s", a.l.ref);
	b = lease(st, L_BREAK, NULL, 0, 0, ref);
	ck_assert_msg(b.st == STORE_HELD,
	              "expected the lease of a connected holder to hold, got %d", b.st);
	ck_assert_int_eq(lease(st, L_TAKE, "1", 0, 30.0, NULL).st, STORE_HELD);
	second_node_gone(); /* node 2 dies: its connection closes */
	for (int i = 0; i < 100 && (b = lease(st, L_BREAK, NULL, 0, 0, ref)).st != STORE_OK; i++)
		usleep(10000);
	ck_assert_msg(b.st == STORE_OK, "expected the dead holder's lease broken, got %d", b.st);
	a = lease(st, L_TAKE, "1", 0, 30.0, NULL);
	ck_assert_msg(a.st == STORE_OK && a.l.epoch == 2,
	              "expected node 1 to take epoch 2, got %d %llu", a.st,
	              (unsigned long long)a.l.epoch);
	/* a stale reference breaks nothing */
	ck_assert_int_eq(lease(st, L_BREAK, NULL, 0, 0, ref).st, STORE_HELD);
	ck_assert_int_eq(store_lease_break(st, "1 2 0", lease_cb, &b), -1);
}
END_TEST

START_TEST(a_node_releases_its_own_lease_only_and_a_newer_epoch_voids_it)
{
	struct lease_result a;
	second_node();
	a = lease(st, L_TAKE, "1", 0, 30.0, NULL);
	ck_assert_int_eq(a.st, STORE_OK);
	ck_assert_int_eq(lease(st2, L_RELEASE, "2", a.l.epoch, 0, NULL).st, STORE_OK);
	ck_assert_str_eq(lease(st, L_GET, NULL, 0, 0, NULL).l.holder, "1");
	ck_assert_int_eq(lease(st, L_RELEASE, "1", a.l.epoch, 0, NULL).st, STORE_OK);
	ck_assert_str_eq(lease(st, L_GET, NULL, 0, 0, NULL).l.holder, "");
	/* its own lease again, then an epoch taken outside the lease voids it */
	a = lease(st, L_TAKE, "1", 0, 30.0, NULL);
	ck_assert_int_eq(a.st, STORE_OK);
	take_epoch();
	ck_assert_str_eq(lease(st, L_GET, NULL, 0, 0, NULL).l.holder, "");
	ck_assert_int_eq(lease(st, L_RENEW, "1", a.l.epoch, 30.0, NULL).st, STORE_STALE);
	ck_assert_int_eq(lease(st2, L_TAKE, "2", 0, 30.0, NULL).st, STORE_OK);
	second_node_gone();
}
END_TEST

START_TEST(a_pending_command_gets_null_when_redis_dies)
{
	int got = 0;
	ck_assert_int_eq(redis_conn_command(rc, pending_cb, &got, "BLPOP nothing 10"), 0);
	for (int i = 0; i < 10; i++) {
		ev_run(loop, EVRUN_NOWAIT);
		usleep(5000);
	}
	redis_kill(&rp);
	run_until(&got, 5, "the pending callback");
	ck_assert_msg(got == 2, "expected a NULL reply after the server died, got a reply");
	run_until(&state, 5, "the disconnect");
	ck_assert_msg(state == -1, "expected the state callback to report a disconnect");
	ck_assert_int_eq(redis_conn_connected(rc), 0);
}
END_TEST

START_TEST(a_frozen_redis_is_dropped_after_the_reply_timeout_and_rejoined)
{
	int got = 0;
	redis_conn_set_reply_timeout(rc, 0.5);
	kill(rp.pid, SIGSTOP);
	ck_assert_int_eq(redis_conn_command(rc, pending_cb, &got, "PING"), 0);
	ev_tstamp start = ev_time();
	run_until(&got, 5, "the waiting callback");
	ck_assert_msg(got == 2, "expected a NULL reply from a frozen Redis, got a reply");
	ck_assert_msg(ev_time() - start < 3, "expected the drop after about 0.5 s, took %.1f s",
	              ev_time() - start);
	ck_assert_int_eq(state, -1);
	kill(rp.pid, SIGCONT);
	state = 0;
	run_until(&state, 10, "the reconnect");
	ck_assert_int_eq(state, 1);
	ck_assert_int_eq(take_epoch(), 1);
}
END_TEST

START_TEST(redis_restarted_mid_run_reconnects_and_nothing_is_lost)
{
	uint64_t e = take_epoch();
	struct store_server a = mkserver("z1", "z1-a", "serving");
	ck_assert_int_eq(put(e, &a).st, STORE_OK);
	add_event("z1", 0, 1, NULL);

	redis_kill(&rp);
	state = 0;
	run_until(&state, 5, "the disconnect");
	ck_assert_int_eq(state, -1);
	struct result r = {0};
	ck_assert_msg(store_epoch_get(st, epoch_cb, &r) == -1,
	              "expected operations to fail fast while Redis is down");
	usleep(300000);
	redis_start(&rp); /* same port, same append-only file */
	state = 0;
	run_until(&state, 10, "the reconnect");
	ck_assert_int_eq(state, 1);

	struct result l = list("z1");
	ck_assert_msg(l.n == 1 && strcmp(l.servers[0].srv.id, "z1-a") == 0,
	              "expected the record written before the restart, got %zu records", l.n);
	r = read_events(NULL, "0", 10);
	ck_assert_int_eq(json_array_size(r.events), 1);
	json_decref(r.events);
	struct result g = {0};
	ck_assert_int_eq(store_epoch_get(st, epoch_cb, &g), 0);
	run_until(&g.done, 5, "epoch_get");
	ck_assert_int_eq(g.epoch, e);
	struct store_server b = mkserver("z1", "z1-b", "starting");
	ck_assert_int_eq(put(e, &b).st, STORE_OK);
	ck_assert_int_eq(list("z1").n, 2);
}
END_TEST

START_TEST(auth_and_select_are_applied_on_connect_also_over_a_unix_socket)
{
	struct redis_proc p = {0};
	char sock[128], url[256], err[256];
	struct ev_loop *l = ev_default_loop(0);
	log_setup("test_store", SCALER_LOG_ERR, 0);
	loop = l;
	snprintf(p.dir, sizeof(p.dir), "/tmp/test_store-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(p.dir));
	snprintf(sock, sizeof(sock), "%s/redis.sock", p.dir);
	redis_extra[0] = "--requirepass";
	redis_extra[1] = "s3cret";
	redis_extra[2] = "--unixsocket";
	redis_extra[3] = sock;
	redis_extra[4] = NULL;
	redis_start(&p);
	redis_extra[0] = NULL;

	char urls[4][256];
	static const int ok[4] = {1, 1, 0, 0};
	snprintf(urls[0], sizeof(urls[0]), "redis://:s3cret@127.0.0.1:%d/5", p.port);
	snprintf(urls[1], sizeof(urls[1]), "unix:%s?db=5&password=s3cret", sock);
	snprintf(urls[2], sizeof(urls[2]), "redis://:wrong@127.0.0.1:%d/5", p.port);
	snprintf(urls[3], sizeof(urls[3]), "redis://127.0.0.1:%d/5", p.port);
	for (size_t i = 0; i < 4; i++) {
		snprintf(url, sizeof(url), "%s", urls[i]);
		struct redis_conn *c = redis_conn_new(l, url, err, sizeof(err));
		ck_assert_msg(c != NULL, "%s: %s", url, err);
		int up = 0;
		redis_conn_on_state(c, state_cb, &up);
		ev_tstamp end = ev_time() + (ok[i] ? 5 : 1);
		while (!up && ev_time() < end) {
			ev_run(l, EVRUN_NOWAIT);
			usleep(2000);
		}
		ck_assert_msg((up == 1) == ok[i], "%s: expected %s", url,
		              ok[i] ? "a connection" : "no connection (AUTH must fail)");
		if (ok[i]) {
			int done = 0;
			char key[16];
			snprintf(key, sizeof(key), "k%zu", i);
			ck_assert_int_eq(redis_conn_command(c, raw_cb, &done, "SET %s v", key), 0);
			run_until(&done, 5, "SET");
		}
		redis_conn_free(c);
	}
	/* both keys landed in db 5 */
	snprintf(url, sizeof(url), "redis://:s3cret@127.0.0.1:%d/5", p.port);
	struct redis_conn *c = redis_conn_new(l, url, err, sizeof(err));
	int up = 0, keys = 0;
	redis_conn_on_state(c, state_cb, &up);
	run_until(&up, 5, "the connection");
	ck_assert_int_eq(redis_conn_command(c, dbsize_cb, &keys, "DBSIZE"), 0);
	run_until(&keys, 5, "DBSIZE");
	ck_assert_msg(keys == 2, "expected 2 keys in db 5, got %d", keys);
	redis_conn_free(c);
	redis_cleanup(&p);
}
END_TEST

START_TEST(store_rejects_a_record_without_a_valid_state)
{
	struct ev_loop *l = ev_loop_new(0);
	char err[256];
	log_setup("test_store", SCALER_LOG_ERR + 1, 0);
	struct redis_conn *c = redis_conn_new(l, "redis://127.0.0.1:1", err, sizeof(err));
	struct store *s = store_new(c, "t1");
	struct store_server srv = mkserver("z", "a", "running");
	ck_assert_int_eq(store_server_put(s, 1, &srv, NULL, NULL), -1);
	srv = mkserver("", "a", "serving");
	ck_assert_int_eq(store_server_put(s, 1, &srv, NULL, NULL), -1);
	store_free(s);
	redis_conn_free(c);
	ev_loop_destroy(l);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *offline = tcase_create("offline");
	tcase_add_test(offline, redis_urls_are_validated_with_a_clear_error);
	tcase_add_test(offline, commands_fail_fast_when_redis_is_not_connected);
	tcase_add_test(offline, server_json_is_validated);
	tcase_add_test(offline, store_rejects_a_record_without_a_valid_state);
	suite_add_tcase(s, offline);
	TCase *auth = tcase_create("auth");
	tcase_add_test(auth, auth_and_select_are_applied_on_connect_also_over_a_unix_socket);
	suite_add_tcase(s, auth);
	TCase *live = tcase_create("redis");
	tcase_add_checked_fixture(live, setup, teardown);
	tcase_set_timeout(live, 60);
	tcase_add_test(live, epoch_take_is_strictly_increasing);
	tcase_add_test(live, a_write_with_a_stale_epoch_is_refused_and_changes_nothing);
	tcase_add_test(live, leader_get_without_a_leader_is_not_found);
	tcase_add_test(live, a_live_lease_keeps_every_other_node_from_taking_an_epoch);
	tcase_add_test(live, a_lease_breaks_only_once_its_holders_connection_is_closed);
	tcase_add_test(live, a_node_releases_its_own_lease_only_and_a_newer_epoch_voids_it);
	tcase_add_test(live, server_records_are_put_listed_and_deleted_per_zone);
	tcase_add_test(live, a_malformed_record_in_redis_is_skipped);
	tcase_add_test(live, events_are_added_read_by_zone_and_capped);
	tcase_add_test(live, the_newest_events_are_read_oldest_first_with_the_newest_id);
	tcase_add_test(live, a_fenced_event_is_recorded_only_with_the_current_epoch);
	tcase_add_test(live, a_pending_command_gets_null_when_redis_dies);
	tcase_add_test(live, redis_restarted_mid_run_reconnects_and_nothing_is_lost);
	tcase_add_test(live, a_frozen_redis_is_dropped_after_the_reply_timeout_and_rejoined);
	suite_add_tcase(s, live);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
