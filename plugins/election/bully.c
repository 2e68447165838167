/*
 * Election plugin "bully": the highest live node id is primary, every
 * change of primary takes a new epoch in Redis, and only the holder of the
 * current epoch may act.
 *
 * Messages (POST <peer admin url>/election/<type>, JSON, bearer token):
 *   election     {"id","epoch"}       sent to every higher id by a node that
 *                                     suspects the primary; a higher node that
 *                                     can lead answers {"ok":true,"id"} and
 *                                     runs its own election
 *   coordinator  {"id","epoch","url"} sent by a winner to every peer after
 *                                     epoch_take + leader_set succeeded
 *   ping         {"id","epoch"}       liveness probe; answers this node's
 *                                     state and epoch
 *
 * Rules (what a receiver accepts):
 *   - a COORDINATOR is accepted from a configured peer only, with an epoch
 *     at least as new as the newest this node knows (409 otherwise; an equal
 *     epoch is accepted only from the primary already known for it);
 *   - with preempt = true, a COORDINATOR from a lower id than this node is
 *     refused (409) while this node can lead (it reaches Redis): the higher
 *     live node bullies, it runs its own election and takes a newer epoch.
 *     A primary that receives such a message with a newer epoch steps down
 *     first, since its own epoch is fenced either way;
 *   - a node answers OK to an ELECTION only while it can reach Redis: a node
 *     that cannot take an epoch must not hold the others back.
 *
 * Watching: every check_interval a backup reads the leader record
 * (leader_get) and pings the primary it knows; failures_before_election
 * consecutive failed pings (no answer within timeout, or an answer saying
 * the node is no longer primary) start an election. A primary reads the
 * leader record at the same pace: a newer epoch deposes it at once, and so
 * does no answer from Redis for `lease` seconds.
 *
 * A node that got an OK waits 2 x timeout for the COORDINATOR (the higher
 * node's own election takes up to one timeout before it can take an epoch),
 * then starts again.
 *
 * The liveness probe is POST /election/ping rather than GET /health_check:
 * a live process that is no longer primary (deposed, or without Redis) must
 * count as a failed primary, so the answer carries the state and epoch.
 *
 * Redis is the ground truth: epochs only grow there, so an epoch known here
 * beyond the one Redis shows (a lying message, or a Redis that lost its
 * data) is dropped at the next check in favour of Redis's leader record.
 *
 * Settings (election group):
 *   peers                    list of { id = N; url = "http://host:port"; }, every
 *                            scalerd node's admin URL; this node's own entry
 *                            (id = node.id) may be listed and is skipped
 *   check_interval = 5.0     seconds between checks (watch / lease renewal)
 *   timeout = 1.0            seconds an answer may take (ping, ELECTION)
 *   failures_before_election = 1   consecutive failed pings before electing
 *   preempt = true           a higher id that comes back takes over; false:
 *                            it joins as backup while a primary is alive
 *   lease = 3 x check_interval   a primary that cannot read Redis this long
 *                            stops acting (must exceed check_interval)
 *
 * Failover: a dead primary (connection refused) is replaced within
 * check_interval; a hung one within check_interval + 2 x timeout (ping,
 * then the ELECTION it does not answer); a primary cut from Redis but not
 * from its peers after lease + check_interval. Known limit: under an
 * asymmetric partition (the highest node reaches Redis but not its peers)
 * leadership alternates, each change with a new epoch; fencing keeps every
 * deposed primary from writing.
 */
#include "config.h"

#include <ev.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <scaler/plugin.h>

#include "election_common.h"

#define BULLY_WHO "election bully"

enum bully_state {
	BULLY_BACKUP,   /* watching a primary (or about to elect) */
	BULLY_ELECTING, /* ELECTION sent to higher ids, waiting for an OK */
	BULLY_WAITING,  /* got an OK, waiting for the COORDINATOR */
	BULLY_TAKING,   /* won: epoch_take + leader_set in flight */
	BULLY_PRIMARY,
};

static const char *const bully_state_names[] = {
    [BULLY_BACKUP] = "backup",   [BULLY_ELECTING] = "electing", [BULLY_WAITING] = "electing",
    [BULLY_TAKING] = "electing", [BULLY_PRIMARY] = "primary",
};
static const char *const bully_phase_names[] = {
    [BULLY_BACKUP] = "backup", [BULLY_ELECTING] = "election", [BULLY_WAITING] = "waiting",
    [BULLY_TAKING] = "taking", [BULLY_PRIMARY] = "primary",
};

struct bully_peer {
	uint64_t id;
	char url[256]; /* without trailing '/' */
};

struct bully_conf {
	struct bully_peer *peers;
	size_t npeers;
	double check_interval;
	double timeout;
	double lease;
	int failures_before_election;
	int preempt;
};

enum bully_op_kind {
	BULLY_OP_LEADER_GET,
	BULLY_OP_EPOCH_TAKE,
	BULLY_OP_LEADER_SET,
	BULLY_OP_PING,
	BULLY_OP_ELECTION,
	BULLY_OP_COORDINATOR,
};

struct bully;

/* One asynchronous call in flight. HTTP calls are cancelled at fini; store
 * calls cannot be, so they are orphaned (b = NULL) and freed by their
 * callback. */
struct bully_op {
	struct bully *b;
	enum bully_op_kind kind;
	uint64_t gen;     /* b->gen when issued: replies of an older phase are ignored */
	uint64_t learned; /* b->learned when issued */
	uint64_t check;   /* b->check_seq of the check it belongs to */
	uint64_t peer;
	int issuing; /* a store call is still on the issuer's stack */
	int done;    /* its callback ran */
	struct scaler_http_call *call;
	char *body;
	char *auth; /* "Authorization: Bearer <token>" */
	const char *headers[3];
	struct bully_op *prev, *next;
};

