/*
 * Election plugin "single" (the default): this node is the only scalerd of
 * its cluster and always primary. It still takes an epoch and records
 * itself as leader, so every write it makes is fenced like a bully primary's.
 *
 * On start: epoch_take, then leader_set; while Redis is unreachable both are
 * retried with a backoff doubling from 0.1 s to `retry_max`. Once recorded:
 * events.elected(epoch) and events.primary(self).
 *
 * fenced(): another process took a newer epoch, which means a second scalerd
 * runs with this cluster name: a configuration error. This node stops acting
 * at once (events.deposed), logs an error, and takes a new epoch after
 * `retry_max`, so a lone node recovers by itself after an operator mistake
 * while two misconfigured nodes alternate slowly instead of acting together.
 *
 * Settings: retry_max (seconds, default 5).
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

#define SINGLE_WHO "election single"
#define SINGLE_RETRY_MIN 0.1

enum single_state {
	SINGLE_STARTING, /* epoch_take / leader_set in flight or waiting to retry */
	SINGLE_PRIMARY,
};

struct single;

/* A store call in flight; orphaned (s = NULL) at fini, freed by its callback. */
struct single_op {
	struct single *s;
	uint64_t gen;
	int issuing, done;
	struct single_op *prev, *next;
};

struct single {
	const struct scaler_host *host;
	double retry_max;
	struct scaler_election_events events;
	int started;

	enum single_state state;
	uint64_t gen;
	uint64_t epoch;
	double retry; /* current backoff */
	double last_transition;
	uint64_t n_takes, n_deposed, n_retries;

	ev_timer retry_timer;
	struct single_op *ops;
};

static void single_take(struct single *s);

static struct single_op *single_op_new(struct single *s)
{
	struct single_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->s = s;
	op->gen = s->gen;
	op->issuing = 1;
	op->next = s->ops;
	if (s->ops)
		s->ops->prev = op;
	s->ops = op;
	return op;
}

static void single_op_free(struct single_op *op)
{
	if (op->s) {
		if (op->prev)
			op->prev->next = op->next;
		else
			op->s->ops = op->next;
		if (op->next)
			op->next->prev = op->prev;
	}
	free(op);
}

/* In a callback: the instance (NULL when gone) and the issuing generation. */
static struct single *single_op_done(struct single_op *op, uint64_t *gen)
{
	struct single *s = op->s;

	*gen = op->gen;
	op->done = 1;
	if (!op->issuing)
		single_op_free(op);
	return s;
}

/* After the call: -1 when it could not be sent (callback never runs). */
static int single_op_issued(struct single_op *op, int rc)
{
	op->issuing = 0;
	if (op->done || rc < 0) {
		int sent = op->done;
		single_op_free(op);
		return sent ? 0 : -1;
	}
	return 0;
}

static void single_retry_later(struct single *s, double after, const char *why)
{
	s->n_retries++;
	s->host->log(SCALER_LOG_WARNING, SINGLE_WHO, "%s; retrying in %.1f s", why, after);
	ev_timer_stop(s->host->loop, &s->retry_timer);
	ev_timer_set(&s->retry_timer, after, 0.);
	ev_timer_start(s->host->loop, &s->retry_timer);
}

static void single_backoff(struct single *s, const char *why)
{
	s->retry = election_backoff(s->retry, SINGLE_RETRY_MIN, s->retry_max);
	single_retry_later(s, s->retry, why);
}

static void single_leader_set_done(void *arg, int status, uint64_t current_epoch)
{
	uint64_t gen;
	struct single *s = single_op_done(arg, &gen);

	if (!s || gen != s->gen || s->state != SINGLE_STARTING)
		return;
	if (status == -2) {
		s->host->log(SCALER_LOG_ERR, SINGLE_WHO,
		             "epoch %" PRIu64 " was taken by another process before ours (%" PRIu64
		             ") was recorded: is a second scalerd running with cluster \"%s\"?",
		             current_epoch, s->epoch, s->host->cluster ? s->host->cluster : "");
		single_retry_later(s, s->retry_max, "leadership not recorded");
		return;
	}
	if (status != 0) {
		single_backoff(s, "cannot record leadership: store unreachable");
		return;
	}
	s->state = SINGLE_PRIMARY;
	s->gen++;
	s->retry = 0;
	s->last_transition = (double)time(NULL);
	s->host->log(SCALER_LOG_NOTICE, SINGLE_WHO, "primary with epoch %" PRIu64, s->epoch);
	if (s->events.elected)
		s->events.elected(s->events.arg, s->epoch);
	if (s->state == SINGLE_PRIMARY && s->events.primary)
		s->events.primary(s->events.arg, s->host->node_id,
		                  s->host->admin_url ? s->host->admin_url : "", s->epoch);
}

static void single_epoch_take_done(void *arg, int status, uint64_t epoch)
{
	uint64_t gen;
	struct single *s = single_op_done(arg, &gen);
	struct single_op *op;

	if (!s || gen != s->gen || s->state != SINGLE_STARTING)
		return;
	if (status != 0) {
		single_backoff(s, "cannot take an epoch: store unreachable");
		return;
	}
	s->epoch = epoch;
	if (!(op = single_op_new(s)) ||
	    single_op_issued(op, s->host->leader_set(epoch, single_leader_set_done, op)) < 0)
		single_backoff(s, "cannot record leadership: store unreachable");
}

