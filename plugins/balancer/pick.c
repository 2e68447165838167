/* Which alive server takes a request: the balancing algorithm over the
 * alive pool, then slow start.
 *
 * Slow start (HAProxy's `slowstart`): a server that joins the alive pool
 * (from pending after a scale-up, back from disconnected or from an
 * ejection) has a weight w rising linearly from 0 to 1 over slow_start
 * seconds, and takes a share w of the requests the algorithm hands it; the
 * rest go to the algorithm's next choice. With round robin over n servers
 * that is a share w / (n − 1 + w), the weighted share; the least_conn and
 * random2 choices are thinned the same way. The share is taken by a credit
 * (w added per offer, one spent per request taken), not by a coin, so it
 * is exact over a handful of requests. A ramping server is never refused
 * when it is the only choice: weights are relative. */
#include "config.h"

#include "bal.h"

#define PK_MAX_EXCLUDED 16
/* The weight a server starts from: its first requests come after 1/w offers. */
#define PK_RAMP_MIN 0.01

static int pk_excluded(struct server *const *ex, int nex, const struct server *s)
{
	for (int k = 0; k < nex; k++)
		if (ex[k] == s)
			return 1;
	return 0;
}

/* The algorithm's choice among the alive servers not in ex. */
static struct server *pk_algo(struct bal *b, struct server *const *ex, int nex)
{
	int n = b->nalive;
	if (n == 0)
		return NULL;
	if (b->conf.algo == BAL_RANDOM2 && n > 1) {
		struct server *x = b->alive[bal_random(b) % (unsigned)n];
		struct server *y = b->alive[bal_random(b) % (unsigned)n];
		if (y->active < x->active)
			x = y;
		if (!pk_excluded(ex, nex, x))
			return x;
	}
	if (b->conf.algo == BAL_LEAST_CONN) {
		struct server *best = NULL;
		unsigned start = b->rr++;
		for (int i = 0; i < n; i++) {
			struct server *s = b->alive[(start + (unsigned)i) % (unsigned)n];
			if (!pk_excluded(ex, nex, s) && (!best || s->active < best->active))
				best = s;
		}
		return best;
	}
	for (int i = 0; i < n; i++) {
		struct server *s = b->alive[b->rr++ % (unsigned)n];
		if (!pk_excluded(ex, nex, s))
			return s;
	}
	return NULL;
}

static void pk_ramp_end(struct server *s)
{
	if (!s->ramp_since)
		return;
	s->ramp_since = 0;
	s->b->nramping--;
}

double pick_weight(struct server *s, double now)
{
	if (!s->ramp_since)
		return 1.0;
	double w = (now - s->ramp_since) / s->b->conf.slow_start;
	if (w >= 1.0) {
		pk_ramp_end(s);
		return 1.0;
	}
	return w < PK_RAMP_MIN ? PK_RAMP_MIN : w;
}

/* Whether s, offered a request by the algorithm, takes it. */
static int pk_ramp_takes(struct server *s, double now)
{
	double w = pick_weight(s, now);
	if (w >= 1.0)
		return 1;
	s->ramp_credit += w;
	if (s->ramp_credit < 1.0)
		return 0;
	s->ramp_credit -= 1.0;
	return 1;
}

struct server *srv_pick(struct bal *b, struct server *const *tried, int ntried)
{
	struct server *ex[PK_MAX_EXCLUDED];
	int nex = ntried < 8 ? ntried : 8;
	for (int k = 0; k < nex; k++)
		ex[k] = tried[k];
	struct server *s = pk_algo(b, ex, nex);
	if (!s || b->nramping == 0)
		return s;
	double now = ev_now(b->loop);
	struct server *first = s;
	while (s && s->ramp_since && !pk_ramp_takes(s, now)) {
		if (nex == PK_MAX_EXCLUDED)
			return s;
		ex[nex++] = s;
		s = pk_algo(b, ex, nex);
	}
	return s ? s : first;
}

void pick_joined(struct server *s)
{
	struct bal *b = s->b;
	if (b->conf.slow_start <= 0 || s->ramp_since)
		return;
	s->ramp_since = ev_now(b->loop);
	s->ramp_credit = 0;
	b->nramping++;
}

void pick_forget(struct server *s)
{
	pk_ramp_end(s);
}