struct bully {
	const struct scaler_host *host;
	uint64_t self;
	struct bully_conf conf;

	struct scaler_election_events events;
	int started;

	enum bully_state state;
	uint64_t gen;
	uint64_t my_epoch;    /* epoch we lead with (PRIMARY) or just took (TAKING) */
	uint64_t known_epoch; /* newest leadership epoch this node accepted or took */
	uint64_t learned;     /* bumped when a message raised known_epoch */
	uint64_t redis_epoch; /* newest <cluster>:epoch seen in Redis */
	struct {
		uint64_t id; /* 0: none known */
		char url[256];
		uint64_t epoch;
	} primary;

	int failures;         /* consecutive failed pings of the primary */
	int check_busy;       /* a check (leader_get, then ping) is in flight */
	uint64_t check_seq;   /* which one */
	int redis_ok;         /* the last store call succeeded */
	int redis_seen;       /* a store call succeeded once (the connection is up) */
	double startup_retry; /* delay of the next check while Redis was never seen */
	int election_pending;
	double last_transition; /* unix time */

	/* counters for /status and /metrics */
	uint64_t n_elections, n_won, n_deposed, n_refused, n_checks_failed, n_messages;

	ev_timer check_timer; /* every check_interval: watch (backup) or renew (primary) */
	ev_timer phase_timer; /* election / coordinator waits */
	ev_timer lease_timer; /* primary without an answer from Redis for `lease` */

	struct bully_op *ops;
};

static void bully_check(struct bully *b);
static void bully_election_start(struct bully *b, const char *why);

/* ---- small helpers ----------------------------------------------------- */

static const struct bully_peer *bully_peer_find(const struct bully *b, uint64_t id)
{
	for (size_t i = 0; i < b->conf.npeers; i++)
		if (b->conf.peers[i].id == id)
			return &b->conf.peers[i];
	return NULL;
}

static const char *bully_url_of(const struct bully *b, uint64_t id)
{
	const struct bully_peer *p;

	if (id == b->self)
		return b->host->admin_url ? b->host->admin_url : "";
	p = bully_peer_find(b, id);
	return p ? p->url : "";
}

static void bully_set_state(struct bully *b, enum bully_state st)
{
	if (b->state != st) {
		/* "electing" covers three phases; a transition is a change people see */
		if (strcmp(bully_state_names[b->state], bully_state_names[st]) != 0)
			b->last_transition = (double)time(NULL);
		b->host->log(SCALER_LOG_DEBUG, BULLY_WHO, "%s -> %s", bully_phase_names[b->state],
		             bully_phase_names[st]);
	}
	b->state = st;
	b->gen++;
	ev_timer_stop(b->host->loop, &b->phase_timer);
}

static void bully_phase_arm(struct bully *b, double after)
{
	ev_timer_stop(b->host->loop, &b->phase_timer);
	ev_timer_set(&b->phase_timer, after, 0.);
	ev_timer_start(b->host->loop, &b->phase_timer);
}

/* Record the primary this node follows and tell scalerd when it changed. */
static void bully_primary_set(struct bully *b, uint64_t id, uint64_t epoch)
{
	if (epoch > b->known_epoch)
		b->known_epoch = epoch;
	if (b->primary.id == id && b->primary.epoch == epoch)
		return;
	b->primary.id = id;
	b->primary.epoch = epoch;
	snprintf(b->primary.url, sizeof(b->primary.url), "%s", bully_url_of(b, id));
	b->failures = 0;
	if (id && b->started && b->events.primary) {
		char ids[24];
		snprintf(ids, sizeof(ids), "%" PRIu64, id);
		b->events.primary(b->events.arg, ids, b->primary.url, epoch);
	}
}

/* ---- in-flight calls ---------------------------------------------------- */

static struct bully_op *bully_op_new(struct bully *b, enum bully_op_kind kind)
{
	struct bully_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->b = b;
	op->kind = kind;
	op->gen = b->gen;
	op->learned = b->learned;
	op->check = b->check_seq;
	op->next = b->ops;
	if (b->ops)
		b->ops->prev = op;
	b->ops = op;
	return op;
}

/* Unlink and free; returns the plugin instance, NULL when it is gone. */
static struct bully *bully_op_end(struct bully_op *op)
{
	struct bully *b = op->b;

	if (b) {
		if (op->prev)
			op->prev->next = op->next;
		else
			b->ops = op->next;
		if (op->next)
			op->next->prev = op->prev;
	}
	free(op->body);
	free(op->auth);
	free(op);
	return b;
}

/* First thing in every store callback: the instance (NULL when it is gone)
 * and the generation the call was issued in. The op is freed here unless the
 * store called back before its call returned (the issuer frees it then). */
static struct bully *bully_store_op_done(struct bully_op *op, uint64_t *gen, uint64_t *learned)
{
	struct bully *b = op->b;

	*gen = op->gen;
	if (learned)
		*learned = op->learned;
	if (b && op->kind == BULLY_OP_LEADER_GET && op->check == b->check_seq)
		b->check_busy = 0;
	op->done = 1;
	if (!op->issuing)
		bully_op_end(op);
	return b;
}

/* After issuing a store call: 0 when it is in flight or already answered,
 * -1 (op freed, callback never ran) when it could not be sent. */
static int bully_store_op_issued(struct bully_op *op, int rc)
{
	op->issuing = 0;
	if (op->done) {
		bully_op_end(op);
		return 0;
	}
	if (rc < 0) {
		bully_op_end(op);
		return -1;
	}
	return 0;
}

