/* scaler-app: the stateless demo service scaler scales. It serves a
 * dashboard and a small JSON API, burns as much CPU as its load profile says,
 * and reports its CPU, memory and throughput every second to Kafka and/or
 * InfluxDB. */
#include "config.h"

#include "app.h"
#include "load_sim.h"
#include "log.h"
#include "secret.h"
#include "sinks.h"
#include "work.h"

#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define APP_KAFKA_FLUSH_TIMEOUT 2.0
#define APP_WORK_IN_FLIGHT 64 /* request-driven scaling wants at least 64 */
#define APP_TOKEN_MIN 16
#define APP_TOKEN_MAX 1024

struct app_options {
	const char *host;
	const char *port;
	const char *zone;
	const char *server_id;
	const char *kafka_brokers;
	const char *kafka_topic;
	const char *influx_url;
	const char *influx_db;
	const char *influx_token;
	const char *profile;
	const char *log_level;
	const char *control_token_file;
	const char *work_threads;
	const char *work_in_flight;
};

/* What the per-second sampler remembers between ticks. */
struct app_clock {
	double wall; /* monotonic seconds */
	double cpu;  /* process CPU seconds (all threads) */
	uint64_t requests;
	long page_size;
	double mem_total_mib;
};

static struct app_clock app_clock;

/* The help text stays laid out as it prints. */
/* clang-format off */
static void app_usage(FILE *out)
{
	fprintf(out,
	        "Usage: scaler-app [OPTION]...\n"
	        "The demo service of scaler: a dashboard, a JSON API and a CPU load simulation,\n"
	        "reporting its metrics every second to Kafka and/or InfluxDB.\n"
	        "\n"
	        "Options (each also read from the environment variable in brackets; options\n"
	        "win over the environment):\n"
	        "  -H, --host=HOST           address to listen on [HOST] (default 127.0.0.1:\n"
	        "                            loopback only; scalerd's drivers pass the address\n"
	        "                            the balancers reach; 0.0.0.0 = every address)\n"
	        "  -p, --port=PORT           port to listen on, 0 = any free one [PORT] (default "
	        "8080)\n"
	        "  -z, --zone=NAME           zone this server belongs to [ZONE] (default \"default\")\n"
	        "  -i, --server-id=ID        this server's id [SERVER_ID] (default: the host name)\n"
	        "      --kafka-brokers=LIST  Kafka bootstrap servers, host:port[,...] "
	        "[KAFKA_BROKERS];\n"
	        "                            metrics go to Kafka only when this is set\n"
	        "      --kafka-topic=TOPIC   Kafka topic [KAFKA_TOPIC] (default: the zone name)\n"
	        "      --influx-url=URL      InfluxDB base URL, e.g. http://127.0.0.1:8086 "
	        "[INFLUX_URL];\n"
	        "                            metrics go to InfluxDB only when this is set\n"
	        "      --influx-db=DB        InfluxDB database [INFLUX_DB] (default \"scaler\")\n"
	        "                            (a token for the v1 API of InfluxDB 2.x/3.x is read\n"
	        "                            from INFLUX_TOKEN only, never from the command line)\n"
	        "      --profile=PROFILE     load profile at start: stop, low or high [PROFILE]\n"
	        "                            (default stop)\n"
	        "      --log-level=LEVEL     err, warning, notice, info or debug [LOG_LEVEL]\n"
	        "                            (default info)\n"
	        "      --control-token-file=FILE\n"
	        "                            read the control token from the first line of FILE\n"
	        "                            [APP_CONTROL_TOKEN_FILE]; or give the token itself in\n"
	        "                            APP_CONTROL_TOKEN (never on the command line). With a\n"
	        "                            token, POST /load and POST /health need\n"
	        "                            \"Authorization: Bearer TOKEN\"; without one they are\n"
	        "                            open to anyone who reaches the server\n"
	        "      --work-threads=N      threads that run /work [WORK_THREADS] (default: the\n"
	        "                            CPUs this process may use, at most 64)\n"
	        "      --work-in-flight=N    most /work requests running or waiting for a thread\n"
	        "                            at once; beyond, 503 [WORK_IN_FLIGHT] (default %d)\n"
	        "  -h, --help                show this help and exit\n"
	        "  -V, --version             show the version and exit\n"
	        "\n"
	        "HTTP API:\n"
	        "  GET  /                    the dashboard\n"
	        "  GET  /health_check        200 \"ok\" while healthy, 503 when failing on purpose\n"
	        "  POST /health              {\"healthy\": false} fails the health check, true heals\n"
	        "                            (needs the control token when one is set)\n"
	        "  GET  /stats               the last second's metrics, profile and sink counters\n"
	        "  GET  /history             the last %d seconds of metrics\n"
	        "  POST /load                {\"profile\": \"high\"|\"low\"|\"stop\"} (needs the control\n"
	        "                            token when one is set)\n"
	        "  GET  /work?ms=N           spend about N ms of CPU on a /work thread (1-%d,\n"
	        "                            default 10); 503 when too many are in flight\n"
	        "  POST /echo                the request body back (at most %d bytes, 413 beyond)\n"
	        "\n"
	        "Metrics: cpu_usage is the process's own CPU time over the last second, in percent\n"
	        "of one core; memory_usage is its resident set size in percent of the host's\n"
	        "MemTotal (memory_mib in /stats is the same in MiB); throughput is requests served\n"
	        "per second; health_status is 1 when healthy, 0 when not. Kafka messages are JSON\n"
	        "keyed by the server id; InfluxDB points are measurement scaler_app with tags zone\n"
	        "and server.\n"
	        "\n"
	        "SIGTERM or SIGINT: stop serving, flush Kafka for up to %.0f s, exit 0.\n",
	        APP_WORK_IN_FLIGHT, APP_HISTORY, APP_WORK_MS_MAX, APP_MAX_BODY,
	        APP_KAFKA_FLUSH_TIMEOUT);
}
/* clang-format on */

