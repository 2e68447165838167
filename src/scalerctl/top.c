/* scalerctl top: the web console's overview in a terminal, for those on
 * SSH. Every few seconds (-d) it reads GET /status, /cluster, /zones,
 * /history and /events?last=N, the calls the console makes, and redraws:
 * this node and its primary, every zone (servers, load and its trend over
 * the last ten minutes, pin, cooldown, last decision), the servers as
 * scalerd and each balancer see them, the latest decisions. q or Ctrl-C
 * quits; -n N stops after N refreshes (and without a terminal, top prints
 * one frame after another). */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "scalerctl.h"

#define TOP_EVENTS 6
#define TOP_TREND_SPAN 600.0 /* seconds of history in the trend column */
#define TOP_TREND_CELLS 20

static struct termios top_saved;
static int top_raw;
static volatile sig_atomic_t top_stop;

static void top_restore(void)
{
	if (top_raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &top_saved);
	top_raw = 0;
}

static void top_on_signal(int sig)
{
	(void)sig;
	top_stop = 1;
}

/* Keys without Enter and without echo, while top runs. */
static void top_keys_raw(void)
{
	struct termios t;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &top_saved) < 0)
		return;
	t = top_saved;
	t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0) {
		top_raw = 1;
		atexit(top_restore);
	}
}

/* Wait up to `seconds` for q (1) or the end (-1: Ctrl-C, EOF); 0 at the
 * timeout. */
static int top_wait(double seconds)
{
	struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - floor(seconds)) * 1e6)};
	fd_set fds;

	if (!top_raw) {
		/* no keys to read: sleep, waking for a signal */
		while (!top_stop && select(0, NULL, NULL, NULL, &tv) > 0)
			;
		return top_stop ? -1 : 0;
	}
	FD_ZERO(&fds);
	FD_SET(STDIN_FILENO, &fds);
	if (select(STDIN_FILENO + 1, &fds, NULL, NULL, &tv) <= 0)
		return top_stop ? -1 : 0;
	char c;
	ssize_t n = read(STDIN_FILENO, &c, 1);
	if (n <= 0)
		return -1;
	return c == 'q' || c == 'Q' ? 1 : 0;
}

static void top_clock(double t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!(t > 0) || !localtime_r(&tt, &tm) || !strftime(buf, len, "%H:%M:%S", &tm))
		cli_copy(buf, len, "-");
}

static void top_ago(double t, char *buf, size_t len)
{
	char d[32];

	if (!(t > 0)) {
		cli_copy(buf, len, "-");
		return;
	}
	cli_fmt_duration(cli_now() - t, d, sizeof(d));
	snprintf(buf, len, "%s ago", d);
}

/* GET path into r->json; NULL with a sentence in err on any failure. */
static json_t *top_get(struct ctl *ctl, const char *path, struct cli_reply *r, char *err,
                       size_t errlen)
{
	if (cli_request(ctl, "GET", path, NULL, ctl->timeout, r) < 0) {
		snprintf(err, errlen, "%s: %s", path, r->error);
		return NULL;
	}
	if (r->status != 200 || !r->json) {
		const char *e = cli_jstr(r->json, "error", NULL);
		const char *p = cli_jstr(r->json, "primary", NULL);
		snprintf(err, errlen, "%s: HTTP %ld%s%s%s%s%s", path, r->status, e ? ": " : "",
		         e ? e : "", p ? " (primary: " : "", p ? p : "", p ? ")" : "");
		return NULL;
	}
	return r->json;
}

/* The trend of the zone's first metric over the last ten minutes, as
 * block characters (or ASCII), scaled from 0 to the highest value seen or
 * the policy's highest guide (so a quiet zone reads low). When some cells
 * average below 0 (a metrics plugin may say so) the scale runs from the
 * lowest of them instead. Points that are not finite numbers, or whose
 * time is not, are left out. */