/* POST <peer>/election/<type> with a JSON body; cb gets the response. */
static int bully_post(struct bully *b, struct bully_op *op, const char *peer_url, const char *type,
                      json_t *body, scaler_http_cb cb)
{
	char url[512];
	struct scaler_http_request req = {0};
	size_t nh = 0;

	op->body = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!op->body) {
		bully_op_end(op);
		return -1;
	}
	snprintf(url, sizeof(url), "%s/election/%s", peer_url, type);
	op->headers[nh++] = "Content-Type: application/json";
	if (b->host->token && *b->host->token) {
		if (asprintf(&op->auth, "Authorization: Bearer %s", b->host->token) < 0) {
			op->auth = NULL;
			bully_op_end(op);
			return -1;
		}
		op->headers[nh++] = op->auth;
	}
	op->headers[nh] = NULL;
	req.method = "POST";
	req.url = url;
	req.headers = op->headers;
	req.body = op->body;
	req.body_len = strlen(op->body);
	req.timeout = b->conf.timeout;
	op->call = b->host->http_request(&req, cb, op);
	if (!op->call) {
		b->host->log(SCALER_LOG_WARNING, BULLY_WHO, "cannot send %s to %s", type, url);
		bully_op_end(op);
		return -1;
	}
	return 0;
}