static const char *app_env(const char *opt, const char *name, const char *def)
{
	const char *v;

	if (opt)
		return opt;
	v = getenv(name);
	return v && *v ? v : def;
}

/* Ids end up in Kafka keys, line protocol tags and container labels. */
static int app_check_name(const char *what, const char *v, char *out, size_t outlen)
{
	size_t n = strlen(v);

	if (n == 0 || n >= outlen) {
		fprintf(stderr, "scaler-app: %s must be 1 to %zu characters, got \"%s\"\n", what,
		        outlen - 1, v);
		return -1;
	}
	for (const char *p = v; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.')) {
			fprintf(stderr,
			        "scaler-app: %s \"%s\": only letters, digits, '-', '_' and '.' are "
			        "allowed\n",
			        what, v);
			return -1;
		}
	}
	memcpy(out, v, n + 1);
	return 0;
}

static int app_parse_port(const char *v, int *port)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < 0 || n > 65535) {
		fprintf(stderr, "scaler-app: PORT \"%s\" is not a port number (0-65535)\n", v);
		return -1;
	}
	*port = (int)n;
	return 0;
}

static int app_check_url(const char *v)
{
	if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
		fprintf(stderr,
		        "scaler-app: INFLUX_URL \"%s\" must start with http:// or https://, e.g. "
		        "http://127.0.0.1:8086\n",
		        v);
		return -1;
	}
	return 0;
}

static int app_parse_count(const char *name, const char *v, int lo, int hi, int *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < lo || n > hi) {
		fprintf(stderr, "scaler-app: %s \"%s\" must be an integer from %d to %d\n", name, v,
		        lo, hi);
		return -1;
	}
	*out = (int)n;
	return 0;
}

/* A bearer token goes into an HTTP header; a short one can be guessed. The
 * token itself is never printed. */
static int app_check_token(const char *what, const char *t)
{
	size_t n = strlen(t);

	for (const char *p = t; *p; p++) {
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
			fprintf(stderr,
			        "scaler-app: %s: the control token must be visible ASCII, without "
			        "spaces or control characters\n",
			        what);
			return -1;
		}
	}
	if (n < APP_TOKEN_MIN || n > APP_TOKEN_MAX) {
		fprintf(stderr,
		        "scaler-app: %s: the control token must be %d to %d characters long, got "
		        "%zu (e.g. head -c 24 /dev/urandom | base64)\n",
		        what, APP_TOKEN_MIN, APP_TOKEN_MAX, n);
		return -1;
	}
	return 0;
}

