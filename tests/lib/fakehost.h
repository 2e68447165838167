/* The one fake scalerd of the tests: real plugins (dlopen'ed from
 * SCALER_PLUGIN_DIR, default ".libs") on a real libev loop, with a host
 * table whose log and config helpers record every message (conf_number and
 * conf_integer, the real ones, report through that conf_error) so a test can
 * assert on what a plugin tells an operator.
 *
 * Two ways to use it:
 *  - the table alone (fake_host_table), for a plugin that needs no store:
 *    the policy tests; with fake_host_real_http, the command-line drivers
 *    of the metrics and balancer plugins (metrics-query, bal-harness);
 *  - a whole struct fake_host (fake_host_new), for the election plugins:
 *    an in-memory leadership store answering from the loop as Redis would,
 *    and an HTTP client that records every request and lets the test answer
 *    it. */
#ifndef SCALER_TEST_FAKEHOST_H
#define SCALER_TEST_FAKEHOST_H

#include <ev.h>
#include <jansson.h>
#include <libconfig.h>
#include <stddef.h>
#include <stdint.h>

#include <scaler/plugin.h>

/* ---- the host table ---- */

/* Fill a host table: ABI numbers, node "1" of cluster "test", log and
 * config helpers that record; loop may be NULL; no HTTP, no Redis. */
void fake_host_table(struct scaler_host *host, struct ev_loop *loop);
/* Give the table a real HTTP client on `loop` (libscalerutil's). */
void fake_host_real_http(struct scaler_host *host, struct ev_loop *loop);

/* Everything logged and every config error so far, one per line:
 * "log LEVEL WHO: message" and "conf FILE:LINE: PATH: message". */
const char *fake_messages(void);
void fake_messages_clear(void);
/* Also copy every message to stderr (command-line drivers; the tests'
 * FAKEHOST_VERBOSE does the same). */
void fake_messages_echo(int on);
/* Log messages above `max` are dropped (default: none). */
void fake_messages_level(enum scaler_log_level max);

/* dlopen <kind>_<name>.so from SCALER_PLUGIN_DIR and return its exported
 * descriptor (checked: kind, name, ABI); NULL with a sentence in err. */
const struct scaler_plugin *fake_plugin_open(const char *kind, const char *name, char *err,
                                             size_t errlen);
/* Parse `text` as the body of a group "g = { text };" into cf and return the
 * group; NULL with the parse error in err. Call config_destroy(cf) after. */
config_setting_t *fake_group(config_t *cf, const char *text, char *err, size_t errlen);
/* Reset host and messages, then init plugin p with `text` as its group body
 * (NULL: no group at all); cf holds the config (config_destroy it after).
 * Returns init's result; a text that does not parse aborts the test. */
int fake_plugin_init(struct scaler_host *host, const struct scaler_plugin *p, config_t *cf,
                     const char *text, void **ctx);

/* ---- a whole fake host (election plugins) ---- */

#define FAKE_MAX_CALLS 512

enum fake_call_state { FAKE_PENDING, FAKE_ANSWERED, FAKE_CANCELLED };

struct fake_call {
	char method[8];
	char url[512];
	char body[2048];
	char auth[320]; /* the Authorization header, "" when none */
	double timeout;
	scaler_http_cb cb;
	void *arg;
	enum fake_call_state state;
};

struct fake_store_cb; /* queued store answer */

struct fake_host {
	struct scaler_host pub;
	struct ev_loop *loop;

	/* the store (what Redis would hold) */
	int redis_down;       /* every store call answers -1 */
	int redis_refuse;     /* lease calls cannot be sent (-1 at once: not connected) */
	int redis_hang;       /* store calls wait, unanswered, while this is set */
	int steal_after_take; /* next epoch_take: another node INCRs right after */
	uint64_t epoch;       /* <cluster>:epoch */
	char leader_id[64];
	char leader_url[256];
	uint64_t leader_epoch;
	int n_epoch_take, n_leader_set, n_leader_get;
	/* <cluster>:lease: live while lease_until is ahead and its epoch current */
	char lease_holder[64]; /* "" when none */
	uint64_t lease_epoch;
	ev_tstamp lease_until;
	int lease_gone; /* the holder's Redis connection is closed: it can be broken */
	int n_lease_take, n_lease_renew, n_lease_release, n_lease_get, n_lease_break;

	/* HTTP: every request, in order */
	struct fake_call calls[FAKE_MAX_CALLS];
	int ncalls; /* every request stays pending until fake_answer */

	/* events the plugin raised */
	int n_elected, n_deposed, n_primary;
	uint64_t elected_epoch;
	char deposed_reason[256];
	char primary_id[64];
	char primary_url[256];
	uint64_t primary_epoch;
	char last_log[1024]; /* the last message (see fake_messages) */
	int n_err_logs;      /* SCALER_LOG_ERR lines */

	/* the plugin */
	config_t cfg;
	const struct scaler_plugin *plugin;
	void *ctx;

	struct fake_store_cb *queue, **queue_tail;
	ev_idle idle;
};

struct fake_host *fake_host_new(const char *node_id, const char *admin_url, const char *token);
void fake_host_free(struct fake_host *h);

/* Load plugin <kind>_<name>.so and init it with the group named `kind` of
 * `conf_text` (libconfig syntax; NULL: no group). Returns init's result, -2
 * when the plugin or the text cannot be loaded. */
int fake_load(struct fake_host *h, const char *kind, const char *name, const char *conf_text);
int fake_start(struct fake_host *h);
/* Another node (or this one) holds the lease of `epoch` for `ttl` seconds
 * from now, and is the leader of the current epoch `epoch`. */
void fake_lease_hold(struct fake_host *h, const char *holder, uint64_t epoch, double ttl);
/* 1 when the lease is live now. */
int fake_lease_live(struct fake_host *h);

/* Run the loop for `seconds` (store answers and timers fire). */
void fake_run(struct fake_host *h, double seconds);
/* Run the loop until pred(h) or `seconds` pass; returns pred's last value. */
int fake_run_until(struct fake_host *h, int (*pred)(struct fake_host *h), double seconds);

/* POST /election/<type> with body; returns the reply (free it), *status set. */
char *fake_message(struct fake_host *h, const char *type, const char *body, int *status);
/* The plugin's status_json, parsed (json_decref it). */
json_t *fake_status(struct fake_host *h);
/* status_json's string member `key` ("" when absent), copied into a static buffer. */
const char *fake_status_str(struct fake_host *h, const char *key);
long long fake_status_int(struct fake_host *h, const char *key);

/* Index of the first call at or after `from` whose URL ends with
 * `url_suffix` and whose state is `state` (-1 for any); -1 when none. */
int fake_find_call(struct fake_host *h, const char *url_suffix, int state, int from);
int fake_count_calls(struct fake_host *h, const char *url_suffix);
/* Answer pending call i. */
void fake_answer(struct fake_host *h, int i, long status, const char *body);
/* Answer every pending call whose URL ends with url_suffix; returns how many. */
int fake_answer_all(struct fake_host *h, const char *url_suffix, long status, const char *body);

#endif
