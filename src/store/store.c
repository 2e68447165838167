#include "config.h"

#include "store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "log.h"
#include "redis_conn.h"

#define ST_EVENTS_CAP 10000
#define ST_EVENTS_BATCH_MAX 1000
#define ST_EVENTS_ROUNDS 64

struct store {
	struct redis_conn *r;
	char *cluster;
	char *k_epoch, *k_leader, *k_lease, *k_zones, *k_events, *k_servers; /* k_servers: prefix */
	size_t events_cap;
};

/* The fence every write starts with: KEYS[1] is <cluster>:epoch, ARGV[1]
 * the writer's epoch. A stale writer gets "STALE <current>" and nothing
 * changes. */
#define ST_FENCE                                                                                \
	"local cur = redis.call('GET', KEYS[1]) or '0'\n"                                       \
	"if tonumber(cur) ~= tonumber(ARGV[1]) then return redis.error_reply('STALE ' .. cur) " \
	"end\n"

/* KEYS: epoch, leader. ARGV: epoch, id, url */
static const char st_lua_leader_set[] =
    ST_FENCE "redis.call('HSET', KEYS[2], 'id', ARGV[2], 'url', ARGV[3], 'epoch', ARGV[1])\n"
             "return cur\n";

/* KEYS: epoch, leader. Returns {current epoch, id, url, leader epoch}. */
static const char st_lua_leader_get[] =
    "local l = redis.call('HMGET', KEYS[2], 'id', 'url', 'epoch')\n"
    "return {redis.call('GET', KEYS[1]) or '0', l[1], l[2], l[3]}\n";

/* The primary's lease: <cluster>:lease = "<node id> <epoch> <client id>",
 * expiring (PX) unless renewed. It is live while its epoch is the current
 * one: a newer epoch voids it. Every lease script takes KEYS epoch, leader,
 * lease and returns {code, current epoch, live lease or false, its PTTL}. */
#define ST_LEASE_PRELUDE                                                                       \
	"local function reply(code)\n"                                                         \
	"  local cur = redis.call('GET', KEYS[1]) or '0'\n"                                    \
	"  local l = redis.call('GET', KEYS[3])\n"                                             \
	"  if l and tonumber(string.match(l, ' (%d+) %d+$')) ~= tonumber(cur) then l = false " \
	"end\n"                                                                                \
	"  return {code, cur, l or false, redis.call('PTTL', KEYS[3])}\n"                      \
	"end\n"                                                                                \
	"local function holder(l) return string.match(l or '', '^(.+) %d+ %d+$') end\n"

/* ARGV: id, url, ttl ms, client id. A new epoch, the leader record and the
 * lease at once, unless another node's lease is live. */
static const char st_lua_lease_take[] =
    ST_LEASE_PRELUDE "local live = reply('HELD')\n"
                     "if live[3] and holder(live[3]) ~= ARGV[1] then return live end\n"
                     "local e = redis.call('INCR', KEYS[1])\n"
                     "redis.call('HSET', KEYS[2], 'id', ARGV[1], 'url', ARGV[2], 'epoch', e)\n"
                     "redis.call('SET', KEYS[3], ARGV[1] .. ' ' .. e .. ' ' .. ARGV[4], 'PX', "
                     "ARGV[3])\n"
                     "return reply('OK')\n";

/* ARGV: id, epoch, ttl ms, client id. Extends the holder's lease while its
 * epoch is current and the leader record names it; a void lease of its own
 * is dropped. */
static const char st_lua_lease_renew[] = ST_LEASE_PRELUDE
    "local cur = redis.call('GET', KEYS[1]) or '0'\n"
    "local l = redis.call('GET', KEYS[3])\n"
    "local mine = l and string.match(l, '^(.+ %d+) %d+$') == ARGV[1] .. ' ' .. ARGV[2]\n"
    "if tonumber(cur) ~= tonumber(ARGV[2]) or redis.call('HGET', KEYS[2], 'id') ~= ARGV[1] or "
    "(l and not mine) then\n"
    "  if mine then redis.call('DEL', KEYS[3]) end\n"
    "  return reply('STALE')\n"
    "end\n"
    "redis.call('SET', KEYS[3], ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[4], 'PX', ARGV[3])\n"
    "return reply('OK')\n";

/* ARGV: id, epoch. */
static const char st_lua_lease_release[] = ST_LEASE_PRELUDE
    "local l = redis.call('GET', KEYS[3])\n"
    "if l and string.match(l, '^(.+ %d+) %d+$') == ARGV[1] .. ' ' .. ARGV[2] then\n"
    "  redis.call('DEL', KEYS[3])\n"
    "end\n"
    "return reply('OK')\n";

static const char st_lua_lease_get[] = ST_LEASE_PRELUDE "return reply('OK')\n";

