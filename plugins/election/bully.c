/*
 * Election plugin "bully": the highest live node id is primary, Redis
 * arbitrates through a lease, every change of primary takes a new epoch,
 * and only the holder of the current epoch may act.
 *
 * The lease (host->lease_*): taking the lead takes a new epoch, records the
 * leader and a lease of `lease` seconds in one step, and only while no other
 * node's lease is live. The primary renews it at every check; a primary
 * whose renewals stop being answered stops acting when its lease runs out,
 * counted from the moment it sent the last renewal that succeeded, so it is
 * never still acting once Redis lets another node take over. While a lease
 * is live nobody else takes the role nor an epoch, whatever the messages
 * between the nodes say: a primary cut off from its peers but not from Redis
 * keeps the role, and the others wait.
 *
 * A lease ends early in two ways: its holder releases it (asked to by a
 * higher id that preempts, or stopping), or it is broken: a backup whose
 * pings the primary does not answer asks Redis whether the primary's
 * connection is still open (CLIENT LIST ID), and drops the lease when it is
 * not. That is how a killed primary is replaced within one check instead of
 * one lease; a hung or partitioned one keeps its connection, and is
 * replaced when its lease lapses.
 *
 * Messages (POST <peer admin url>/election/<type>, JSON, bearer token):
 *   election     {"id","epoch"}       sent to every higher id by a node that
 *                                     wants to lead; a higher node that can
 *                                     lead answers {"ok":true,"id"} and runs
 *                                     its own election
 *   coordinator  {"id","epoch","url"} sent by a winner to every peer
 *   ping         {"id","epoch"}       liveness probe; answers this node's
 *                                     state and epoch
 *   release      {"id","epoch"}       sent by a higher id (preempt) to a lower
 *                                     primary: it steps down and drops its
 *                                     lease, and the higher id takes over
 *
 * Rules (what a receiver accepts):
 *   - a COORDINATOR is accepted from a configured peer only, with an epoch
 *     at least as new as the newest this node knows (409 otherwise; an equal
 *     epoch is accepted only from the primary already known for it). A
 *     primary does not step down for a message: it checks its lease in Redis
 *     at once, and steps down when Redis says so;
 *   - a node answers OK to an ELECTION only when it can reach Redis: from
 *     the last store call, or, when that one failed, from a look at Redis
 *     it takes there and then (a restarted Redis is reachable again before
 *     this node's next check), never while a store call has gone unanswered
 *     for longer than `timeout`;
 *   - a RELEASE is accepted from a configured higher id, by a primary.
 *
 * A node whose ELECTION a higher node answered "no" (alive, but without
 * Redis) asks once more after `timeout` before it takes the lead itself:
 * after a Redis restart the nodes reconnect within moments of each other,
 * and the highest of them should lead, not the first to look.
 *
 * Watching: every check_interval a backup reads the lease and pings its
 * holder; failures_before_election consecutive failed pings (no answer in
 * `timeout`, or an answer saying it is not primary) lead to an election if
 * the lease is gone or can be broken, else to waiting for it to lapse. An
 * answer 401 or 403 is not a failure: the nodes' tokens differ, a
 * configuration error logged once per peer; the lease alone then tells
 * whether the primary lives.
 *
 * Redis is the ground truth: epochs only grow there, so an epoch known here
 * beyond the one Redis shows (a lying message, or a Redis that lost its
 * data) is dropped at the next check in favour of Redis's.
 *
 * Settings (election group):
 *   peers                    list of { id = N; url = "http://host:port"; }, every
 *                            scalerd node's admin URL; this node's own entry
 *                            (id = node.id) may be listed and is skipped
 *   check_interval = 5.0     seconds between checks (watch / lease renewal)
 *   timeout = 1.0            seconds an answer may take (ping, ELECTION)
 *   failures_before_election = 1   consecutive failed pings before electing
 *   preempt = true           a higher id that comes back takes over (asking
 *                            the primary to release); false: it joins as
 *                            backup while a primary is alive
 *   lease = 3 x check_interval   the lease's time to live in Redis (must
 *                            exceed check_interval)
 *
 * Failover: a killed primary (connection refused, its Redis connection
 * closed) is replaced within check_interval; a hung or partitioned one, or
 * one cut from Redis, once its lease lapses: within `lease` of its last
 * renewal.
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
	BULLY_TAKING,   /* won: lease_take in flight */
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
	char url[256];    /* without trailing '/' */
	int auth_refused; /* it answers 401/403 to this node's token (logged once) */
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
	/* store calls */
	BULLY_OP_LEASE_GET, /* a backup's check, or a look at Redis (probe) */
	BULLY_OP_LEASE_RENEW,
	BULLY_OP_LEASE_TAKE,
	BULLY_OP_LEASE_BREAK,
	BULLY_OP_LEASE_RELEASE,
	/* HTTP calls */
	BULLY_OP_PING,
	BULLY_OP_ELECTION,
	BULLY_OP_COORDINATOR,
	BULLY_OP_RELEASE,
};

#define BULLY_OP_IS_STORE(k) ((k) <= BULLY_OP_LEASE_RELEASE)

struct bully;

/* One asynchronous call in flight. HTTP calls are cancelled at fini; store
 * calls cannot be, so they are orphaned (b = NULL) and freed by their
 * callback. */
