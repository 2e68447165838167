/* metrics "loadavg": every server of the zone gets this host's load
 * (the 1-minute load average per CPU, in percent), for servers that run
 * on the host scalerd runs on (the process driver). It shows the metrics
 * contract: the answer comes later, from the loop (host->defer), never
 * from inside query(); what is pending is cancelled in fini.
 *
 *   metrics = { plugin = "loadavg"; file = "/proc/loadavg"; };
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <scaler/plugin.h>

struct la_query;

struct la {
	const struct scaler_host *host;
	char file[256];
	struct la_query *pending;
};

struct la_query {
	struct la *la;
	struct scaler_deferred *later;
	const struct scaler_server *servers; /* the host's, valid until cb */
	size_t n;
	scaler_metrics_cb cb;
	void *arg;
	struct la_query *next;
};

static int la_init(const struct scaler_host *host, const config_setting_t *conf, void **ctx)
{
	static const char *const known[] = {"plugin", "file", NULL};
	const char *file = "/proc/loadavg";
	struct la *la;

	if (conf && host->conf_check_known(conf, known) < 0)
		return -1;
	if (conf)
		config_setting_lookup_string(conf, "file", &file);
	if (file[0] != '/' || strlen(file) >= sizeof(la->file))
		return host->conf_error(config_setting_get_member(conf, "file"),
		                        "file must be an absolute path");
	if (!(la = calloc(1, sizeof(*la))))
		return -1;
	la->host = host;
	snprintf(la->file, sizeof(la->file), "%s", file);
	*ctx = la;
	return 0;
}

static void la_unlink(struct la_query *q)
{
	for (struct la_query **pp = &q->la->pending; *pp; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			return;
		}
}

static void la_answer(void *arg)
{
	struct la_query *q = arg;
	struct scaler_metric_value *v = calloc(q->n + 1, sizeof(*v));
	struct scaler_metrics_result res = {.values = v, .n = q->n};
	double load = 0;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	FILE *f = fopen(q->la->file, "r"); /* procfs: never blocks */
	int ok = f && fscanf(f, "%lf", &load) == 1;

	if (f)
		fclose(f);
	la_unlink(q);
	if (!v) {
		q->cb(q->arg, -1, NULL, "out of memory");
	} else {
		for (size_t i = 0; i < q->n; i++) {
			v[i].server_id = q->servers[i].id;
			v[i].value = 100.0 * load / (double)(cpus > 0 ? cpus : 1);
			v[i].missing = !ok;
		}
		q->cb(q->arg, 0, &res, NULL);
	}
	free(v);
	free(q);
}

static int la_query(void *ctx, const struct scaler_zone *zone, const struct scaler_server *servers,
                    size_t n, double window, scaler_metrics_cb cb, void *arg)
{
	struct la *la = ctx;
	struct la_query *q = calloc(1, sizeof(*q));

	(void)zone;
	(void)window;
	if (!q)
		return -1; /* cb will not be called */
	*q = (struct la_query){.la = la, .servers = servers, .n = n, .cb = cb, .arg = arg};
	if (!(q->later = la->host->defer(la_answer, q))) {
		free(q);
		return -1;
	}
	q->next = la->pending;
	la->pending = q;
	return 0;
}

static void la_fini(void *ctx)
{
	struct la *la = ctx;

	while (la->pending) {
		struct la_query *q = la->pending;
		la->pending = q->next;
		la->host->defer_cancel(q->later);
		free(q);
	}
	free(la);
}

static const struct scaler_metrics_ops la_ops = {.size = sizeof(la_ops), .query = la_query};

SCALER_PLUGIN_DEFINE(SCALER_KIND_METRICS, "loadavg", "1.0", la_init, NULL, la_fini, metrics,
                     &la_ops);
