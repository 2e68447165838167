/* The board: what the workers of one zone share, in memory scalerd keeps
 * for them (the memfd of scaler_zone_worker.shared_fd), so that N workers
 * on the zone's address are one balancer, and a worker that restarts finds
 * what the one before it knew.
 *
 * Worker 0 (the lead) owns the server table: it alone checks the servers'
 * health, reports the dead ones, serves the admin API and writes the
 * table; the others (followers) read it when woken, and tell worker 0 of a
 * connection that failed through a small ring of reports. Each worker
 * writes only its own row of counters (per zone and per server), which the
 * admin API adds up. So health-check traffic does not grow with N, a push
 * reaches every worker through one write, and every write has one writer:
 * no lock anywhere, a seqlock per entry for the readers.
 *
 * GET /stats asks every worker to publish its window of each server (a
 * request number in the header, the answer in its row), then adds them up.
 *
 * The header also holds the zone's TLS session ticket keys (tls.c): set up
 * by the first worker (from the board a reload replaced, when it has
 * some), rotated by worker 0, read by every worker at each ticket.
 *
 * Layout: header | entries[max_servers] | workers[n] | ctr[n][max_servers]
 * | win[n][max_servers]. Only the pages of servers in use are ever touched.
 * The memory lives while the zone's workers keep their settings; a reload
 * that changes them gives the new workers the old board to start from
 * (board_restore). */
#include "config.h"

#include "bal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define BOARD_MAGIC 0x31647262656c6173ull /* "salebrd1" */
#define BOARD_REPORTS 64                  /* reports a follower may have unread */
#define BOARD_SETUP_WAIT 1.0              /* for a board another worker sets up */
#define BOARD_GATHER_WAIT 0.3             /* for the workers' statistics windows */
#define BOARD_GATHERS 16                  /* GET /stats waiting at once */

enum { BOARD_NEW, BOARD_SETTING_UP, BOARD_SET };

struct board_entry {
	uint32_t seq; /* odd while worker 0 writes the entry */
	uint32_t inc; /* incarnation: bumped whenever the entry takes a server */
	uint64_t ver; /* the header's gen when it was last written */
	uint8_t used;
	uint8_t state;
	uint16_t pad;
	int32_t fails, rechecks;
	double last_check;
	uint32_t addrlen; /* the resolved address, 0 until then */
	uint32_t pad2;
	struct sockaddr_storage addr;
	char url[256];
	char last_error[160];
};

struct board_report {
	uint32_t entry, inc;
	char why[120];
};

struct board_worker {
	int32_t pid;       /* of the worker in this row, 0 when none ran */
	uint32_t holding;  /* this worker holds requests */
	uint64_t rhead;    /* reports written */
	uint64_t answered; /* the last statistics request it answered */
	double uptime;     /* when it answered: seconds it had served */
	struct bal_stats st;
	int32_t nconns, nupstream, nheld, pad;
	struct board_report rep[BOARD_REPORTS];
};

struct board_hdr {
	uint64_t magic;
	uint32_t state; /* enum: set up once by the first worker */
	uint32_t layout;
	uint32_t max_servers, nworkers, windows;
	uint32_t ready; /* the server set is known */
	uint64_t size;
	uint64_t gen;      /* bumped by every write of worker 0 */
	uint32_t nentries; /* entries [0, nentries) were ever used */
	uint32_t mseq;     /* seqlock of the primary's URL and epoch */
	uint64_t monitor_epoch;
	char monitor_url[256];
	uint64_t stats_req; /* GET /stats: the request every worker answers */
	double stats_window;
	uint32_t tstate; /* the TLS session ticket keys: BOARD_NEW, _SETTING_UP, _SET */
	uint32_t tseq;   /* their seqlock */
	struct tls_tickets tickets;
};

struct board_gather {
	struct http_exchange *x;
	double window;
	void (*done)(struct bal *b, struct http_exchange *x, double window, int complete);
};

struct board {
	struct bal *b;
	struct board_hdr *h;
	size_t size;
	struct board_entry *entries;
	struct board_worker *workers;
	struct board_ctr *ctr;  /* [worker][entry] */
	struct st_window *win;  /* [worker][entry], NULL without statistics */
	struct board_hdr *prev; /* the replaced set's board, while restoring */
	size_t prev_size;
	int *wake;       /* every worker's wake fd */
	ev_io wake_io;   /* this worker's */
	ev_prepare kick; /* wake the others once per loop iteration */
	int kick_followers, kick_lead;
	uint64_t seen_gen; /* follower: the table as of this gen is applied */
	uint32_t seen_mseq;
	struct server **by_entry; /* this worker's server of each entry */
	uint32_t free_hint;       /* worker 0: no entry below it is free */
	uint64_t *rtail;          /* worker 0: reports read, per worker */
	/* GET /stats in progress (worker 0) */
	struct board_gather gathers[BOARD_GATHERS];
	int ngathers;
	uint64_t gather_req;
	ev_timer gather_timer;
	double gather_since;
};