static void top_trend(json_t *hist, int utf8, char *buf, size_t len)
{
	static const char *const blocks[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
	static const char ascii[] = "_.-~=+*#";
	double sum[TOP_TREND_CELLS] = {0}, top = 0, bottom = 0, now = cli_now();
	double width = TOP_TREND_SPAN / TOP_TREND_CELLS;
	int n[TOP_TREND_CELLS] = {0};
	size_t i, used = 0;
	json_t *p;

	json_array_foreach(json_object_get(hist, "points"), i, p)
	{
		double t = json_number_value(json_array_get(p, 0));
		json_t *v = json_array_get(p, 2);
		double at = (t - (now - TOP_TREND_SPAN)) / width, x = json_number_value(v);
		/* range-check in double: a hostile time never reaches the int cast */
		if (!json_is_number(v) || !isfinite(x) || !(at >= 0 && at < TOP_TREND_CELLS))
			continue;
		int cell = (int)at;
		/* the mean of each cell, kept as one so that huge values never overflow */
		n[cell]++;
		sum[cell] += x / n[cell] - sum[cell] / n[cell];
	}
	for (int c = 0; c < TOP_TREND_CELLS; c++) {
		if (n[c] && sum[c] > top)
			top = sum[c];
		if (n[c] && sum[c] < bottom)
			bottom = sum[c];
	}
	const char *first =
	    cli_jstr(json_array_get(json_object_get(hist, "metrics"), 0), "name", "");
	json_array_foreach(json_object_get(hist, "guides"), i, p)
	{
		double g = cli_jnum(p, "value");
		if (!strcmp(cli_jstr(p, "metric", ""), first) && isfinite(g) && g > top)
			top = g;
	}
	buf[0] = '\0';
	for (int c = 0; c < TOP_TREND_CELLS; c++) {
		/* halved: the span from -1e308 to 1e308 is still a finite number */
		double frac = top > bottom ? (sum[c] / 2 - bottom / 2) / (top / 2 - bottom / 2) : 0;
		int level = 0;
		if (frac > 0) /* false for NaN too */
			level = frac >= 1 ? 7 : (int)(frac * 7.999);
		const char *s = !n[c] ? " " : utf8 ? blocks[level] : (char[]){ascii[level], '\0'};
		used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s", s);
	}
	if (used >= len)
		buf[len - 1] = '\0';
}

static json_t *top_zone_history(json_t *history, const char *name)
{
	size_t i;
	json_t *h;

	json_array_foreach(json_object_get(history, "zones"), i, h)
	{
		if (!strcmp(cli_jstr(h, "zone", ""), name))
			return h;
	}
	return NULL;
}

static void top_header(FILE *f, json_t *status, json_t *cluster)
{
	json_t *node = json_object_get(status, "node"), *prim = json_object_get(node, "primary");
	json_t *conf = json_object_get(status, "config"), *n;
	char epoch[32], now[32], loaded[32], ago[48];
	int up = 0, down = 0, redis = -1;
	size_t i;

	cli_fmt_num(cli_jnum(node, "epoch"), epoch, sizeof(epoch));
	top_clock(cli_now(), now, sizeof(now));
	fprintf(f, "scaler top  %s  node %s (%s, epoch %s)", now, cli_jstr(node, "id", "?"),
	        cli_jstr(node, "role", "?"), epoch);
	if (json_is_object(prim))
		fprintf(f, "  primary: node %s %s", cli_jstr(prim, "id", "?"),
		        cli_jstr(prim, "url", ""));
	else
		fputs("  primary: none known", f);
	json_array_foreach(json_object_get(cluster, "nodes"), i, n)
	{
		if (json_is_true(json_object_get(n, "reachable")))
			up++;
		else
			down++;
		if (json_is_true(json_object_get(n, "self")))
			redis = json_is_true(json_object_get(n, "redis"));
	}
	fputc('\n', f);
	top_clock(cli_jnum(conf, "loaded_at"), loaded, sizeof(loaded));
	top_ago(cli_jnum(conf, "loaded_at"), ago, sizeof(ago));
	fprintf(f, "nodes %d up", up);
	if (down)
		fprintf(f, ", %d UNREACHABLE", down);
	fprintf(f, "  redis %s  config %s (loaded %s, %s)  q quits\n\n",
	        redis < 0 ? "?"
	        : redis   ? "reachable"
	                  : "UNREACHABLE",
	        cli_jstr(conf, "path", "?"), loaded, ago);
}

static void top_zones(FILE *f, json_t *zones, json_t *history, int utf8)
{
	struct table t;
	size_t i, j;
	json_t *z, *s;

	table_init(&t, "lrlrllll");
	table_row(&t, "ZONE", "SERVERS", "MIN-MAX", "LOAD", "LAST 10 MIN", "PINNED", "COOLDOWN",
	          "LAST DECISION", NULL);
	json_array_foreach(zones, i, z)
	{
		char servers[48], bounds[48], load[32], trend[128], pinned[64], cool[32], last[400];
		int serving = 0, n = 0;
		double sum = 0;
		json_t *pin = json_object_get(z, "pinned"),
		       *d = json_object_get(z, "last_decision");

		json_array_foreach(json_object_get(z, "servers"), j, s)
		{
			serving += !strcmp(cli_jstr(s, "state", ""), "serving");
			if (!isnan(cli_jnum(s, "metric"))) {
				sum += cli_jnum(s, "metric");
				n++;
			}
		}
		snprintf(servers, sizeof(servers), "%d/%zu", serving,
		         json_array_size(json_object_get(z, "servers")));
		snprintf(bounds, sizeof(bounds), "%.0f-%.0f", cli_jnum(z, "min"),
		         cli_jnum(z, "max"));
		cli_fmt_metric(n ? sum / n : NAN, load, sizeof(load));
		top_trend(top_zone_history(history, cli_jstr(z, "name", "")), utf8, trend,
		          sizeof(trend));
		if (json_is_object(pin))
			snprintf(pinned, sizeof(pinned), "%.0f", cli_jnum(pin, "count"));
		else
			cli_copy(pinned, sizeof(pinned), "-");
		if (cli_jnum(z, "cooldown_remaining") > 0)
			cli_fmt_duration(cli_jnum(z, "cooldown_remaining"), cool, sizeof(cool));
		else
			cli_copy(cool, sizeof(cool), "-");
		if (json_is_object(d)) {
			char ago[48];
			top_ago(cli_jnum(d, "time"), ago, sizeof(ago));
			snprintf(last, sizeof(last), "%s %.0f->%.0f %s: %s",
			         cli_jstr(d, "kind", "?"), cli_jnum(d, "from"), cli_jnum(d, "to"),
			         ago, cli_jstr(d, "reason", ""));
		} else {
			cli_copy(last, sizeof(last), "-");
		}
		table_row(&t, cli_jstr(z, "name", "?"), servers, bounds, load, trend, pinned, cool,
		          last, NULL);
	}
	table_fprint(f, &t);
}

/* One server's balancer state: alive, disconnected (2 failures), ejected. */
static void top_balancer_state(json_t *b, char *buf, size_t len)
{
	double fails = cli_jnum(b, "consecutive_failures"), ej = cli_jnum(b, "ejected_until");

	if (!json_is_object(b))
		cli_copy(buf, len, "-");
	else if (ej > cli_now())
		snprintf(buf, len, "ejected");
	else if (fails > 0)
		snprintf(buf, len, "%s (%.0f failures)", cli_jstr(b, "state", "?"), fails);
	else
		cli_copy(buf, len, cli_jstr(b, "state", "?"));
}

static void top_servers(FILE *f, json_t *zones)
{
	struct table t;
	size_t i, j;
	json_t *z, *s;

	table_init(&t, "lllllrrrr");
	table_row(&t, "ZONE", "SERVER", "ADDRESS", "SCALERD", "BALANCER", "REQUESTS", "IN FLIGHT",
	          "REQ/S", "LOAD", NULL);
	json_array_foreach(zones, i, z)
	{
		json_t *bal = json_object_get(z, "balancer");
		json_array_foreach(json_object_get(z, "servers"), j, s)
		{
			json_t *b = json_object_get(s, "balancer");
			char state[64], reqs[32], infl[32], rps[32], load[32];
			top_balancer_state(b, state, sizeof(state));
			if (!json_is_object(b) && json_is_false(json_object_get(bal, "reachable")))
				cli_copy(state, sizeof(state), "unknown");
			cli_fmt_num(cli_jnum(b, "requests_served"), reqs, sizeof(reqs));
			cli_fmt_num(cli_jnum(b, "in_flight"), infl, sizeof(infl));
			cli_fmt_metric(cli_jnum(b, "rps"), rps, sizeof(rps));
			cli_fmt_metric(cli_jnum(s, "metric"), load, sizeof(load));
			table_row(&t, cli_jstr(z, "name", "?"), cli_jstr(s, "id", "?"),
			          cli_jstr(s, "address", "-"), cli_jstr(s, "state", "-"), state,
			          reqs, infl, rps, load, NULL);
		}
	}
	table_fprint(f, &t);
}

static void top_events(FILE *f, json_t *events)
{
	size_t i;
	json_t *e;

	json_array_foreach(json_object_get(events, "events"), i, e)
	{
		char when[32];
		top_clock(cli_jnum(e, "time"), when, sizeof(when));
		fprintf(f, "%s  %-10s  %-12s %3.0f -> %-3.0f %s\n", when, cli_jstr(e, "zone", "-"),
		        cli_jstr(e, "kind", "-"), cli_jnum(e, "from"), cli_jnum(e, "to"),
		        cli_jstr(e, "reason", ""));
	}
}

/* One frame into buf (malloc'd). -1 with an exit status in *rc when top
 * must stop (unauthorised). */
static int top_frame(struct ctl *ctl, const char *ezone, int utf8, char **buf, size_t *len, int *rc)
{
	struct cli_reply rs, rc_, rz, rh, re;
	char path[512], err[5][600];
	FILE *f = open_memstream(buf, len);
	json_t *status, *cluster, *zones, *history, *events;

	if (!f)
		return -1;
	memset(err, 0, sizeof(err));
	status = top_get(ctl, "/status", &rs, err[0], sizeof(err[0]));
	if (rs.status == 401 || rs.status == 403) {
		fclose(f);
		*rc = cli_fail(ctl, &rs);
		cli_reply_free(&rs);
		return -1;
	}
	cluster = status ? top_get(ctl, "/cluster", &rc_, err[1], sizeof(err[1])) : NULL;
	snprintf(path, sizeof(path), "/zones%s%s", ezone ? "?zone=" : "", ezone ? ezone : "");
	zones = status ? top_get(ctl, path, &rz, err[2], sizeof(err[2])) : NULL;
	snprintf(path, sizeof(path), "/history?since=%.0f%s%s", cli_now() - TOP_TREND_SPAN,
	         ezone ? "&zone=" : "", ezone ? ezone : "");
	history = zones ? top_get(ctl, path, &rh, err[3], sizeof(err[3])) : NULL;
	snprintf(path, sizeof(path), "/events?last=%d%s%s", TOP_EVENTS, ezone ? "&zone=" : "",
	         ezone ? ezone : "");
	events = status ? top_get(ctl, path, &re, err[4], sizeof(err[4])) : NULL;

	if (status) {
		top_header(f, status, cluster);
		/* a backup without a primary to ask still knows its zones */
		json_t *zl =
		    zones ? json_object_get(zones, "zones") : json_object_get(status, "zones");
		if (json_array_size(zl)) {
			top_zones(f, zl, history, utf8);
			fputc('\n', f);
			top_servers(f, zl);
		} else {
			fputs("no zones\n", f);
		}
		if (events && json_array_size(json_object_get(events, "events"))) {
			fputs("\nlatest decisions\n", f);
			top_events(f, events);
		}
	} else {
		char now[32];
		top_clock(cli_now(), now, sizeof(now));
		fprintf(f, "scaler top  %s  cannot reach scalerd at %s; retrying\n", now, ctl->url);
	}
	for (int i = 0; i < 5; i++)
		if (err[i][0])
			fprintf(f, "\n%s", err[i]);
	fputc('\n', f);
	fclose(f);
	cli_reply_free(&rs);
	if (status) {
		cli_reply_free(&rc_);
		cli_reply_free(&rz);
		cli_reply_free(&re);
		if (zones)
			cli_reply_free(&rh);
	}
	return 0;
}

/* Write the frame, each line cut at the terminal's width (cols > 0). */
static void top_show(const char *buf, int cols, int tty)
{
	if (tty)
		fputs("\033[H", stdout);
	for (const char *p = buf; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p), bytes = 0;
		int w = 0;
		/* count code points, not bytes, and never cut one in two */
		while (bytes < n && (cols <= 0 || w < cols)) {
			bytes++;
			while (bytes < n && ((unsigned char)p[bytes] & 0xc0) == 0x80)
				bytes++;
			w++;
		}
		fwrite(p, 1, bytes, stdout);
		fputs(tty ? "\033[K\n" : "\n", stdout);
		p += nl ? n + 1 : n;
	}
	if (tty)
		fputs("\033[J", stdout);
	fflush(stdout);
}

int cli_cmd_top(struct ctl *ctl, const char *zone)
{
	char *ezone = zone ? cli_escape(ctl, zone) : NULL;
	int tty = isatty(STDOUT_FILENO), rc = CTL_OK;
	struct sigaction sa;

	setlocale(LC_CTYPE, "");
	int utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = top_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	top_keys_raw();
	if (tty)
		fputs("\033[H\033[2J", stdout);
	ctl->stop = &top_stop; /* Ctrl-C ends a request in flight too */
	for (long n = 0; !top_stop; n++) {
		char *buf = NULL;
		size_t len = 0;
		struct winsize ws;
		int cols = tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 ? ws.ws_col : 0;

		if (top_frame(ctl, ezone, utf8, &buf, &len, &rc) < 0 || top_stop) {
			free(buf);
			break;
		}
		cli_plain(buf, 1); /* what the cluster says is text, never terminal commands */
		top_show(buf, cols, tty);
		free(buf);
		if (ctl->top_iterations > 0 && n + 1 >= ctl->top_iterations)
			break;
		if (top_wait(ctl->top_delay) != 0)
			break;
	}
	top_restore();
	free(ezone);
	return rc;
}