/* ARGV: the lease as it was seen. Dropped only if it has not changed since. */
static const char st_lua_lease_break[] = ST_LEASE_PRELUDE
    "if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end\n"
    "local now = reply('OK')\n"
    "if now[3] then now[1] = 'HELD' end\n"
    "return now\n";

/* KEYS: epoch, servers:<zone>, zones. ARGV: epoch, id, json, zone */
static const char st_lua_server_put[] = ST_FENCE "redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])\n"
                                                 "redis.call('SADD', KEYS[3], ARGV[4])\n"
                                                 "return 1\n";

/* KEYS: epoch, servers:<zone>, zones. ARGV: epoch, id, zone */
static const char st_lua_server_del[] =
    ST_FENCE "local n = redis.call('HDEL', KEYS[2], ARGV[2])\n"
             "if redis.call('HLEN', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[3]) end\n"
             "return n\n";

/* KEYS: epoch, events. ARGV: epoch, cap, json */
static const char st_lua_event_add[] =
    ST_FENCE "return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'json', ARGV[3])\n";

/* KEYS: zones. ARGV: prefix of the zone hashes. Every record of every zone. */
static const char st_lua_servers_all[] =
    "local out = {}\n"
    "for _, z in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  for _, v in ipairs(redis.call('HVALS', ARGV[1] .. z)) do out[#out + 1] = v end\n"
    "end\n"
    "return out\n";

/* A TTL in whole milliseconds, rounded up, at least 1. */
static long long st_ttl_ms(double ttl)
{
	long long ms = (long long)(ttl * 1000.0 + 0.999);
	return ms < 1 ? 1 : ms;
}