static uint32_t board_layout(void)
{
	/* the sizes of what is shared: a build whose structs differ never
	 * reads another's board */
	return (uint32_t)(sizeof(struct board_hdr) * 31 + sizeof(struct board_entry) * 131 +
	                  sizeof(struct board_worker) * 7 + sizeof(struct board_ctr) * 17 +
	                  sizeof(struct st_window) * 3) ^
	       2u;
}

static size_t board_align(size_t n)
{
	return (n + 63) & ~(size_t)63;
}

/* Offsets of the arrays for a board of this shape. */
static void board_offsets(uint32_t max, uint32_t n, int windows, size_t *o_entries,
                          size_t *o_workers, size_t *o_ctr, size_t *o_win, size_t *size)
{
	*o_entries = board_align(sizeof(struct board_hdr));
	*o_workers = board_align(*o_entries + (size_t)max * sizeof(struct board_entry));
	*o_ctr = board_align(*o_workers + (size_t)n * sizeof(struct board_worker));
	*o_win = board_align(*o_ctr + (size_t)n * max * sizeof(struct board_ctr));
	*size = board_align(*o_win + (windows ? (size_t)n * max * sizeof(struct st_window) : 0));
}

static struct board_worker *board_row(struct board *d, int w)
{
	return &d->workers[w];
}

static struct board_ctr *board_ctr_at(const struct board *d, int w, uint32_t entry)
{
	return &d->ctr[(size_t)w * d->h->max_servers + entry];
}

static struct st_window *board_win_at(const struct board *d, int w, uint32_t entry)
{
	return &d->win[(size_t)w * d->h->max_servers + entry];
}

/* ---- seqlocks ------------------------------------------------------------ */

