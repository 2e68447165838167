/*
 * metrics-query: run a metrics plugin outside scalerd, for tests.
 *
 *   metrics-query [-p PLUGIN] [-c SETTINGS] [-r ROUNDS] [-i INTERVAL] [-w WINDOW]
 *                 [-a ADMIN] [-t TOKEN]
 *                 ZONE [ID[=ADDRESS]]... [/[ZONE] [ID[=ADDRESS]]...]...
 *
 * Loads $SCALER_PLUGIN_DIR/metrics_PLUGIN.so (default "http") with SETTINGS
 * as the body of its config group, then queries ZONE for the servers given,
 * ROUNDS times (default 1) INTERVAL seconds apart, on a libev loop with the
 * real HTTP client. A "/" starts the server set of the next round ("/zone2"
 * also changes the zone); the last set serves the remaining rounds, and
 * there are at least as many rounds as sets. ADMIN is every zone's admin
 * address (host:port), TOKEN the host's API token. Each result is printed as one
 * JSON line:
 *
 *   {"round": 1, "zone": "zone1", "status": 0, "error": null, "average": 42.5,
 *    "average_valid": true, "elapsed": 0.01,
 *    "values": [{"server": "a", "value": 42.5, "missing": false}, ...]}
 *
 * Plugin log lines go to stderr. Exit status: 0 after every round called
 * back exactly once, 2 when the settings are refused (the errors on stderr),
 * 3 when a callback never came or came twice, 1 on other errors.
 */
#include "config.h"

#include "fakehost.h"
#include "host_services.h"

#include <ev.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MQ_SETS 16

/* the zone and servers of one round */
struct mq_set {
	struct scaler_zone zone;
	struct scaler_server *servers;
	size_t n;
};

struct mq {
	struct ev_loop *loop;
	const struct scaler_plugin *plugin;
	void *ctx;
	struct mq_set sets[MQ_SETS];
	size_t nsets;
	const struct mq_set *cur;
	int rounds, round, callbacks;
	double interval, window, started;
	int failed;
	ev_timer next, watchdog, linger;
};

static void mq_start_round(struct mq *mq);

static void mq_on_result(void *arg, int status, const struct scaler_metrics_result *res,
                         const char *err)
{
	struct mq *mq = arg;
	json_t *o = json_object(), *vals = json_array();
	char *line;
	size_t i;

	mq->callbacks++;
	if (mq->callbacks > mq->round) {
		fprintf(stderr, "metrics-query: round %d called back twice\n", mq->round);
		mq->failed = 3;
	}
	json_object_set_new(o, "round", json_integer(mq->round));
	json_object_set_new(o, "zone", json_string(mq->cur->zone.name));
	json_object_set_new(o, "status", json_integer(status));
	json_object_set_new(o, "error", err ? json_string(err) : json_null());
	json_object_set_new(o, "elapsed", json_real(ev_time() - mq->started));
	if (res) {
		/* the zone average as scalerd computes it */
		double average;
		int valid = metrics_average(res, mq->plugin->abi_minor, &average);
		json_object_set_new(o, "average", json_real(average));
		json_object_set_new(o, "average_valid", json_boolean(valid));
		for (i = 0; i < res->n; i++) {
			json_t *v = json_object();
			json_object_set_new(v, "server", json_string(res->values[i].server_id));
			json_object_set_new(v, "value", json_real(res->values[i].value));
			json_object_set_new(v, "missing", json_boolean(res->values[i].missing));
			json_array_append_new(vals, v);
		}
	}
	json_object_set_new(o, "values", vals);
	line = json_dumps(o, JSON_COMPACT);
	printf("%s\n", line);
	fflush(stdout);
	free(line);
	json_decref(o);

	ev_timer_stop(mq->loop, &mq->watchdog);
	if (mq->round < mq->rounds) {
		ev_timer_set(&mq->next, mq->interval, 0);
		ev_timer_start(mq->loop, &mq->next);
	} else {
		/* stay a little to notice a second callback */
		ev_timer_start(mq->loop, &mq->linger);
	}
}

static void mq_start_round(struct mq *mq)
{
	mq->round++;
	mq->cur = &mq->sets[(size_t)mq->round <= mq->nsets ? (size_t)mq->round - 1 : mq->nsets - 1];
	mq->started = ev_time();
	ev_timer_start(mq->loop, &mq->watchdog);
	if (mq->plugin->ops.metrics->query(mq->ctx, &mq->cur->zone, mq->cur->servers, mq->cur->n,
	                                   mq->window, mq_on_result, mq) < 0) {
		fprintf(stderr, "metrics-query: query refused in round %d\n", mq->round);
		mq->failed = 1;
		ev_break(mq->loop, EVBREAK_ALL);
	}
}