static double st_now(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static char *st_key(const char *cluster, const char *suffix)
{
	size_t n = strlen(cluster) + strlen(suffix) + 2;
	char *k = malloc(n);
	if (k)
		snprintf(k, n, "%s:%s", cluster, suffix);
	return k;
}

struct store *store_new(struct redis_conn *r, const char *cluster)
{
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->r = r;
	s->cluster = strdup(cluster ? cluster : "scaler");
	s->events_cap = ST_EVENTS_CAP;
	if (s->cluster) {
		s->k_epoch = st_key(s->cluster, "epoch");
		s->k_leader = st_key(s->cluster, "leader");
		s->k_lease = st_key(s->cluster, "lease");
		s->k_zones = st_key(s->cluster, "zones");
		s->k_events = st_key(s->cluster, "events");
		s->k_servers = st_key(s->cluster, "servers:");
	}
	if (!s->cluster || !s->k_epoch || !s->k_leader || !s->k_lease || !s->k_zones ||
	    !s->k_events || !s->k_servers) {
		store_free(s);
		return NULL;
	}
	return s;
}

void store_free(struct store *s)
{
	if (!s)
		return;
	free(s->cluster);
	free(s->k_epoch);
	free(s->k_leader);
	free(s->k_lease);
	free(s->k_zones);
	free(s->k_events);
	free(s->k_servers);
	free(s);
}

void store_set_events_cap(struct store *s, size_t cap)
{
	s->events_cap = cap ? cap : ST_EVENTS_CAP;
}

const char *store_status_name(enum store_status st)
{
	switch (st) {
	case STORE_OK:
		return "ok";
	case STORE_ERR:
		return "error";
	case STORE_STALE:
		return "stale";
	case STORE_NOTFOUND:
		return "not found";
	case STORE_HELD:
		return "held";
	}
	return "unknown";
}

uint64_t store_stale_current(const char *err)
{
	const char *p = err ? strstr(err, "current epoch is ") : NULL;
	return p ? strtoull(p + strlen("current epoch is "), NULL, 10) : 0;
}

/* ---- requests ----------------------------------------------------------- */

struct st_req {
	struct store *s;
	void *arg;
	union {
		store_cb done;
		store_epoch_cb epoch;
		store_leader_cb leader;
		store_lease_cb lease;
		store_servers_cb servers;
		store_events_cb events;
	} cb;
	uint64_t epoch; /* the writer's, for messages */
	char what[96];  /* "put server zone1-ab" */
	char *ref;      /* lease_break: the lease seen */
	/* events_read */
	char *zone;
	size_t max;
	json_t *events;
	char last_id[48];
	char newest[48]; /* events_tail: the stream's newest id */
	int rounds;
};

static struct st_req *st_req_new(struct store *s, void *arg, const char *what)
{
	struct st_req *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->s = s;
	q->arg = arg;
	snprintf(q->what, sizeof(q->what), "%s", what);
	return q;
}

static void st_req_free(struct st_req *q)
{
	free(q->ref);
	free(q->zone);
	json_decref(q->events);
	free(q);
}

static int st_send(struct st_req *q, scaler_redis_cb cb, int argc, const char **argv)
{
	size_t lens[16];
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	if (redis_conn_command_argv(q->s->r, cb, q, argc, argv, lens) < 0) {
		st_req_free(q);
		return -1;
	}
	return 0;
}

/* Classify a reply: STORE_OK, or an error with a sentence in err. */
static enum store_status st_check(const struct st_req *q, const redisReply *reply, char *err,
                                  size_t errlen)
{
	if (!reply) {
		snprintf(err, errlen, "%s: Redis connection lost before the reply", q->what);
		return STORE_ERR;
	}
	if (reply->type != REDIS_REPLY_ERROR)
		return STORE_OK;
	const char *stale = strstr(reply->str, "STALE ");
	if (stale) {
		snprintf(err, errlen, "%s refused: epoch %" PRIu64 " is stale, current epoch is %s",
		         q->what, q->epoch, stale + 6);
		return STORE_STALE;
	}
	snprintf(err, errlen, "%s: Redis replied: %s", q->what, reply->str);
	return STORE_ERR;
}

static int st_reply_u64(const redisReply *reply, uint64_t *out)
{
	char *end;
	switch (reply->type) {
	case REDIS_REPLY_INTEGER:
		if (reply->integer < 0)
			return -1;
		*out = (uint64_t)reply->integer;
		return 0;
	case REDIS_REPLY_NIL:
		*out = 0;
		return 0;
	case REDIS_REPLY_STRING:
	case REDIS_REPLY_STATUS:
		*out = strtoull(reply->str, &end, 10);
		return end == reply->str || *end ? -1 : 0;
	default:
		return -1;
	}
}

/* ---- fenced writes ------------------------------------------------------ */

static void st_done_cb(void *arg, const void *reply_)
{
	struct st_req *q = arg;
	char err[512];
	enum store_status st = st_check(q, reply_, err, sizeof(err));
	if (st == STORE_STALE)
		log_msg(SCALER_LOG_WARNING, "store", "%s", err);
	if (q->cb.done)
		q->cb.done(q->arg, st, st == STORE_OK ? NULL : err);
	st_req_free(q);
}

int store_leader_set(struct store *s, uint64_t epoch, const char *id, const char *url, store_cb cb,
                     void *arg)
{
	char ep[24], what[96];
	snprintf(ep, sizeof(ep), "%" PRIu64, epoch);
	snprintf(what, sizeof(what), "set leader %.60s", id ? id : "");
	struct st_req *q = st_req_new(s, arg, what);
	if (!q)
		return -1;
	q->cb.done = cb;
	q->epoch = epoch;
	const char *argv[] = {"EVAL", st_lua_leader_set, "2",           s->k_epoch, s->k_leader,
	                      ep,     id ? id : "",      url ? url : ""};
	return st_send(q, st_done_cb, 8, argv);
}

int store_server_put(struct store *s, uint64_t epoch, const struct store_server *srv, store_cb cb,
                     void *arg)
{
	struct store_server copy = *srv;
	char ep[24], what[96];
	if (!srv->srv.id[0] || !srv->srv.zone[0] ||
	    (strcmp(srv->state, "starting") != 0 && strcmp(srv->state, "serving") != 0 &&
	     strcmp(srv->state, "deleting") != 0)) {
		log_msg(SCALER_LOG_ERR, "store",
		        "put server \"%.64s\": a record needs an id, a zone and a state of "
		        "starting, serving or deleting (got \"%.16s\")",
		        srv->srv.id, srv->state);
		return -1;
	}
	copy.updated = st_now();
	json_t *j = store_server_to_json(&copy);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text)
		return -1;
	snprintf(ep, sizeof(ep), "%" PRIu64, epoch);
	snprintf(what, sizeof(what), "put server %.60s (%s)", srv->srv.id, srv->state);
	struct st_req *q = st_req_new(s, arg, what);
	char *hkey = q ? malloc(strlen(s->k_servers) + strlen(srv->srv.zone) + 1) : NULL;
	if (!hkey) {
		free(text);
		if (q)
			st_req_free(q);
		return -1;
	}
	sprintf(hkey, "%s%s", s->k_servers, srv->srv.zone);
	q->cb.done = cb;
	q->epoch = epoch;
	const char *argv[] = {"EVAL", st_lua_server_put, "3",  s->k_epoch,   hkey, s->k_zones,
	                      ep,     srv->srv.id,       text, srv->srv.zone};
	int rc = st_send(q, st_done_cb, 10, argv);
	free(hkey);
	free(text);
	return rc;
}

int store_server_del(struct store *s, uint64_t epoch, const char *zone, const char *id, store_cb cb,
                     void *arg)
{
	char ep[24], what[96];
	if (!zone || !*zone || !id || !*id)
		return -1;
	snprintf(ep, sizeof(ep), "%" PRIu64, epoch);
	snprintf(what, sizeof(what), "delete server %.60s", id);
	struct st_req *q = st_req_new(s, arg, what);
	char *hkey = q ? malloc(strlen(s->k_servers) + strlen(zone) + 1) : NULL;
	if (!hkey) {
		if (q)
			st_req_free(q);
		return -1;
	}
	sprintf(hkey, "%s%s", s->k_servers, zone);
	q->cb.done = cb;
	q->epoch = epoch;
	const char *argv[] = {"EVAL", st_lua_server_del, "3", s->k_epoch, hkey, s->k_zones, ep, id,
	                      zone};
	int rc = st_send(q, st_done_cb, 9, argv);
	free(hkey);
	return rc;
}

