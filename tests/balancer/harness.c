/* bal-harness: runs the balancer plugin for one zone with a minimal host
 * (no Redis), for tests and benchmarks that want the data plane alone.
 *
 *   bal-harness PLUGIN.so CONF LISTEN ADMIN [SERVER...]
 *
 * CONF is a libconfig file whose `balancer` group configures the plugin
 * ("-" for defaults); the token comes from $SCALER_TOKEN, the primary from
 * $SCALER_MONITOR ("url epoch"). SIGTERM: shutdown, 2 s drain, fini.
 *
 * Controller side, one push and exit (0 on success, the error on stderr):
 *   bal-harness --push-servers PLUGIN.so ADMIN +URL... -URL...
 *   bal-harness --push-monitor PLUGIN.so ADMIN URL EPOCH */
#include "config.h"

#include "fakehost.h"

#include <dlfcn.h>
#include <ev.h>
#include <libconfig.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct scaler_plugin *hh_plugin;
static void *hh_ctx;

static void hh_drain_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static ev_timer hh_drain;

static void hh_term_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)revents;
	ev_signal_stop(loop, w);
	hh_plugin->ops.balancer->shutdown(hh_ctx);
	ev_timer_init(&hh_drain, hh_drain_cb, 2.0, 0.);
	ev_timer_start(loop, &hh_drain);
}

static int hh_push_status = -1;

static void hh_push_done(void *arg, int status, const char *err)
{
	struct ev_loop *loop = arg;
	hh_push_status = status;
	if (status == 0)
		printf("ok\n");
	else
		fprintf(stderr, "push failed: %s\n", err ? err : "?");
	ev_break(loop, EVBREAK_ALL);
}

static int hh_push(struct ev_loop *loop, int argc, char **argv)
{
	struct scaler_zone zone = {.name = "zone1", .listen = "127.0.0.1:1", .admin = argv[3]};
	const struct scaler_balancer_ops *ops = hh_plugin->ops.balancer;
	int rc;
	if (strcmp(argv[1], "--push-monitor") == 0) {
		if (argc != 6)
			return 2;
		rc = ops->push_monitor(hh_ctx, &zone, argv[4], strtoull(argv[5], NULL, 10),
		                       hh_push_done, loop);
	} else {
		const char *adds[64], *dels[64];
		size_t na = 0, nd = 0;
		for (int i = 4; i < argc && na < 64 && nd < 64; i++) {
			if (argv[i][0] == '+')
				adds[na++] = argv[i] + 1;
			else if (argv[i][0] == '-')
				dels[nd++] = argv[i] + 1;
		}
		rc = ops->push_servers(hh_ctx, &zone, adds, na, dels, nd, hh_push_done, loop);
	}
	if (rc < 0) {
		fprintf(stderr, "push refused its input\n");
		return 1;
	}
	ev_run(loop, 0);
	return hh_push_status == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	int push = argc > 1 && strncmp(argv[1], "--push-", 7) == 0;
	if (push) {
		argv++;
		argc--;
	}
	if (argc < (push ? 3 : 5)) {
		fprintf(stderr, "usage: %s PLUGIN.so CONF LISTEN ADMIN [SERVER...]\n", argv[0]);
		return 2;
	}
	fake_messages_echo(1);
	fake_messages_level(getenv("SCALER_DEBUG") ? SCALER_LOG_DEBUG : SCALER_LOG_INFO);
	signal(SIGPIPE, SIG_IGN);
	void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "bal-harness: %s\n", dlerror());
		return 1;
	}
	hh_plugin = dlsym(h, SCALER_PLUGIN_SYMBOL);
	if (!hh_plugin || hh_plugin->kind != SCALER_KIND_BALANCER) {
		fprintf(stderr, "bal-harness: %s: not a balancer plugin\n", argv[1]);
		return 1;
	}
	config_t cfg;
	config_init(&cfg);
	const config_setting_t *group = NULL;
	if (!push && strcmp(argv[2], "-") != 0) {
		if (config_read_file(&cfg, argv[2]) != CONFIG_TRUE) {
			fprintf(stderr, "bal-harness: %s:%d: %s\n", argv[2],
			        config_error_line(&cfg), config_error_text(&cfg));
			return 1;
		}
		group = config_lookup(&cfg, "balancer");
	}
	struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
	struct scaler_host host;
	fake_host_table(&host, loop);
	fake_host_real_http(&host, loop);
	host.token = getenv("SCALER_TOKEN");
	if (push) {
		if (hh_plugin->init(&host, NULL, &hh_ctx) < 0)
			return 1;
		int rc = hh_push(loop, argc + 1, argv - 1);
		hh_plugin->fini(hh_ctx);
		return rc;
	}
	if (hh_plugin->init(&host, group, &hh_ctx) < 0)
		return 1;
	struct scaler_zone zone = {
	    .name = "zone1",
	    .listen = argv[3],
	    .admin = argv[4],
	    .servers = (const char *const *)(argv + 5),
	};
	if (hh_plugin->ops.balancer->serve(hh_ctx, &zone) < 0)
		return 1;
	const char *mon = getenv("SCALER_MONITOR");
	if (mon) {
		char url[512];
		unsigned long long epoch = 0;
		if (sscanf(mon, "%511s %llu", url, &epoch) >= 1)
			hh_plugin->ops.balancer->restore(hh_ctx, NULL, 0, url, epoch);
	}
	ev_signal sterm, sint;
	ev_signal_init(&sterm, hh_term_cb, SIGTERM);
	ev_signal_init(&sint, hh_term_cb, SIGINT);
	ev_signal_start(loop, &sterm);
	ev_signal_start(loop, &sint);
	fprintf(stderr, "ready\n");
	ev_run(loop, 0);
	hh_plugin->fini(hh_ctx);
	config_destroy(&cfg);
	return 0;
}