static void seq_write_begin(uint32_t *seq)
{
	__atomic_store_n(seq, *seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void seq_write_end(uint32_t *seq)
{
	__atomic_store_n(seq, *seq + 1, __ATOMIC_RELEASE);
}

/* Copy n bytes at src (guarded by *seq) into dst: 0, or -1 when the
 * writer was in the middle of it (try again). */
static int seq_read(const uint32_t *seq, void *dst, const void *src, size_t n)
{
	uint32_t a = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
	if (a & 1)
		return -1;
	memcpy(dst, src, n);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return __atomic_load_n(seq, __ATOMIC_RELAXED) == a ? 0 : -1;
}

static int entry_read(const struct board_entry *e, struct board_entry *out)
{
	for (int i = 0; i < 1000; i++)
		if (seq_read(&e->seq, out, e, sizeof(*out)) == 0)
			return 0;
	return -1; /* a writer that died in the middle: skip it */
}

/* ---- waking each other ---------------------------------------------------- */

static void board_wake_fd(int fd)
{
	uint64_t one = 1;
	/* EAGAIN: the counter is full, the worker is woken anyway */
	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
		return;
}

/* Before the loop sleeps: wake who must look at the board, once. */
static void board_on_prepare(struct ev_loop *loop, ev_prepare *p, int revents)
{
	struct board *d = p->data;
	(void)loop;
	(void)revents;
	if (d->kick_followers)
		for (int i = 1; i < d->b->nworkers; i++)
			board_wake_fd(d->wake[i]);
	if (d->kick_lead)
		board_wake_fd(d->wake[0]);
	d->kick_followers = d->kick_lead = 0;
}

static void board_sync(struct board *d);
static void board_lead_reports(struct board *d);
static void board_answer_stats(struct board *d);
static void board_gather_check(struct board *d);

static void board_on_wake(struct ev_loop *loop, ev_io *io, int revents)
{
	struct board *d = io->data;
	uint64_t n;
	(void)loop;
	(void)revents;
	if (read(io->fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	if (d->b->follower) {
		board_sync(d);
		board_answer_stats(d);
	} else {
		board_lead_reports(d);
		board_gather_check(d);
	}
}

/* ---- open ------------------------------------------------------------------ */

static void *board_map(int fd, size_t size, int prot)
{
	void *p = mmap(NULL, size, prot, MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* Unmap and free what board_open made (as far as it got). */
static void board_free(struct board *d)
{
	if (d->h)
		munmap(d->h, d->size);
	if (d->prev)
		munmap(d->prev, d->prev_size);
	free(d->by_entry);
	free(d->rtail);
	free(d->wake);
	free(d);
}

int board_open(struct bal *b, const struct scaler_zone_worker *w, char *err, size_t errlen)
{
	struct board *d = calloc(1, sizeof(*d));
	uint32_t max = (uint32_t)b->conf.max_servers, n = (uint32_t)w->count;
	int windows = b->conf.stats_history > 0;
	size_t oe, ow, oc, owin, size;
	if (!d || !(d->wake = calloc(n, sizeof(int)))) {
		free(d);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	d->b = b;
	for (uint32_t i = 0; i < n; i++)
		d->wake[i] = w->wake_fds ? w->wake_fds[i] : -1;
	board_offsets(max, n, windows, &oe, &ow, &oc, &owin, &size);
	struct stat st;
	if (fstat(w->shared_fd, &st) < 0) {
		snprintf(err, errlen, "the zone's shared memory: %s", strerror(errno));
		goto fail;
	}
	/* every worker of the set computes the same size: whoever comes first
	 * sizes it, and sizing it again changes nothing */
	if ((size_t)st.st_size != size && ftruncate(w->shared_fd, (off_t)size) < 0) {
		snprintf(err, errlen, "sizing the zone's shared memory (%zu bytes): %s", size,
		         strerror(errno));
		goto fail;
	}
	d->h = board_map(w->shared_fd, size, PROT_READ | PROT_WRITE);
	if (!d->h) {
		snprintf(err, errlen, "mapping the zone's shared memory: %s", strerror(errno));
		goto fail;
	}
	d->size = size;
	struct board_hdr *h = d->h;
	uint32_t zero = BOARD_NEW;
	if (__atomic_compare_exchange_n(&h->state, &zero, BOARD_SETTING_UP, 0, __ATOMIC_ACQ_REL,
	                                __ATOMIC_ACQUIRE)) {
		h->magic = BOARD_MAGIC;
		h->layout = board_layout();
		h->max_servers = max;
		h->nworkers = n;
		h->windows = (uint32_t)windows;
		h->size = size;
		__atomic_store_n(&h->state, BOARD_SET, __ATOMIC_RELEASE);
	} else {
		double until = ev_time() + BOARD_SETUP_WAIT;
		while (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != BOARD_SET &&
		       ev_time() < until)
			usleep(1000);
	}
	if (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != BOARD_SET || h->magic != BOARD_MAGIC ||
	    h->layout != board_layout() || h->max_servers != max || h->nworkers != n ||
	    h->windows != (uint32_t)windows || h->size != size) {
		snprintf(err, errlen,
		         "the zone's shared memory holds another layout (another build or other "
		         "settings)");
		goto fail;
	}
	d->entries = (struct board_entry *)((char *)h + oe);
	d->workers = (struct board_worker *)((char *)h + ow);
	d->ctr = (struct board_ctr *)((char *)h + oc);
	d->win = windows ? (struct st_window *)((char *)h + owin) : NULL;
	if (w->previous_fd >= 0 && fstat(w->previous_fd, &st) == 0 &&
	    (size_t)st.st_size >= sizeof(struct board_hdr)) {
		d->prev = board_map(w->previous_fd, (size_t)st.st_size, PROT_READ);
		d->prev_size = d->prev ? (size_t)st.st_size : 0;
	}
	if (!(d->by_entry = calloc(max, sizeof(*d->by_entry))))
		goto oom;
	if (!b->follower && !(d->rtail = calloc(n, sizeof(*d->rtail))))
		goto oom;

	/* this worker's row: its counters go on from where the last one left
	 * them (they are totals of the zone); gauges restart */
	struct board_worker *row = board_row(d, w->index);
	row->nconns = row->nupstream = row->nheld = 0;
	row->holding = 0;
	__atomic_store_n(&row->pid, (int32_t)getpid(), __ATOMIC_RELEASE);
	if (!b->follower) {
		/* reports written before this worker 0 started are old news */
		for (uint32_t i = 0; i < n; i++)
			d->rtail[i] =
			    __atomic_load_n(&board_row(d, (int)i)->rhead, __ATOMIC_ACQUIRE);
		/* a worker 0 killed in the middle of a write left its seqlock odd:
		 * that entry is lost (the primary pushes the set again), the lock
		 * is made even so it works for the next writes */
		for (uint32_t i = 0; i < h->nentries && i < max; i++) {
			struct board_entry *e = &d->entries[i];
			if (e->seq & 1) {
				e->used = 0;
				e->ver = h->gen + 1;
				__atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELEASE);
				__atomic_store_n(&h->gen, h->gen + 1, __ATOMIC_RELEASE);
			}
		}
		if (h->mseq & 1)
			__atomic_store_n(&h->mseq, h->mseq + 1, __ATOMIC_RELEASE);
	} else {
		row->answered = __atomic_load_n(&h->stats_req, __ATOMIC_ACQUIRE);
	}
	/* in-flight counts of a worker that died are not in flight any more */
	for (uint32_t e = 0; e < max && e < h->nentries; e++)
		board_ctr_at(d, w->index, e)->active = 0;
	b->st = &row->st;
	b->board = d;

	if (w->wake_fds && w->wake_fds[w->index] >= 0) {
		ev_io_init(&d->wake_io, board_on_wake, w->wake_fds[w->index], EV_READ);
		d->wake_io.data = d;
		ev_io_start(b->loop, &d->wake_io);
	}
	ev_prepare_init(&d->kick, board_on_prepare);
	d->kick.data = d;
	ev_prepare_start(b->loop, &d->kick);
	ev_init(&d->gather_timer, NULL);
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	board_free(d);
	return -1;
}

void board_close(struct bal *b)
{
	struct board *d = b->board;
	if (!d)
		return;
	board_stats_drop(b);
	ev_io_stop(b->loop, &d->wake_io);
	ev_prepare_stop(b->loop, &d->kick);
	ev_timer_stop(b->loop, &d->gather_timer);
	for (struct server *s = b->servers; s; s = s->next)
		s->ctr = &s->own_ctr;
	b->own_st = *b->st;
	b->st = &b->own_st;
	struct board_worker *row = board_row(d, b->windex);
	row->nconns = row->nupstream = row->nheld = 0;
	row->holding = 0;
	__atomic_store_n(&row->pid, 0, __ATOMIC_RELEASE);
	board_free(d);
	b->board = NULL;
}

/* ---- worker 0 writes ------------------------------------------------------ */

static void board_entry_fill(struct board_entry *e, const struct server *s)
{
	e->state = (uint8_t)s->state;
	e->fails = s->fails;
	e->rechecks = s->rechecks;
	e->last_check = s->last_check;
	e->addrlen = (uint32_t)s->addrlen;
	memcpy(&e->addr, &s->addr, sizeof(e->addr));
	snprintf(e->last_error, sizeof(e->last_error), "%s", s->last_error);
}

static uint64_t board_next_gen(struct board *d)
{
	uint64_t g = d->h->gen + 1;
	__atomic_store_n(&d->h->gen, g, __ATOMIC_RELEASE);
	d->kick_followers = 1;
	return g;
}

/* A free entry for a new server: the lowest never used or freed. */
static int board_entry_alloc(struct board *d)
{
	struct board_hdr *h = d->h;
	for (uint32_t i = d->free_hint; i < h->nentries; i++)
		if (!d->entries[i].used && !d->by_entry[i]) {
			d->free_hint = i + 1;
			return (int)i;
		}
	d->free_hint = h->nentries + 1;
	if (h->nentries >= h->max_servers)
		return -1;
	__atomic_store_n(&h->nentries, h->nentries + 1, __ATOMIC_RELEASE);
	return (int)h->nentries - 1;
}

/* Attach s to its entry's counters in this worker's row. */
static void board_attach(struct board *d, struct server *s, uint32_t entry, uint32_t inc)
{
	struct board_ctr *c = board_ctr_at(d, d->b->windex, entry);
	if (s->entry >= 0 && (uint32_t)s->entry != entry && d->by_entry[s->entry] == s)
		d->by_entry[s->entry] = NULL; /* the server moved to another entry */
	s->entry = (int32_t)entry;
	s->inc = inc;
	if (c->inc != inc) {
		/* what this worker relayed to s before it had an entry (served
		 * while worker 0 was still restoring the table) counts too */
		c->served = s->ctr == &s->own_ctr ? s->own_ctr.served : 0;
		c->win_inc = 0;
		__atomic_store_n(&c->inc, inc, __ATOMIC_RELEASE);
	}
	c->active = s->active;
	s->ctr = c;
	d->by_entry[entry] = s;
}

void board_put(struct server *s)
{
	struct bal *b = s->b;
	struct board *d = b->board;
	if (!d || b->follower || b->syncing || s->removed)
		return;
	if (s->entry < 0) {
		int i = board_entry_alloc(d);
		if (i < 0)
			return; /* max_servers reached: srv_add refuses before this */
		struct board_entry *e = &d->entries[i];
		seq_write_begin(&e->seq);
		e->inc++;
		e->used = 1;
		snprintf(e->url, sizeof(e->url), "%s", s->url);
		board_entry_fill(e, s);
		e->ver = board_next_gen(d);
		seq_write_end(&e->seq);
		board_attach(d, s, (uint32_t)i, e->inc);
		return;
	}
	struct board_entry *e = &d->entries[s->entry];
	seq_write_begin(&e->seq);
	board_entry_fill(e, s);
	e->ver = board_next_gen(d);
	seq_write_end(&e->seq);
}

void board_del(struct server *s)
{
	struct bal *b = s->b;
	struct board *d = b->board;
	if (!d || s->entry < 0)
		return;
	if (!b->follower && !b->syncing) {
		struct board_entry *e = &d->entries[s->entry];
		seq_write_begin(&e->seq);
		e->used = 0;
		e->ver = board_next_gen(d);
		seq_write_end(&e->seq);
		if ((uint32_t)s->entry < d->free_hint)
			d->free_hint = (uint32_t)s->entry;
	}
	if (d->by_entry[s->entry] == s)
		d->by_entry[s->entry] = NULL;
	/* its requests still in flight count nowhere now */
	s->own_ctr = *s->ctr;
	s->ctr = &s->own_ctr;
	s->entry = -1;
}

void board_put_monitor(struct bal *b)
{
	struct board *d = b->board;
	if (!d || b->follower || b->syncing)
		return;
	struct board_hdr *h = d->h;
	seq_write_begin(&h->mseq);
	snprintf(h->monitor_url, sizeof(h->monitor_url), "%s",
	         b->monitor_url ? b->monitor_url : "");
	h->monitor_epoch = b->monitor_epoch;
	seq_write_end(&h->mseq);
	board_next_gen(d);
}

void board_ready(struct bal *b)
{
	struct board *d = b->board;
	if (!d || b->follower)
		return;
	if (!__atomic_load_n(&d->h->ready, __ATOMIC_ACQUIRE)) {
		/* what was restored goes into the table first */
		for (struct server *s = b->servers; s; s = s->next)
			board_put(s);
		board_put_monitor(b);
		__atomic_store_n(&d->h->ready, 1, __ATOMIC_RELEASE);
	}
	board_next_gen(d);
	if (d->prev) {
		munmap(d->prev, d->prev_size);
		d->prev = NULL;
	}
}

/* ---- reading a table -------------------------------------------------------- */

static struct board_entry *board_entries_of(struct board_hdr *h)
{
	size_t oe, ow, oc, owin, size;
	board_offsets(h->max_servers, h->nworkers, (int)h->windows, &oe, &ow, &oc, &owin, &size);
	return (struct board_entry *)((char *)h + oe);
}

static int board_usable(const struct board_hdr *h, size_t mapped)
{
	return h && __atomic_load_n(&h->state, __ATOMIC_ACQUIRE) == BOARD_SET &&
	       h->magic == BOARD_MAGIC && h->layout == board_layout() && h->size <= mapped &&
	       __atomic_load_n(&h->ready, __ATOMIC_ACQUIRE);
}

static void board_read_monitor(struct bal *b, struct board_hdr *h)
{
	char url[256];
	uint64_t epoch = 0;
	for (int i = 0; i < 1000; i++) {
		uint32_t a = __atomic_load_n(&h->mseq, __ATOMIC_ACQUIRE);
		if (a & 1)
			continue;
		memcpy(url, h->monitor_url, sizeof(url));
		epoch = h->monitor_epoch;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&h->mseq, __ATOMIC_RELAXED) == a)
			break;
	}
	url[sizeof(url) - 1] = '\0';
	if (!url[0] || epoch < b->monitor_epoch ||
	    (b->monitor_url && strcmp(b->monitor_url, url) == 0 && epoch == b->monitor_epoch))
		return;
	char *u = strdup(url);
	if (!u)
		return;
	free(b->monitor_url);
	b->monitor_url = u;
	b->monitor_epoch = epoch;
}

/* Make the local server of entry e (a copy) what the table says. */
static void board_apply(struct bal *b, uint32_t i, const struct board_entry *e, int attach)
{
	char err[256];
	struct server *s = srv_find(b, e->url);
	if (!s) {
		s = srv_add(b, e->url, e->state == SRV_ALIVE, err, sizeof(err));
		if (!s)
			return;
	}
	if (!s->addrlen && e->addrlen) {
		memcpy(&s->addr, &e->addr, sizeof(s->addr));
		s->addrlen = e->addrlen;
	}
	s->fails = e->fails;
	s->rechecks = e->rechecks;
	s->last_check = e->last_check;
	if (s->state != (enum srv_state)e->state)
		srv_set_state(s, (enum srv_state)e->state, e->last_error[0] ? e->last_error : NULL);
	snprintf(s->last_error, sizeof(s->last_error), "%s", e->last_error);
	if (attach && b->board)
		board_attach(b->board, s, i, e->inc);
}

/* Take the whole table of h: the servers it names, with their states;
 * servers it does not name go. attach: h is this worker's own board. */
static void board_take(struct bal *b, struct board_hdr *h, int attach)
{
	struct board_entry *entries = board_entries_of(h);
	uint32_t n = __atomic_load_n(&h->nentries, __ATOMIC_ACQUIRE);
	for (struct server *s = b->servers; s; s = s->next)
		s->mark = 1;
	b->quiet = 1;
	b->syncing = 1;
	for (uint32_t i = 0; i < n && i < h->max_servers; i++) {
		struct board_entry e;
		if (entry_read(&entries[i], &e) < 0 || !e.used)
			continue;
		e.url[sizeof(e.url) - 1] = e.last_error[sizeof(e.last_error) - 1] = '\0';
		board_apply(b, i, &e, attach);
		struct server *s = srv_find(b, e.url);
		if (s)
			s->mark = 0;
	}
	for (struct server *s = b->servers, *next; s; s = next) {
		next = s->next;
		if (s->mark) {
			s->mark = 0;
			srv_remove(s);
		}
	}
	b->syncing = 0;
	b->quiet = 0;
	board_read_monitor(b, h);
}

int board_restore(struct bal *b)
{
	struct board *d = b->board;
	if (!d)
		return 0;
	if (board_usable(d->h, d->size)) {
		board_take(b, d->h, 1);
		d->seen_gen = __atomic_load_n(&d->h->gen, __ATOMIC_ACQUIRE);
		b->host->log(SCALER_LOG_INFO, BAL_WHO,
		             "zone %s: worker %d took %d server(s) from the zone's shared memory",
		             b->zone, b->windex, b->nservers);
		return 1;
	}
	if (board_usable(d->prev, d->prev_size)) {
		/* the workers this set replaces: a start, until worker 0 of this
		 * set writes its own table */
		board_take(b, d->prev, 0);
		b->host->log(SCALER_LOG_INFO, BAL_WHO,
		             "zone %s: worker %d took %d server(s) from the workers it replaces",
		             b->zone, b->windex, b->nservers);
		if (!b->follower)
			board_ready(b);
		return 1;
	}
	return 0;
}

/* Follower: apply what worker 0 changed since the last look. */
static void board_sync(struct board *d)
{
	struct bal *b = d->b;
	struct board_hdr *h = d->h;
	if (!__atomic_load_n(&h->ready, __ATOMIC_ACQUIRE))
		return;
	uint64_t gen = __atomic_load_n(&h->gen, __ATOMIC_ACQUIRE);
	if (gen == d->seen_gen)
		return;
	int first = d->seen_gen == 0;
	if (first) {
		board_take(b, h, 1); /* whatever this worker had before: the table wins */
	} else {
		uint32_t n = __atomic_load_n(&h->nentries, __ATOMIC_ACQUIRE);
		b->quiet = 1;
		b->syncing = 1;
		for (uint32_t i = 0; i < n; i++) {
			struct board_entry e;
			if (__atomic_load_n(&d->entries[i].ver, __ATOMIC_RELAXED) <= d->seen_gen)
				continue;
			if (entry_read(&d->entries[i], &e) < 0)
				continue;
			e.url[sizeof(e.url) - 1] = e.last_error[sizeof(e.last_error) - 1] = '\0';
			/* the server this worker had in the entry, if it was another */
			struct server *had = d->by_entry[i];
			if (had && had->entry == (int32_t)i && (had->inc != e.inc || !e.used))
				srv_remove(had);
			if (e.used)
				board_apply(b, i, &e, 1);
		}
		b->syncing = 0;
		b->quiet = 0;
		board_read_monitor(b, h);
	}
	d->seen_gen = gen;
	if (first && !b->accepting) {
		/* the follower was waiting for the table: it may serve now */
		b->host->log(SCALER_LOG_INFO, BAL_WHO,
		             "zone %s: worker %d took %d server(s) "
		             "from worker 0",
		             b->zone, b->windex, b->nservers);
	}
	proxy_release_held(b);
}

/* ---- reports (followers → worker 0) ------------------------------------------- */

void board_report(struct server *s, const char *why)
{
	struct bal *b = s->b;
	struct board *d = b->board;
	if (!d || !b->follower || b->syncing || s->entry < 0)
		return;
	struct board_worker *row = board_row(d, b->windex);
	uint64_t head = row->rhead;
	struct board_report *r = &row->rep[head % BOARD_REPORTS];
	r->entry = (uint32_t)s->entry;
	r->inc = s->inc;
	snprintf(r->why, sizeof(r->why), "%s", why ? why : "a connection failed");
	__atomic_store_n(&row->rhead, head + 1, __ATOMIC_RELEASE);
	d->kick_lead = 1;
}

void board_holding(struct bal *b)
{
	struct board *d = b->board;
	if (!d)
		return;
	struct board_worker *row = board_row(d, b->windex);
	uint32_t on = b->nheld > 0;
	row->nheld = b->nheld;
	if (row->holding == on)
		return;
	row->holding = on;
	if (b->follower)
		d->kick_lead = 1;
}

int board_holding_any(const struct bal *b)
{
	const struct board *d = b->board;
	if (b->nheld > 0)
		return 1;
	if (!d || b->follower)
		return 0;
	for (int w = 1; w < b->nworkers; w++)
		if (__atomic_load_n(&d->workers[w].holding, __ATOMIC_RELAXED))
			return 1;
	return 0;
}

void board_gauges(struct bal *b)
{
	struct board *d = b->board;
	if (!d)
		return;
	struct board_worker *row = board_row(d, b->windex);
	row->nconns = b->nconns;
	row->nupstream = b->nupstream;
	row->nheld = b->nheld;
}

static void board_lead_reports(struct board *d)
{
	struct bal *b = d->b;
	int holding = b->nheld > 0;
	for (int w = 1; w < b->nworkers; w++) {
		struct board_worker *row = board_row(d, w);
		uint64_t head = __atomic_load_n(&row->rhead, __ATOMIC_ACQUIRE);
		if (head - d->rtail[w] > BOARD_REPORTS)
			d->rtail[w] = head - BOARD_REPORTS; /* lost: the checks catch up */
		for (; d->rtail[w] < head; d->rtail[w]++) {
			struct board_report r = row->rep[d->rtail[w] % BOARD_REPORTS];
			r.why[sizeof(r.why) - 1] = '\0';
			if (r.entry >= d->h->max_servers)
				continue;
			struct server *s = d->by_entry[r.entry];
			if (s && s->inc == r.inc && s->state == SRV_ALIVE)
				srv_set_state(s, SRV_DISCONNECTED, r.why);
		}
		holding |= __atomic_load_n(&row->holding, __ATOMIC_RELAXED) != 0;
	}
	if (holding)
		srv_probe_pending(b);
}

/* ---- sums for the admin API ------------------------------------------------- */

void board_counts(const struct server *s, int *active, uint64_t *served)
{
	const struct board *d = s->b->board;
	int a = 0;
	uint64_t n = 0;
	if (!d || s->entry < 0) {
		a = s->active;
		n = s->served;
	}
	for (int w = 0; d && s->entry >= 0 && w < s->b->nworkers; w++) {
		const struct board_ctr *c = board_ctr_at(d, w, (uint32_t)s->entry);
		if (__atomic_load_n(&c->inc, __ATOMIC_ACQUIRE) != s->inc)
			continue; /* counts of another server that had the entry */
		a += c->active > 0 ? c->active : 0;
		n += c->served;
	}
	if (active)
		*active = a;
	if (served)
		*served = n;
}

void board_stats_sum(const struct bal *b, struct bal_stats *out, int *nconns, int *nupstream,
                     int *nheld)
{
	const struct board *d = b->board;
	struct bal_stats sum;
	int c = 0, u = 0, held = 0;
	if (!d) {
		sum = *b->st;
		c = b->nconns;
		u = b->nupstream;
		held = b->nheld;
	} else {
		memset(&sum, 0, sizeof(sum));
		for (int w = 0; w < b->nworkers; w++) {
			const struct board_worker *row = &d->workers[w];
			for (int i = 0; i < 6; i++)
				sum.responses[i] += row->st.responses[i];
			sum.retries += row->st.retries;
			sum.connect_errors += row->st.connect_errors;
			sum.accepted += row->st.accepted;
			sum.client_errors += row->st.client_errors;
			sum.timeouts += row->st.timeouts;
			sum.ejections += row->st.ejections;
			if (w == b->windex) {
				c += b->nconns;
				u += b->nupstream;
				held += b->nheld;
			} else if (__atomic_load_n(&row->pid, __ATOMIC_ACQUIRE)) {
				c += row->nconns;
				u += row->nupstream;
				held += row->nheld;
			}
		}
	}
	if (out)
		*out = sum;
	if (nconns)
		*nconns = c;
	if (nupstream)
		*nupstream = u;
	if (nheld)
		*nheld = held;
}

int board_worker_stats(const struct bal *b, int w, struct bal_stats *out)
{
	const struct board *d = b->board;
	if (!d) {
		if (w != 0)
			return -1;
		*out = *b->st;
		return 0;
	}
	if (w < 0 || w >= b->nworkers)
		return -1;
	*out = d->workers[w].st;
	return 0;
}

/* ---- statistics windows ------------------------------------------------------- */

/* Follower: publish this worker's windows when worker 0 asks. */
static void board_answer_stats(struct board *d)
{
	struct bal *b = d->b;
	struct board_hdr *h = d->h;
	struct board_worker *row = board_row(d, b->windex);
	uint64_t req = __atomic_load_n(&h->stats_req, __ATOMIC_ACQUIRE);
	if (!d->win || req == row->answered)
		return;
	double window = h->stats_window, now = ev_now(b->loop);
	for (struct server *s = b->servers; s; s = s->next) {
		if (s->entry < 0)
			continue;
		st_window_read(s, now, window, board_win_at(d, b->windex, (uint32_t)s->entry));
		s->ctr->win_inc = s->inc;
	}
	row->uptime = now - b->st_t0;
	__atomic_store_n(&row->answered, req, __ATOMIC_RELEASE);
	d->kick_lead = 1;
}

void board_stats_add(const struct server *s, struct st_window *w)
{
	const struct bal *b = s->b;
	const struct board *d = b->board;
	if (!d || !d->win || s->entry < 0)
		return;
	for (int k = 1; k < b->nworkers; k++) {
		const struct board_worker *row = &d->workers[k];
		if (__atomic_load_n(&row->answered, __ATOMIC_ACQUIRE) != d->gather_req)
			continue;
		const struct board_ctr *c = board_ctr_at(d, k, (uint32_t)s->entry);
		if (c->inc != s->inc || c->win_inc != s->inc)
			continue;
		const struct st_window *x = board_win_at(d, k, (uint32_t)s->entry);
		w->requests += x->requests;
		w->failed += x->failed;
		w->busy_s += x->busy_s;
		for (int i = 0; i < ST_LAT_BUCKETS; i++)
			w->lat[i] += x->lat[i];
	}
}

/* Whether every other worker answered the current request (and had run
 * for the whole window). */
static int board_gather_complete(struct board *d, int *answered_all)
{
	struct bal *b = d->b;
	int all = 1, observed = 1;
	for (int k = 1; k < b->nworkers; k++) {
		const struct board_worker *row = &d->workers[k];
		if (__atomic_load_n(&row->answered, __ATOMIC_ACQUIRE) != d->gather_req) {
			all = 0;
			observed = 0;
		} else if (row->uptime < d->h->stats_window) {
			observed = 0;
		}
	}
	*answered_all = all;
	return observed;
}

static void board_gather_finish(struct board *d)
{
	struct bal *b = d->b;
	int all;
	int complete = board_gather_complete(d, &all);
	ev_timer_stop(b->loop, &d->gather_timer);
	int n = d->ngathers;
	d->ngathers = 0;
	for (int i = 0; i < n; i++) {
		struct board_gather g = d->gathers[i];
		if (g.window == d->h->stats_window) {
			g.done(b, g.x, g.window, complete);
		} else {
			/* asked for another window meanwhile: the next round */
			d->gathers[d->ngathers++] = g;
		}
	}
	if (d->ngathers) {
		struct board_gather g = d->gathers[0];
		d->ngathers--;
		memmove(d->gathers, d->gathers + 1, (size_t)d->ngathers * sizeof(g));
		board_stats_gather(b, g.window, g.x, g.done);
	}
}

static void board_gather_check(struct board *d)
{
	int all;
	if (!d->ngathers)
		return;
	board_gather_complete(d, &all);
	if (all || ev_now(d->b->loop) - d->gather_since > BOARD_GATHER_WAIT)
		board_gather_finish(d);
}

static void board_on_gather_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	board_gather_check(t->data);
}

void board_stats_gather(struct bal *b, double window, struct http_exchange *x,
                        void (*done)(struct bal *b, struct http_exchange *x, double window,
                                     int complete))
{
	struct board *d = b->board;
	if (!d || b->nworkers < 2 || !d->win) {
		done(b, x, window, 1);
		return;
	}
	if (d->ngathers >= BOARD_GATHERS) {
		done(b, x, window, 0);
		return;
	}
	int running = d->ngathers > 0;
	d->gathers[d->ngathers++] = (struct board_gather){.x = x, .window = window, .done = done};
	if (running)
		return; /* answered with the round in progress, or the next */
	struct board_hdr *h = d->h;
	h->stats_window = window;
	d->gather_req = h->stats_req + 1;
	__atomic_store_n(&h->stats_req, d->gather_req, __ATOMIC_RELEASE);
	d->gather_since = ev_now(b->loop);
	d->kick_followers = 1;
	ev_timer_init(&d->gather_timer, board_on_gather_timer, 0.02, 0.02);
	d->gather_timer.data = d;
	ev_timer_start(b->loop, &d->gather_timer);
}

void board_stats_drop(struct bal *b)
{
	struct board *d = b->board;
	if (!d)
		return;
	d->ngathers = 0;
	ev_timer_stop(b->loop, &d->gather_timer);
}

/* ---- TLS session ticket keys ------------------------------------------------ */

static int board_tickets_read(const struct board_hdr *h, struct tls_tickets *k)
{
	if (__atomic_load_n(&h->tstate, __ATOMIC_ACQUIRE) != BOARD_SET)
		return -1;
	for (int i = 0; i < 1000; i++)
		if (seq_read(&h->tseq, k, &h->tickets, sizeof(*k)) == 0)
			return 0;
	return -1;
}

int board_tickets_get(struct bal *b, struct tls_tickets *k)
{
	struct board *d = b->board;
	return d ? board_tickets_read(d->h, k) : -1;
}

void board_tickets_put(struct bal *b, const struct tls_tickets *k)
{
	struct board *d = b->board;
	if (!d)
		return;
	seq_write_begin(&d->h->tseq);
	d->h->tickets = *k;
	seq_write_end(&d->h->tseq);
}

int board_tickets_setup(struct bal *b, struct tls_tickets *k)
{
	struct board *d = b->board;
	if (!d)
		return -1;
	struct board_hdr *h = d->h;
	uint32_t zero = BOARD_NEW;
	if (__atomic_compare_exchange_n(&h->tstate, &zero, BOARD_SETTING_UP, 0, __ATOMIC_ACQ_REL,
	                                __ATOMIC_ACQUIRE)) {
		/* the keys of the workers a reload replaces: their tickets stay good */
		struct tls_tickets old;
		if (board_usable(d->prev, d->prev_size) && board_tickets_read(d->prev, &old) == 0 &&
		    old.n > 0)
			*k = old;
		h->tickets = *k;
		__atomic_store_n(&h->tstate, BOARD_SET, __ATOMIC_RELEASE);
		return 0;
	}
	double until = ev_time() + BOARD_SETUP_WAIT;
	while (__atomic_load_n(&h->tstate, __ATOMIC_ACQUIRE) != BOARD_SET && ev_time() < until)
		usleep(1000);
	return board_tickets_read(h, k);
}