/* ---- epoch and leader --------------------------------------------------- */

static void st_epoch_cb(void *arg, const void *reply_)
{
	struct st_req *q = arg;
	const redisReply *reply = reply_;
	char err[512];
	uint64_t epoch = 0;
	enum store_status st = st_check(q, reply, err, sizeof(err));
	if (st == STORE_OK && st_reply_u64(reply, &epoch) < 0) {
		snprintf(err, sizeof(err), "%s: the epoch in Redis is not a number", q->what);
		st = STORE_ERR;
	}
	if (q->cb.epoch)
		q->cb.epoch(q->arg, st, epoch, st == STORE_OK ? NULL : err);
	st_req_free(q);
}

int store_epoch_take(struct store *s, store_epoch_cb cb, void *arg)
{
	struct st_req *q = st_req_new(s, arg, "take epoch");
	if (!q)
		return -1;
	q->cb.epoch = cb;
	const char *argv[] = {"INCR", s->k_epoch};
	return st_send(q, st_epoch_cb, 2, argv);
}

int store_epoch_get(struct store *s, store_epoch_cb cb, void *arg)
{
	struct st_req *q = st_req_new(s, arg, "read epoch");
	if (!q)
		return -1;
	q->cb.epoch = cb;
	const char *argv[] = {"GET", s->k_epoch};
	return st_send(q, st_epoch_cb, 2, argv);
}

static void st_leader_cb(void *arg, const void *reply_)
{
	struct st_req *q = arg;
	const redisReply *reply = reply_;
	char err[512];
	struct store_leader l;
	uint64_t current = 0;
	enum store_status st = st_check(q, reply, err, sizeof(err));
	memset(&l, 0, sizeof(l));
	if (st == STORE_OK) {
		if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 ||
		    st_reply_u64(reply->element[0], &current) < 0) {
			log_msg(SCALER_LOG_ERR, "store",
			        "read leader: unexpected reply from Redis");
			st = STORE_ERR;
		} else if (reply->element[1]->type != REDIS_REPLY_STRING) {
			st = STORE_NOTFOUND;
		} else {
			snprintf(l.id, sizeof(l.id), "%s", reply->element[1]->str);
			if (reply->element[2]->type == REDIS_REPLY_STRING)
				snprintf(l.url, sizeof(l.url), "%s", reply->element[2]->str);
			if (st_reply_u64(reply->element[3], &l.epoch) < 0)
				l.epoch = 0;
		}
	} else {
		log_msg(SCALER_LOG_WARNING, "store", "%s", err);
	}
	if (q->cb.leader)
		q->cb.leader(q->arg, st, st == STORE_OK ? &l : NULL, current);
	st_req_free(q);
}

int store_leader_get(struct store *s, store_leader_cb cb, void *arg)
{
	struct st_req *q = st_req_new(s, arg, "read leader");
	if (!q)
		return -1;
	q->cb.leader = cb;
	const char *argv[] = {"EVAL", st_lua_leader_get, "2", s->k_epoch, s->k_leader};
	return st_send(q, st_leader_cb, 5, argv);
}

/* ---- the primary's lease ------------------------------------------------ */

static void st_lease_cb(void *arg, const void *reply_)
{
	struct st_req *q = arg;
	const redisReply *reply = reply_;
	char err[512];
	struct store_lease l;
	enum store_status st = st_check(q, reply, err, sizeof(err));
	memset(&l, 0, sizeof(l));
	if (st == STORE_OK && (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 ||
	                       reply->element[0]->type != REDIS_REPLY_STRING ||
	                       st_reply_u64(reply->element[1], &l.current_epoch) < 0)) {
		snprintf(err, sizeof(err), "%s: unexpected reply from Redis", q->what);
		st = STORE_ERR;
	}
	if (st == STORE_OK) {
		const redisReply *v = reply->element[2], *ttl = reply->element[3];
		unsigned long long epoch = 0, cid = 0;
		int n = 0;
		if (strcmp(reply->element[0]->str, "HELD") == 0)
			st = STORE_HELD;
		else if (strcmp(reply->element[0]->str, "STALE") == 0)
			st = STORE_STALE;
		if (v->type == REDIS_REPLY_STRING && v->len < sizeof(l.ref) &&
		    sscanf(v->str, "%63s %llu %llu%n", l.holder, &epoch, &cid, &n) == 3 &&
		    (size_t)n == v->len) {
			snprintf(l.ref, sizeof(l.ref), "%s", v->str);
			l.epoch = epoch;
			if (ttl->type == REDIS_REPLY_INTEGER && ttl->integer > 0)
				l.remaining = (double)ttl->integer / 1000.0;
		} else {
			l.holder[0] = '\0';
		}
	} else {
		log_msg(SCALER_LOG_WARNING, "store", "%s", err);
	}
	if (q->cb.lease)
		q->cb.lease(q->arg, st, st == STORE_ERR ? NULL : &l);
	st_req_free(q);
}