/* A JSON object from a 200 answer, NULL otherwise. */
static json_t *bully_answer(const struct scaler_http_response *resp)
{
	json_t *j;

	if (resp->status != 200 || !resp->body)
		return NULL;
	j = json_loadb(resp->body, resp->body_len, 0, NULL);
	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* ---- primary side ------------------------------------------------------- */

static void bully_lease_renew(struct bully *b)
{
	b->lease_timer.repeat = b->conf.lease;
	ev_timer_again(b->host->loop, &b->lease_timer);
}

/* Stop acting at once. */
static void bully_step_down(struct bully *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void bully_step_down(struct bully *b, const char *fmt, ...)
{
	char reason[256];
	va_list ap;

	if (b->state != BULLY_PRIMARY)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	b->host->log(SCALER_LOG_WARNING, BULLY_WHO, "stepping down (epoch %" PRIu64 "): %s",
	             b->my_epoch, reason);
	b->n_deposed++;
	bully_set_state(b, BULLY_BACKUP);
	ev_timer_stop(b->host->loop, &b->lease_timer);
	b->my_epoch = 0;
	b->primary.id = 0; /* the new primary is learned from Redis or its COORDINATOR */
	b->primary.url[0] = '\0';
	b->failures = 0;
	if (b->events.deposed)
		b->events.deposed(b->events.arg, reason);
}

static void bully_coordinator_done(void *arg, const struct scaler_http_response *resp)
{
	struct bully_op *op = arg;
	struct bully *b = op->b;

	if (resp->status != 200)
		b->host->log(SCALER_LOG_INFO, BULLY_WHO,
		             "node %" PRIu64 " did not take COORDINATOR: %ld %s", op->peer,
		             resp->status,
		             resp->status  ? resp->body
		             : resp->error ? resp->error
		                           : "");
	bully_op_end(op);
}

static void bully_coordinator_send(struct bully *b, const struct bully_peer *p)
{
	struct bully_op *op = bully_op_new(b, BULLY_OP_COORDINATOR);
	char ids[24];

	if (!op)
		return;
	op->peer = p->id;
	snprintf(ids, sizeof(ids), "%" PRIu64, b->self);
	bully_post(b, op, p->url, "coordinator",
	           json_pack("{s:s, s:I, s:s}", "id", ids, "epoch", (json_int_t)b->my_epoch, "url",
	                     b->host->admin_url ? b->host->admin_url : ""),
	           bully_coordinator_done);
}

static void bully_become_primary(struct bully *b, uint64_t epoch)
{
	bully_set_state(b, BULLY_PRIMARY);
	b->my_epoch = epoch;
	b->known_epoch = epoch;
	if (epoch > b->redis_epoch)
		b->redis_epoch = epoch;
	b->n_won++;
	b->failures = 0;
	bully_lease_renew(b);
	b->host->log(SCALER_LOG_NOTICE, BULLY_WHO,
	             "node %" PRIu64 " is primary with epoch %" PRIu64, b->self, epoch);
	for (size_t i = 0; i < b->conf.npeers; i++)
		bully_coordinator_send(b, &b->conf.peers[i]);
	if (b->events.elected)
		b->events.elected(b->events.arg, epoch);
	/* scalerd may have fenced us from inside elected */
	if (b->state != BULLY_PRIMARY || b->my_epoch != epoch)
		return;
	b->primary.id = 0; /* force the event */
	bully_primary_set(b, b->self, epoch);
}

static void bully_leader_set_done(void *arg, int status, uint64_t current_epoch)
{
	uint64_t gen;
	struct bully *b = bully_store_op_done(arg, &gen, NULL);

	if (!b)
		return;
	if (current_epoch > b->redis_epoch)
		b->redis_epoch = current_epoch;
	if (gen != b->gen || b->state != BULLY_TAKING)
		return;
	if (status == 0) {
		b->redis_ok = b->redis_seen = 1;
		bully_become_primary(b, b->my_epoch);
		return;
	}
	if (status == -2)
		b->host->log(SCALER_LOG_NOTICE, BULLY_WHO,
		             "epoch %" PRIu64 " lost: epoch %" PRIu64 " was taken meanwhile",
		             b->my_epoch, current_epoch);
	else {
		b->redis_ok = 0;
		b->host->log(SCALER_LOG_WARNING, BULLY_WHO,
		             "cannot record leadership: store unreachable; retrying at next check");
	}
	b->my_epoch = 0;
	bully_set_state(b, BULLY_BACKUP);
}

static void bully_epoch_take_done(void *arg, int status, uint64_t epoch)
{
	struct bully_op *set;
	uint64_t gen;
	struct bully *b = bully_store_op_done(arg, &gen, NULL);

	if (!b)
		return;
	if (status == 0) {
		b->redis_ok = b->redis_seen = 1;
		if (epoch > b->redis_epoch)
			b->redis_epoch = epoch;
	}
	if (gen != b->gen || b->state != BULLY_TAKING) {
		if (status == 0)
			b->host->log(SCALER_LOG_INFO, BULLY_WHO,
			             "epoch %" PRIu64 " taken after the election ended; unused",
			             epoch);
		return;
	}
	if (status != 0) {
		b->redis_ok = 0;
		b->host->log(SCALER_LOG_WARNING, BULLY_WHO,
		             "won the election but cannot take an epoch: store unreachable; "
		             "retrying at next check");
		bully_set_state(b, BULLY_BACKUP);
		return;
	}
	b->my_epoch = epoch;
	if (epoch > b->known_epoch)
		b->known_epoch = epoch;
	if (!(set = bully_op_new(b, BULLY_OP_LEADER_SET)))
		goto fail;
	set->issuing = 1;
	if (bully_store_op_issued(set, b->host->leader_set(epoch, bully_leader_set_done, set)) < 0)
		goto fail;
	return;
fail:
	b->redis_ok = 0;
	b->my_epoch = 0;
	bully_set_state(b, BULLY_BACKUP);
}

/* No higher node answered: take a new epoch, record it, announce it. */
static void bully_win(struct bully *b)
{
	struct bully_op *op;

	bully_set_state(b, BULLY_TAKING);
	if (!(op = bully_op_new(b, BULLY_OP_EPOCH_TAKE)))
		goto fail;
	op->issuing = 1;
	if (bully_store_op_issued(op, b->host->epoch_take(bully_epoch_take_done, op)) < 0)
		goto fail;
	/* a store that never answers must not leave this node electing forever */
	if (b->state == BULLY_TAKING)
		bully_phase_arm(b, 5 * b->conf.timeout + 1.0);
	return;
fail:
	b->redis_ok = 0;
	b->host->log(SCALER_LOG_WARNING, BULLY_WHO,
	             "won the election but the store is unreachable; retrying at next check");
	bully_set_state(b, BULLY_BACKUP);
}

/* ---- election ----------------------------------------------------------- */

static void bully_election_reply(void *arg, const struct scaler_http_response *resp)
{
	struct bully_op *op = arg;
	uint64_t gen = op->gen, peer = op->peer;
	struct bully *b = bully_op_end(op);
	json_t *j;
	int ok;

	if (gen != b->gen || b->state != BULLY_ELECTING)
		return;
	b->election_pending--;
	j = bully_answer(resp);
	ok = j && json_is_true(json_object_get(j, "ok"));
	json_decref(j);
	if (ok) {
		b->host->log(SCALER_LOG_INFO, BULLY_WHO,
		             "node %" PRIu64 " answered OK; waiting for its COORDINATOR", peer);
		bully_set_state(b, BULLY_WAITING);
		bully_phase_arm(b, 2 * b->conf.timeout);
		return;
	}
	if (b->election_pending <= 0)
		bully_win(b);
}

static void bully_election_start(struct bully *b, const char *why)
{
	char ids[24];

	if (b->state != BULLY_BACKUP)
		return;
	if (!b->redis_ok) {
		/* nobody can take an epoch; the next check that reaches Redis retries */
		b->host->log(SCALER_LOG_DEBUG, BULLY_WHO, "no election (%s): Redis unreachable",
		             why);
		return;
	}
	b->n_elections++;
	b->host->log(SCALER_LOG_NOTICE, BULLY_WHO, "election: %s", why);
	bully_set_state(b, BULLY_ELECTING);
	b->election_pending = 0;
	snprintf(ids, sizeof(ids), "%" PRIu64, b->self);
	for (size_t i = 0; i < b->conf.npeers; i++) {
		const struct bully_peer *p = &b->conf.peers[i];
		struct bully_op *op;

		if (p->id < b->self || !(op = bully_op_new(b, BULLY_OP_ELECTION)))
			continue;
		op->peer = p->id;
		if (bully_post(
		        b, op, p->url, "election",
		        json_pack("{s:s, s:I}", "id", ids, "epoch", (json_int_t)b->known_epoch),
		        bully_election_reply) == 0)
			b->election_pending++;
	}
	if (b->election_pending == 0) {
		bully_win(b);
		return;
	}
	/* every request times out by itself; this only guards a lost callback */
	bully_phase_arm(b, b->conf.timeout + 0.5);
}

static void bully_phase_expired(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bully *b = w->data;

	if (b->state == BULLY_ELECTING) {
		bully_win(b);
	} else if (b->state == BULLY_WAITING) {
		bully_set_state(b, BULLY_BACKUP);
		bully_election_start(b, "no COORDINATOR after an OK; starting again");
	} else if (b->state == BULLY_TAKING) {
		b->host->log(SCALER_LOG_WARNING, BULLY_WHO,
		             "the store did not answer while taking the lead; back to watching");
		b->my_epoch = 0;
		bully_set_state(b, BULLY_BACKUP);
	}
}

/* ---- watching ----------------------------------------------------------- */

/* A leader_get failed. Until Redis answered once (the host connects
 * asynchronously after start) checks are retried quickly, so a node does
 * not wait a whole check_interval for its first election. */
static void bully_store_unreachable(struct bully *b)
{
	if (b->redis_ok && b->redis_seen)
		b->host->log(SCALER_LOG_WARNING, BULLY_WHO,
		             "cannot read the leader record: store unreachable");
	b->redis_ok = 0;
	if (!b->redis_seen) {
		b->startup_retry = election_backoff(b->startup_retry, 0.05, b->conf.check_interval);
		ev_timer_stop(b->host->loop, &b->check_timer);
		ev_timer_set(&b->check_timer, b->startup_retry, b->conf.check_interval);
		ev_timer_start(b->host->loop, &b->check_timer);
	}
}

static void bully_ping_done(void *arg, const struct scaler_http_response *resp)
{
	struct bully_op *op = arg;
	uint64_t gen = op->gen, peer = op->peer, check = op->check;
	struct bully *b = bully_op_end(op);
	json_t *j;
	const char *state;
	uint64_t epoch = 0;
	int alive;
	char why[200];

	if (check == b->check_seq)
		b->check_busy = 0;
	if (gen != b->gen || b->state != BULLY_BACKUP || b->primary.id != peer)
		return;
	j = bully_answer(resp);
	state = j ? json_string_value(json_object_get(j, "state")) : NULL;
	alive = state && strcmp(state, "primary") == 0 &&
	        election_json_epoch(json_object_get(j, "epoch"), &epoch) == 0 &&
	        epoch >= b->primary.epoch;
	if (!alive) {
		if (resp->status == 0)
			snprintf(why, sizeof(why), "%s", resp->error ? resp->error : "no answer");
		else if (state)
			snprintf(why, sizeof(why), "it says it is %s (epoch %" PRIu64 ")", state,
			         epoch);
		else
			snprintf(why, sizeof(why), "HTTP %ld", resp->status);
	}
	json_decref(j);
	if (alive) {
		b->failures = 0;
		if (b->conf.preempt && peer < b->self)
			bully_election_start(b, "a lower id is primary and preempt is on");
		return;
	}
	b->n_checks_failed++;
	b->failures++;
	b->host->log(SCALER_LOG_WARNING, BULLY_WHO, "primary %" PRIu64 " failed check %d of %d: %s",
	             peer, b->failures, b->conf.failures_before_election, why);
	if (b->failures >= b->conf.failures_before_election) {
		snprintf(why, sizeof(why), "primary %" PRIu64 " failed %d check(s)", peer,
		         b->failures);
		bully_election_start(b, why);
	}
}

static void bully_ping_primary(struct bully *b)
{
	struct bully_op *op;
	char ids[24];

	if (!(op = bully_op_new(b, BULLY_OP_PING)))
		goto done;
	op->peer = b->primary.id;
	snprintf(ids, sizeof(ids), "%" PRIu64, b->self);
	if (bully_post(b, op, b->primary.url, "ping",
	               json_pack("{s:s, s:I}", "id", ids, "epoch", (json_int_t)b->known_epoch),
	               bully_ping_done) == 0)
		return;
done:
	b->check_busy = 0;
}

static void bully_leader_done(void *arg, int status, const char *id, const char *url,
                              uint64_t leader_epoch, uint64_t current_epoch)
{
	uint64_t gen, learned, lid = 0;
	struct bully *b = bully_store_op_done(arg, &gen, &learned);

	if (!b)
		return;
	if (status != 0) {
		bully_store_unreachable(b);
	} else {
		b->redis_ok = 1;
		b->redis_seen = 1;
		b->redis_epoch = current_epoch;
		/* Epochs only grow in Redis: a newer one known here came from a
		 * forged message or from a Redis that lost its data. Trust Redis
		 * (unless a message taught us that epoch after this read started). */
		if (current_epoch < b->known_epoch && learned == b->learned &&
		    b->state != BULLY_TAKING) {
			b->host->log(SCALER_LOG_WARNING, BULLY_WHO,
			             "epoch %" PRIu64 " in Redis is older than epoch %" PRIu64
			             " known here (Redis lost its data, or a message lied): "
			             "trusting Redis",
			             current_epoch, b->known_epoch);
			b->known_epoch = current_epoch;
			if (b->primary.epoch > current_epoch && b->state != BULLY_PRIMARY) {
				b->primary.id = 0;
				b->primary.epoch = 0;
				b->primary.url[0] = '\0';
			}
		}
	}

	if (b->state == BULLY_PRIMARY) {
		if (status != 0)
			return; /* the lease timer decides */
		bully_lease_renew(b);
		if (current_epoch > b->my_epoch)
			bully_step_down(
			    b, "epoch %" PRIu64 " in Redis is newer than ours (%" PRIu64 ")",
			    current_epoch, b->my_epoch);
		else if (current_epoch < b->my_epoch)
			bully_step_down(b,
			                "epoch in Redis went back to %" PRIu64 " (ours %" PRIu64
			                "): Redis lost its data",
			                current_epoch, b->my_epoch);
		else if (leader_epoch == b->my_epoch &&
		         (election_id_parse(id, &lid) < 0 || lid != b->self))
			bully_step_down(b, "the leader record names node %s", id ? id : "?");
		if (b->state != BULLY_PRIMARY)
			bully_check(b);
		return;
	}
	if (gen != b->gen || b->state != BULLY_BACKUP)
		return;

	/* learn a leadership we missed (a lost COORDINATOR, a restart) */
	if (status == 0 && leader_epoch && leader_epoch == current_epoch &&
	    election_id_parse(id, &lid) == 0 && leader_epoch >= b->known_epoch &&
	    (lid == b->self || bully_peer_find(b, lid))) {
		if (lid == b->self) {
			/* a previous run of this node: nobody leads now */
			b->known_epoch = leader_epoch;
			b->primary.id = 0;
		} else {
			bully_primary_set(b, lid, leader_epoch);
		}
	}
	(void)url; /* peers are reached at their configured URL */

	if (b->primary.id == 0 || b->primary.id == b->self) {
		bully_election_start(b, "no live primary known");
		return;
	}
	b->check_busy = 1;
	b->check_seq++;
	bully_ping_primary(b);
}

/* Read the leader record, then (backup) ping the primary. */
static void bully_check(struct bully *b)
{
	struct bully_op *op;

	if (b->check_busy || b->state == BULLY_ELECTING || b->state == BULLY_WAITING ||
	    b->state == BULLY_TAKING)
		return;
	b->check_seq++;
	if (!(op = bully_op_new(b, BULLY_OP_LEADER_GET)))
		return;
	b->check_busy = 1;
	op->issuing = 1;
	if (bully_store_op_issued(op, b->host->leader_get(bully_leader_done, op)) < 0) {
		b->check_busy = 0;
		bully_store_unreachable(b);
		if (b->state == BULLY_BACKUP && b->primary.id && b->primary.id != b->self) {
			b->check_busy = 1;
			bully_ping_primary(b); /* a live primary keeps its followers */
		}
	}
}

static void bully_check_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	bully_check(w->data);
}

static void bully_lease_expired(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bully *b = w->data;

	ev_timer_stop(loop, w);
	b->redis_ok = 0;
	bully_step_down(b, "lost Redis: no answer for %.1f s (lease)", b->conf.lease);
}

/* ---- config ------------------------------------------------------------- */

static int bully_conf_id(const struct scaler_host *host, const config_setting_t *s, uint64_t *out)
{
	if (config_setting_type(s) == CONFIG_TYPE_INT ||
	    config_setting_type(s) == CONFIG_TYPE_INT64) {
		long long v = config_setting_get_int64(s);
		if (config_setting_type(s) == CONFIG_TYPE_INT)
			v = config_setting_get_int(s);
		if (v > 0) {
			*out = (uint64_t)v;
			return 0;
		}
	} else if (config_setting_type(s) == CONFIG_TYPE_STRING &&
	           election_id_parse(config_setting_get_string(s), out) == 0) {
		return 0;
	}
	return host->conf_error(s, "must be a positive integer node id");
}

static int bully_conf_peers(const struct scaler_host *host, uint64_t self,
                            const config_setting_t *list, struct bully_conf *c)
{
	static const char *const known[] = {"id", "url", NULL};
	int n;

	if (!config_setting_is_list(list) && !config_setting_is_array(list))
		return host->conf_error(
		    list, "must be a list of groups ( { id = 2; url = \"...\"; }, ... )");
	n = config_setting_length(list);
	c->peers = calloc((size_t)n + 1, sizeof(*c->peers));
	if (!c->peers)
		return host->conf_error(list, "out of memory");
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		const config_setting_t *sid, *surl;
		const char *url;
		struct bully_peer p = {0};
		size_t len;

		if (!config_setting_is_group(g))
			return host->conf_error(
			    g, "must be a group { id = N; url = \"http://host:port\"; }");
		if (host->conf_check_known(g, known) < 0)
			return -1;
		if (!(sid = config_setting_get_member(g, "id")))
			return host->conf_error(g, "needs an id");
		if (bully_conf_id(host, sid, &p.id) < 0)
			return -1;
		if (!(surl = config_setting_get_member(g, "url")) ||
		    !(url = config_setting_get_string(surl)))
			return host->conf_error(surl ? surl : g,
			                        "needs a url = \"http://host:port\"");
		if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
			return host->conf_error(
			    surl, "must start with http:// or https://, not \"%s\"", url);
		len = strlen(url);
		while (len > 0 && url[len - 1] == '/')
			len--;
		if (len >= sizeof(p.url) || len <= strlen(url[4] == 's' ? "https://" : "http://") ||
		    strpbrk(url, " \t\r\n"))
			return host->conf_error(surl, "is not a usable URL");
		memcpy(p.url, url, len);
		for (size_t k = 0; k < c->npeers; k++)
			if (c->peers[k].id == p.id)
				return host->conf_error(sid, "node id %" PRIu64 " is listed twice",
				                        p.id);
		if (p.id == self)
			continue; /* this node's own entry: the same list can serve every node */
		c->peers[c->npeers++] = p;
	}
	return 0;
}