static void mq_on_next(struct ev_loop *loop, ev_timer *w, int revents)
{
	mq_start_round(w->data);
}

static void mq_on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mq *mq = w->data;

	fprintf(stderr, "metrics-query: round %d never called back\n", mq->round);
	mq->failed = 3;
	ev_break(loop, EVBREAK_ALL);
}

static void mq_on_linger(struct ev_loop *loop, ev_timer *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static int mq_usage(void)
{
	fprintf(stderr, "usage: metrics-query [-p PLUGIN] [-c SETTINGS] [-r ROUNDS] [-i INTERVAL] "
	                "[-w WINDOW] [-a ADMIN] [-t TOKEN] ZONE [ID[=ADDRESS]]... [/[ZONE] "
	                "[ID[=ADDRESS]]...]...\n");
	return 1;
}

int main(int argc, char **argv)
{
	const char *name = "http", *settings = NULL, *admin = NULL, *token = NULL;
	struct scaler_host host;
	config_setting_t *group = NULL;
	config_t cf;
	struct mq mq;
	char err[1024];
	const char *set_zone = NULL;
	struct mq_set *set;
	size_t k;
	int c;

	memset(&mq, 0, sizeof(mq));
	mq.rounds = 1;
	mq.window = 10;
	while ((c = getopt(argc, argv, "p:c:r:i:w:a:t:")) != -1) {
		switch (c) {
		case 'p':
			name = optarg;
			break;
		case 'c':
			settings = optarg;
			break;
		case 'r':
			mq.rounds = atoi(optarg);
			break;
		case 'i':
			mq.interval = atof(optarg);
			break;
		case 'w':
			mq.window = atof(optarg);
			break;
		case 'a':
			admin = optarg;
			break;
		case 't':
			token = optarg;
			break;
		default:
			return mq_usage();
		}
	}
	if (optind >= argc || mq.rounds < 1)
		return mq_usage();

	for (set = NULL; optind < argc; optind++) {
		const char *arg = argv[optind], *eq = strchr(arg, '=');
		struct scaler_server *s;

		if (!set || arg[0] == '/') {
			if (mq.nsets == MQ_SETS)
				return mq_usage();
			set = &mq.sets[mq.nsets++];
			set->zone.name = !set_zone ? arg : arg[1] ? arg + 1 : set_zone;
			set_zone = set->zone.name;
			set->zone.min = 1;
			set->zone.max = 10;
			set->zone.admin = admin;
			set->servers = calloc((size_t)argc, sizeof(*set->servers));
			continue;
		}
		s = &set->servers[set->n++];
		snprintf(s->id, sizeof(s->id), "%.*s", (int)(eq ? (size_t)(eq - arg) : strlen(arg)),
		         arg);
		snprintf(s->zone, sizeof(s->zone), "%s", set->zone.name);
		snprintf(s->address, sizeof(s->address), "%s", eq ? eq + 1 : "");
		s->running = 1;
	}
	if ((size_t)mq.rounds < mq.nsets)
		mq.rounds = (int)mq.nsets;

	mq.loop = EV_DEFAULT;
	fake_host_table(&host, mq.loop);
	fake_host_real_http(&host, mq.loop);
	host.token = token;
	fake_messages_echo(1);

	mq.plugin = fake_plugin_open("metrics", name, err, sizeof(err));
	if (!mq.plugin || mq.plugin->kind != SCALER_KIND_METRICS) {
		fprintf(stderr, "metrics-query: %s\n", mq.plugin ? "not a metrics plugin" : err);
		return 1;
	}
	config_init(&cf);
	if (settings) {
		config_destroy(&cf);
		group = fake_group(&cf, settings, err, sizeof(err));
		if (!group) {
			fprintf(stderr, "metrics-query: settings: %s\n", err);
			return 1;
		}
	}
	if (mq.plugin->init(&host, group, &mq.ctx) < 0)
		return 2;

	ev_timer_init(&mq.next, mq_on_next, 0, 0);
	ev_timer_init(&mq.watchdog, mq_on_watchdog, 30, 0);
	ev_timer_init(&mq.linger, mq_on_linger, 0.3, 0);
	mq.next.data = mq.watchdog.data = mq.linger.data = &mq;
	mq_start_round(&mq);
	if (!mq.failed)
		ev_run(mq.loop, 0);
	if (!mq.failed && mq.callbacks != mq.rounds) {
		fprintf(stderr, "metrics-query: %d callbacks for %d rounds\n", mq.callbacks,
		        mq.rounds);
		mq.failed = 3;
	}

	mq.plugin->fini(mq.ctx);
	config_destroy(&cf);
	for (k = 0; k < mq.nsets; k++)
		free(mq.sets[k].servers);
	return mq.failed;
}