/* The first line of the control token file, trimmed. The file must pass the
 * rule every secret of scaler passes (secret.h). (Not token_file_read: that
 * one needs libconfig, which the app's image does not carry.) */
static char *app_read_token_file(const char *path)
{
	char buf[APP_TOKEN_MAX + 3], err[512], *b, *e, *token = NULL;
	ssize_t n;
	int fd = secret_open(path, "control token file", NULL, err, sizeof(err));

	if (fd < 0) {
		fprintf(stderr, "scaler-app: APP_CONTROL_TOKEN_FILE: %s\n", err);
		return NULL;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		fprintf(stderr, "scaler-app: APP_CONTROL_TOKEN_FILE: cannot read %s: %s\n", path,
		        strerror(errno));
		close(fd);
		return NULL;
	}
	close(fd);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	for (b = buf; *b == ' ' || *b == '\t'; b++)
		;
	for (e = b + strlen(b); e > b && (e[-1] == ' ' || e[-1] == '\t');)
		*--e = '\0';
	if (!*b)
		fprintf(stderr,
		        "scaler-app: APP_CONTROL_TOKEN_FILE: the first line of %s is empty\n",
		        path);
	else if (app_check_token("APP_CONTROL_TOKEN_FILE", b) == 0 && !(token = strdup(b)))
		fprintf(stderr, "scaler-app: out of memory\n");
	explicit_bzero(buf, sizeof(buf));
	return token;
}

/* getopt_long takes "--control-token=X" as an abbreviation of
 * --control-token-file, and X would then be printed as a file name: only the
 * option's full name is taken, so a token typed on the command line is
 * refused without being echoed. */
static int app_refuse_token_abbrev(int argc, char **argv)
{
	static const char full[] = "control-token-file";

	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		const char *a = argv[i];
		size_t n;

		if (strncmp(a, "--", 2) != 0)
			continue;
		a += 2;
		n = strcspn(a, "=");
		if (n >= 1 && n < sizeof(full) - 1 && strncmp(a, full, n) == 0) {
			fprintf(
			    stderr,
			    "scaler-app: the control token is never taken from the command line: "
			    "set APP_CONTROL_TOKEN or give --control-token-file=FILE in full\n");
			return -1;
		}
	}
	return 0;
}