static int bully_conf_parse(const struct scaler_host *host, uint64_t self,
                            const config_setting_t *g, struct bully_conf *c)
{
	static const char *const known[] = {
	    "plugin", "peers", "check_interval", "timeout", "failures_before_election", "preempt",
	    "lease",  NULL};
	const config_setting_t *s;

	memset(c, 0, sizeof(*c));
	c->check_interval = 5.0; /* the seed's check period */
	c->timeout = 1.0;
	c->failures_before_election = 1;
	c->preempt = 1;
	if (g && host->conf_check_known(g, known) < 0)
		return -1;
	if (host->conf_number(g, "check_interval", c->check_interval, 0.01, ELECTION_SECONDS_MAX,
	                      &c->check_interval) < 0 ||
	    host->conf_number(g, "timeout", c->timeout, 0.01, ELECTION_SECONDS_MAX, &c->timeout) <
	        0)
		return -1;
	if (host->conf_number(g, "lease", 3 * c->check_interval, 0.01, ELECTION_SECONDS_MAX,
	                      &c->lease) < 0)
		return -1;
	s = g ? config_setting_get_member(g, "lease") : NULL;
	if (s && c->lease <= c->check_interval)
		return host->conf_error(s,
		                        "must be longer than check_interval (%g s): the primary "
		                        "renews its lease once per check_interval",
		                        c->check_interval);
	if (g && (s = config_setting_get_member(g, "failures_before_election"))) {
		if (config_setting_type(s) != CONFIG_TYPE_INT || config_setting_get_int(s) < 1 ||
		    config_setting_get_int(s) > 1000)
			return host->conf_error(s, "must be an integer from 1 to 1000");
		c->failures_before_election = config_setting_get_int(s);
	}
	if (g && (s = config_setting_get_member(g, "preempt"))) {
		if (config_setting_type(s) != CONFIG_TYPE_BOOL)
			return host->conf_error(s, "must be true or false");
		c->preempt = config_setting_get_bool(s);
	}
	if (g && (s = config_setting_get_member(g, "peers")))
		if (bully_conf_peers(host, self, s, c) < 0)
			return -1;
	return 0;
}