/* EVAL a lease script: KEYS epoch, leader, lease; ARGV args[0..nargs). */
static int st_lease_eval(struct store *s, const char *what, const char *script,
                         const char *const *args, int nargs, store_lease_cb cb, void *arg)
{
	const char *argv[10] = {"EVAL", script, "3", s->k_epoch, s->k_leader, s->k_lease};
	struct st_req *q;
	if (nargs > 4 || !(q = st_req_new(s, arg, what)))
		return -1;
	q->cb.lease = cb;
	for (int i = 0; i < nargs; i++)
		argv[6 + i] = args[i];
	return st_send(q, st_lease_cb, 6 + nargs, argv);
}

int store_lease_take(struct store *s, const char *id, const char *url, double ttl,
                     store_lease_cb cb, void *arg)
{
	char ms[24], cid[24];
	snprintf(ms, sizeof(ms), "%lld", st_ttl_ms(ttl));
	snprintf(cid, sizeof(cid), "%llu", redis_conn_client_id(s->r));
	const char *args[] = {id, url ? url : "", ms, cid};
	return st_lease_eval(s, "take the lead", st_lua_lease_take, args, 4, cb, arg);
}

int store_lease_renew(struct store *s, const char *id, uint64_t epoch, double ttl,
                      store_lease_cb cb, void *arg)
{
	char ep[24], ms[24], cid[24];
	snprintf(ep, sizeof(ep), "%" PRIu64, epoch);
	snprintf(ms, sizeof(ms), "%lld", st_ttl_ms(ttl));
	snprintf(cid, sizeof(cid), "%llu", redis_conn_client_id(s->r));
	const char *args[] = {id, ep, ms, cid};
	return st_lease_eval(s, "renew the lease", st_lua_lease_renew, args, 4, cb, arg);
}

int store_lease_release(struct store *s, const char *id, uint64_t epoch, store_lease_cb cb,
                        void *arg)
{
	char ep[24];
	snprintf(ep, sizeof(ep), "%" PRIu64, epoch);
	const char *args[] = {id, ep};
	return st_lease_eval(s, "release the lease", st_lua_lease_release, args, 2, cb, arg);
}

int store_lease_get(struct store *s, store_lease_cb cb, void *arg)
{
	return st_lease_eval(s, "read the lease", st_lua_lease_get, NULL, 0, cb, arg);
}

/* lease_break, second step: CLIENT LIST ID answered. An empty list means
 * the holder's connection is gone: drop the lease if it is still that one. */
static void st_lease_client_cb(void *arg, const void *reply_)
{
	struct st_req *q = arg;
	const redisReply *reply = reply_;
	char err[512];
	enum store_status st = st_check(q, reply, err, sizeof(err));
	if (st == STORE_OK && reply->type == REDIS_REPLY_STRING && reply->len == 0) {
		const char *args[] = {q->ref};
		if (st_lease_eval(q->s, q->what, st_lua_lease_break, args, 1, q->cb.lease,
		                  q->arg) == 0) {
			st_req_free(q);
			return;
		}
		snprintf(err, sizeof(err), "%s: Redis connection lost", q->what);
		st = STORE_ERR;
	} else if (st == STORE_OK) {
		st = STORE_HELD; /* the holder is still connected */
	} else {
		log_msg(SCALER_LOG_WARNING, "store", "%s", err);
	}
	if (q->cb.lease)
		q->cb.lease(q->arg, st, NULL);
	st_req_free(q);
}

int store_lease_break(struct store *s, const char *ref, store_lease_cb cb, void *arg)
{
	unsigned long long epoch, cid;
	char holder[64], id[24];
	int n = 0;
	struct st_req *q;
	if (!ref || sscanf(ref, "%63s %llu %llu%n", holder, &epoch, &cid, &n) != 3 ||
	    (size_t)n != strlen(ref) || cid == 0)
		return -1; /* no connection to ask about */
	if (!(q = st_req_new(s, arg, "break a lease")) || !(q->ref = strdup(ref))) {
		if (q)
			st_req_free(q);
		return -1;
	}
	q->cb.lease = cb;
	snprintf(id, sizeof(id), "%llu", cid);
	const char *argv[] = {"CLIENT", "LIST", "ID", id};
	return st_send(q, st_lease_client_cb, 4, argv);
}

/* ---- server records ----------------------------------------------------- */