/* HOST may come bracketed ("[::1]") as the drivers write addresses. */
static void app_listen_address(char *out, size_t outlen, const char *host, int port)
{
	size_t n = strlen(host);

	if (n > 2 && host[0] == '[' && host[n - 1] == ']')
		snprintf(out, outlen, "%s:%d", host, port);
	else
		snprintf(out, outlen, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

static double app_monotonic(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double app_process_cpu(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double app_rss_mib(void)
{
	unsigned long size, resident;
	FILE *f = fopen("/proc/self/statm", "r");
	int n;

	if (!f)
		return 0;
	n = fscanf(f, "%lu %lu", &size, &resident);
	fclose(f);
	if (n != 2)
		return 0;
	return (double)resident * (double)app_clock.page_size / (1024.0 * 1024.0);
}

static double app_mem_total_mib(void)
{
	char line[256];
	unsigned long kib = 0;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %lu kB", &kib) == 1)
			break;
	fclose(f);
	return (double)kib / 1024.0;
}

static double app_wall_time(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Metrics carry no more digits than they mean. */
static double app_round(double v, int digits)
{
	double f = pow(10, digits);
	return round(v * f) / f;
}

json_t *app_sample_json(const struct app *app, const struct app_sample *s)
{
	return json_pack("{s:s, s:s, s:f, s:f, s:f, s:i, s:f}", "server", app->server_id, "zone",
	                 app->zone, "cpu_usage", s->cpu_usage, "memory_usage", s->memory_usage,
	                 "throughput", s->throughput, "health_status", s->healthy, "ts", s->ts);
}

static void app_send_metrics(struct app *app, const struct app_sample *s)
{
	if (app->kafka) {
		json_t *o = app_sample_json(app, s);
		char *value = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
		if (value)
			kafka_sink_send(app->kafka, value, strlen(value));
		free(value);
		json_decref(o);
	}
	if (app->influx) {
		char zone[160], server[160], line[640];
		influx_escape_tag(zone, sizeof(zone), app->zone);
		influx_escape_tag(server, sizeof(server), app->server_id);
		snprintf(line, sizeof(line),
		         "scaler_app,zone=%s,server=%s cpu_usage=%.3f,memory_usage=%.3f,"
		         "throughput=%.3f,health_status=%di %lld",
		         zone, server, s->cpu_usage, s->memory_usage, s->throughput, s->healthy,
		         (long long)(s->ts * 1000.0));
		influx_sink_send(app->influx, line);
	}
}

/* Once a second: move the simulation on, measure, record, report. */
static void app_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct app *app = w->data;
	struct app_sample s = {0};
	double wall = app_monotonic(), cpu = app_process_cpu();
	double dt = wall - app_clock.wall;

	load_sim_tick(app->sim);
	if (dt <= 0)
		return;
	s.ts = app_round(app_wall_time(), 3);
	s.cpu_usage = app_round((cpu - app_clock.cpu) / dt * 100.0, 2);
	s.memory_mib = app_round(app_rss_mib(), 2);
	s.memory_usage = app_clock.mem_total_mib > 0
	                     ? app_round(s.memory_mib / app_clock.mem_total_mib * 100.0, 4)
	                     : 0;
	s.throughput = app_round((double)(app->requests - app_clock.requests) / dt, 2);
	s.healthy = app->healthy;
	app_clock.wall = wall;
	app_clock.cpu = cpu;
	app_clock.requests = app->requests;

	app->last = s;
	app->history[app->history_head] = s;
	app->history_head = (app->history_head + 1) % APP_HISTORY;
	if (app->history_len < APP_HISTORY)
		app->history_len++;
	app_send_metrics(app, &s);
}

static void app_on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	log_notice("signal %d: shutting down", w->signum);
	ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"host", required_argument, NULL, 'H'},
	    {"port", required_argument, NULL, 'p'},
	    {"zone", required_argument, NULL, 'z'},
	    {"server-id", required_argument, NULL, 'i'},
	    {"kafka-brokers", required_argument, NULL, 'K'},
	    {"kafka-topic", required_argument, NULL, 'T'},
	    {"influx-url", required_argument, NULL, 'U'},
	    {"influx-db", required_argument, NULL, 'D'},
	    {"profile", required_argument, NULL, 'P'},
	    {"log-level", required_argument, NULL, 'L'},
	    {"control-token-file", required_argument, NULL, 'C'},
	    {"work-threads", required_argument, NULL, 'W'},
	    {"work-in-flight", required_argument, NULL, 'Q'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct app_options o = {0};
	struct app app = {.healthy = 1};
	char hostname[64], listen[300], err[512];
	int c, port, profile, level, work_threads, work_in_flight;

	if (app_refuse_token_abbrev(argc, argv) < 0)
		return 2;
	while ((c = getopt_long(argc, argv, "H:p:z:i:hV", longopts, NULL)) != -1) {
		switch (c) {
		/* clang-format off */
		case 'H': o.host = optarg; break;
		case 'p': o.port = optarg; break;
		case 'z': o.zone = optarg; break;
		case 'i': o.server_id = optarg; break;
		case 'K': o.kafka_brokers = optarg; break;
		case 'T': o.kafka_topic = optarg; break;
		case 'U': o.influx_url = optarg; break;
		case 'D': o.influx_db = optarg; break;
		case 'P': o.profile = optarg; break;
		case 'L': o.log_level = optarg; break;
		case 'C': o.control_token_file = optarg; break;
		case 'W': o.work_threads = optarg; break;
		case 'Q': o.work_in_flight = optarg; break;
		case 'h': app_usage(stdout); return 0;
		case 'V': printf("scaler-app %s\n", PACKAGE_VERSION); return 0;
		/* clang-format on */
		default:
			fprintf(stderr, "Try 'scaler-app --help'.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "scaler-app: unexpected argument \"%s\"; try 'scaler-app --help'\n",
		        argv[optind]);
		return 2;
	}

	if (gethostname(hostname, sizeof(hostname)) != 0 || !*hostname)
		snprintf(hostname, sizeof(hostname), "scaler-app");
	hostname[sizeof(hostname) - 1] = '\0';
	o.host = app_env(o.host, "HOST", "127.0.0.1");
	o.port = app_env(o.port, "PORT", "8080");
	o.zone = app_env(o.zone, "ZONE", "default");
	o.server_id = app_env(o.server_id, "SERVER_ID", hostname);
	o.kafka_brokers = app_env(o.kafka_brokers, "KAFKA_BROKERS", NULL);
	o.kafka_topic = app_env(o.kafka_topic, "KAFKA_TOPIC", NULL);
	o.influx_url = app_env(o.influx_url, "INFLUX_URL", NULL);
	o.influx_db = app_env(o.influx_db, "INFLUX_DB", "scaler");
	o.influx_token = app_env(NULL, "INFLUX_TOKEN", NULL);
	o.profile = app_env(o.profile, "PROFILE", "stop");
	o.log_level = app_env(o.log_level, "LOG_LEVEL", "info");
	o.control_token_file = app_env(o.control_token_file, "APP_CONTROL_TOKEN_FILE", NULL);
	o.work_threads = app_env(o.work_threads, "WORK_THREADS", NULL);
	o.work_in_flight = app_env(o.work_in_flight, "WORK_IN_FLIGHT", NULL);
	work_threads = work_default_threads();
	work_in_flight = APP_WORK_IN_FLIGHT;

	level = log_level_parse(o.log_level);
	if (level < 0) {
		fprintf(stderr,
		        "scaler-app: LOG_LEVEL \"%s\" is not one of err, warning, notice, info, "
		        "debug\n",
		        o.log_level);
		return 2;
	}
	profile = load_profile_parse(o.profile);
	if (profile < 0) {
		fprintf(stderr, "scaler-app: PROFILE \"%s\" is not one of stop, low, high\n",
		        o.profile);
		return 2;
	}
	if (app_parse_port(o.port, &port) < 0 ||
	    app_check_name("ZONE", o.zone, app.zone, sizeof(app.zone)) < 0 ||
	    app_check_name("SERVER_ID", o.server_id, app.server_id, sizeof(app.server_id)) < 0 ||
	    (o.influx_url && app_check_url(o.influx_url) < 0) ||
	    (o.work_threads &&
	     app_parse_count("WORK_THREADS", o.work_threads, 1, 256, &work_threads) < 0) ||
	    (o.work_in_flight &&
	     app_parse_count("WORK_IN_FLIGHT", o.work_in_flight, 1, 100000, &work_in_flight) < 0))
		return 2;
	const char *token_env = app_env(NULL, "APP_CONTROL_TOKEN", NULL);
	if (token_env && o.control_token_file) {
		fprintf(stderr, "scaler-app: APP_CONTROL_TOKEN and APP_CONTROL_TOKEN_FILE "
		                "(--control-token-file) are both set; keep one\n");
		return 2;
	}
	if (token_env) {
		if (app_check_token("APP_CONTROL_TOKEN", token_env) < 0)
			return 2;
		app.control_token = strdup(token_env);
		if (!app.control_token) {
			fprintf(stderr, "scaler-app: out of memory\n");
			return 1;
		}
	} else if (o.control_token_file) {
		app.control_token = app_read_token_file(o.control_token_file);
		if (!app.control_token)
			return 2;
	}
	if (!*o.host) {
		fprintf(stderr, "scaler-app: HOST must not be empty\n");
		return 2;
	}
	if (!o.kafka_topic)
		o.kafka_topic = app.zone;
	log_setup("scaler-app", (enum scaler_log_level)level, 0);
	signal(SIGPIPE, SIG_IGN);

	app.loop = ev_default_loop(EVFLAG_AUTO);
	if (!app.loop) {
		fprintf(stderr, "scaler-app: cannot start the event loop\n");
		return 1;
	}
	app_listen_address(listen, sizeof(listen), o.host, port);
	struct http_server_limits limits = {.max_body = APP_MAX_BODY};
	app.http =
	    http_server_new(app.loop, listen, &limits, app_api_handle, &app, err, sizeof(err));
	if (!app.http) {
		fprintf(stderr, "scaler-app: cannot listen on %s: %s\n", listen, err);
		return 1;
	}
	if (o.kafka_brokers) {
		app.kafka = kafka_sink_new(app.loop, o.kafka_brokers, o.kafka_topic, app.server_id,
		                           err, sizeof(err));
		if (!app.kafka) {
			fprintf(stderr, "scaler-app: KAFKA_BROKERS: %s\n", err);
			return 2;
		}
	}
	if (o.influx_url) {
		app.influx = influx_sink_new(app.loop, o.influx_url, o.influx_db, o.influx_token,
		                             err, sizeof(err));
		if (!app.influx) {
			fprintf(stderr, "scaler-app: INFLUX_URL: %s\n", err);
			return 1;
		}
	}
	app.sim = load_sim_new((enum load_profile)profile, err, sizeof(err));
	if (!app.sim) {
		fprintf(stderr, "scaler-app: %s\n", err);
		return 1;
	}
	app.work = work_pool_new(app.loop, work_threads, work_in_flight, app_work_wanted,
	                         app_work_done, &app, err, sizeof(err));
	if (!app.work) {
		fprintf(stderr, "scaler-app: %s\n", err);
		return 1;
	}

	app_clock.page_size = sysconf(_SC_PAGESIZE);
	app_clock.mem_total_mib = app_mem_total_mib();
	app_clock.wall = app_monotonic();
	app_clock.cpu = app_process_cpu();
	/* /stats has something true to say before the first tick */
	app.last.ts = app_round(app_wall_time(), 3);
	app.last.memory_mib = app_round(app_rss_mib(), 2);
	if (app_clock.mem_total_mib > 0)
		app.last.memory_usage =
		    app_round(app.last.memory_mib / app_clock.mem_total_mib * 100.0, 4);
	app.last.healthy = 1;

	ev_timer tick;
	ev_signal sigterm, sigint;
	ev_timer_init(&tick, app_tick, 1.0, 1.0);
	tick.data = &app;
	ev_timer_start(app.loop, &tick);
	ev_signal_init(&sigterm, app_on_signal, SIGTERM);
	ev_signal_start(app.loop, &sigterm);
	ev_signal_init(&sigint, app_on_signal, SIGINT);
	ev_signal_start(app.loop, &sigint);

	log_notice("server %s of zone %s listening on %s:%d (profile %s; metrics to %s%s%s; "
	           "/work on %d threads, at most %d in flight)",
	           app.server_id, app.zone, o.host, http_server_port(app.http),
	           load_profile_name((enum load_profile)profile), app.kafka ? "kafka" : "",
	           app.kafka && app.influx ? " and " : "",
	           app.influx ? "influxdb" : (app.kafka ? "" : "/stats only"), work_threads,
	           work_in_flight);
	if (!app.control_token)
		log_warn("POST /load and POST /health are open to anyone who reaches this server: "
		         "set APP_CONTROL_TOKEN or --control-token-file to require a token");
	ev_run(app.loop, 0);

	ev_timer_stop(app.loop, &tick);
	work_pool_free(app.work); /* before the exchanges its jobs answer go */
	http_server_free(app.http);
	load_sim_free(app.sim);
	kafka_sink_free(app.kafka, APP_KAFKA_FLUSH_TIMEOUT);
	influx_sink_free(app.influx);
	if (app.control_token) {
		explicit_bzero(app.control_token, strlen(app.control_token));
		free(app.control_token);
	}
	log_notice("stopped");
	return 0;
}