/* ---- plugin entry points ------------------------------------------------ */

static int bully_init(const struct scaler_host *host, const config_setting_t *conf, void **ctx)
{
	struct bully *b;
	uint64_t self;

	if (election_id_parse(host->node_id, &self) < 0) {
		host->log(SCALER_LOG_ERR, BULLY_WHO,
		          "node id \"%s\" is not a positive integer: bully compares node ids",
		          host->node_id ? host->node_id : "");
		return -1;
	}
	if (!(b = calloc(1, sizeof(*b))))
		return -1;
	b->host = host;
	b->self = self;
	if (bully_conf_parse(host, self, conf, &b->conf) < 0) {
		free(b->conf.peers);
		free(b);
		return -1;
	}
	if (b->conf.npeers == 0)
		host->log(SCALER_LOG_WARNING, BULLY_WHO,
		          "no peers configured: this node elects itself (like plugin \"single\")");
	b->state = BULLY_BACKUP;
	b->redis_ok = 1; /* until a store call says otherwise */
	b->last_transition = (double)time(NULL);
	ev_timer_init(&b->check_timer, bully_check_tick, 0., b->conf.check_interval);
	ev_timer_init(&b->phase_timer, bully_phase_expired, 0., 0.);
	ev_init(&b->lease_timer, bully_lease_expired);
	b->check_timer.data = b->phase_timer.data = b->lease_timer.data = b;
	*ctx = b;
	return 0;
}