struct bully_op {
	struct bully *b;
	enum bully_op_kind kind;
	uint64_t gen;     /* b->gen when issued: replies of an older phase are ignored */
	uint64_t learned; /* b->learned when issued */
	uint64_t check;   /* b->check_seq of the check it belongs to, 0: none */
	uint64_t peer;
	double sent; /* bully_now() */
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
	uint64_t my_epoch;    /* epoch we lead with (PRIMARY) */
	uint64_t known_epoch; /* newest leadership epoch this node accepted or took */
	uint64_t learned;     /* bumped when a message raised known_epoch */
	uint64_t redis_epoch; /* newest <cluster>:epoch seen in Redis */
	struct {
		uint64_t id; /* 0: none known */
		char url[256];
		uint64_t epoch;
	} primary;
	/* the lease as the last look at Redis saw it (backup) */
	struct {
		uint64_t holder; /* 0: no live lease */
		uint64_t epoch;
		double remaining;
		double seen; /* bully_now() */
		char ref[192];
	} lease;
	double lease_until; /* PRIMARY: when our lease lapses at the latest (bully_now) */

	int failures;         /* consecutive failed pings of the primary */
	int check_busy;       /* a check (lease read or renewal, then ping) is in flight */
	uint64_t check_seq;   /* which one */
	int probe_busy;       /* a look at Redis for an ELECTION answer is in flight */
	int release_busy;     /* a RELEASE request is in flight */
	int redis_ok;         /* the last store call succeeded */
	int redis_seen;       /* a store call succeeded once (the connection is up) */
	double startup_retry; /* delay of the next check while Redis was never seen */
	int election_pending;
	int election_round;     /* 2: asking again, a higher node could not reach Redis */
	int election_unready;   /* higher nodes that answered no: alive, Redis unreachable */
	int election_resend;    /* the phase timer asks again */
	int waiting_logged;     /* "the primary does not answer but holds its lease" */
	double last_transition; /* unix time */
	double primary_since, primary_until; /* last became primary, last stepped down */

	/* counters for /status and /metrics */
	uint64_t n_elections, n_won, n_deposed, n_refused, n_checks_failed, n_messages;

	ev_timer check_timer; /* every check_interval: watch (backup) or renew (primary) */
	ev_timer phase_timer; /* election / coordinator waits */
	ev_timer lease_timer; /* PRIMARY: our lease ran out */

	struct bully_op *ops;
};

static void bully_check(struct bully *b);
static void bully_election_start(struct bully *b, const char *why);
static void bully_lease_seen(void *arg, int status, const struct scaler_lease *lease,
                             uint64_t current_epoch);

/* ---- small helpers ----------------------------------------------------- */

/* Now on the monotonic clock: leases are durations, a wall clock that is
 * set back must not stretch them. */
static double bully_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct bully_peer *bully_peer_find(const struct bully *b, uint64_t id)
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
			b->last_transition = ev_time();
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

/* The next check in `after` seconds rather than at its usual time, when
 * that is sooner (a lease about to lapse). */
static void bully_check_soon(struct bully *b, double after)
{
	if (after >= b->conf.check_interval)
		return;
	ev_timer_stop(b->host->loop, &b->check_timer);
	ev_timer_set(&b->check_timer, after > 0 ? after + 0.001 : 0.001, b->conf.check_interval);
	ev_timer_start(b->host->loop, &b->check_timer);
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
	b->waiting_logged = 0;
	if (id && b->started && b->events.primary) {
		char ids[24];
		snprintf(ids, sizeof(ids), "%" PRIu64, id);
		b->events.primary(b->events.arg, ids, b->primary.url, epoch);
	}
}

static void bully_primary_forget(struct bully *b)
{
	b->primary.id = 0;
	b->primary.epoch = 0;
	b->primary.url[0] = '\0';
	b->failures = 0;
	b->waiting_logged = 0;
}

/* Remember the lease a store call showed (NULL: it showed none). */
static void bully_lease_note(struct bully *b, const struct scaler_lease *l)
{
	uint64_t holder = 0;

	if (l && l->holder && election_id_parse(l->holder, &holder) == 0) {
		b->lease.holder = holder;
		b->lease.epoch = l->epoch;
		b->lease.remaining = l->remaining;
		snprintf(b->lease.ref, sizeof(b->lease.ref), "%s", l->ref ? l->ref : "");
	} else {
		b->lease.holder = 0;
		b->lease.epoch = 0;
		b->lease.remaining = 0;
		b->lease.ref[0] = '\0';
	}
	b->lease.seen = bully_now();
}

/* An answer 401/403 from a peer: the tokens differ. Logged once per peer
 * (until it accepts ours again); 1 when resp is such an answer. */