static void single_take(struct single *s)
{
	struct single_op *op;

	s->n_takes++;
	if (!(op = single_op_new(s)) ||
	    single_op_issued(op, s->host->epoch_take(single_epoch_take_done, op)) < 0)
		single_backoff(s, "cannot take an epoch: store unreachable");
}

static void single_retry_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct single *s = w->data;

	if (s->state == SINGLE_STARTING)
		single_take(s);
}

static int single_init(const struct scaler_host *host, const config_setting_t *conf, void **ctx)
{
	static const char *const known[] = {"plugin", "retry_max", NULL};
	struct single *s;
	double retry_max = 5.0;

	if (conf && host->conf_check_known(conf, known) < 0)
		return -1;
	if (host->conf_number(conf, "retry_max", retry_max, SINGLE_RETRY_MIN, ELECTION_SECONDS_MAX,
	                      &retry_max) < 0)
		return -1;
	if (!(s = calloc(1, sizeof(*s))))
		return -1;
	s->host = host;
	s->retry_max = retry_max;
	s->state = SINGLE_STARTING;
	s->last_transition = (double)time(NULL);
	ev_init(&s->retry_timer, single_retry_tick);
	s->retry_timer.data = s;
	*ctx = s;
	return 0;
}

static int single_reload(void *ctx, const config_setting_t *conf)
{
	static const char *const known[] = {"plugin", "retry_max", NULL};
	struct single *s = ctx;
	double retry_max = 5.0;

	if (conf && s->host->conf_check_known(conf, known) < 0)
		return -1;
	if (s->host->conf_number(conf, "retry_max", retry_max, SINGLE_RETRY_MIN,
	                         ELECTION_SECONDS_MAX, &retry_max) < 0)
		return -1;
	s->retry_max = retry_max;
	return 0;
}

static void single_fini(void *ctx)
{
	struct single *s = ctx;

	if (!s)
		return;
	ev_timer_stop(s->host->loop, &s->retry_timer);
	while (s->ops) {
		struct single_op *op = s->ops;
		s->ops = op->next;
		op->s = NULL;
		op->prev = op->next = NULL;
	}
	free(s);
}

static int single_start(void *ctx, const struct scaler_election_events *events)
{
	struct single *s = ctx;

	if (s->started)
		return -1;
	s->started = 1;
	s->events = *events;
	single_take(s);
	return 0;
}

static json_t *single_status(const struct single *s)
{
	json_t *primary = json_null();

	if (s->state == SINGLE_PRIMARY)
		primary = json_pack(
		    "{s:s, s:s, s:I}", "id", s->host->node_id ? s->host->node_id : "", "url",
		    s->host->admin_url ? s->host->admin_url : "", "epoch", (json_int_t)s->epoch);
	return json_pack("{s:s, s:s, s:s, s:o, s:I, s:f, s:I, s:I, s:I}", "plugin", "single", "id",
	                 s->host->node_id ? s->host->node_id : "", "state",
	                 s->state == SINGLE_PRIMARY ? "primary" : "electing", "primary", primary,
	                 "epoch", (json_int_t)(s->state == SINGLE_PRIMARY ? s->epoch : 0),
	                 "last_transition", s->last_transition, "elections", (json_int_t)s->n_takes,
	                 "deposed", (json_int_t)s->n_deposed, "retries", (json_int_t)s->n_retries);
}

static void single_message(void *ctx, const char *type, const char *body, size_t len, int *status,
                           char **reply)
{
	struct single *s = ctx;
	json_t *j;

	*status = 500;
	*reply = NULL;
	if (!(j = election_body(body, len, status, reply)))
		return;
	if (type && strcmp(type, "ping") == 0)
		election_reply(status, reply, 200, single_status(s));
	else if (type && (strcmp(type, "election") == 0 || strcmp(type, "coordinator") == 0))
		election_reply_error(status, reply, 409,
		                     "this node runs election plugin \"single\": it takes part in "
		                     "no election");
	else
		election_reply_error(status, reply, 404, "unknown election message \"%.64s\"",
		                     type ? type : "");
	json_decref(j);
}

static char *single_status_json(void *ctx)
{
	json_t *j = single_status(ctx);
	char *out = json_dumps(j, JSON_COMPACT);

	json_decref(j);
	return out;
}

static void single_fenced(void *ctx, uint64_t current_epoch)
{
	struct single *s = ctx;

	/* scalerd already stopped acting; current_epoch may be 0 (unknown) */
	if (s->state != SINGLE_PRIMARY)
		return;
	s->host->log(SCALER_LOG_ERR, SINGLE_WHO,
	             "fenced: the store refused our epoch %" PRIu64 " (current %" PRIu64
	             "): another scalerd runs with cluster \"%s\", or Redis lost its data; "
	             "election plugin \"single\" allows one node only, use \"bully\" for several",
	             s->epoch, current_epoch, s->host->cluster ? s->host->cluster : "");
	s->state = SINGLE_STARTING;
	s->gen++;
	s->n_deposed++;
	s->last_transition = (double)time(NULL);
	if (s->events.deposed)
		s->events.deposed(s->events.arg, "fenced: another node took a newer epoch");
	single_retry_later(s, s->retry_max, "stopped acting");
}

static const struct scaler_election_ops single_ops = {
    .size = sizeof(struct scaler_election_ops),
    .start = single_start,
    .message = single_message,
    .status_json = single_status_json,
    .fenced = single_fenced,
};

SCALER_PLUGIN_DEFINE(SCALER_KIND_ELECTION, "single", PACKAGE_VERSION, single_init, single_reload,
                     single_fini, election, &single_ops);