static int st_copy(char *dst, size_t dstlen, json_t *v, int required)
{
	if (!v) {
		if (required)
			return -1;
		dst[0] = '\0';
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) >= dstlen ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return -1;
	memcpy(dst, json_string_value(v), json_string_length(v) + 1);
	return required && !dst[0] ? -1 : 0;
}

static int st_number(double *dst, json_t *v)
{
	if (!v) {
		*dst = 0;
		return 0;
	}
	if (!json_is_number(v))
		return -1;
	*dst = json_number_value(v);
	return *dst < 0 ? -1 : 0;
}

json_t *store_server_to_json(const struct store_server *srv)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:f, s:s, s:s, s:f}", "id", srv->srv.id, "zone",
	                 srv->srv.zone, "address", srv->srv.address, "ref", srv->srv.ref, "created",
	                 srv->srv.created, "driver", srv->driver, "state", srv->state, "updated",
	                 srv->updated);
}

int store_server_from_json(json_t *j, struct store_server *srv)
{
	struct store_server out;
	memset(&out, 0, sizeof(out));
	if (!json_is_object(j))
		return -1;
	if (st_copy(out.srv.id, sizeof(out.srv.id), json_object_get(j, "id"), 1) < 0 ||
	    st_copy(out.srv.zone, sizeof(out.srv.zone), json_object_get(j, "zone"), 1) < 0 ||
	    st_copy(out.srv.address, sizeof(out.srv.address), json_object_get(j, "address"), 0) <
	        0 ||
	    st_copy(out.srv.ref, sizeof(out.srv.ref), json_object_get(j, "ref"), 0) < 0 ||
	    st_copy(out.driver, sizeof(out.driver), json_object_get(j, "driver"), 0) < 0 ||
	    st_copy(out.state, sizeof(out.state), json_object_get(j, "state"), 1) < 0 ||
	    st_number(&out.srv.created, json_object_get(j, "created")) < 0 ||
	    st_number(&out.updated, json_object_get(j, "updated")) < 0)
		return -1;
	if (strcmp(out.state, "starting") != 0 && strcmp(out.state, "serving") != 0 &&
	    strcmp(out.state, "deleting") != 0)
		return -1;
	out.srv.running = 0;
	*srv = out;
	return 0;
}

static void st_servers_cb(void *arg, const void *reply_)
{
	struct st_req *q = arg;
	const redisReply *reply = reply_;
	char err[512];
	struct store_server *list = NULL;
	size_t n = 0;
	enum store_status st = st_check(q, reply, err, sizeof(err));
	if (st == STORE_OK && reply->type != REDIS_REPLY_ARRAY) {
		snprintf(err, sizeof(err), "%s: unexpected reply from Redis", q->what);
		st = STORE_ERR;
	}
	if (st == STORE_OK && reply->elements) {
		list = calloc(reply->elements, sizeof(*list));
		if (!list) {
			snprintf(err, sizeof(err), "%s: out of memory", q->what);
			st = STORE_ERR;
		}
	}
	for (size_t i = 0; st == STORE_OK && i < reply->elements; i++) {
		const redisReply *e = reply->element[i];
		json_error_t jerr;
		json_t *j =
		    e->type == REDIS_REPLY_STRING ? json_loadb(e->str, e->len, 0, &jerr) : NULL;
		if (store_server_from_json(j, &list[n]) == 0)
			n++;
		else
			log_msg(SCALER_LOG_WARNING, "store",
			        "%s: skipping a malformed record: %.200s", q->what,
			        e->type == REDIS_REPLY_STRING ? e->str : "(not a string)");
		json_decref(j);
	}
	if (st != STORE_OK)
		log_msg(SCALER_LOG_WARNING, "store", "%s", err);
	if (q->cb.servers)
		q->cb.servers(q->arg, st, list, n);
	free(list);
	st_req_free(q);
}

int store_servers_list(struct store *s, const char *zone, store_servers_cb cb, void *arg)
{
	struct st_req *q = st_req_new(s, arg, "list servers");
	if (!q)
		return -1;
	q->cb.servers = cb;
	if (!zone) {
		const char *argv[] = {"EVAL", st_lua_servers_all, "1", s->k_zones, s->k_servers};
		return st_send(q, st_servers_cb, 5, argv);
	}
	char *hkey = malloc(strlen(s->k_servers) + strlen(zone) + 1);
	if (!hkey) {
		st_req_free(q);
		return -1;
	}
	sprintf(hkey, "%s%s", s->k_servers, zone);
	const char *argv[] = {"HVALS", hkey};
	int rc = st_send(q, st_servers_cb, 2, argv);
	free(hkey);
	return rc;
}

/* ---- events ------------------------------------------------------------- */

int store_event_add(struct store *s, const char *zone, const char *kind, int from, int to,
                    const char *reason, json_t *extra, store_cb cb, void *arg)
{
	return store_event_add_fenced(s, 0, zone, kind, from, to, reason, extra, cb, arg);
}

