/*
 * scaler plugin ABI (scaler-plugin(7) is the guide; this file is the
 * reference).
 *
 * A plugin is one shared object that exports exactly one symbol,
 * SCALER_PLUGIN_SYMBOL ("scaler_plugin"), a `const struct scaler_plugin`
 * made with SCALER_PLUGIN_DEFINE (C or C++). scalerd finds it on its plugin
 * search path as <kind>_<name>.so, checks abi_major (must equal),
 * abi_minor (must be <= the host's), kind, name and the kind's required
 * operations, then calls init() with the plugin's own config group.
 *
 * Build a plugin with:
 *   cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags scaler-plugin) \
 *      -o policy_mine.so mine.c $(pkg-config --libs scaler-plugin)
 * and install it into $(pkg-config --variable=plugindir scaler-plugin), or
 * into a directory named first on plugin_dir (local plugins).
 *
 * Contracts every plugin can rely on, and must keep:
 *  - Threads: the host calls every function of a plugin from one thread,
 *    the thread running host->loop; a plugin never blocks it (every
 *    service below is asynchronous) and starts no thread that calls the
 *    host.
 *  - Callbacks, both ways: a callback is never called before the call that
 *    took it returns. A plugin that has its answer at once defers it
 *    (host->defer). A call that returns -1 (or NULL) will not call its
 *    callback; one that returns 0 calls it exactly once, unless it is
 *    cancelled first (http_cancel) or the plugin's fini runs first.
 *  - Lifetimes: what the host hands a plugin (zones, servers arrays, the
 *    config group, strings) is valid during the call that handed it and,
 *    for an operation with a callback, until the plugin calls that
 *    callback; config groups stay valid until reload or fini. What a
 *    callback is handed (a server, a result, an HTTP response, a Redis
 *    reply) is valid only during the callback: copy what you keep.
 *  - Instances: init makes one instance (ctx); the host may make several
 *    of one plugin (one policy instance per zone). fini is the last call
 *    for a ctx: the plugin cancels what it has in flight (http_cancel,
 *    defer_cancel) and frees ctx; no callback reaches the host after it.
 *  - Config: the group given to init is the plugin's whole group, the
 *    `plugin = "name";` member included (list "plugin" in the known[] of
 *    conf_check_known). NULL means no group: all defaults. Report every
 *    bad setting through conf_error or conf_number (they name FILE:LINE:
 *    SETTING) and return -1; init has no side effect beyond memory.
 *
 * Versioning: additive changes (host services appended to struct
 * scaler_host, ops appended to a kind's table, fields appended to a struct
 * the host hands over) bump SCALER_ABI_MINOR, and plugins built against an
 * older minor keep loading. A plugin uses what a minor added only when the
 * host has it: SCALER_HOST_HAS(host, member) for services, host->abi_minor
 * for fields of structs the host hands over. An incompatible change bumps
 * SCALER_ABI_MAJOR (at most once a release, listed in NEWS with what a
 * plugin author must change); the loader refuses a plugin of another major
 * with a sentence that says so.
 */
#ifndef SCALER_PLUGIN_H
#define SCALER_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <libconfig.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SCALER_ABI_MAJOR 1
#define SCALER_ABI_MINOR 5
#define SCALER_PLUGIN_SYMBOL "scaler_plugin"

/* Marks an operation a later ABI minor appended to an ops table. In C++ it
 * defaults to nullptr, so a table written for an older minor (positional
 * or designated) stays complete under -Wextra (missing-field-initializers);
 * in C a member left out of an initializer is NULL anyway. */
#ifdef __cplusplus
#define SCALER_ADDED_OP = nullptr
#else
#define SCALER_ADDED_OP
#endif

struct ev_loop; /* libev's: <ev.h> (libev-dev) to use host->loop */

enum scaler_kind {
	SCALER_KIND_DRIVER = 1,
	SCALER_KIND_METRICS = 2,
	SCALER_KIND_POLICY = 3,
	SCALER_KIND_ELECTION = 4,
	SCALER_KIND_BALANCER = 5,
};