static int bully_reload(void *ctx, const config_setting_t *conf)
{
	struct bully *b = ctx;
	struct bully_conf c;

	if (bully_conf_parse(b->host, b->self, conf, &c) < 0) {
		free(c.peers);
		return -1;
	}
	free(b->conf.peers);
	b->conf = c;
	if (b->primary.id && b->primary.id != b->self)
		snprintf(b->primary.url, sizeof(b->primary.url), "%s",
		         bully_url_of(b, b->primary.id));
	if (b->started) {
		b->check_timer.repeat = c.check_interval;
		ev_timer_again(b->host->loop, &b->check_timer);
		if (b->state == BULLY_PRIMARY)
			bully_lease_renew(b);
	}
	return 0;
}

static void bully_fini(void *ctx)
{
	struct bully *b = ctx;

	if (!b)
		return;
	ev_timer_stop(b->host->loop, &b->check_timer);
	ev_timer_stop(b->host->loop, &b->phase_timer);
	ev_timer_stop(b->host->loop, &b->lease_timer);
	while (b->ops) {
		struct bully_op *op = b->ops;
		b->ops = op->next;
		if (op->call) {
			b->host->http_cancel(op->call);
			free(op->body);
			free(op->auth);
			free(op);
		} else {
			op->b = NULL; /* a store call: its callback frees it */
			op->prev = op->next = NULL;
		}
	}
	free(b->conf.peers);
	free(b);
}

static int bully_start(void *ctx, const struct scaler_election_events *events)
{
	struct bully *b = ctx;

	if (b->started)
		return -1;
	b->events = *events;
	b->started = 1;
	ev_timer_start(b->host->loop, &b->check_timer); /* first check at once */
	return 0;
}

static void bully_on_election(struct bully *b, json_t *j, int *status, char **reply)
{
	uint64_t from;
	char ids[24];

	snprintf(ids, sizeof(ids), "%" PRIu64, b->self);
	if (election_json_id(json_object_get(j, "id"), &from) < 0) {
		election_reply_error(status, reply, 400, "\"id\" must be a positive node id");
		return;
	}
	if (!bully_peer_find(b, from)) {
		election_reply_error(status, reply, 400,
		                     "node %" PRIu64 " is not a configured peer", from);
		return;
	}
	if (from > b->self) {
		election_reply_error(status, reply, 409,
		                     "ELECTION goes to higher ids only; this node is %" PRIu64,
		                     b->self);
		return;
	}
	if (!b->redis_ok) {
		election_reply(status, reply, 200,
		               json_pack("{s:b, s:s, s:s}", "ok", 0, "id", ids, "reason",
		                         "this node cannot reach Redis"));
		return;
	}
	election_reply(status, reply, 200, json_pack("{s:b, s:s}", "ok", 1, "id", ids));

	if (b->state == BULLY_PRIMARY) {
		/* already leading: tell it again rather than taking a new epoch */
		const struct bully_peer *p = bully_peer_find(b, from);
		bully_coordinator_send(b, p);
	} else if (b->state == BULLY_BACKUP) {
		if (b->conf.preempt)
			bully_election_start(b, "ELECTION from a lower id");
		else
			bully_check(b); /* elects only when no live primary answers */
	}
}