int store_event_add_fenced(struct store *s, uint64_t epoch, const char *zone, const char *kind,
                           int from, int to, const char *reason, json_t *extra, store_cb cb,
                           void *arg)
{
	char cap[24], ep[24];
	json_t *ev =
	    json_pack("{s:f, s:s?, s:s, s:i, s:i, s:s}", "time", st_now(), "zone", zone, "kind",
	              kind ? kind : "", "from", from, "to", to, "reason", reason ? reason : "");
	if (!ev)
		return -1;
	if (extra && json_is_object(extra))
		json_object_update_missing(ev, extra);
	char *text = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	struct st_req *q = text ? st_req_new(s, arg, "add event") : NULL;
	if (!q) {
		free(text);
		return -1;
	}
	q->cb.done = cb;
	q->epoch = epoch;
	snprintf(cap, sizeof(cap), "%zu", s->events_cap);
	int rc;
	if (epoch) {
		snprintf(ep, sizeof(ep), "%llu", (unsigned long long)epoch);
		const char *argv[] = {
		    "EVAL", st_lua_event_add, "2", s->k_epoch, s->k_events, ep, cap, text};
		rc = st_send(q, st_done_cb, 8, argv);
	} else {
		const char *argv[] = {"XADD", s->k_events, "MAXLEN", "~", cap, "*", "json", text};
		rc = st_send(q, st_done_cb, 8, argv);
	}
	free(text);
	return rc;
}

static void st_events_finish(struct st_req *q, enum store_status st)
{
	if (q->cb.events)
		q->cb.events(q->arg, st, st == STORE_OK ? q->events : NULL, q->last_id);
	st_req_free(q);
}

static int st_events_next(struct st_req *q);

/* One entry: [id, [field, value, ...]] */
static void st_events_entry(struct st_req *q, const redisReply *e)
{
	if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING)
		return;
	snprintf(q->last_id, sizeof(q->last_id), "%s", e->element[0]->str);
	const redisReply *f = e->element[1];
	if (f->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t i = 0; i + 1 < f->elements; i += 2) {
		if (f->element[i]->type != REDIS_REPLY_STRING ||
		    strcmp(f->element[i]->str, "json") != 0 ||
		    f->element[i + 1]->type != REDIS_REPLY_STRING)
			continue;
		json_error_t jerr;
		json_t *ev = json_loadb(f->element[i + 1]->str, f->element[i + 1]->len, 0, &jerr);
		if (!json_is_object(ev)) {
			json_decref(ev);
			continue;
		}
		json_t *z = json_object_get(ev, "zone");
		if (q->zone && !(json_is_string(z) && strcmp(json_string_value(z), q->zone) == 0)) {
			json_decref(ev);
			continue;
		}
		json_object_set_new(ev, "id", json_string(e->element[0]->str));
		if (json_array_size(q->events) < q->max)
			json_array_append(q->events, ev);
		json_decref(ev);
	}
}

static void st_events_cb(void *arg, const void *reply_)
{
	struct st_req *q = arg;
	const redisReply *reply = reply_;
	char err[512];
	size_t got = 0;
	enum store_status st = st_check(q, reply, err, sizeof(err));
	if (st != STORE_OK) {
		log_msg(SCALER_LOG_WARNING, "store", "%s", err);
		st_events_finish(q, st);
		return;
	}
	/* XREAD: nil or [[key, [entry, ...]]] */
	if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
	    reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2) {
		const redisReply *entries = reply->element[0]->element[1];
		if (entries->type == REDIS_REPLY_ARRAY) {
			got = entries->elements;
			for (size_t i = 0;
			     i < entries->elements && json_array_size(q->events) < q->max; i++)
				st_events_entry(q, entries->element[i]);
		}
	}
	size_t batch = q->max < ST_EVENTS_BATCH_MAX ? q->max : ST_EVENTS_BATCH_MAX;
	/* filtered by zone: keep reading while batches come back full */
	if (q->zone && got >= batch && json_array_size(q->events) < q->max &&
	    ++q->rounds < ST_EVENTS_ROUNDS && st_events_next(q) == 0)
		return;
	st_events_finish(q, STORE_OK);
}

static int st_events_next(struct st_req *q)
{
	char count[24];
	size_t batch = q->max < ST_EVENTS_BATCH_MAX ? q->max : ST_EVENTS_BATCH_MAX;
	snprintf(count, sizeof(count), "%zu", batch);
	const char *argv[] = {"XREAD", "COUNT", count, "STREAMS", q->s->k_events, q->last_id};
	size_t lens[6];
	for (int i = 0; i < 6; i++)
		lens[i] = strlen(argv[i]);
	return redis_conn_command_argv(q->s->r, st_events_cb, q, 6, argv, lens);
}