enum scaler_log_level {
	SCALER_LOG_ERR = 3,
	SCALER_LOG_WARNING = 4,
	SCALER_LOG_NOTICE = 5,
	SCALER_LOG_INFO = 6,
	SCALER_LOG_DEBUG = 7,
};

/* ---- services the host offers ------------------------------------------ */

/* An outbound HTTP request (curl multi on the host loop). */
struct scaler_http_request {
	const char *method; /* "GET" when NULL */
	const char *url;    /* http://host:port/path, or http://localhost/path with unix_socket */
	const char *unix_socket;    /* optional: connect through this AF_UNIX path */
	const char *const *headers; /* optional NULL-terminated "Name: value" list */
	const char *body;           /* optional */
	size_t body_len;
	double timeout;      /* seconds, whole request; 0 = 10 s */
	const char *ca_cert; /* optional TLS settings */
	const char *client_cert;
	const char *client_key;
};

struct scaler_http_response {
	long status;      /* 0 when no HTTP response was received */
	const char *body; /* NUL-terminated, valid only during the callback */
	size_t body_len;
	const char *error; /* transport error when status == 0, else NULL */
	double elapsed;    /* seconds */
};

typedef void (*scaler_http_cb)(void *arg, const struct scaler_http_response *resp);
struct scaler_http_call; /* opaque handle of an in-flight request */

/* Redis reply as hiredis gives it (a `const redisReply *`, from
 * <hiredis/hiredis.h>); NULL when the connection failed. Valid only during
 * the callback. */
typedef void (*scaler_redis_cb)(void *arg, const void *reply);

/* The primary's lease in the state store (ABI 1.2), for election plugins. */
struct scaler_lease {
	const char *holder; /* node id of the holder, NULL when no lease is live */
	uint64_t epoch;     /* the epoch the holder leads with */
	double remaining;   /* seconds until it lapses unless renewed */
	const char *ref;    /* opaque: the lease and its holder's connection, for lease_break */
};

/* status: 0 done; -1 store unreachable or error (lease NULL); -2 stale: the
 * epoch is not current or the lease is another node's; -3 held: another
 * node's lease is live. `lease` (the live lease, holder NULL when none) and
 * current_epoch are valid during the callback only. */
typedef void (*scaler_lease_cb)(void *arg, int status, const struct scaler_lease *lease,
                                uint64_t current_epoch);

struct scaler_deferred; /* opaque handle of a deferred call (ABI 1.2) */

struct scaler_host {
	uint32_t abi_major;
	uint32_t abi_minor;
	size_t size; /* sizeof(struct scaler_host) of the host */

	struct ev_loop *loop;
	const char *node_id;   /* this node's id (decimal string) */
	const char *cluster;   /* cluster name: prefix of Redis keys, label value */
	const char *admin_url; /* this node's advertised admin URL */
	const char *token;     /* API bearer token, NULL when none is configured */

