/* scaler-app: the demo service that scaler scales. Shared state of the
 * process; one libev loop, one thread that burns the simulated CPU, and the
 * threads that burn /work (work.h). */
#ifndef SCALER_APP_H
#define SCALER_APP_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "http_server.h"

struct ev_loop;
struct http_server;
struct load_sim;
struct kafka_sink;
struct influx_sink;
struct work_pool;

/* What the process looked like over the last second. */
struct app_sample {
	double ts;           /* unix time, seconds */
	double cpu_usage;    /* percent of one core used by the whole process */
	double memory_usage; /* resident set size, percent of MemTotal */
	double memory_mib;   /* resident set size, MiB */
	double throughput;   /* requests served per second */
	int healthy;         /* 1 healthy, 0 failing on purpose */
};

/* One minute of samples is not enough to see a ramp; keep five. */
#define APP_HISTORY 300

/* Largest request body (POST /echo echoes up to this); beyond → 413. */
#define APP_MAX_BODY (1024 * 1024)
/* GET /work?ms=N: N from 1 to this. */
#define APP_WORK_MS_MAX 1000

struct app {
	struct ev_loop *loop;
	char server_id[64];
	char zone[64];

	struct http_server *http;
	struct load_sim *sim;
	struct kafka_sink *kafka;   /* NULL without KAFKA_BROKERS */
	struct influx_sink *influx; /* NULL without INFLUX_URL */
	struct work_pool *work;

	/* Bearer token of the control endpoints (POST /load, POST /health);
	 * NULL: they are open to anyone who reaches the server. */
	char *control_token;

	int healthy;
	uint64_t requests; /* served since start */

	struct app_sample last;
	struct app_sample history[APP_HISTORY];
	size_t history_len, history_head; /* ring: head is the next slot */
};

/* JSON object of a sample, with server and zone (Kafka value, /stats base). */
json_t *app_sample_json(const struct app *app, const struct app_sample *s);

/* api.c: the HTTP routes. */
void app_api_handle(struct http_exchange *x, const struct http_request *req, void *arg);
/* api.c: the /work pool's callbacks (ctx is the app, arg the exchange). */
int app_work_wanted(void *ctx, void *arg);
void app_work_done(void *ctx, void *arg, double ms, double cpu_ms, double wait_ms);

/* dashboard-html.c (generated from app/dashboard.html). */
extern const char app_dashboard_html[];

#endif