static int bully_auth_refused(struct bully *b, uint64_t peer, const struct scaler_http_response *r)
{
	struct bully_peer *p = bully_peer_find(b, peer);
	int refused = r->status == 401 || r->status == 403;

	if (!p)
		return refused;
	if (refused && !p->auth_refused)
		b->host->log(SCALER_LOG_ERR, BULLY_WHO,
		             "node %" PRIu64
		             " (%s) refuses this node's token (HTTP %ld): the nodes' "
		             "tokens differ, a configuration error; it is not taken for dead, its "
		             "lease in Redis alone decides whether it leads",
		             peer, p->url, r->status);
	else if (!refused && r->status != 0 && p->auth_refused)
		b->host->log(SCALER_LOG_NOTICE, BULLY_WHO,
		             "node %" PRIu64 " accepts our token again", peer);
	if (refused || r->status != 0)
		p->auth_refused = refused;
	return refused;
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
	op->sent = bully_now();
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

/* What a store callback needs from its op, copied before the op is freed. */
struct bully_done {
	uint64_t gen, learned, check;
	double sent;
};

/* First thing in every store callback: the instance (NULL when it is gone)
 * and what the call was issued with. The op is freed here unless the store
 * called back before its call returned (the issuer frees it then). */
static struct bully *bully_store_op_done(struct bully_op *op, struct bully_done *d)
{
	struct bully *b = op->b;

	d->gen = op->gen;
	d->learned = op->learned;
	d->check = op->check;
	d->sent = op->sent;
	if (b && op->check && op->check == b->check_seq)
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

/* A store call of `kind`: 0 when sent (cb runs), -1 when it could not be. */
static int bully_store_call(struct bully *b, enum bully_op_kind kind, uint64_t check,
                            uint64_t epoch, scaler_lease_cb cb)
{
	const struct scaler_host *h = b->host;
	struct bully_op *op = bully_op_new(b, kind);
	struct scaler_lease l = {.ref = b->lease.ref};
	int rc = -1;

	if (!op)
		return -1;
	op->check = check;
	op->issuing = 1;
	switch (kind) {
	case BULLY_OP_LEASE_GET:
		rc = h->lease_get(cb, op);
		break;
	case BULLY_OP_LEASE_RENEW:
		rc = h->lease_renew(epoch, b->conf.lease, cb, op);
		break;
	case BULLY_OP_LEASE_TAKE:
		rc = h->lease_take(b->conf.lease, cb, op);
		break;
	case BULLY_OP_LEASE_BREAK:
		rc = h->lease_break(&l, cb, op);
		break;
	case BULLY_OP_LEASE_RELEASE:
		rc = h->lease_release(epoch, cb, op);
		break;
	default:
		break;
	}
	return bully_store_op_issued(op, rc);
}

/* A store call has waited longer than `timeout` for Redis: Redis does not
 * answer this node now, whatever the last answer said. */
static int bully_store_stalled(const struct bully *b)
{
	double now = bully_now();

	for (const struct bully_op *op = b->ops; op; op = op->next)
		if (BULLY_OP_IS_STORE(op->kind) && !op->done && now - op->sent > b->conf.timeout)
			return 1;
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

/* {"id": this node, "epoch": the newest it knows}: the body of most messages. */
static json_t *bully_hello(const struct bully *b, uint64_t epoch)
{
	char ids[24];

	snprintf(ids, sizeof(ids), "%" PRIu64, b->self);
	return json_pack("{s:s, s:I}", "id", ids, "epoch", (json_int_t)epoch);
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

static const char *bully_resp_text(const struct scaler_http_response *resp)
{
	if (resp->status)
		return resp->body ? resp->body : "";
	return resp->error ? resp->error : "no answer";
}

/* ---- primary side ------------------------------------------------------- */

/* The lease timer fires when our lease may have lapsed in Redis. */
static void bully_lease_arm(struct bully *b)
{
	double left = b->lease_until - bully_now();

	ev_timer_stop(b->host->loop, &b->lease_timer);
	ev_timer_set(&b->lease_timer, left > 0 ? left : 0., 0.);
	ev_timer_start(b->host->loop, &b->lease_timer);
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
	b->primary_until = ev_time();
	ev_timer_stop(b->host->loop, &b->lease_timer);
	b->my_epoch = 0;
	bully_primary_forget(b); /* the new primary is learned from Redis or its COORDINATOR */
	if (b->events.deposed)
		b->events.deposed(b->events.arg, reason);
}

static void bully_released(void *arg, int status, const struct scaler_lease *lease,
                           uint64_t current_epoch)
{
	struct bully_done d;
	struct bully *b = bully_store_op_done(arg, &d);

	if (b && status != 0)
		b->host->log(SCALER_LOG_INFO, BULLY_WHO,
		             "could not release the lease; it lapses by itself");
}

/* Drop our lease of `epoch` in Redis (it lapses by itself if this fails). */
static void bully_lease_release(struct bully *b, uint64_t epoch)
{
	if (epoch)
		bully_store_call(b, BULLY_OP_LEASE_RELEASE, 0, epoch, bully_released);
}

static void bully_coordinator_done(void *arg, const struct scaler_http_response *resp)
{
	struct bully_op *op = arg;
	struct bully *b = op->b;
	uint64_t peer = op->peer;

	bully_op_end(op);
	if (bully_auth_refused(b, peer, resp) || resp->status == 200)
		return;
	b->host->log(SCALER_LOG_INFO, BULLY_WHO,
	             "node %" PRIu64 " did not take COORDINATOR: %ld %s", peer, resp->status,
	             bully_resp_text(resp));
}

static void bully_coordinator_send(struct bully *b, const struct bully_peer *p)
{
	struct bully_op *op = bully_op_new(b, BULLY_OP_COORDINATOR);
	json_t *body = bully_hello(b, b->my_epoch);

	if (!op || !body) {
		json_decref(body);
		if (op)
			bully_op_end(op);
		return;
	}
	op->peer = p->id;
	json_object_set_new(body, "url", json_string(b->host->admin_url ? b->host->admin_url : ""));
	bully_post(b, op, p->url, "coordinator", body, bully_coordinator_done);
}

/* The lease taken at `sent` with `epoch` is ours. */
static void bully_become_primary(struct bully *b, uint64_t epoch, double sent)
{
	bully_set_state(b, BULLY_PRIMARY);
	b->primary_since = ev_time();
	b->my_epoch = epoch;
	b->known_epoch = epoch;
	if (epoch > b->redis_epoch)
		b->redis_epoch = epoch;
	b->lease_until = sent + b->conf.lease;
	bully_lease_arm(b);
	b->n_won++;
	b->failures = 0;
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

static void bully_renewed(void *arg, int status, const struct scaler_lease *lease,
                          uint64_t current_epoch)
{
	struct bully_done d;
	struct bully *b = bully_store_op_done(arg, &d);
	double until;

	if (!b)
		return;
	if (status == -1) {
		b->redis_ok = 0; /* the lease timer decides */
		return;
	}
	b->redis_ok = b->redis_seen = 1;
	b->redis_epoch = current_epoch;
	if (d.gen != b->gen || b->state != BULLY_PRIMARY)
		return;
	if (status == 0) {
		until = d.sent + b->conf.lease;
		if (until <= bully_now()) {
			bully_step_down(b,
			                "the renewal was answered after the lease (%.1f s) ran out",
			                b->conf.lease);
			return;
		}
		if (until > b->lease_until) {
			b->lease_until = until;
			bully_lease_arm(b);
		}
		return;
	}
	if (current_epoch > b->my_epoch) {
		bully_step_down(b, "epoch %" PRIu64 " in Redis is newer than ours (%" PRIu64 ")",
		                current_epoch, b->my_epoch);
	} else if (current_epoch < b->my_epoch) {
		bully_step_down(b,
		                "epoch in Redis went back to %" PRIu64 " (ours %" PRIu64
		                "): Redis lost its data",
		                current_epoch, b->my_epoch);
		b->known_epoch = current_epoch;
	} else {
		bully_step_down(b, "Redis no longer names this node as leader of epoch %" PRIu64,
		                current_epoch);
	}
	bully_check(b);
}

static void bully_lease_expired(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bully *b = w->data;

	ev_timer_stop(loop, w);
	b->redis_ok = 0;
	bully_step_down(b, "lost Redis: the lease (%.1f s) ran out without a renewal",
	                b->conf.lease);
}

/* ---- taking the lead ---------------------------------------------------- */

static void bully_took(void *arg, int status, const struct scaler_lease *lease,
                       uint64_t current_epoch)
{
	struct bully_done d;
	struct bully *b = bully_store_op_done(arg, &d);

	if (!b)
		return;
	if (status == -1) {
		b->redis_ok = 0;
	} else {
		b->redis_ok = b->redis_seen = 1;
		if (current_epoch > b->redis_epoch)
			b->redis_epoch = current_epoch;
	}
	if (d.gen != b->gen || b->state != BULLY_TAKING) {
		if (status == 0 && lease) {
			b->host->log(SCALER_LOG_INFO, BULLY_WHO,
			             "lease of epoch %" PRIu64 " taken after the election ended; "
			             "releasing it",
			             lease->epoch);
			bully_lease_release(b, lease->epoch);
		}
		return;
	}
	if (status == 0 && lease) {
		bully_become_primary(b, lease->epoch, d.sent);
		return;
	}
	bully_set_state(b, BULLY_BACKUP);
	if (status == -3 && lease) {
		bully_lease_note(b, lease);
		b->host->log(SCALER_LOG_NOTICE, BULLY_WHO,
		             "not taking the lead: node %s holds the lease of epoch %" PRIu64
		             " for %.2f s more",
		             lease->holder ? lease->holder : "?", lease->epoch, lease->remaining);
		if (b->lease.holder && bully_peer_find(b, b->lease.holder))
			bully_primary_set(b, b->lease.holder, b->lease.epoch);
		bully_check_soon(b, b->lease.remaining);
	} else {
		b->host->log(SCALER_LOG_WARNING, BULLY_WHO,
		             "won the election but cannot take the lead: store unreachable; "
		             "retrying at the next check");
	}
}

/* No higher node answered: take the lead, record it, announce it. */
static void bully_win(struct bully *b)
{
	bully_set_state(b, BULLY_TAKING);
	if (bully_store_call(b, BULLY_OP_LEASE_TAKE, 0, 0, bully_took) < 0) {
		b->redis_ok = 0;
		b->host->log(SCALER_LOG_WARNING, BULLY_WHO,
		             "won the election but the store is unreachable; retrying at the next "
		             "check");
		bully_set_state(b, BULLY_BACKUP);
		return;
	}
	/* a store that never answers must not leave this node electing forever */
	if (b->state == BULLY_TAKING)
		bully_phase_arm(b, 5 * b->conf.timeout + 1.0);
}

/* ---- election ----------------------------------------------------------- */

/* Every higher node answered, none OK. One that lives but cannot reach
 * Redis yet (its connection comes back moments after a Redis restart) is
 * asked once more after `timeout`, so that it, the highest live id, leads. */
static void bully_election_settle(struct bully *b)
{
	if (b->election_unready && b->election_round == 1) {
		b->host->log(SCALER_LOG_INFO, BULLY_WHO,
		             "%d higher node(s) cannot reach Redis now; asking again in %.2f s",
		             b->election_unready, b->conf.timeout);
		b->election_round = 2;
		b->election_resend = 1;
		bully_phase_arm(b, b->conf.timeout);
		return;
	}
	bully_win(b);
}

static void bully_election_reply(void *arg, const struct scaler_http_response *resp)
{
	struct bully_op *op = arg;
	uint64_t gen = op->gen, peer = op->peer;
	struct bully *b = bully_op_end(op);
	json_t *j;
	int ok;

	bully_auth_refused(b, peer, resp); /* counts as no OK */
	if (gen != b->gen || b->state != BULLY_ELECTING)
		return;
	b->election_pending--;
	j = bully_answer(resp);
	ok = j && json_is_true(json_object_get(j, "ok"));
	if (j && json_is_false(json_object_get(j, "ok")))
		b->election_unready++;
	json_decref(j);
	if (ok) {
		b->host->log(SCALER_LOG_INFO, BULLY_WHO,
		             "node %" PRIu64 " answered OK; waiting for its COORDINATOR", peer);
		bully_set_state(b, BULLY_WAITING);
		bully_phase_arm(b, 2 * b->conf.timeout);
		return;
	}
	if (b->election_pending <= 0)
		bully_election_settle(b);
}

/* ELECTION to every higher id. */
static void bully_election_send(struct bully *b)
{
	b->election_pending = 0;
	b->election_unready = 0;
	b->election_resend = 0;
	for (size_t i = 0; i < b->conf.npeers; i++) {
		const struct bully_peer *p = &b->conf.peers[i];
		struct bully_op *op;

		if (p->id < b->self || !(op = bully_op_new(b, BULLY_OP_ELECTION)))
			continue;
		op->peer = p->id;
		if (bully_post(b, op, p->url, "election", bully_hello(b, b->known_epoch),
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

static void bully_election_start(struct bully *b, const char *why)
{
	if (b->state != BULLY_BACKUP)
		return;
	if (!b->redis_ok) {
		/* nobody can take the lead; the next check that reaches Redis retries */
		b->host->log(SCALER_LOG_DEBUG, BULLY_WHO, "no election (%s): Redis unreachable",
		             why);
		return;
	}
	b->n_elections++;
	b->host->log(SCALER_LOG_NOTICE, BULLY_WHO, "election: %s", why);
	bully_set_state(b, BULLY_ELECTING);
	b->election_round = 1;
	bully_election_send(b);
}

static void bully_phase_expired(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bully *b = w->data;

	if (b->state == BULLY_ELECTING && b->election_resend) {
		bully_set_state(b, BULLY_ELECTING); /* replies of the first round are stale */
		bully_election_send(b);
	} else if (b->state == BULLY_ELECTING) {
		bully_win(b);
	} else if (b->state == BULLY_WAITING) {
		/* the winner may hold the lease and have failed to tell us: look */
		b->host->log(SCALER_LOG_INFO, BULLY_WHO,
		             "no COORDINATOR after an OK; looking at the lease again");
		bully_set_state(b, BULLY_BACKUP);
		bully_check(b);
	} else if (b->state == BULLY_TAKING) {
		b->host->log(SCALER_LOG_WARNING, BULLY_WHO,
		             "the store did not answer while taking the lead; back to watching");
		bully_set_state(b, BULLY_BACKUP);
	}
}

/* ---- preempting a lower primary ----------------------------------------- */

static void bully_release_done(void *arg, const struct scaler_http_response *resp)
{
	struct bully_op *op = arg;
	uint64_t gen = op->gen, peer = op->peer;
	struct bully *b = bully_op_end(op);
	char why[96];

	b->release_busy = 0;
	if (bully_auth_refused(b, peer, resp))
		return;
	if (resp->status != 200) {
		b->host->log(SCALER_LOG_INFO, BULLY_WHO, "node %" PRIu64 " did not release: %ld %s",
		             peer, resp->status, bully_resp_text(resp));
		return;
	}
	if (gen != b->gen || b->state != BULLY_BACKUP)
		return;
	b->host->log(SCALER_LOG_NOTICE, BULLY_WHO, "node %" PRIu64 " released the lead", peer);
	if (b->primary.id == peer)
		bully_primary_forget(b);
	snprintf(why, sizeof(why), "node %" PRIu64 " released the lead to this higher id", peer);
	bully_election_start(b, why);
}

/* preempt: ask the live lower primary `peer` to hand over. */
static void bully_release_ask(struct bully *b, uint64_t peer)
{
	const struct bully_peer *p = bully_peer_find(b, peer);
	struct bully_op *op;

	if (!p || b->release_busy || !(op = bully_op_new(b, BULLY_OP_RELEASE)))
		return;
	op->peer = peer;
	b->host->log(SCALER_LOG_INFO, BULLY_WHO,
	             "asking primary %" PRIu64 " (a lower id) to release the lead (preempt)", peer);
	if (bully_post(b, op, p->url, "release", bully_hello(b, b->known_epoch),
	               bully_release_done) == 0)
		b->release_busy = 1;
}

/* ---- watching ----------------------------------------------------------- */

/* A store call failed. Until Redis answered once (the host connects
 * asynchronously after start) checks are retried quickly, so a node does
 * not wait a whole check_interval for its first election. */
static void bully_store_unreachable(struct bully *b)
{
	if (b->redis_ok && b->redis_seen)
		b->host->log(SCALER_LOG_WARNING, BULLY_WHO,
		             "cannot read the lease: store unreachable");
	b->redis_ok = 0;
	if (!b->redis_seen) {
		b->startup_retry = election_backoff(b->startup_retry, 0.05, b->conf.check_interval);
		ev_timer_stop(b->host->loop, &b->check_timer);
		ev_timer_set(&b->check_timer, b->startup_retry, b->conf.check_interval);
		ev_timer_start(b->host->loop, &b->check_timer);
	}
}

/* The primary does not answer but its lease is live and cannot be broken:
 * it lives, cut off from this node, or hangs. Wait for the lease. */
static void bully_lease_wait(struct bully *b)
{
	double left = b->lease.remaining - (bully_now() - b->lease.seen);

	if (!b->waiting_logged)
		b->host->log(SCALER_LOG_NOTICE, BULLY_WHO,
		             "primary %" PRIu64 " does not answer as primary, but holds its lease "
		             "in Redis (%.2f s left, renewed while it lives) and its Redis "
		             "connection is open: waiting for the lease",
		             b->lease.holder, left);
	b->waiting_logged = 1;
	bully_check_soon(b, left);
}

static void bully_broken(void *arg, int status, const struct scaler_lease *lease,
                         uint64_t current_epoch)
{
	struct bully_done d;
	struct bully *b = bully_store_op_done(arg, &d);
	char why[160];

	if (!b || d.gen != b->gen || b->state != BULLY_BACKUP)
		return;
	if (status == 0) {
		snprintf(why, sizeof(why),
		         "primary %" PRIu64 " is gone: it does not answer and Redis closed its "
		         "connection",
		         b->lease.holder);
		bully_lease_note(b, NULL);
		bully_primary_forget(b);
		bully_election_start(b, why);
		return;
	}
	if (lease)
		bully_lease_note(b, lease);
	bully_lease_wait(b);
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
	if (bully_auth_refused(b, peer, resp))
		return; /* neither alive nor dead: the lease decides */
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
		if (b->waiting_logged)
			b->host->log(SCALER_LOG_NOTICE, BULLY_WHO,
			             "primary %" PRIu64 " answers again", peer);
		b->failures = 0;
		b->waiting_logged = 0;
		if (b->conf.preempt && peer < b->self && b->redis_ok)
			bully_release_ask(b, peer);
		return;
	}
	b->n_checks_failed++;
	b->failures++;
	b->host->log(b->failures == 1 ? SCALER_LOG_WARNING : SCALER_LOG_DEBUG, BULLY_WHO,
	             "primary %" PRIu64 " failed check %d of %d: %s", peer, b->failures,
	             b->conf.failures_before_election, why);
	if (b->failures < b->conf.failures_before_election)
		return;
	if (b->lease.holder == peer) {
		/* dead, or only cut off from us? Redis knows whether it is connected */
		if (bully_store_call(b, BULLY_OP_LEASE_BREAK, 0, 0, bully_broken) < 0)
			bully_lease_wait(b);
		return;
	}
	snprintf(why, sizeof(why), "primary %" PRIu64 " failed %d check(s)", peer, b->failures);
	bully_election_start(b, why);
}

static void bully_ping_primary(struct bully *b)
{
	struct bully_op *op;

	if (!(op = bully_op_new(b, BULLY_OP_PING)))
		goto done;
	op->peer = b->primary.id;
	op->check = b->check_seq;
	if (bully_post(b, op, b->primary.url, "ping", bully_hello(b, b->known_epoch),
	               bully_ping_done) == 0)
		return;
done:
	b->check_busy = 0;
}

/* A backup that read the lease: follow its holder, or elect. */
static void bully_follow_lease(struct bully *b)
{
	char why[128];

	if (!b->lease.holder) {
		if (b->primary.id && b->primary.id != b->self)
			snprintf(why, sizeof(why), "the lease of primary %" PRIu64 " lapsed",
			         b->primary.id);
		else
			snprintf(why, sizeof(why), "no node holds the lease");
		bully_primary_forget(b);
		bully_election_start(b, why);
		return;
	}
	if (b->lease.holder == b->self) {
		/* an earlier run of this node, or its own lease about to lapse */
		bully_primary_forget(b);
		bully_election_start(b, "the lease names this node, which is not primary");
		return;
	}
	if (!bully_peer_find(b, b->lease.holder)) {
		if (!b->waiting_logged)
			b->host->log(SCALER_LOG_WARNING, BULLY_WHO,
			             "node %" PRIu64 " holds the lease but is not among the peers: "
			             "waiting for the lease to lapse",
			             b->lease.holder);
		b->waiting_logged = 1;
		bully_check_soon(b, b->lease.remaining);
		return;
	}
	bully_primary_set(b, b->lease.holder, b->lease.epoch);
	b->check_busy = 1;
	b->check_seq++;
	bully_ping_primary(b);
}

/* A lease read answered: a check's (check != 0) or a probe's. */
static void bully_lease_seen(void *arg, int status, const struct scaler_lease *lease,
                             uint64_t current_epoch)
{
	struct bully_done d;
	struct bully *b = bully_store_op_done(arg, &d);

	if (!b)
		return;
	if (!d.check)
		b->probe_busy = 0;
	if (status != 0) {
		bully_store_unreachable(b);
		/* a live primary keeps its followers */
		if (d.check && d.gen == b->gen && b->state == BULLY_BACKUP && b->primary.id &&
		    b->primary.id != b->self && !b->check_busy) {
			b->check_busy = 1;
			b->check_seq++;
			bully_ping_primary(b);
		}
		return;
	}
	b->redis_ok = b->redis_seen = 1;
	b->redis_epoch = current_epoch;
	/* Epochs only grow in Redis: a newer one known here came from a forged
	 * message or from a Redis that lost its data. Trust Redis (unless a
	 * message taught us that epoch after this read started). */
	if (current_epoch < b->known_epoch && d.learned == b->learned && b->state != BULLY_TAKING &&
	    b->state != BULLY_PRIMARY) {
		b->host->log(SCALER_LOG_WARNING, BULLY_WHO,
		             "epoch %" PRIu64 " in Redis is older than epoch %" PRIu64
		             " known here (Redis lost its data, or a message lied): trusting Redis",
		             current_epoch, b->known_epoch);
		b->known_epoch = current_epoch;
		if (b->primary.epoch > current_epoch)
			bully_primary_forget(b);
	}
	if (b->state == BULLY_PRIMARY) {
		uint64_t holder = 0;
		/* a probe: does Redis still see our lease? The renewal decides. */
		if (!lease || !lease->holder || election_id_parse(lease->holder, &holder) < 0 ||
		    holder != b->self || lease->epoch != b->my_epoch)
			bully_check(b);
		return;
	}
	if (d.learned != b->learned)
		return; /* a message taught us more meanwhile; the next check looks again */
	bully_lease_note(b, lease);
	if (d.gen != b->gen || b->state != BULLY_BACKUP)
		return;
	/* a probe while a check pings the holder: that check goes on */
	if (!d.check && b->check_busy && b->lease.holder && b->lease.holder == b->primary.id)
		return;
	bully_follow_lease(b);
}

/* Renew the lease (primary), or read it and ping its holder (backup). */
static void bully_check(struct bully *b)
{
	uint64_t seq;
	int primary = b->state == BULLY_PRIMARY;

	if (b->check_busy || b->state == BULLY_ELECTING || b->state == BULLY_WAITING ||
	    b->state == BULLY_TAKING)
		return;
	seq = ++b->check_seq;
	b->check_busy = 1;
	if (bully_store_call(b, primary ? BULLY_OP_LEASE_RENEW : BULLY_OP_LEASE_GET, seq,
	                     b->my_epoch, primary ? bully_renewed : bully_lease_seen) == 0)
		return;
	if (seq == b->check_seq)
		b->check_busy = 0;
	bully_store_unreachable(b);
	if (b->state == BULLY_BACKUP && b->primary.id && b->primary.id != b->self &&
	    !b->check_busy) {
		b->check_busy = 1;
		b->check_seq++;
		bully_ping_primary(b); /* a live primary keeps its followers */
	}
}

static void bully_check_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	bully_check(w->data);
}

/* Can this node lead now? From the last store call, unless that failed:
 * then from a look at Redis taken now (the connection may be back before
 * the next check). A store call unanswered for `timeout` says no. */
static int bully_can_lead(struct bully *b, const char **why)
{
	*why = "this node cannot reach Redis";
	if (bully_store_stalled(b)) {
		*why = "Redis does not answer this node";
		return 0;
	}
	if (b->redis_ok)
		return 1;
	if (b->state != BULLY_BACKUP && b->state != BULLY_PRIMARY)
		return 0;
	if (b->probe_busy)
		return 1;
	if (bully_store_call(b, BULLY_OP_LEASE_GET, 0, 0, bully_lease_seen) < 0)
		return 0;
	b->probe_busy = 1;
	return 1;
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

	if (!SCALER_HOST_HAS(host, lease_break)) {
		host->log(SCALER_LOG_ERR, BULLY_WHO,
		          "this scalerd offers no leadership lease (plugin ABI %u.%u, bully needs "
		          "%d.%d): install matching versions",
		          host->abi_major, host->abi_minor, SCALER_ABI_MAJOR, SCALER_ABI_MINOR);
		return -1;
	}
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
	b->last_transition = ev_time();
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
	for (size_t i = 0; i < c.npeers; i++) {
		const struct bully_peer *old = bully_peer_find(b, c.peers[i].id);
		c.peers[i].auth_refused =
		    old && old->auth_refused && !strcmp(old->url, c.peers[i].url);
	}
	free(b->conf.peers);
	b->conf = c;
	if (b->primary.id && b->primary.id != b->self)
		snprintf(b->primary.url, sizeof(b->primary.url), "%s",
		         bully_url_of(b, b->primary.id));
	if (b->started) {
		b->check_timer.repeat = c.check_interval;
		ev_timer_again(b->host->loop, &b->check_timer);
	}
	return 0;
}

static void bully_fini(void *ctx)
{
	struct bully *b = ctx;

	if (!b)
		return;
	if (b->state == BULLY_PRIMARY)
		bully_lease_release(b, b->my_epoch); /* the peers need not wait for it */
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

/* The sender of a message: a configured peer, else a 400 reply and 0. */
static uint64_t bully_sender(struct bully *b, json_t *j, int *status, char **reply)
{
	uint64_t from;

	if (election_json_id(json_object_get(j, "id"), &from) < 0) {
		election_reply_error(status, reply, 400, "\"id\" must be a positive node id");
		return 0;
	}
	if (!bully_peer_find(b, from)) {
		election_reply_error(status, reply, 400,
		                     "node %" PRIu64 " is not a configured peer", from);
		return 0;
	}
	return from;
}

static void bully_on_election(struct bully *b, json_t *j, int *status, char **reply)
{
	uint64_t from;
	const char *why;
	char ids[24];

	snprintf(ids, sizeof(ids), "%" PRIu64, b->self);
	if (!(from = bully_sender(b, j, status, reply)))
		return;
	if (from > b->self) {
		election_reply_error(status, reply, 409,
		                     "ELECTION goes to higher ids only; this node is %" PRIu64,
		                     b->self);
		return;
	}
	if (!bully_can_lead(b, &why)) {
		election_reply(status, reply, 200,
		               json_pack("{s:b, s:s, s:s}", "ok", 0, "id", ids, "reason", why));
		return;
	}
	election_reply(status, reply, 200, json_pack("{s:b, s:s}", "ok", 1, "id", ids));

	if (b->state == BULLY_PRIMARY) {
		/* already leading: tell it again rather than taking a new epoch */
		bully_coordinator_send(b, bully_peer_find(b, from));
	} else if (b->state == BULLY_BACKUP && b->redis_ok) {
		if (b->conf.preempt)
			bully_election_start(b, "ELECTION from a lower id");
		else
			bully_check(b); /* elects only when no live primary holds the lease */
	}
	/* else: the look at Redis bully_can_lead started decides */
}

static void bully_on_coordinator(struct bully *b, json_t *j, int *status, char **reply)
{
	uint64_t from, epoch, known;
	json_t *url = json_object_get(j, "url");

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
	if (!bully_sender(b, j, status, reply))
		return;
	known = b->known_epoch;
	if (epoch < known || (epoch == known && b->primary.id != from)) {
		election_reply_error(status, reply, 409,
		                     "stale COORDINATOR: epoch %" PRIu64 " from node %" PRIu64
		                     ", this node knows epoch %" PRIu64 " (primary %" PRIu64 ")",
		                     epoch, from, known, b->primary.id);
		return;
	}
	if (b->state == BULLY_PRIMARY) {
		/* a message does not depose a primary: its lease in Redis does */
		election_reply_error(status, reply, 409,
		                     "node %" PRIu64 " is primary with epoch %" PRIu64
		                     "; it checks its lease in Redis",
		                     b->self, b->my_epoch);
		bully_check(b);
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

static void bully_on_release(struct bully *b, json_t *j, int *status, char **reply)
{
	uint64_t from, epoch = b->my_epoch;

	if (!(from = bully_sender(b, j, status, reply)))
		return;
	if (from < b->self) {
		election_reply_error(
		    status, reply, 409,
		    "only a higher id may ask node %" PRIu64 " to release the lead", b->self);
		return;
	}
	if (b->state != BULLY_PRIMARY) {
		election_reply_error(status, reply, 409, "node %" PRIu64 " is not primary",
		                     b->self);
		return;
	}
	bully_step_down(b, "node %" PRIu64 ", a higher id, takes over (preempt)", from);
	bully_lease_release(b, epoch);
	election_reply(status, reply, 200, json_pack("{s:b, s:I}", "ok", 1, "epoch", epoch));
}

static json_t *bully_status(const struct bully *b)
{
	char ids[24], pid[24], hid[24];
	json_t *primary = json_null(), *lease = json_null();
	double now = bully_now();

	snprintf(ids, sizeof(ids), "%" PRIu64, b->self);
	if (b->primary.id) {
		snprintf(pid, sizeof(pid), "%" PRIu64, b->primary.id);
		primary = json_pack("{s:s, s:s, s:I}", "id", pid, "url", b->primary.url, "epoch",
		                    (json_int_t)b->primary.epoch);
	}
	if (b->state == BULLY_PRIMARY)
		lease = json_pack("{s:s, s:I, s:f}", "holder", ids, "epoch",
		                  (json_int_t)b->my_epoch, "remaining", b->lease_until - now);
	else if (b->lease.holder) {
		double left = b->lease.remaining - (now - b->lease.seen);
		snprintf(hid, sizeof(hid), "%" PRIu64, b->lease.holder);
		lease = json_pack("{s:s, s:I, s:f}", "holder", hid, "epoch",
		                  (json_int_t)b->lease.epoch, "remaining", left > 0 ? left : 0.);
	}
	json_t *st = json_pack(
	    "{s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:o, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:b, "
	    "s:b}",
	    "plugin", "bully", "id", ids, "state", bully_state_names[b->state], "phase",
	    bully_phase_names[b->state], "primary", primary, "epoch",
	    (json_int_t)(b->state == BULLY_PRIMARY ? b->my_epoch : b->primary.epoch), "redis_epoch",
	    (json_int_t)b->redis_epoch, "lease", lease, "last_transition", b->last_transition,
	    "primary_since", b->primary_since, "primary_until", b->primary_until, "elections",
	    (json_int_t)b->n_elections, "elections_won", (json_int_t)b->n_won, "deposed",
	    (json_int_t)b->n_deposed, "messages_refused", (json_int_t)b->n_refused, "checks_failed",
	    (json_int_t)b->n_checks_failed, "preempt", b->conf.preempt, "redis_ok", b->redis_ok);
	json_t *peers = json_array();
	for (size_t i = 0; i < b->conf.npeers; i++) {
		char id[24];
		snprintf(id, sizeof(id), "%" PRIu64, b->conf.peers[i].id);
		json_array_append_new(
		    peers, json_pack("{s:s, s:s}", "id", id, "url", b->conf.peers[i].url));
	}
	json_object_set_new(st, "peers", peers); /* the console asks each for its status */
	return st;
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
	else if (type && strcmp(type, "release") == 0)
		bully_on_release(b, j, status, reply);
	else if (type && strcmp(type, "ping") == 0)
		election_reply(status, reply, 200, bully_status(b));
	else
		election_reply_error(
		    status, reply, 404,
		    "unknown election message \"%.64s\" (election, coordinator, ping, release)",
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