	/* Log a line at `level` (below scalerd's level it is dropped); `who`
	 * names the plugin. */
	void (*log)(enum scaler_log_level level, const char *who, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

	/* Log "FILE:LINE: PATH: message" for a setting and return -1. */
	int (*conf_error)(const config_setting_t *setting, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
	/* Return -1 (after conf_error) when `group` holds a setting whose name
	 * is not in the NULL-terminated `known` list, else 0. */
	int (*conf_check_known)(const config_setting_t *group, const char *const *known);

	/* Start an HTTP request; cb is always called exactly once, after
	 * http_request returned, unless the call is cancelled first. Returns
	 * NULL (cb not called) on bad input. */
	struct scaler_http_call *(*http_request)(const struct scaler_http_request *req,
	                                         scaler_http_cb cb, void *arg);
	/* Cancel a call whose callback has not run (cb will not be called). */
	void (*http_cancel)(struct scaler_http_call *call);

	/* Send a Redis command (hiredis printf-like format) on the host's
	 * connection. Returns -1 when Redis is not connected (cb not called). */
	int (*redis_command)(scaler_redis_cb cb, void *arg, const char *fmt, ...);
	int (*redis_command_argv)(scaler_redis_cb cb, void *arg, int argc, const char **argv,
	                          const size_t *argvlen);

	/* Leadership records in the state store (for election plugins).
	 * status: 0 done, -1 store unreachable or error, -2 stale (fenced). */
	int (*epoch_take)(void (*cb)(void *arg, int status, uint64_t epoch), void *arg);
	int (*leader_set)(uint64_t epoch, void (*cb)(void *arg, int status, uint64_t current_epoch),
	                  void *arg);
	int (*leader_get)(void (*cb)(void *arg, int status, const char *id, const char *url,
	                             uint64_t leader_epoch, uint64_t current_epoch),
	                  void *arg);

	/* ---- ABI 1.1: check SCALER_HOST_HAS before using these ---- */

	/* scaler.conf's state_dir, where plugins keep files of their own (e.g.
	 * the process driver's server logs). */
	const char *state_dir;
	/* Read a number setting `name` of `group` (int or float; absent, or
	 * `group` NULL → *out = def, returns 0). Not a number, not finite, or
	 * outside [lo, hi] → conf_error naming FILE:LINE: SETTING ("NAME must be
	 * a number (got a string)", "NAME must be between LO and HI, not V")
	 * and -1. */
	int (*conf_number)(const config_setting_t *group, const char *name, double def, double lo,
	                   double hi, double *out);
	/* The same for an integer setting in [lo, hi]. */
	int (*conf_integer)(const config_setting_t *group, const char *name, long long def,
	                    long long lo, long long hi, long long *out);

	/* ---- ABI 1.2: check SCALER_HOST_HAS before using these ---- */

	/* The primary's lease.
	 * A lease names the node that leads and its epoch; it lapses `ttl`
	 * seconds after it was taken or last renewed, and a newer epoch voids it.
	 * lease_take: unless another node's lease is live (-3, `lease` is that
	 *   one), take a new epoch, record this node as leader and hold the
	 *   lease, all at once (0, `lease` is this node's).
	 * lease_renew: extend this node's lease of `epoch` (0), or -2 when that
	 *   epoch is no longer current.
	 * lease_release: drop this node's lease of `epoch` if it holds it.
	 * lease_get: the live lease and the current epoch.
	 * lease_break: drop `lease` (as lease_get or lease_take gave it) if its
	 *   holder's connection to Redis is closed — the holder is dead or cut
	 *   off; -3 while it is connected, or when the lease changed meanwhile.
	 * Each returns -1 (cb not called) when the call cannot be sent. */
	int (*lease_take)(double ttl, scaler_lease_cb cb, void *arg);
	int (*lease_renew)(uint64_t epoch, double ttl, scaler_lease_cb cb, void *arg);
	int (*lease_release)(uint64_t epoch, scaler_lease_cb cb, void *arg);
	int (*lease_get)(scaler_lease_cb cb, void *arg);
	int (*lease_break)(const struct scaler_lease *lease, scaler_lease_cb cb, void *arg);

	/* Call fn(arg) once from the loop, on its next iteration, never
	 * before defer returns: how a plugin answers a call later. NULL when
	 * out of memory (fn will not be called). */
	struct scaler_deferred *(*defer)(void (*fn)(void *arg), void *arg);
	/* Drop a deferred call that has not run (fn will not be called); the
	 * handle is gone once fn ran. */
	void (*defer_cancel)(struct scaler_deferred *d);

	/* ---- ABI 1.3: check SCALER_HOST_HAS before using it ---- */

	/* node.public_reads: with a token, GET and HEAD requests need none. A
	 * plugin that serves an admin API applies the one auth rule of every
	 * admin listener: with a token, everything but /health_check needs
	 * "Authorization: Bearer <token>", except GET and HEAD when this is 1. */
	int public_reads;
};

/* 1 when the host offers `member` (it was built with an ABI that has it). */
#define SCALER_HOST_HAS(host, member) \
	((host)->size >= offsetof(struct scaler_host, member) + sizeof((host)->member))

/* ---- shared data -------------------------------------------------------- */

struct scaler_zone {
	const char *name;
	const char *listen; /* host:port users connect to */
	const char *admin;  /* host:port of the balancer's admin API */
	int min, max;
	int port_min, port_max;       /* ports servers of this zone may take (host networking) */
	const char *const *servers;   /* static servers from scaler.conf, NULL-terminated */
	const config_setting_t *conf; /* the zone's group, for per-zone overrides */
};

/* One server as drivers see it. */
struct scaler_server {
	char id[64]; /* unique in the cluster, e.g. "zone1-7f3a2c" */
	char zone[64];
	char address[256]; /* http://host:port */
	char ref[128];     /* driver's reference: container id, "pid:starttime" */
	double created;    /* unix time */
	int running;       /* list/inspect: 1 when the server exists and runs */
};

/* ---- kind: driver ------------------------------------------------------- */

struct scaler_server_spec {
	const struct scaler_zone *zone;
	const char *server_id; /* chosen by the host */
};

/* status 0 = done; -1 = failed, err says why (the provider's own message).
 * srv and err are valid only during the callback. */
typedef void (*scaler_driver_cb)(void *arg, int status, const struct scaler_server *srv,
                                 const char *err);
typedef void (*scaler_driver_list_cb)(void *arg, int status, const struct scaler_server *srvs,
                                      size_t n, const char *err);

/* Every op is required. Each returns 0 and calls cb once, later; or -1
 * without calling it. */
struct scaler_driver_ops {
	size_t size; /* sizeof(struct scaler_driver_ops) */
	/* Start server spec->server_id in spec->zone; cb gets its address. */
	int (*create)(void *ctx, const struct scaler_server_spec *spec, scaler_driver_cb cb,
	              void *arg);
	/* Stop and remove a server (as create or list gave it). */
	int (*remove)(void *ctx, const struct scaler_server *srv, scaler_driver_cb cb, void *arg);
	/* every server of this cluster the driver can see, in every zone */
	int (*list)(void *ctx, scaler_driver_list_cb cb, void *arg);
};

/* ---- kind: metrics ------------------------------------------------------ */

struct scaler_metric_value {
	const char *server_id; /* points into the query's servers */
	double value;          /* percent CPU for the built-ins */
	int missing;           /* 1: no data for this server in the window */
};

struct scaler_metrics_result {
	const struct scaler_metric_value *values; /* one per server asked about */
	size_t n;
	/* The zone average. From ABI 1.2 the host computes it (the mean of the
	 * values not missing) and ignores these two; a plugin built against
	 * 1.1 fills them. */
	double average;
	int average_valid;
};

/* status 0: res holds a value (maybe missing) per server; -1: the query
 * failed as a whole, err says why. res and err are valid only during the
 * callback. */
typedef void (*scaler_metrics_cb)(void *arg, int status, const struct scaler_metrics_result *res,
                                  const char *err);

typedef const char *(*scaler_metrics_unit_fn)(void *ctx);

struct scaler_metrics_ops {
	size_t size; /* sizeof(struct scaler_metrics_ops) */
	/* Required. The load of `servers` over the last `window` seconds. */
	int (*query)(void *ctx, const struct scaler_zone *zone, const struct scaler_server *servers,
	             size_t n, double window, scaler_metrics_cb cb, void *arg);
	/* ABI 1.3, optional (the host checks `size`): what the values measure,
	 * as a policy's sentence says it after a number ("in flight",
	 * "requests/s", "% CPU"); NULL or "": the metric's name is said. The
	 * string lives as long as ctx. */
	scaler_metrics_unit_fn unit SCALER_ADDED_OP;
};

/* ---- kind: policy (pure: no I/O, state only in ctx) --------------------- */

/* ABI 1.3: one metric of the zone over one window, as decide() sees it.
 * A zone scales on one metric (scaler.conf's `metrics` group) or on several
 * named ones (`metrics = { cpu = { plugin = "http"; }; requests = {
 * plugin = "balancer"; }; };`): the host queries each over each window the
 * policy asked for (bind) and hands decide() every pair. */
struct scaler_policy_metric {
	const char *name; /* its name in scaler.conf: the named group's, else the plugin's */
	const char *unit; /* what the values measure ("in flight"), "" when unknown */
	double window;    /* seconds the values cover */
	double total;     /* sum of the servers' values (those not missing) */
	double average;   /* their mean */
	int valid;        /* 0: no server had a value (or the query failed): total and
	                   * average mean nothing */
	int complete;     /* 1: every serving server had a value */
	int n;            /* servers with a value */
};

/* The host makes one policy instance per zone, configured with the zone's
 * `policy` group when it has one, else the global one (init is not told
 * which zone: keep per-zone state in ctx, which is per zone). */
struct scaler_policy_input {
	int current;       /* servers now */
	int min, max;      /* zone bounds */
	double average;    /* zone average of the metric (the first metric, first window) */
	int average_valid; /* a policy without bind: always 1 (without a valid average
	                    * the host holds and does not call decide) */
	double now;        /* monotonic seconds, for windows */

	/* ABI 1.3 from here on (a plugin built against 1.3 is only loaded by a
	 * host that fills them). Every metric of the zone over every window
	 * bind() asked for: metric by metric in config order, each over the
	 * windows in the order asked (over the zone's `window` when bind asked
	 * for none, or the policy has no bind). A policy with bind is called
	 * whenever the zone has a serving server, valid average or not, and
	 * decides what missing values mean (the host still never scales down
	 * while a value is missing). */
	const struct scaler_policy_metric *metrics;
	size_t nmetrics;
	double idle_timeout; /* the zone's idle_timeout (scale to zero), seconds */
};

struct scaler_policy_decision {
	int desired;      /* before the host's clamp to min/max */
	char rule[64];    /* short name of the rule applied ("above max_cpu") */
	char reason[256]; /* one sentence for people */
};

#define SCALER_POLICY_WINDOWS_MAX 4

/* ABI 1.5: a value the policy compares one of the zone's metrics with (a
 * threshold, a target), for a chart of the metric's zone average: scalerd's
 * console draws each one across the metric's history. */
struct scaler_policy_guide {
	size_t metric;    /* index in the metrics bind() was given; 0 without bind */
	const char *name; /* the setting it comes from ("max_cpu", "target"); a string
	                   * that lives as long as ctx */
	double value;     /* in the metric's unit, as its zone average */
};

struct scaler_policy_ops {
	size_t size; /* sizeof(struct scaler_policy_ops) */
	/* Required. Fill out (desired starts at in->current); -1 on failure
	 * (the host holds). */
	int (*decide)(void *ctx, const struct scaler_policy_input *in,
	              struct scaler_policy_decision *out);
	/* ABI 1.3, optional (the host checks `size`). Called after init and
	 * after every reload, before decide, with the names of the zone's
	 * metrics in config order. Return -1 after conf_error (FILE:LINE:
	 * SETTING) when the policy's settings do not fit them (a target named
	 * for a metric the zone lacks, none for one it has), else 0, having
	 * set *nwindows (0 .. SCALER_POLICY_WINDOWS_MAX) windows in seconds the
	 * policy reads every metric over (e.g. a stable and a panic window); 0:
	 * the zone's `window`. A policy without bind takes one metric: the host
	 * refuses a zone with several for it. */
	int (*bind)(void *ctx, const char *const *metrics, size_t nmetrics, double *windows,
	            size_t *nwindows) SCALER_ADDED_OP;
	/* ABI 1.5, optional. The values worth drawing on a chart of the
	 * zone's metrics with the settings in force (after init, reload and
	 * bind): fill at most max of out, return how many. Pure, like decide. */
	size_t (*guides)(void *ctx, struct scaler_policy_guide *out, size_t max) SCALER_ADDED_OP;
};

/* ---- kind: election ----------------------------------------------------- */

struct scaler_election_events {
	void *arg;
	/* this node is primary from now on, fenced by epoch */
	void (*elected)(void *arg, uint64_t epoch);
	/* this node must stop acting at once */
	void (*deposed)(void *arg, const char *reason);
	/* somebody (maybe this node) is primary with this epoch */
	void (*primary)(void *arg, const char *id, const char *url, uint64_t epoch);
};

struct scaler_election_ops {
	size_t size; /* sizeof(struct scaler_election_ops) */
	/* Required. Start electing; events stay valid until fini. */
	int (*start)(void *ctx, const struct scaler_election_events *events);
	/* A message on the admin API: POST /election/<type> with a JSON body.
	 * Fill *status and *reply (malloc'd JSON, freed by the host). */
	void (*message)(void *ctx, const char *type, const char *body, size_t len, int *status,
	                char **reply);
	/* malloc'd JSON object for GET /status */
	char *(*status_json)(void *ctx);
	/* the store refused a write as stale: step down */
	void (*fenced)(void *ctx, uint64_t current_epoch);
};

/* ---- kind: balancer ----------------------------------------------------- */

typedef void (*scaler_balancer_cb)(void *arg, int status, const char *err);

/* ABI 1.4: what scalerd keeps for a zone's workers and hands each one
 * (serve_worker). scalerd binds the zone's sockets once and keeps every
 * descriptor open across worker restarts and reloads: a worker never binds,
 * may close its copies, and its death never closes the port. */
struct scaler_zone_worker {
	size_t size;      /* sizeof(struct scaler_zone_worker) of the host */
	int index, count; /* this worker is `index` (from 0) of `count` on listen_fd */
	/* This worker's listening socket on the zone's address (non-blocking):
	 * one per worker, SO_REUSEPORT, the kernel spreads connections */
	int listen_fd;
	int admin_fd; /* the zone's admin socket: worker 0 serves it; -1 for the others */
	/* A memfd shared by the zone's workers: scalerd keeps it while the
	 * zone's workers keep their settings, so a restarted worker finds what
	 * the one before it left (size 0 when new; the plugin sizes it). */
	int shared_fd;
	int previous_fd; /* the shared memfd of the workers these replace (reload), or -1 */
	/* `count` eventfds: writing 1 to wake_fds[i] wakes worker i */
	const int *wake_fds;
};

struct scaler_balancer_ops {
	size_t size; /* sizeof(struct scaler_balancer_ops) */
	/* Required. Worker side: set up the zone's data plane and admin API on
	 * host->loop. The host then runs the loop until it is told to stop. */
	int (*serve)(void *ctx, const struct scaler_zone *zone);
	/* Worker side: stop accepting, finish in-flight requests (the last
	 * response of a keep-alive connection says Connection: close). */
	void (*shutdown)(void *ctx);
	/* Worker side: servers and primary recorded in the state store, handed
	 * over at start so a restarted worker serves at once (as if pushed).
	 * After serve_worker returned 0, the worker accepts from this call on. */
	void (*restore)(void *ctx, const char *const *servers, size_t n, const char *monitor_url,
	                uint64_t epoch);
	/* Controller side: change the zone's server set. */
	int (*push_servers)(void *ctx, const struct scaler_zone *zone, const char *const *adds,
	                    size_t nadds, const char *const *deletes, size_t ndeletes,
	                    scaler_balancer_cb cb, void *arg);
	/* Controller side: tell the zone's balancer who is primary. */
	int (*push_monitor)(void *ctx, const struct scaler_zone *zone, const char *url,
	                    uint64_t epoch, scaler_balancer_cb cb, void *arg);

	/* ---- ABI 1.4, optional: workers on sockets scalerd holds ---- */

	/* A plugin that has both is started with serve_worker; without them,
	 * it binds its own sockets in serve, in one worker per zone.
	 * Worker side, instead of serve: set up the data plane on w->listen_fd
	 * (and the admin API on w->admin_fd when it is not -1), and accept
	 * nothing until the server set is known. Returns 1 when it is (taken
	 * from w->shared_fd or w->previous_fd): the worker serves at once; 0
	 * when the host must call restore first, which it does within about a
	 * second (with n = 0, monitor_url NULL when the state store does not
	 * answer: serve the static servers); -1 on failure. */
	int (*serve_worker)(void *ctx, const struct scaler_zone *zone,
	                    const struct scaler_zone_worker *w) SCALER_ADDED_OP;
	/* Worker side, after shutdown: client connections still open. The
	 * host ends the worker when none is left, or after drain_timeout. */
	int (*connections)(void *ctx) SCALER_ADDED_OP;
};

/* ---- the descriptor ----------------------------------------------------- */

/* The kind's operations (the member named after the plugin's kind). */
union scaler_plugin_ops {
	const struct scaler_driver_ops *driver;
	const struct scaler_metrics_ops *metrics;
	const struct scaler_policy_ops *policy;
	const struct scaler_election_ops *election;
	const struct scaler_balancer_ops *balancer;
#ifdef __cplusplus
	/* C++17 has no designated initializers: pick the member by type */
	constexpr scaler_plugin_ops(const struct scaler_driver_ops *o) : driver(o)
	{
	}
	constexpr scaler_plugin_ops(const struct scaler_metrics_ops *o) : metrics(o)
	{
	}
	constexpr scaler_plugin_ops(const struct scaler_policy_ops *o) : policy(o)
	{
	}
	constexpr scaler_plugin_ops(const struct scaler_election_ops *o) : election(o)
	{
	}
	constexpr scaler_plugin_ops(const struct scaler_balancer_ops *o) : balancer(o)
	{
	}
#endif
};

struct scaler_plugin {
	uint32_t abi_major;
	uint32_t abi_minor;
	size_t size; /* sizeof(struct scaler_plugin) the plugin was built with */
	enum scaler_kind kind;
	const char *name; /* must equal the <name> in <kind>_<name>.so */
	const char *version;

	/* Parse and validate `conf` (may be NULL: all defaults), no side
	 * effects beyond memory. -1 after logging through host->conf_error. */
	int (*init)(const struct scaler_host *host, const config_setting_t *conf, void **ctx);
	/* Apply a changed config group; -1 when it cannot (the host then swaps
	 * the instance: fini + init). NULL: always swap. */
	int (*reload)(void *ctx, const config_setting_t *conf);
	void (*fini)(void *ctx);

	union scaler_plugin_ops ops;
};

/* Define the descriptor. opsfield_ names the kind (driver, metrics,
 * policy, election, balancer), ops_ points to its ops table. */
#ifdef __cplusplus
#define SCALER_PLUGIN_DEFINE(kind_, name_, version_, init_, reload_, fini_, opsfield_, ops_) \
	extern "C" __attribute__((visibility("default")))                                    \
	const struct scaler_plugin scaler_plugin;                                            \
	const struct scaler_plugin scaler_plugin = {SCALER_ABI_MAJOR,                        \
	                                            SCALER_ABI_MINOR,                        \
	                                            sizeof(struct scaler_plugin),            \
	                                            (kind_),                                 \
	                                            (name_),                                 \
	                                            (version_),                              \
	                                            (init_),                                 \
	                                            (reload_),                               \
	                                            (fini_),                                 \
	                                            scaler_plugin_ops(ops_)}
#else
#define SCALER_PLUGIN_DEFINE(kind_, name_, version_, init_, reload_, fini_, opsfield_, ops_) \
	__attribute__((visibility("default"))) const struct scaler_plugin scaler_plugin = {  \
	    .abi_major = SCALER_ABI_MAJOR,                                                   \
	    .abi_minor = SCALER_ABI_MINOR,                                                   \
	    .size = sizeof(struct scaler_plugin),                                            \
	    .kind = (kind_),                                                                 \
	    .name = (name_),                                                                 \
	    .version = (version_),                                                           \
	    .init = (init_),                                                                 \
	    .reload = (reload_),                                                             \
	    .fini = (fini_),                                                                 \
	    .ops = {.opsfield_ = (ops_)},                                                    \
	}
#endif

#ifdef __cplusplus
}
#endif
#endif