/* "$": no events, only the id to read after next time. */
static void st_events_last_cb(void *arg, const void *reply_)
{
	struct st_req *q = arg;
	const redisReply *reply = reply_;
	char err[512];
	enum store_status st = st_check(q, reply, err, sizeof(err));
	snprintf(q->last_id, sizeof(q->last_id), "0-0");
	if (st == STORE_OK && reply->type == REDIS_REPLY_ARRAY && reply->elements == 1) {
		const redisReply *e = reply->element[0];
		if (e->type == REDIS_REPLY_ARRAY && e->elements >= 1 &&
		    e->element[0]->type == REDIS_REPLY_STRING)
			snprintf(q->last_id, sizeof(q->last_id), "%s", e->element[0]->str);
	}
	if (st != STORE_OK)
		log_msg(SCALER_LOG_WARNING, "store", "%s", err);
	st_events_finish(q, st);
}

static int st_events_back(struct st_req *q);

/* XREVRANGE: [entry, ...], newest first; last_id moves to the oldest read. */
static void st_events_tail_cb(void *arg, const void *reply_)
{
	struct st_req *q = arg;
	const redisReply *reply = reply_;
	char err[512];
	enum store_status st = st_check(q, reply, err, sizeof(err));
	size_t got = 0;
	if (st != STORE_OK) {
		log_msg(SCALER_LOG_WARNING, "store", "%s", err);
		st_events_finish(q, st);
		return;
	}
	if (reply->type == REDIS_REPLY_ARRAY) {
		got = reply->elements;
		for (size_t i = 0; i < reply->elements && json_array_size(q->events) < q->max;
		     i++) {
			const redisReply *e = reply->element[i];
			if (!q->newest[0] && e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
			    e->element[0]->type == REDIS_REPLY_STRING)
				snprintf(q->newest, sizeof(q->newest), "%s", e->element[0]->str);
			st_events_entry(q, e);
		}
	}
	/* filtered by zone: keep reading back while batches come back full */
	if (q->zone && got >= ST_EVENTS_BATCH_MAX && json_array_size(q->events) < q->max &&
	    ++q->rounds < ST_EVENTS_ROUNDS && st_events_back(q) == 0)
		return;
	/* oldest first, as every other read */
	size_t n = json_array_size(q->events);
	json_t *rev = json_array();
	for (size_t i = n; rev && i > 0; i--)
		json_array_append(rev, json_array_get(q->events, i - 1));
	if (rev) {
		json_decref(q->events);
		q->events = rev;
	}
	snprintf(q->last_id, sizeof(q->last_id), "%s", q->newest[0] ? q->newest : "0-0");
	st_events_finish(q, STORE_OK);
}

static int st_events_back(struct st_req *q)
{
	char count[24], end[64];
	snprintf(count, sizeof(count), "%zu", q->zone ? (size_t)ST_EVENTS_BATCH_MAX : q->max);
	if (q->newest[0])
		snprintf(end, sizeof(end), "(%s", q->last_id); /* exclusive (Redis 6.2) */
	else
		snprintf(end, sizeof(end), "+");
	const char *argv[] = {"XREVRANGE", q->s->k_events, end, "-", "COUNT", count};
	size_t lens[6];
	for (int i = 0; i < 6; i++)
		lens[i] = strlen(argv[i]);
	return redis_conn_command_argv(q->s->r, st_events_tail_cb, q, 6, argv, lens);
}

int store_events_tail(struct store *s, const char *zone, size_t max, store_events_cb cb, void *arg)
{
	struct st_req *q = st_req_new(s, arg, "read the newest events");
	if (!q)
		return -1;
	q->cb.events = cb;
	q->max = max ? max : 1;
	if (q->max > ST_EVENTS_BATCH_MAX)
		q->max = ST_EVENTS_BATCH_MAX;
	q->events = json_array();
	q->zone = zone ? strdup(zone) : NULL;
	if (!q->events || (zone && !q->zone) || st_events_back(q) < 0) {
		st_req_free(q);
		return -1;
	}
	return 0;
}

int store_events_read(struct store *s, const char *zone, const char *after, size_t max,
                      store_events_cb cb, void *arg)
{
	struct st_req *q = st_req_new(s, arg, "read events");
	if (!q)
		return -1;
	q->cb.events = cb;
	q->max = max ? max : ST_EVENTS_BATCH_MAX;
	q->events = json_array();
	q->zone = zone ? strdup(zone) : NULL;
	if (!after || !*after)
		after = "0";
	snprintf(q->last_id, sizeof(q->last_id), "%s", after);
	if (!q->events || (zone && !q->zone) || strlen(after) >= sizeof(q->last_id)) {
		st_req_free(q);
		return -1;
	}
	if (strcmp(after, "$") == 0) {
		const char *argv[] = {"XREVRANGE", s->k_events, "+", "-", "COUNT", "1"};
		return st_send(q, st_events_last_cb, 6, argv);
	}
	if (st_events_next(q) < 0) {
		st_req_free(q);
		return -1;
	}
	return 0;
}