static void bully_on_coordinator(struct bully *b, json_t *j, int *status, char **reply)
{
	uint64_t from, epoch, known;
	json_t *url = json_object_get(j, "url");
	char why[128];

	if (election_json_id(json_object_get(j, "id"), &from) < 0 ||
	    election_json_epoch(json_object_get(j, "epoch"), &epoch) < 0 || epoch == 0) {
		election_reply_error(
		    status, reply, 400,
		    "COORDINATOR needs \"id\" (node id) and \"epoch\" (integer > 0)");
		return;
	}
	if (url && !json_is_string(url)) {
		election_reply_error(status, reply, 400, "\"url\" must be a string");
		return;
	}
	if (!bully_peer_find(b, from)) {
		election_reply_error(status, reply, 400,
		                     "node %" PRIu64 " is not a configured peer", from);
		return;
	}
	known = b->known_epoch;
	if (epoch < known || (epoch == known && b->primary.id != from)) {
		election_reply_error(status, reply, 409,
		                     "stale COORDINATOR: epoch %" PRIu64 " from node %" PRIu64
		                     ", this node knows epoch %" PRIu64 " (primary %" PRIu64 ")",
		                     epoch, from, known, b->primary.id);
		return;
	}
	if (b->state == BULLY_PRIMARY && epoch > b->my_epoch)
		bully_step_down(b, "node %" PRIu64 " announced epoch %" PRIu64, from, epoch);
	if (b->conf.preempt && from < b->self && b->redis_ok) {
		election_reply_error(status, reply, 409,
		                     "node %" PRIu64 " is alive with a higher id and takes over",
		                     b->self);
		if (epoch > b->known_epoch) {
			b->known_epoch = epoch;
			b->learned++;
		}
		snprintf(why, sizeof(why), "COORDINATOR from lower id %" PRIu64, from);
		bully_election_start(b, why);
		return;
	}
	if (b->state != BULLY_BACKUP)
		bully_set_state(b, BULLY_BACKUP);
	if (epoch > b->known_epoch)
		b->learned++;
	bully_primary_set(b, from, epoch);
	b->host->log(SCALER_LOG_NOTICE, BULLY_WHO,
	             "node %" PRIu64 " is primary with epoch %" PRIu64, from, epoch);
	election_reply(status, reply, 200, json_pack("{s:b}", "ok", 1));
	/* an epoch beyond what Redis showed is checked against Redis at once */
	if (epoch > b->redis_epoch)
		bully_check(b);
}

static json_t *bully_status(const struct bully *b)
{
	char ids[24], pid[24];
	json_t *primary = json_null();

	snprintf(ids, sizeof(ids), "%" PRIu64, b->self);
	if (b->primary.id) {
		snprintf(pid, sizeof(pid), "%" PRIu64, b->primary.id);
		primary = json_pack("{s:s, s:s, s:I}", "id", pid, "url", b->primary.url, "epoch",
		                    (json_int_t)b->primary.epoch);
	}
	return json_pack(
	    "{s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:b, "
	    "s:b}",
	    "plugin", "bully", "id", ids, "state", bully_state_names[b->state], "phase",
	    bully_phase_names[b->state], "primary", primary, "epoch",
	    (json_int_t)(b->state == BULLY_PRIMARY ? b->my_epoch : b->primary.epoch), "redis_epoch",
	    (json_int_t)b->redis_epoch, "last_transition", b->last_transition, "elections",
	    (json_int_t)b->n_elections, "elections_won", (json_int_t)b->n_won, "deposed",
	    (json_int_t)b->n_deposed, "messages_refused", (json_int_t)b->n_refused, "checks_failed",
	    (json_int_t)b->n_checks_failed, "preempt", b->conf.preempt, "redis_ok", b->redis_ok);
}

static void bully_message(void *ctx, const char *type, const char *body, size_t len, int *status,
                          char **reply)
{
	struct bully *b = ctx;
	json_t *j;

	*status = 500;
	*reply = NULL;
	b->n_messages++;
	if (!(j = election_body(body, len, status, reply))) {
		b->n_refused++;
		return;
	}
	if (type && strcmp(type, "election") == 0)
		bully_on_election(b, j, status, reply);
	else if (type && strcmp(type, "coordinator") == 0)
		bully_on_coordinator(b, j, status, reply);
	else if (type && strcmp(type, "ping") == 0)
		election_reply(status, reply, 200, bully_status(b));
	else
		election_reply_error(
		    status, reply, 404,
		    "unknown election message \"%.64s\" (election, coordinator, ping)",
		    type ? type : "");
	if (*status >= 400) {
		b->n_refused++;
		b->host->log(SCALER_LOG_INFO, BULLY_WHO, "refused %s message: %d %s",
		             type ? type : "?", *status, *reply ? *reply : "");
	}
	json_decref(j);
}

static char *bully_status_json(void *ctx)
{
	json_t *j = bully_status(ctx);
	char *s = json_dumps(j, JSON_COMPACT);

	json_decref(j);
	return s;
}

static void bully_fenced(void *ctx, uint64_t current_epoch)
{
	struct bully *b = ctx;

	if (current_epoch > b->redis_epoch)
		b->redis_epoch = current_epoch;
	if (b->state == BULLY_PRIMARY) {
		bully_step_down(b, "fenced: epoch %" PRIu64 " is current, ours is %" PRIu64,
		                current_epoch, b->my_epoch);
		bully_check(b);
	}
}

static const struct scaler_election_ops bully_ops = {
    .size = sizeof(struct scaler_election_ops),
    .start = bully_start,
    .message = bully_message,
    .status_json = bully_status_json,
    .fenced = bully_fenced,
};

SCALER_PLUGIN_DEFINE(SCALER_KIND_ELECTION, "bully", PACKAGE_VERSION, bully_init, bully_reload,
                     bully_fini, election, &bully_ops);
