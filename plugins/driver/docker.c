/* driver "docker": servers are containers, through the Docker Engine API
 * (never the CLI) on the host's asynchronous HTTP client.
 *
 * Every container is named scaler-<cluster>-<server-id> and labelled
 * scaler.cluster, scaler.zone, scaler.server (and, with host networking,
 * scaler.port and scaler.address), so list() finds exactly this cluster's
 * servers again after any restart. The Engine API client (endpoint, TLS,
 * version negotiation) is engine.c's. Images are not pulled: they must be
 * on the engine.
 *
 * Settings (driver group):
 *   image           required
 *   host            "unix:///path" (default unix:///var/run/docker.sock) or "tcp://host:port"
 *   tls_ca, tls_cert, tls_key   TLS for tcp:// (https)
 *   command         array of strings: the container's Cmd (default: the image's)
 *   env             array of "NAME=value" (PORT, ZONE, SERVER_ID are always set;
 *                   with host networking, HOST=host_address too when it is a
 *                   numeric address and env sets no HOST)
 *   network         "host" (default: a port from the zone's range) or a network name
 *   host_address    host part of addresses with host networking, default 127.0.0.1
 *                   (the engine's host for tcp://)
 *   container_port  the servers' port on a named network, default 8080
 *   cpu_shares, cpus (→ NanoCpus), memory (bytes or "256m")
 *   binds           array of "source:/target[:options]" (HostConfig.Binds)
 *   volumes         array of "volume:/target[:ro|rw]" (HostConfig.Mounts)
 *   stop_timeout    seconds for POST /stop?t=, default 10
 *   api_timeout     seconds per API request, default 60 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <ev.h>
#include <jansson.h>
#include <scaler/plugin.h>

#include "engine.h"

#define DD_NAME "docker"
#define DD_DEFAULT_HOST "unix:///var/run/docker.sock"

struct dd;
struct dd_op;
typedef void (*dd_step)(struct dd_op *op, const struct eng_reply *r);

enum dd_kind { DD_CREATE, DD_REMOVE, DD_LIST };

struct dd_op {
	struct eng_op base; /* first: the callback, the call in flight, the error */
	struct dd *dd;
	enum dd_kind kind;
	dd_step next;

	/* create */
	char zone[64];
	int port_min, port_max;
	char server_id[64];
	char name[200];
	int port;            /* reserved while creating */
	char start_err[512]; /* why the start failed, or the create no answer came for */
	/* remove */
	char container[128];
};

struct dd {
	const struct scaler_host *host;
	struct eng *eng; /* where */
	/* what */
	char *image;
	json_t *cmd; /* array or NULL */
	json_t *env; /* array of "K=V" */
	char network[128];
	char host_address[128];
	int container_port;
	int cpu_shares;
	double cpus;
	long long memory;
	json_t *binds;  /* array or NULL */
	json_t *mounts; /* array or NULL (from `volumes`) */
	int stop_timeout;
	double api_timeout;

	struct eng_op *ops;
};

static const char *const dd_known[] = {
    "plugin", "host",    "tls_ca",       "tls_cert",       "tls_key",    "image", "command",
    "env",    "network", "host_address", "container_port", "cpu_shares", "cpus",  "memory",
    "binds",  "volumes", "stop_timeout", "api_timeout",    NULL};

