/* A fake scalerd for the election plugins' unit tests: the real plugin
 * (dlopen'ed from SCALER_PLUGIN_DIR) on a real libev loop, with an
 * in-memory leadership store and an HTTP client that records every request
 * and lets the test answer it. */
#ifndef SCALER_TEST_FAKEHOST_H
#define SCALER_TEST_FAKEHOST_H

#include <ev.h>
#include <jansson.h>
#include <libconfig.h>
#include <stdint.h>

#include <scaler/plugin.h>

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
	int steal_after_take; /* next epoch_take: another node INCRs right after */
	uint64_t epoch;       /* <cluster>:epoch */
	char leader_id[64];
	char leader_url[256];
	uint64_t leader_epoch;
	int n_epoch_take, n_leader_set, n_leader_get;

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
	char last_log[1024];

	/* the plugin */
	config_t cfg;
	void *dl;
	const struct scaler_plugin *plugin;
	void *ctx;

	struct fake_store_cb *queue, **queue_tail;
	ev_idle idle;
};

struct fake_host *fake_host_new(const char *node_id, const char *admin_url, const char *token);
void fake_host_free(struct fake_host *h);

/* Load plugin election_<name>.so and init it with the `election` group of
 * `conf_text` (libconfig syntax; NULL: no group). Returns init's result. */
int fake_load(struct fake_host *h, const char *name, const char *conf_text);
int fake_start(struct fake_host *h);
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