static void dd_fmt(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void dd_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* ---- config ------------------------------------------------------------- */

static void dd_fini(void *ctx);

static int dd_init(const struct scaler_host *host, const config_setting_t *conf, void **ctx)
{
	struct dd *dd = calloc(1, sizeof(*dd));
	const config_setting_t *s;
	const char *v;
	double num;
	int bad = 0;
	if (!dd)
		return -1;
	dd->host = host;
	dd->container_port = 8080;
	dd->stop_timeout = 10;
	dd->api_timeout = 60;
	snprintf(dd->network, sizeof(dd->network), "host");
	if (conf && host->conf_check_known(conf, dd_known) < 0)
		goto fail;

	dd->eng = eng_new(host, conf, "host", 0, DD_DEFAULT_HOST, "Docker engine");
	if (!dd->eng)
		goto fail;
	if ((v = eng_conf_string(host, conf, "host_address", &bad))) {
		if (strlen(v) >= sizeof(dd->host_address) || strpbrk(v, "/ @?#")) {
			host->conf_error(config_setting_get_member(conf, "host_address"),
			                 "expected a host name or address");
			goto fail;
		}
		snprintf(dd->host_address, sizeof(dd->host_address), "%s", v);
	}
	/* servers on host networking answer on the engine's host */
	if (!dd->host_address[0])
		snprintf(dd->host_address, sizeof(dd->host_address), "%s",
		         eng_tcp_host(dd->eng, 0) ? eng_tcp_host(dd->eng, 0) : "127.0.0.1");

	v = eng_conf_string(host, conf, "image", &bad);
	if (bad)
		goto fail;
	if (!v) {
		if (conf)
			host->conf_error(conf, "image: required (the image of the servers)");
		else
			host->log(SCALER_LOG_ERR, DD_NAME, "driver docker: image is required");
		goto fail;
	}
	dd->image = strdup(v);
	if ((s = conf ? config_setting_get_member(conf, "command") : NULL)) {
		dd->cmd = eng_conf_strings(host, s, 0, 0);
		if (!dd->cmd)
			goto fail;
	}
	if ((s = conf ? config_setting_get_member(conf, "env") : NULL)) {
		dd->env = eng_conf_strings(host, s, 1, 0);
		if (!dd->env)
			goto fail;
	} else {
		dd->env = json_array();
	}
	if ((v = eng_conf_string(host, conf, "network", &bad))) {
		if (strlen(v) >= sizeof(dd->network)) {
			host->conf_error(config_setting_get_member(conf, "network"), "too long");
			goto fail;
		}
		snprintf(dd->network, sizeof(dd->network), "%s", v);
	}
	if (host->conf_number(conf, "container_port", dd->container_port, 1, 65535, &num) < 0)
		goto fail;
	dd->container_port = (int)num;
	if (host->conf_number(conf, "cpu_shares", dd->cpu_shares, 2, 262144, &num) < 0)
		goto fail;
	dd->cpu_shares = (int)num;
	if (host->conf_number(conf, "cpus", dd->cpus, 0.01, 1024, &dd->cpus) < 0)
		goto fail;
	dd->memory = eng_conf_bytes(host, conf, "memory", 6 << 20);
	if (dd->memory < 0)
		goto fail;
	if ((s = conf ? config_setting_get_member(conf, "binds") : NULL)) {
		dd->binds = eng_conf_strings(host, s, 0, 1);
		if (!dd->binds)
			goto fail;
	}
	if ((s = conf ? config_setting_get_member(conf, "volumes") : NULL)) {
		json_t *vols = eng_conf_strings(host, s, 0, 1);
		size_t i;
		json_t *e;
		if (!vols)
			goto fail;
		dd->mounts = json_array();
		json_array_foreach(vols, i, e)
		{
			char buf[512], *target, *opt;
			snprintf(buf, sizeof(buf), "%s", json_string_value(e));
			target = strchr(buf, ':');
			*target++ = '\0';
			opt = strchr(target, ':');
			if (opt)
				*opt++ = '\0';
			if (target[0] != '/' ||
			    (opt && strcmp(opt, "ro") != 0 && strcmp(opt, "rw") != 0)) {
				host->conf_error(config_setting_get_elem(s, (unsigned)i),
				                 "expected \"volume:/target[:ro|rw]\", got \"%s\"",
				                 json_string_value(e));
				json_decref(vols);
				goto fail;
			}
			json_array_append_new(dd->mounts,
			                      json_pack("{s:s, s:s, s:s, s:b}", "Type", "volume",
			                                "Source", buf, "Target", target, "ReadOnly",
			                                opt && strcmp(opt, "ro") == 0));
		}
		json_decref(vols);
	}
	if (host->conf_number(conf, "stop_timeout", dd->stop_timeout, 0, 3600, &num) < 0)
		goto fail;
	dd->stop_timeout = (int)ceil(num);
	if (host->conf_number(conf, "api_timeout", dd->api_timeout, 1, 3600, &dd->api_timeout) < 0)
		goto fail;
	if (bad || !dd->image || !dd->env)
		goto fail;
	*ctx = dd;
	return 0;
fail:
	dd_fini(dd);
	return -1;
}

/* ---- operations and requests -------------------------------------------- */

static void dd_eng_cb(void *arg, const struct eng_reply *r)
{
	struct dd_op *op = arg;
	op->base.call = NULL;
	op->next(op, r);
}

/* One API call; path without the version prefix. -1 (op not finished) when
 * the request cannot start. */
static int dd_call(struct dd_op *op, const char *method, const char *path, json_t *body,
                   double timeout, dd_step next)
{
	op->next = next;
	op->base.call = eng_request(op->dd->eng, method, path, body,
	                            timeout > 0 ? timeout : op->dd->api_timeout, dd_eng_cb, op);
	return op->base.call ? 0 : -1;
}

/* As dd_call, but a request that cannot start fails the op. */
static void dd_call_or_fail(struct dd_op *op, const char *method, const char *path, json_t *body,
                            double timeout, dd_step next)
{
	if (dd_call(op, method, path, body, timeout, next) < 0)
		eng_op_fail(&op->base, "cannot send %s %s to the Docker engine", method, path);
}

static struct dd_op *dd_op_new(struct dd *dd, enum dd_kind kind, void *arg)
{
	struct dd_op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	eng_op_init(&op->base, dd->host, DD_NAME, &dd->ops, arg);
	op->dd = dd;
	op->kind = kind;
	op->port = -1;
	return op;
}

/* ---- list --------------------------------------------------------------- */

/* GET /containers/json filtered on this cluster's label. */
static int dd_list_call(struct dd_op *op, dd_step next)
{
	char label[300];
	dd_fmt(label, sizeof(label), "scaler.cluster=%s", op->dd->host->cluster);
	json_t *filters = json_pack("{s:[s]}", "label", label);
	op->next = next;
	op->base.call = eng_get_filtered(op->dd->eng, "/containers/json?all=1", filters,
	                                 op->dd->api_timeout, dd_eng_cb, op);
	json_decref(filters);
	return op->base.call ? 0 : -1;
}

/* One container of the list (or an inspect) as a server; -1 when it does
 * not carry scaler's labels. */
static int dd_container_server(const struct dd *dd, json_t *c, json_t *labels,
                               struct scaler_server *srv)
{
	const char *id = json_string_value(json_object_get(c, "Id"));
	const char *sid = json_string_value(json_object_get(labels, "scaler.server"));
	const char *zone = json_string_value(json_object_get(labels, "scaler.zone"));
	const char *addr = json_string_value(json_object_get(labels, "scaler.address"));
	const char *created = json_string_value(json_object_get(labels, "scaler.created"));
	json_t *state = json_object_get(c, "State");
	memset(srv, 0, sizeof(*srv));
	if (!id || !sid || !zone || strlen(sid) >= sizeof(srv->id) ||
	    strlen(zone) >= sizeof(srv->zone))
		return -1;
	snprintf(srv->id, sizeof(srv->id), "%s", sid);
	snprintf(srv->zone, sizeof(srv->zone), "%s", zone);
	snprintf(srv->ref, sizeof(srv->ref), "%s", id);
	/* list: State is "running"; inspect: State is {"Running": true, ...} */
	srv->running = json_is_string(state) ? strcmp(json_string_value(state), "running") == 0
	                                     : json_is_true(json_object_get(state, "Running"));
	srv->created = created ? atof(created) : json_number_value(json_object_get(c, "Created"));
	if (addr) {
		snprintf(srv->address, sizeof(srv->address), "%s", addr);
	} else {
		/* a named network: the container's address on it */
		json_t *nets = json_object_get(json_object_get(c, "NetworkSettings"), "Networks");
		const char *ip = json_string_value(
		    json_object_get(json_object_get(nets, dd->network), "IPAddress"));
		if (ip && *ip)
			dd_fmt(srv->address, sizeof(srv->address), "http://%s:%d", ip,
			       dd->container_port);
	}
	return 0;
}

static void dd_list_cb(struct dd_op *op, const struct eng_reply *r)
{
	json_t *a, *c;
	size_t i, n = 0;
	struct scaler_server *srvs;
	if (r->status != 200) {
		char why[512];
		snprintf(why, sizeof(why), "%s", r->message);
		eng_op_fail(&op->base, "cannot list containers: %s", why);
		return;
	}
	a = json_incref(r->json);
	if (!json_is_array(a)) {
		json_decref(a);
		eng_op_fail(&op->base,
		            "cannot list containers: the Docker engine sent no JSON array");
		return;
	}
	srvs = calloc(json_array_size(a) + 1, sizeof(*srvs));
	if (!srvs) {
		json_decref(a);
		eng_op_fail(&op->base, "out of memory");
		return;
	}
	json_array_foreach(a, i, c)
	{
		if (dd_container_server(op->dd, c, json_object_get(c, "Labels"), &srvs[n]) == 0)
			n++;
	}
	json_decref(a);
	eng_op_done(&op->base, 0, srvs, n);
	free(srvs);
}

/* ---- create ------------------------------------------------------------- */

static int dd_port_reserved(const struct dd *dd, const struct dd_op *self, int port)
{
	for (const struct eng_op *b = dd->ops; b; b = b->next) {
		const struct dd_op *o = (const struct dd_op *)b;
		if (o != self && o->kind == DD_CREATE && o->port == port)
			return 1;
	}
	return 0;
}

static int dd_port_bindable(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1, ok, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

static void dd_create_started(struct dd_op *op, const struct eng_reply *r);
static void dd_create_made(struct dd_op *op, const struct eng_reply *r);
static void dd_create_inspected(struct dd_op *op, const struct eng_reply *r);

/* With host networking a server listens on the host's own interfaces: tell
 * it the one address the balancers reach (HOST), so it is not open on every
 * other. Only a numeric address, which binds without a name lookup inside
 * the container; a HOST in `env` wins. */
static int dd_host_env(const struct dd *dd, char *buf, size_t len)
{
	unsigned char a[sizeof(struct in6_addr)];
	size_t n = json_array_size(dd->env);

	for (size_t i = 0; i < n; i++)
		if (strncmp(json_string_value(json_array_get(dd->env, i)), "HOST=", 5) == 0)
			return 0;
	if (inet_pton(AF_INET, dd->host_address, a) != 1 &&
	    inet_pton(AF_INET6, dd->host_address, a) != 1)
		return 0;
	snprintf(buf, len, "HOST=%s", dd->host_address);
	return 1;
}

/* POST /containers/create: 0, or -1 when it could not be sent */
static int dd_create_send(struct dd_op *op)
{
	struct dd *dd = op->dd;
	char buf[300], path[400], created[32];
	int host_net = strcmp(dd->network, "host") == 0;
	json_t *env = json_deep_copy(dd->env);
	json_t *labels, *hc, *body;
	snprintf(buf, sizeof(buf), "ZONE=%s", op->zone);
	json_array_append_new(env, json_string(buf));
	snprintf(buf, sizeof(buf), "SERVER_ID=%s", op->server_id);
	json_array_append_new(env, json_string(buf));
	snprintf(buf, sizeof(buf), "PORT=%d", host_net ? op->port : dd->container_port);
	json_array_append_new(env, json_string(buf));
	if (host_net && dd_host_env(dd, buf, sizeof(buf)))
		json_array_append_new(env, json_string(buf));
	snprintf(created, sizeof(created), "%.6f", op->base.srv.created);
	labels =
	    json_pack("{s:s, s:s, s:s, s:s}", "scaler.cluster", dd->host->cluster, "scaler.zone",
	              op->zone, "scaler.server", op->server_id, "scaler.created", created);
	if (host_net) {
		snprintf(buf, sizeof(buf), "%d", op->port);
		json_object_set_new(labels, "scaler.port", json_string(buf));
		json_object_set_new(labels, "scaler.address", json_string(op->base.srv.address));
	}
	hc = json_pack("{s:s, s:{s:s}}", "NetworkMode", dd->network, "RestartPolicy", "Name", "no");
	if (dd->cpu_shares)
		json_object_set_new(hc, "CpuShares", json_integer(dd->cpu_shares));
	if (dd->cpus > 0)
		json_object_set_new(hc, "NanoCpus",
		                    json_integer((json_int_t)llround(dd->cpus * 1e9)));
	if (dd->memory > 0)
		json_object_set_new(hc, "Memory", json_integer(dd->memory));
	if (dd->binds)
		json_object_set(hc, "Binds", dd->binds);
	if (dd->mounts)
		json_object_set(hc, "Mounts", dd->mounts);
	body = json_pack("{s:s, s:o, s:o, s:o}", "Image", dd->image, "Env", env, "Labels", labels,
	                 "HostConfig", hc);
	if (!body)
		return -1;
	if (dd->cmd)
		json_object_set(body, "Cmd", dd->cmd);
	if (!host_net) {
		snprintf(buf, sizeof(buf), "%d/tcp", dd->container_port);
		json_object_set_new(body, "ExposedPorts", json_pack("{s:{}}", buf));
	}
	eng_urlencode(op->name, buf, sizeof(buf));
	dd_fmt(path, sizeof(path), "/containers/create?name=%s", buf);
	int rc = dd_call(op, "POST", path, body, 0, dd_create_made);
	json_decref(body);
	return rc;
}

/* The cluster's containers are listed: pick a port none of them holds. */
static void dd_create_ports(struct dd_op *op, const struct eng_reply *r)
{
	struct dd *dd = op->dd;
	json_t *a, *c;
	size_t i;
	if (r->status != 200) {
		char why[512];
		snprintf(why, sizeof(why), "%s", r->message);
		eng_op_fail(&op->base, "create server %s: cannot list containers: %s",
		            op->server_id, why);
		return;
	}
	a = json_incref(r->json);
	json_array_foreach(a, i, c)
	{
		json_t *labels = json_object_get(c, "Labels");
		const char *sid = json_string_value(json_object_get(labels, "scaler.server"));
		if (sid && strcmp(sid, op->server_id) == 0) {
			char cid[16];
			snprintf(cid, sizeof(cid), "%.12s",
			         json_string_value(json_object_get(c, "Id"))
			             ? json_string_value(json_object_get(c, "Id"))
			             : "?");
			json_decref(a);
			eng_op_fail(&op->base, "create server %s: it already exists (container %s)",
			            op->server_id, cid);
			return;
		}
	}
	for (int port = op->port_min; port <= op->port_max && op->port < 0; port++) {
		int used = dd_port_reserved(dd, op, port);
		json_array_foreach(a, i, c)
		{
			const char *p = json_string_value(
			    json_object_get(json_object_get(c, "Labels"), "scaler.port"));
			if (p && atoi(p) == port)
				used = 1;
		}
		/* a local engine: the port must also be free on this host */
		if (!used && (eng_tcp_host(dd->eng, 0) || dd_port_bindable(port)))
			op->port = port;
	}
	json_decref(a);
	if (op->port < 0) {
		eng_op_fail(&op->base, "zone %s: no free port in %d-%d for server %s", op->zone,
		            op->port_min, op->port_max, op->server_id);
		return;
	}
	dd_fmt(op->base.srv.address, sizeof(op->base.srv.address), "http://%s:%d", dd->host_address,
	       op->port);
	if (dd_create_send(op) < 0)
		eng_op_fail(&op->base, "create server %s: cannot send the request", op->server_id);
}

/* The container `id` is this server's: start it. */
static void dd_create_take(struct dd_op *op, const char *id)
{
	char path[256];
	if (!id || strlen(id) >= sizeof(op->container) ||
	    strspn(id, "0123456789abcdef") != strlen(id)) {
		eng_op_fail(&op->base,
		            "create server %s: the Docker engine returned no container id",
		            op->server_id);
		return;
	}
	snprintf(op->container, sizeof(op->container), "%s", id);
	snprintf(op->base.srv.ref, sizeof(op->base.srv.ref), "%s", id);
	dd_fmt(path, sizeof(path), "/containers/%s/start", op->container);
	dd_call_or_fail(op, "POST", path, NULL, 0, dd_create_started);
}

static void dd_create_dropped(struct dd_op *op, const struct eng_reply *r)
{
	char why[512];
	snprintf(why, sizeof(why), "%s", r->message);
	if (r->status == 204 || r->status == 404)
		eng_op_fail(&op->base, "create server %s: %s", op->server_id, op->start_err);
	else
		eng_op_fail(&op->base, "create server %s: %s (container %s left behind: %s)",
		            op->server_id, op->start_err, op->name, why);
}

/* The engine did not answer the create in time; it may have made the
 * container all the same. Found with this server's labels: it is taken
 * and started. Not found: the create failed. The engine cannot say: the
 * container is removed by name, so nothing half-created stays. */
static void dd_create_looked_up(struct dd_op *op, const struct eng_reply *r)
{
	json_t *labels = json_object_get(json_object_get(r->json, "Config"), "Labels");
	const char *cluster = json_string_value(json_object_get(labels, "scaler.cluster"));
	const char *sid = json_string_value(json_object_get(labels, "scaler.server"));
	char buf[300], path[400];
	if (r->status == 200 && cluster && sid && strcmp(cluster, op->dd->host->cluster) == 0 &&
	    strcmp(sid, op->server_id) == 0) {
		dd_create_take(op, json_string_value(json_object_get(r->json, "Id")));
		return;
	}
	if (r->status == 200 || r->status == 404) {
		eng_op_fail(&op->base, "create server %s: %s", op->server_id, op->start_err);
		return;
	}
	eng_urlencode(op->name, buf, sizeof(buf));
	dd_fmt(path, sizeof(path), "/containers/%s?force=1", buf);
	if (dd_call(op, "DELETE", path, NULL, 0, dd_create_dropped) < 0)
		eng_op_fail(&op->base, "create server %s: %s (container %s may be left behind)",
		            op->server_id, op->start_err, op->name);
}

static void dd_create_made(struct dd_op *op, const struct eng_reply *r)
{
	char why[512], buf[300], path[400];
	if (r->status == 0) {
		snprintf(op->start_err, sizeof(op->start_err), "%s", r->message);
		eng_urlencode(op->name, buf, sizeof(buf));
		dd_fmt(path, sizeof(path), "/containers/%s/json", buf);
		if (dd_call(op, "GET", path, NULL, 0, dd_create_looked_up) < 0)
			eng_op_fail(&op->base, "create server %s: %s", op->server_id,
			            op->start_err);
		return;
	}
	if (r->status != 201) {
		snprintf(why, sizeof(why), "%s", r->message);
		if (r->status == 409)
			eng_op_fail(&op->base, "create server %s: container %s already exists: %s",
			            op->server_id, op->name, why);
		else
			eng_op_fail(&op->base, "create server %s: %s", op->server_id, why);
		return;
	}
	dd_create_take(op, json_string_value(json_object_get(r->json, "Id")));
}

/* start failed: the container goes, so nothing half-created stays */
static void dd_create_cleaned(struct dd_op *op, const struct eng_reply *r)
{
	if (r->status != 204 && r->status != 404) {
		char why[512];
		snprintf(why, sizeof(why), "%s", r->message);
		op->dd->host->log(
		    SCALER_LOG_ERR, DD_NAME,
		    "server %s: cannot delete container %.12s after the failed start: "
		    "%s",
		    op->server_id, op->container, why);
	}
	eng_op_fail(&op->base, "start server %s: %s", op->server_id, op->start_err);
}

static void dd_create_started(struct dd_op *op, const struct eng_reply *r)
{
	char path[256];
	if (r->status != 204 && r->status != 304) {
		snprintf(op->start_err, sizeof(op->start_err), "%s", r->message);
		dd_fmt(path, sizeof(path), "/containers/%s?force=1", op->container);
		if (dd_call(op, "DELETE", path, NULL, 0, dd_create_cleaned) < 0)
			eng_op_fail(&op->base, "start server %s: %s (container %.12s left behind)",
			            op->server_id, op->start_err, op->container);
		return;
	}
	if (strcmp(op->dd->network, "host") == 0) {
		op->base.srv.running = 1;
		op->dd->host->log(SCALER_LOG_INFO, DD_NAME,
		                  "server %s started: container %.12s, %s", op->server_id,
		                  op->container, op->base.srv.address);
		eng_op_done(&op->base, 0, NULL, 0);
		return;
	}
	dd_fmt(path, sizeof(path), "/containers/%s/json", op->container);
	dd_call_or_fail(op, "GET", path, NULL, 0, dd_create_inspected);
}

static void dd_create_inspected(struct dd_op *op, const struct eng_reply *r)
{
	json_t *j;
	struct scaler_server srv;
	if (r->status != 200) {
		char why[512];
		snprintf(why, sizeof(why), "%s", r->message);
		eng_op_fail(&op->base, "inspect server %s: %s", op->server_id, why);
		return;
	}
	j = json_incref(r->json);
	if (dd_container_server(op->dd, j, json_object_get(json_object_get(j, "Config"), "Labels"),
	                        &srv) < 0 ||
	    !srv.address[0]) {
		json_decref(j);
		eng_op_fail(&op->base, "server %s: container %.12s has no address on network %s",
		            op->server_id, op->container, op->dd->network);
		return;
	}
	json_decref(j);
	snprintf(op->base.srv.address, sizeof(op->base.srv.address), "%s", srv.address);
	op->base.srv.running = 1;
	op->dd->host->log(SCALER_LOG_INFO, DD_NAME, "server %s started: container %.12s, %s",
	                  op->server_id, op->container, op->base.srv.address);
	eng_op_done(&op->base, 0, NULL, 0);
}

/* ---- remove ------------------------------------------------------------- */

static void dd_remove_inspected(struct dd_op *op, const struct eng_reply *r);
static void dd_remove_stopped(struct dd_op *op, const struct eng_reply *r);
static void dd_remove_deleted(struct dd_op *op, const struct eng_reply *r);
static void dd_remove_forced(struct dd_op *op, const struct eng_reply *r);

static void dd_remove_gone(struct dd_op *op)
{
	op->base.srv.running = 0;
	op->dd->host->log(SCALER_LOG_INFO, DD_NAME, "server %s removed", op->base.srv.id);
	eng_op_done(&op->base, 0, NULL, 0);
}

/* Only a container of this cluster, labelled with this server, is removed. */
static void dd_remove_inspected(struct dd_op *op, const struct eng_reply *r)
{
	json_t *j, *labels;
	char path[256];
	if (r->status == 404) {
		dd_remove_gone(op);
		return;
	}
	if (r->status != 200) {
		char why[512];
		snprintf(why, sizeof(why), "%s", r->message);
		eng_op_fail(&op->base, "remove server %s: %s", op->base.srv.id, why);
		return;
	}
	j = json_incref(r->json);
	labels = json_object_get(json_object_get(j, "Config"), "Labels");
	const char *cl = json_string_value(json_object_get(labels, "scaler.cluster"));
	const char *sid = json_string_value(json_object_get(labels, "scaler.server"));
	const char *id = json_string_value(json_object_get(j, "Id"));
	if (!cl || strcmp(cl, op->dd->host->cluster) != 0 || !sid ||
	    strcmp(sid, op->base.srv.id) != 0 || !id || strlen(id) >= sizeof(op->container)) {
		json_decref(j);
		eng_op_fail(&op->base,
		            "remove server %s: container %.12s is not server %s of cluster %s; "
		            "leaving it alone",
		            op->base.srv.id, op->container, op->base.srv.id, op->dd->host->cluster);
		return;
	}
	snprintf(op->container, sizeof(op->container), "%s", id);
	json_decref(j);
	dd_fmt(path, sizeof(path), "/containers/%s/stop?t=%d", op->container, op->dd->stop_timeout);
	dd_call_or_fail(op, "POST", path, NULL, op->dd->stop_timeout + op->dd->api_timeout,
	                dd_remove_stopped);
}

static void dd_remove_stopped(struct dd_op *op, const struct eng_reply *r)
{
	char path[256];
	if (r->status == 404) {
		dd_remove_gone(op);
		return;
	}
	if (r->status != 204 && r->status != 304) {
		char why[512];
		snprintf(why, sizeof(why), "%s", r->message);
		op->dd->host->log(SCALER_LOG_WARNING, DD_NAME,
		                  "server %s: stop failed (%s); removing it by force",
		                  op->base.srv.id, why);
		dd_fmt(path, sizeof(path), "/containers/%s?force=1", op->container);
		dd_call_or_fail(op, "DELETE", path, NULL, 0, dd_remove_forced);
		return;
	}
	dd_fmt(path, sizeof(path), "/containers/%s", op->container);
	dd_call_or_fail(op, "DELETE", path, NULL, 0, dd_remove_deleted);
}

static void dd_remove_deleted(struct dd_op *op, const struct eng_reply *r)
{
	char path[256];
	if (r->status == 204 || r->status == 404) {
		dd_remove_gone(op);
		return;
	}
	dd_fmt(path, sizeof(path), "/containers/%s?force=1", op->container);
	dd_call_or_fail(op, "DELETE", path, NULL, 0, dd_remove_forced);
}

static void dd_remove_forced(struct dd_op *op, const struct eng_reply *r)
{
	char why[512];
	if (r->status == 204 || r->status == 404) {
		dd_remove_gone(op);
		return;
	}
	snprintf(why, sizeof(why), "%s", r->message);
	if (r->status == 409 && strstr(why, "already in progress")) {
		dd_remove_gone(op);
		return;
	}
	eng_op_fail(&op->base, "remove server %s: %s", op->base.srv.id, why);
}

/* ---- ops ---------------------------------------------------------------- */

/* Send op's first request: 0, or -1 when nothing could be sent (op freed,
 * cb not called). */
static int dd_start(struct dd_op *op)
{
	char path[256], enc[256];
	int rc;
	switch (op->kind) {
	case DD_LIST:
		rc = dd_list_call(op, dd_list_cb);
		break;
	case DD_CREATE:
		if (strcmp(op->dd->network, "host") == 0)
			rc = dd_list_call(op, dd_create_ports);
		else
			rc = dd_create_send(op);
		break;
	case DD_REMOVE:
	default:
		eng_urlencode(op->container, enc, sizeof(enc));
		dd_fmt(path, sizeof(path), "/containers/%s/json", enc);
		rc = dd_call(op, "GET", path, NULL, 0, dd_remove_inspected);
		break;
	}
	if (rc < 0)
		eng_op_free(&op->base);
	return rc;
}

static int dd_create(void *ctx, const struct scaler_server_spec *spec, scaler_driver_cb cb,
                     void *arg)
{
	struct dd *dd = ctx;
	const struct scaler_zone *z = spec ? spec->zone : NULL;
	struct dd_op *op;
	if (!spec || !z || !z->name || !spec->server_id || !cb)
		return -1;
	op = dd_op_new(dd, DD_CREATE, arg);
	if (!op)
		return -1;
	op->base.cb = cb;
	int refused = eng_op_spec(&op->base, spec, strcmp(dd->network, "host") == 0);
	if (refused)
		return refused < 0 ? -1 : 0; /* refused: its callback comes later */
	snprintf(op->zone, sizeof(op->zone), "%s", z->name);
	snprintf(op->server_id, sizeof(op->server_id), "%s", spec->server_id);
	dd_fmt(op->name, sizeof(op->name), "scaler-%s-%s", dd->host->cluster, spec->server_id);
	op->port_min = z->port_min;
	op->port_max = z->port_max;
	return dd_start(op);
}

static int dd_remove(void *ctx, const struct scaler_server *srv, scaler_driver_cb cb, void *arg)
{
	struct dd *dd = ctx;
	struct dd_op *op;
	if (!srv || !srv->id[0])
		return -1;
	op = dd_op_new(dd, DD_REMOVE, arg);
	if (!op)
		return -1;
	op->base.cb = cb;
	op->base.srv = *srv;
	/* by container id when known, else by the name create gave it */
	if (srv->ref[0])
		snprintf(op->container, sizeof(op->container), "%s", srv->ref);
	else
		dd_fmt(op->container, sizeof(op->container), "scaler-%s-%s", dd->host->cluster,
		       srv->id);
	return dd_start(op);
}

static int dd_list(void *ctx, scaler_driver_list_cb cb, void *arg)
{
	struct dd *dd = ctx;
	struct dd_op *op;
	if (!cb)
		return -1;
	op = dd_op_new(dd, DD_LIST, arg);
	if (!op)
		return -1;
	op->base.list_cb = cb;
	return dd_start(op);
}

static void dd_fini(void *ctx)
{
	struct dd *dd = ctx;
	if (!dd)
		return;
	/* in-flight requests are cancelled; their callbacks are not called */
	while (dd->ops)
		eng_op_free(dd->ops);
	eng_free(dd->eng);
	free(dd->image);
	json_decref(dd->cmd);
	json_decref(dd->env);
	json_decref(dd->binds);
	json_decref(dd->mounts);
	free(dd);
}

/* New settings apply in place: the calls in flight finish with the new
 * settings for their remaining steps. */
static int dd_reload(void *ctx, const config_setting_t *conf)
{
	struct dd *dd = ctx, *n, old;
	if (dd_init(dd->host, conf, (void **)&n) < 0)
		return -1;
	old = *dd;
	*dd = *n;
	dd->ops = old.ops;
	/* the engine client stays (its calls are in flight) with the new endpoint */
	eng_take(old.eng, dd->eng);
	dd->eng = old.eng;
	*n = old;
	n->ops = NULL;
	n->eng = NULL;
	dd_fini(n); /* the old settings */
	return 0;
}

static const struct scaler_driver_ops dd_ops = {
    .size = sizeof(struct scaler_driver_ops),
    .create = dd_create,
    .remove = dd_remove,
    .list = dd_list,
};

SCALER_PLUGIN_DEFINE(SCALER_KIND_DRIVER, DD_NAME, PACKAGE_VERSION, dd_init, dd_reload, dd_fini,
                     driver, &dd_ops);
