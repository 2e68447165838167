/* scalerctl: command line client of scalerd's admin API.
 *
 * A short-lived CLI, so it uses libcurl's blocking easy API. It reads only
 * the few scaler.conf settings it needs (node.admin, node.url, node.token,
 * node.token_file) and ignores the rest, so a newer or partly broken daemon
 * config never stops an operator from looking at the cluster. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libconfig.h>

#include "scalerctl.h"
#include "secret.h"
#include "token_file.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif
#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

#define CTL_DEFAULT_CONF SYSCONFDIR "/scaler/scaler.conf"
#define CTL_DEFAULT_URL "http://127.0.0.1:9000"
#define CTL_MAX_BODY (8 << 20) /* bytes: a larger answer is not from scalerd */
#define CTL_FOLLOW_WAIT 25     /* seconds one long poll of `events -f` may wait */

/* ---- messages ------------------------------------------------------------ */

void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_err(const char *fmt, ...)
{
	char msg[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* messages quote what scalerd said: text, never terminal commands */
	cli_plain(msg, 0);
	fprintf(stderr, "scalerctl: %s\n", msg);
}

static int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("scalerctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'scalerctl --help'.\n", stderr);
	return CTL_USAGE;
}

static void cli_help(void)
{
	printf("Usage: scalerctl [OPTIONS] COMMAND [ARGS]\n"
	       "\n"
	       "Talk to scalerd's admin API.\n"
	       "\n"
	       "Commands:\n"
	       "  status                      this node, its plugins and every zone\n"
	       "  servers [ZONE]              servers of every zone, or of ZONE\n"
	       "  events [-f] [ZONE]          recent scaling events; -f keeps following\n"
	       "  reload                      reload scaler.conf (like SIGHUP)\n"
	       "  scale ZONE N [--for DUR]    pin ZONE at N servers (DUR: 90s, 10m, 1h30m)\n"
	       "  scale ZONE --unpin          give ZONE back to its policy\n"
	       "  drain ZONE SERVER           take SERVER out of ZONE gracefully\n"
	       "  top [ZONE]                  the console's overview, refreshed (q quits)\n"
	       "\n"
	       "Options:\n"
	       "  -u, --url URL          scalerd admin URL (env SCALER_URL; default from\n"
	       "                         scaler.conf node.admin, else " CTL_DEFAULT_URL ")\n"
	       "  -t, --token TOKEN      API token (env SCALER_TOKEN)\n"
	       "      --token-file FILE  read the API token from FILE\n"
	       "  -c, --config FILE      read node.admin/url/token/token_file from FILE\n"
	       "                         (env SCALER_CONF; default " CTL_DEFAULT_CONF "\n"
	       "                         when readable)\n"
	       "  -j, --json             print the API's JSON instead of tables\n"
	       "  -f, --follow           events: wait for new events until interrupted\n"
	       "      --for DURATION     scale: pin only for DURATION\n"
	       "      --unpin            scale: remove the pin\n"
	       "      --timeout SECONDS  give up on a request after SECONDS (default 15)\n"
	       "  -d, --delay SECONDS    top: seconds between refreshes (default 2)\n"
	       "  -n, --iterations N     top: stop after N refreshes\n"
	       "  -h, --help             show this help\n"
	       "  -V, --version          show the version\n"
	       "\n"
	       "Exit status: 0 ok, 1 usage error, 2 scalerd unreachable, 3 unauthorised,\n"
	       "4 not found, 5 refused or failed on the server.\n");
}

/* ---- small helpers --------------------------------------------------------- */

void cli_copy(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src);
}

static char *cli_trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* "90s", "10m", "1h30m", "2d", "45" (seconds), "1.5h" → seconds; -1 if bad. */
static double cli_parse_duration(const char *s)
{
	double total = 0;
	int parts = 0;

	if (!*s)
		return -1;
	while (*s) {
		char *end;
		double v;

		if (!isdigit((unsigned char)*s) && *s != '.')
			return -1;
		errno = 0;
		v = strtod(s, &end);
		if (end == s || errno || !isfinite(v) || v < 0)
			return -1;
		s = end;
		switch (*s) {
		case 'd':
			v *= 86400;
			s++;
			break;
		case 'h':
			v *= 3600;
			s++;
			break;
		case 'm':
			v *= 60;
			s++;
			break;
		case 's':
			s++;
			break;
		case '\0':
			if (parts)
				return -1; /* "1h30" is ambiguous */
			break;
		default:
			return -1;
		}
		total += v;
		parts++;
	}
	return total;
}

/* 3725 → "1h2m", 45 → "45s", 90000 → "1d1h". */
void cli_fmt_duration(double seconds, char *buf, size_t len)
{
	long s = lround(seconds < 0 ? 0 : seconds);

	if (s < 60)
		snprintf(buf, len, "%lds", s);
	else if (s < 3600)
		snprintf(buf, len, s % 60 ? "%ldm%lds" : "%ldm", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, (s % 3600) / 60 ? "%ldh%ldm" : "%ldh", s / 3600,
		         (s % 3600) / 60);
	else
		snprintf(buf, len, (s % 86400) / 3600 ? "%ldd%ldh" : "%ldd", s / 86400,
		         (s % 86400) / 3600);
}

static void cli_fmt_time(double t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || !localtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
		cli_copy(buf, len, "-");
}

double cli_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

const char *cli_jstr(json_t *obj, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : dflt;
}

/* Number member (int or real); NAN when absent or null. */
double cli_jnum(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* A number for a table cell: integers without decimals, "-" when NAN. */
void cli_fmt_num(double v, char *buf, size_t len)
{
	if (isnan(v))
		cli_copy(buf, len, "-");
	else if (v == floor(v) && fabs(v) < 1e15)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%.1f", v);
}

/* A load value: always one decimal, "-" when unknown. */
void cli_fmt_metric(double v, char *buf, size_t len)
{
	if (isnan(v))
		cli_copy(buf, len, "-");
	else
		snprintf(buf, len, "%.1f", v);
}

/* ---- aligned tables ------------------------------------------------------- */

void table_init(struct table *t, const char *align)
{
	memset(t, 0, sizeof(*t));
	t->ncols = strlen(align);
	t->align = align;
}

void cli_plain(char *s, int keep_newlines)
{
	for (unsigned char *p = (unsigned char *)s; *p; p++) {
		if ((*p < 0x20 && !(keep_newlines && *p == '\n')) || *p == 0x7f) {
			*p = '?';
		} else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			/* C1 controls are two bytes in UTF-8: one '?' and a space keeps the width
			 */
			p[0] = '?';
			p[1] = ' ';
			p++;
		}
	}
}

void table_row(struct table *t, ...)
{
	va_list ap;
	char **cells = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*cells));

	if (!cells) {
		cli_err("out of memory");
		exit(CTL_SERVER);
	}
	t->cells = cells;
	va_start(ap, t);
	for (size_t c = 0; c < t->ncols; c++) {
		const char *s = va_arg(ap, const char *);
		char *cell = strdup(s ? s : "-");
		if (!cell) {
			cli_err("out of memory");
			exit(CTL_SERVER);
		}
		cli_plain(cell, 0);
		t->cells[t->nrows * t->ncols + c] = cell;
	}
	va_end(ap);
	t->nrows++;
}

/* Display width of UTF-8 text: count code points, not bytes. */
static size_t table_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}

void table_fprint(FILE *out, struct table *t)
{
	size_t width[TABLE_MAXCOLS] = {0};

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t w = table_width(t->cells[r * t->ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			int pad = (int)(width[c] - table_width(s));
			int last = c + 1 == t->ncols;

			if (t->align[c] == 'r')
				fprintf(out, "%*s%s", pad, "", s);
			else if (last)
				fputs(s, out);
			else
				fprintf(out, "%s%*s", s, pad, "");
			if (!last)
				fputs("  ", out);
		}
		fputc('\n', out);
	}
	table_free(t);
}

void table_print(struct table *t)
{
	table_fprint(stdout, t);
}

/* ---- where to connect, with which token --------------------------------- */

/* NULL with the reason in ctl->token_problem. */
static char *cli_read_token_file(struct ctl *ctl, const char *path)
{
	return token_file_read(path, NULL, ctl->token_problem, sizeof(ctl->token_problem));
}

/* "URL" or "host:port" → "http://host:port" without a trailing slash. */
static int cli_set_url(struct ctl *ctl, const char *url, const char *from)
{
	size_t n;

	if (!*url)
		return -1;
	if (strstr(url, "://")) {
		if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
			return -1;
		cli_copy(ctl->url, sizeof(ctl->url), url);
	} else {
		snprintf(ctl->url, sizeof(ctl->url), "http://%s", url);
	}
	n = strlen(ctl->url);
	while (n > 0 && ctl->url[n - 1] == '/')
		ctl->url[--n] = '\0';
	cli_copy(ctl->url_from, sizeof(ctl->url_from), from);
	return 0;
}

/* node.admin is a listen address: a wildcard host means "this machine". */
static void cli_admin_to_url(const char *admin, char *url, size_t len)
{
	const char *colon = strrchr(admin, ':');
	const char *port = colon ? colon + 1 : "9000";
	size_t hostlen = colon ? (size_t)(colon - admin) : strlen(admin);
	char host[256];

	if (hostlen >= sizeof(host))
		hostlen = sizeof(host) - 1;
	memcpy(host, admin, hostlen);
	host[hostlen] = '\0';
	if (!*host || !strcmp(host, "*") || !strcmp(host, "0.0.0.0"))
		cli_copy(host, sizeof(host), "127.0.0.1");
	else if (!strcmp(host, "[::]"))
		cli_copy(host, sizeof(host), "[::1]");
	snprintf(url, len, "http://%s:%s", host, port);
}

/* Fill what flags and environment left open from scaler.conf. A missing
 * default file is fine; an explicit -c that cannot be read is an error. */
/* The whole of a configuration file, as scalerd reads one: a regular file
 * (a FIFO would block here until someone writes to it) of at most 1 MiB,
 * read through one descriptor. NULL after saying why. */
static char *cli_slurp_conf(const char *path)
{
	enum { CLI_CONF_MAX = 1024 * 1024 };
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	char *buf = NULL;
	size_t n = 0;

	if (fd < 0) {
		cli_err("cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		cli_err("cannot read %s: %s", path, strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		cli_err("%s is %s; a configuration must be a regular file", path,
		        file_type_name(st.st_mode));
	} else if (st.st_size > CLI_CONF_MAX) {
		cli_err("%s: %lld bytes; a configuration file is at most %d bytes", path,
		        (long long)st.st_size, CLI_CONF_MAX);
	} else if (!(buf = malloc(CLI_CONF_MAX + 2))) {
		cli_err("%s: out of memory", path);
	} else {
		const char *why = NULL;
		for (;;) {
			ssize_t got = read(fd, buf + n, CLI_CONF_MAX + 1 - n);
			if (got < 0 && errno == EINTR)
				continue;
			if (got < 0)
				why = strerror(errno);
			else if ((n += (size_t)got) > CLI_CONF_MAX)
				why = "grew past 1 MiB while read";
			else if (got > 0)
				continue;
			break;
		}
		if (!why && memchr(buf, '\0', n))
			why = "a NUL byte; a configuration is text";
		if (why) {
			cli_err("cannot read %s: %s", path, why);
			explicit_bzero(buf, n);
			free(buf);
			buf = NULL;
		} else {
			buf[n] = '\0';
		}
	}
	close(fd);
	return buf;
}

static int cli_read_conf(struct ctl *ctl, const char *path, int explicit_path, int need_url,
                         int need_token)
{
	config_t cfg;
	const char *s;
	char dir[4096];
	char from[4200];
	int rc = 0;

	if (!need_url && !need_token && !explicit_path)
		return 0;
	if (access(path, R_OK) != 0) {
		if (!explicit_path)
			return 0;
		cli_err("cannot read %s: %s", path, strerror(errno));
		return -1;
	}

	config_init(&cfg);
	cli_copy(dir, sizeof(dir), path);
	if (strrchr(dir, '/'))
		*strrchr(dir, '/') = '\0';
	else
		cli_copy(dir, sizeof(dir), ".");
	config_set_include_dir(&cfg, dir);

	char *text = cli_slurp_conf(path);
	int ok = text && config_read_string(&cfg, text);
	if (!ok && text) {
		if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO)
			cli_err("cannot read %s: %s",
			        config_error_file(&cfg) ? config_error_file(&cfg) : path,
			        config_error_text(&cfg));
		else
			cli_err("%s:%d: %s",
			        config_error_file(&cfg) ? config_error_file(&cfg) : path,
			        config_error_line(&cfg), config_error_text(&cfg));
	}
	if (text) {
		explicit_bzero(text, strlen(text)); /* it may hold the token */
		free(text);
	}
	if (!ok) {
		if (explicit_path) {
			config_destroy(&cfg);
			return -1;
		}
		fprintf(stderr, "scalerctl: ignoring %s (use -u URL or -c FILE)\n", path);
		config_destroy(&cfg);
		return 0;
	}

	if (need_url) {
		if (config_lookup_string(&cfg, "node.admin", &s) && *s) {
			char url[1024];

			cli_admin_to_url(s, url, sizeof(url));
			snprintf(from, sizeof(from), "node.admin in %s", path);
			cli_set_url(ctl, url, from);
		} else if (config_lookup_string(&cfg, "node.url", &s) && *s) {
			snprintf(from, sizeof(from), "node.url in %s", path);
			if (cli_set_url(ctl, s, from) < 0) {
				cli_err("%s: node.url: \"%s\" is not an http:// URL", path, s);
				rc = -1;
			}
		}
	}
	if (need_token) {
		if (config_lookup_string(&cfg, "node.token", &s) && *s) {
			ctl->token = strdup(s);
			snprintf(ctl->token_from, sizeof(ctl->token_from), "node.token in %s",
			         path);
		} else if (config_lookup_string(&cfg, "node.token_file", &s) && *s) {
			/* the path as scalerd opens it (relative to the working directory) */
			ctl->token = cli_read_token_file(ctl, s);
			snprintf(ctl->token_from, sizeof(ctl->token_from),
			         "node.token_file %.2000s in %.2000s", s, path);
		}
	}
	config_destroy(&cfg);
	return rc;
}

/* ---- HTTP ------------------------------------------------------------------ */

static size_t cli_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct cli_reply *r = arg;
	size_t n = size * nmemb;
	char *body;

	if (n > CTL_MAX_BODY - r->len) {
		r->too_big = 1;
		return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
	}
	body = realloc(r->body, r->len + n + 1);
	if (!body)
		return 0;
	memcpy(body + r->len, data, n);
	r->len += n;
	body[r->len] = '\0';
	r->body = body;
	return n;
}

/* Non-zero (curl aborts the transfer) once ctl->stop is set. */
static int cli_xferinfo_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                           curl_off_t ulnow)
{
	const struct ctl *ctl = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return *ctl->stop != 0;
}

void cli_reply_free(struct cli_reply *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

/* One request. 0 when an HTTP response arrived (any status), -1 when the
 * transport failed (r->error says why). */
int cli_request(struct ctl *ctl, const char *method, const char *path, json_t *body, double timeout,
                struct cli_reply *r)
{
	char url[2048];
	char auth[4200];
	struct curl_slist *headers = NULL;
	char *payload = NULL;
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "%s%s", ctl->url, path);
	curl_easy_reset(ctl->curl);
	curl_easy_setopt(ctl->curl, CURLOPT_URL, url);
	curl_easy_setopt(ctl->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(ctl->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(ctl->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(ctl->curl, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
	curl_easy_setopt(ctl->curl, CURLOPT_ERRORBUFFER, r->error);
	curl_easy_setopt(ctl->curl, CURLOPT_WRITEFUNCTION, cli_write_cb);
	curl_easy_setopt(ctl->curl, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(ctl->curl, CURLOPT_USERAGENT, "scalerctl/" PACKAGE_VERSION);
	/* a proxy from http_proxy applies to remote nodes, never to this machine */
	curl_easy_setopt(ctl->curl, CURLOPT_NOPROXY, ctl->noproxy);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(ctl->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(ctl->curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	headers = curl_slist_append(headers, "Accept: application/json");
	if (ctl->token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ctl->token);
		headers = curl_slist_append(headers, auth);
	}
	if (body) {
		payload = json_dumps(body, JSON_COMPACT);
		headers = curl_slist_append(headers, "Content-Type: application/json");
		curl_easy_setopt(ctl->curl, CURLOPT_POSTFIELDS, payload);
		curl_easy_setopt(ctl->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
	} else if (strcmp(method, "GET")) {
		curl_easy_setopt(ctl->curl, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(ctl->curl, CURLOPT_POSTFIELDSIZE, 0L);
	}
	curl_easy_setopt(ctl->curl, CURLOPT_HTTPHEADER, headers);
	if (ctl->stop) {
		/* curl carries on after EINTR: ask it, while it waits, whether to stop */
		curl_easy_setopt(ctl->curl, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(ctl->curl, CURLOPT_XFERINFOFUNCTION, cli_xferinfo_cb);
		curl_easy_setopt(ctl->curl, CURLOPT_XFERINFODATA, ctl);
	}

	rc = curl_easy_perform(ctl->curl);
	curl_slist_free_all(headers);
	free(payload);
	if (rc != CURLE_OK) {
		long oserr = 0;

		curl_easy_getinfo(ctl->curl, CURLINFO_OS_ERRNO, &oserr);
		if (r->too_big)
			snprintf(r->error, sizeof(r->error), "the answer is larger than %d MiB",
			         CTL_MAX_BODY >> 20);
		else if (rc == CURLE_ABORTED_BY_CALLBACK && ctl->stop && *ctl->stop)
			cli_copy(r->error, sizeof(r->error), "interrupted");
		else if (rc == CURLE_COULDNT_CONNECT && oserr)
			cli_copy(r->error, sizeof(r->error), strerror((int)oserr));
		else if (rc == CURLE_OPERATION_TIMEDOUT)
			snprintf(r->error, sizeof(r->error), "no answer within %gs (--timeout)",
			         timeout);
		else if (!r->error[0])
			cli_copy(r->error, sizeof(r->error), curl_easy_strerror(rc));
		return -1;
	}
	curl_easy_getinfo(ctl->curl, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->body)
		r->json = json_loadb(r->body, r->len, JSON_DECODE_ANY, NULL);
	return 0;
}

/* The server's own sentence for an error response. */
static const char *cli_reply_error(const struct cli_reply *r, char *buf, size_t len)
{
	const char *e = cli_jstr(r->json, "error", NULL);

	/* what the server says is text, never terminal commands */
	if (e) {
		cli_copy(buf, len, e);
		cli_plain(buf, 0);
		return buf;
	}
	if (r->body && r->len) {
		snprintf(buf, len, "%.200s", r->body);
		cli_plain(buf, 0);
		return cli_trim(buf);
	}
	snprintf(buf, len, "HTTP %ld", r->status);
	return buf;
}

int cli_unreachable(struct ctl *ctl, const struct cli_reply *r)
{
	if (r->too_big) {
		cli_err("%s answered with more than %d MiB, more than scalerd ever sends; is it "
		        "scalerd? (URL from %s)",
		        ctl->url, CTL_MAX_BODY >> 20, ctl->url_from);
		return CTL_SERVER;
	}
	cli_err("cannot reach scalerd at %s: %s — is scalerd running? (URL from %s; "
	        "set -u URL or SCALER_URL)",
	        ctl->url, r->error, ctl->url_from);
	return CTL_UNREACHABLE;
}

/* Append to buf (of len, holding n bytes) what printf makes of fmt. */
static size_t cli_append(char *buf, size_t len, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t cli_append(char *buf, size_t len, size_t n, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (n >= len)
		return n;
	va_start(ap, fmt);
	k = vsnprintf(buf + n, len - n, fmt, ap);
	va_end(ap);
	return k < 0 ? n : n + (size_t)k;
}

/* After a 404 about ctl->zone (and ctl->server): " (zones: a, b)" or
 * " (servers in z: a, b)" from GET /status into buf, "" when scalerd
 * cannot tell. */
static void cli_hint_not_found(struct ctl *ctl, char *buf, size_t len)
{
	struct cli_reply r;
	json_t *zones, *servers, *z, *srv, *known = NULL;
	size_t i, n = 0;

	buf[0] = '\0';
	if (!ctl->zone)
		return;
	if (cli_request(ctl, "GET", "/status", NULL, ctl->timeout, &r) < 0 || r.status != 200) {
		cli_reply_free(&r);
		return;
	}
	zones = json_object_get(r.json, "zones");
	json_array_foreach(zones, i, z)
	{
		if (!strcmp(cli_jstr(z, "name", ""), ctl->zone))
			known = z;
	}
	if (known && ctl->server) {
		servers = json_object_get(known, "servers");
		n = cli_append(buf, len, n, " (servers in %s: ", ctl->zone);
		json_array_foreach(servers, i, srv)
		{
			n = cli_append(buf, len, n, "%s%s", i ? ", " : "",
			               cli_jstr(srv, "id", "?"));
		}
		cli_append(buf, len, n, "%s)", json_array_size(servers) ? "" : "none");
	} else if (!known && json_array_size(zones)) {
		n = cli_append(buf, len, n, " (zones: ");
		json_array_foreach(zones, i, z)
		{
			n = cli_append(buf, len, n, "%s%s", i ? ", " : "",
			               cli_jstr(z, "name", "?"));
		}
		cli_append(buf, len, n, ")");
	}
	cli_reply_free(&r);
}

/* The lines of an answer's "errors" array on stderr, as text. */
static void cli_print_errors(json_t *errors)
{
	size_t i;
	json_t *e;

	json_array_foreach(errors, i, e)
	{
		char line[2048];

		if (!json_is_string(e))
			continue;
		cli_copy(line, sizeof(line), json_string_value(e));
		cli_plain(line, 0);
		fprintf(stderr, "  %s\n", line);
	}
}

/* Report a failed exchange and return the exit status it maps to. */
int cli_fail(struct ctl *ctl, const struct cli_reply *r)
{
	char buf[512];
	const char *msg;
	json_t *errors;

	if (r->status == 0)
		return cli_unreachable(ctl, r);
	msg = cli_reply_error(r, buf, sizeof(buf));
	if (r->status == 401 || r->status == 403) {
		if (ctl->token)
			cli_err("unauthorised: scalerd at %s refused the token from %s (%s); "
			        "check SCALER_TOKEN or --token-file",
			        ctl->url, ctl->token_from, msg);
		else if (ctl->token_problem[0])
			cli_err(
			    "unauthorised: scalerd at %s wants a token and %s; set SCALER_TOKEN "
			    "or --token-file, or run as a member of group scaler",
			    ctl->url, ctl->token_problem);
		else
			cli_err("unauthorised: scalerd at %s wants a token; set SCALER_TOKEN or "
			        "--token-file",
			        ctl->url);
		return CTL_UNAUTHORISED;
	}
	if (r->status == 404) {
		char hint[1024];

		hint[0] = '\0';
		/* a 404 about the route itself (an older scalerd) gets no hint */
		if (strstr(msg, "zone") || strstr(msg, "server"))
			cli_hint_not_found(ctl, hint, sizeof(hint));
		cli_err("%s%s", msg, hint);
		return CTL_NOTFOUND;
	}
	cli_err("scalerd refused (HTTP %ld): %s", r->status, msg);
	errors = json_object_get(r->json, "errors");
	cli_print_errors(errors);
	return CTL_SERVER;
}

/* GET that must answer 200 with JSON; exit status on failure, else 0. */
int cli_get_json(struct ctl *ctl, const char *path, struct cli_reply *r)
{
	if (cli_request(ctl, "GET", path, NULL, ctl->timeout, r) < 0)
		return cli_unreachable(ctl, r);
	if (r->status != 200)
		return cli_fail(ctl, r);
	if (!r->json && !ctl->json) {
		cli_err("scalerd at %s answered %s with something that is not JSON", ctl->url,
		        path);
		return CTL_SERVER;
	}
	return 0;
}

static void cli_print_raw(const struct cli_reply *r)
{
	if (r->body)
		fwrite(r->body, 1, r->len, stdout);
	if (!r->len || r->body[r->len - 1] != '\n')
		fputc('\n', stdout);
}

char *cli_escape(struct ctl *ctl, const char *s)
{
	char *e = curl_easy_escape(ctl->curl, s, 0);
	char *copy = strdup(e ? e : "");

	curl_free(e);
	return copy;
}

/* ---- commands -------------------------------------------------------------- */

static void cli_status_zones(json_t *zones)
{
	struct table t;
	json_t *z;
	size_t i;
	double now = cli_now();

	table_init(&t, "llrrrllll");
	table_row(&t, "ZONE", "SERVERS", "MIN", "MAX", "LOAD", "LISTEN", "PINNED", "COOLDOWN",
	          "LAST DECISION", NULL);
	json_array_foreach(zones, i, z)
	{
		char name[128], nservers[64], min[32], max[32], load[32], pinned[128], cool[32],
		    last[512];
		json_t *servers = json_object_get(z, "servers"), *s, *pin, *dec;
		size_t j, serving = 0, nmetric = 0;
		double sum = 0;

		snprintf(name, sizeof(name), "%s%s", cli_jstr(z, "name", "?"),
		         json_is_true(json_object_get(z, "dry_run")) ? " (dry run)" : "");
		json_array_foreach(servers, j, s)
		{
			double m = cli_jnum(s, "metric");

			if (!strcmp(cli_jstr(s, "state", ""), "serving"))
				serving++;
			if (!isnan(m)) {
				sum += m;
				nmetric++;
			}
		}
		if (serving == json_array_size(servers))
			snprintf(nservers, sizeof(nservers), "%zu", serving);
		else
			snprintf(nservers, sizeof(nservers), "%zu (%zu serving)",
			         json_array_size(servers), serving);
		cli_fmt_num(cli_jnum(z, "min"), min, sizeof(min));
		cli_fmt_num(cli_jnum(z, "max"), max, sizeof(max));
		if (nmetric)
			snprintf(load, sizeof(load), "%.1f", sum / nmetric);
		else
			cli_copy(load, sizeof(load), "-");

		pin = json_object_get(z, "pinned");
		if (json_is_object(pin)) {
			double until = cli_jnum(pin, "until");
			char count[32], d[32];

			cli_fmt_num(cli_jnum(pin, "count"), count, sizeof(count));
			if (isnan(until)) {
				cli_copy(pinned, sizeof(pinned), count);
			} else {
				cli_fmt_duration(until - now, d, sizeof(d));
				snprintf(pinned, sizeof(pinned), "%s for %s", count, d);
			}
		} else {
			cli_copy(pinned, sizeof(pinned), "-");
		}
		if (cli_jnum(z, "cooldown_remaining") > 0)
			cli_fmt_duration(cli_jnum(z, "cooldown_remaining"), cool, sizeof(cool));
		else
			cli_copy(cool, sizeof(cool), "-");

		dec = json_object_get(z, "last_decision");
		if (json_is_object(dec)) {
			char from[32], to[32], ago[32];
			const char *rule = cli_jstr(dec, "rule", NULL);

			cli_fmt_num(cli_jnum(dec, "from"), from, sizeof(from));
			cli_fmt_num(cli_jnum(dec, "to"), to, sizeof(to));
			cli_fmt_duration(now - cli_jnum(dec, "time"), ago, sizeof(ago));
			snprintf(last, sizeof(last), "%s -> %s %s, %s ago", from, to,
			         rule ? rule : cli_jstr(dec, "reason", ""),
			         isnan(cli_jnum(dec, "time")) ? "?" : ago);
		} else {
			cli_copy(last, sizeof(last), "-");
		}
		table_row(&t, name, nservers, min, max, load, cli_jstr(z, "listen", "-"), pinned,
		          cool, last, NULL);
	}
	table_print(&t);
}

static int cli_cmd_status(struct ctl *ctl)
{
	struct cli_reply r;
	json_t *node, *conf, *plugins, *p, *zones;
	size_t i;
	char when[64], epoch[32];
	int rc = cli_get_json(ctl, "/status", &r);

	if (rc || ctl->json) {
		if (!rc)
			cli_print_raw(&r);
		cli_reply_free(&r);
		return rc;
	}
	node = json_object_get(r.json, "node");
	conf = json_object_get(r.json, "config");
	plugins = json_object_get(r.json, "plugins");
	zones = json_object_get(r.json, "zones");

	cli_fmt_num(cli_jnum(node, "epoch"), epoch, sizeof(epoch));
	printf("node     %s (%s, epoch %s)  %s\n", cli_jstr(node, "id", "?"),
	       cli_jstr(node, "role", "?"), epoch, cli_jstr(node, "url", ctl->url));
	cli_fmt_time(cli_jnum(conf, "loaded_at"), when, sizeof(when));
	if (isnan(cli_jnum(conf, "loaded_at"))) {
		printf("config   %s\n", cli_jstr(conf, "path", "?"));
	} else {
		char ago[32];

		cli_fmt_duration(cli_now() - cli_jnum(conf, "loaded_at"), ago, sizeof(ago));
		printf("config   %s (loaded %s, %s ago)\n", cli_jstr(conf, "path", "?"), when, ago);
	}
	if (json_array_size(plugins)) {
		fputs("plugins ", stdout);
		json_array_foreach(plugins, i, p)
		{
			printf(" %s=%s %s", cli_jstr(p, "kind", "?"), cli_jstr(p, "name", "?"),
			       cli_jstr(p, "version", ""));
		}
		fputc('\n', stdout);
	}
	fputc('\n', stdout);
	if (json_array_size(zones))
		cli_status_zones(zones);
	else
		printf("no zones configured\n");
	cli_reply_free(&r);
	return CTL_OK;
}

static int cli_cmd_servers(struct ctl *ctl, const char *zone)
{
	struct cli_reply r;
	struct table t;
	char path[512];
	json_t *s;
	size_t i;
	int rc;
	double now = cli_now();

	if (zone) {
		char *z = cli_escape(ctl, zone);
		snprintf(path, sizeof(path), "/servers?zone=%s", z);
		free(z);
	} else {
		cli_copy(path, sizeof(path), "/servers");
	}
	rc = cli_get_json(ctl, path, &r);
	if (rc || ctl->json) {
		if (!rc)
			cli_print_raw(&r);
		cli_reply_free(&r);
		return rc;
	}
	if (!json_array_size(r.json)) {
		printf(zone ? "no servers in zone %s\n" : "no servers%s\n", zone ? zone : "");
		cli_reply_free(&r);
		return CTL_OK;
	}
	table_init(&t, "llllrrll");
	table_row(&t, "ID", "ZONE", "STATE", "ADDRESS", "LOAD", "AGE", "DRIVER", "REF", NULL);
	json_array_foreach(r.json, i, s)
	{
		char load[32], age[32];
		double created = cli_jnum(s, "created");

		cli_fmt_metric(cli_jnum(s, "metric"), load, sizeof(load));
		if (isnan(created) || created <= 0)
			cli_copy(age, sizeof(age), "-");
		else
			cli_fmt_duration(now - created, age, sizeof(age));
		table_row(&t, cli_jstr(s, "id", "?"), cli_jstr(s, "zone", "-"),
		          cli_jstr(s, "state", "-"), cli_jstr(s, "address", "-"), load, age,
		          cli_jstr(s, "driver", "-"), cli_jstr(s, "ref", "-"), NULL);
	}
	table_print(&t);
	cli_reply_free(&r);
	return CTL_OK;
}

/* Events as a table. Followed events are printed as they come, so their
 * columns cannot be sized from the whole set: they get fixed widths. */
static void cli_event_row(struct table *t, json_t *e)
{
	char when[64], from[32], to[32];

	cli_fmt_time(cli_jnum(e, "time"), when, sizeof(when));
	cli_fmt_num(cli_jnum(e, "from"), from, sizeof(from));
	cli_fmt_num(cli_jnum(e, "to"), to, sizeof(to));
	if (t) {
		table_row(t, when, cli_jstr(e, "zone", "-"), cli_jstr(e, "kind", "-"), from, to,
		          cli_jstr(e, "reason", ""), NULL);
		return;
	}
	char zone[128], kind[64], reason[1024];
	snprintf(zone, sizeof(zone), "%s", cli_jstr(e, "zone", "-"));
	snprintf(kind, sizeof(kind), "%s", cli_jstr(e, "kind", "-"));
	snprintf(reason, sizeof(reason), "%s", cli_jstr(e, "reason", ""));
	cli_plain(zone, 0);
	cli_plain(kind, 0);
	cli_plain(reason, 0);
	printf("%-19s  %-10s  %-14s  %4s  %4s  %s\n", when, zone, kind, from, to, reason);
}

static int cli_cmd_events(struct ctl *ctl, const char *zone)
{
	char *ezone = zone ? cli_escape(ctl, zone) : NULL;
	char *after = NULL;
	int printed_header = 0, first = 1, warned = 0, rc = CTL_OK;

	for (;;) {
		struct cli_reply r;
		char path[1024];
		json_t *events, *e;
		size_t i;
		int n;

		n = snprintf(path, sizeof(path), "/events?");
		if (ezone)
			n += snprintf(path + n, sizeof(path) - n, "zone=%s&", ezone);
		if (after)
			n += snprintf(path + n, sizeof(path) - n, "after=%s&", after);
		if (!first)
			n += snprintf(path + n, sizeof(path) - n, "wait=%d&", CTL_FOLLOW_WAIT);
		path[n - 1] = '\0'; /* the last '&' or the '?' */

		if (cli_request(ctl, "GET", path, NULL, first ? ctl->timeout : CTL_FOLLOW_WAIT + 15,
		                &r) < 0) {
			if (first) {
				rc = cli_unreachable(ctl, &r);
				break;
			}
			/* scalerd restarting while we follow: keep trying */
			if (!warned)
				cli_err("lost scalerd at %s (%s); retrying", ctl->url, r.error);
			warned = 1;
			cli_reply_free(&r);
			sleep(2);
			continue;
		}
		if (warned)
			cli_err("reconnected to scalerd at %s", ctl->url);
		warned = 0;
		if (r.status != 200 || !json_is_object(r.json)) {
			if (r.status == 200) {
				cli_err(
				    "scalerd at %s answered /events with something that is not a "
				    "JSON object",
				    ctl->url);
				rc = CTL_SERVER;
			} else {
				rc = cli_fail(ctl, &r);
			}
			cli_reply_free(&r);
			break;
		}
		events = json_object_get(r.json, "events");
		if (ctl->json && !ctl->follow) {
			cli_print_raw(&r);
		} else if (ctl->json) {
			json_array_foreach(events, i, e)
			{
				char *line = json_dumps(e, JSON_COMPACT);
				if (line)
					puts(line);
				free(line);
			}
		} else {
			struct table t;

			table_init(&t, "lllrrl");
			table_row(&t, "TIME", "ZONE", "KIND", "FROM", "TO", "REASON", NULL);
			if (ctl->follow && !printed_header) {
				printf("%-19s  %-10s  %-14s  %4s  %4s  %s\n", "TIME", "ZONE",
				       "KIND", "FROM", "TO", "REASON");
				printed_header = 1;
			}
			json_array_foreach(events, i, e)
			{
				cli_event_row(ctl->follow ? NULL : &t, e);
			}
			if (!ctl->follow && t.nrows > 1)
				table_print(&t);
			else
				table_free(&t);
			if (!ctl->follow && !json_array_size(events))
				printf(zone ? "no events in zone %s\n" : "no events%s\n",
				       zone ? zone : "");
		}
		fflush(stdout);
		if (json_string_value(json_object_get(r.json, "last"))) {
			free(after);
			after = cli_escape(ctl, json_string_value(json_object_get(r.json, "last")));
		}
		cli_reply_free(&r);
		first = 0;
		if (!ctl->follow)
			break;
	}
	free(ezone);
	free(after);
	return rc;
}

static int cli_cmd_reload(struct ctl *ctl)
{
	struct cli_reply r;
	int rc = CTL_OK;

	if (cli_request(ctl, "POST", "/reload", NULL, ctl->timeout, &r) < 0)
		return cli_unreachable(ctl, &r);
	if (r.status == 400) {
		char buf[512];
		json_t *errors = json_object_get(r.json, "errors");

		if (ctl->json)
			cli_print_raw(&r);
		cli_err("reload refused, scalerd keeps running the previous configuration: %s",
		        cli_reply_error(&r, buf, sizeof(buf)));
		cli_print_errors(errors);
		rc = CTL_SERVER;
	} else if (r.status != 200) {
		rc = cli_fail(ctl, &r);
	} else if (ctl->json) {
		cli_print_raw(&r);
	} else {
		printf("%s\n", cli_jstr(r.json, "result", "reloaded"));
	}
	cli_reply_free(&r);
	return rc;
}

static int cli_cmd_scale(struct ctl *ctl, const char *zone, const char *count)
{
	struct cli_reply r;
	json_t *body = json_object();
	int rc = CTL_OK;

	json_object_set_new(body, "zone", json_string(zone));
	if (ctl->unpin) {
		json_object_set_new(body, "count", json_null());
	} else {
		char *end;
		long n;

		errno = 0;
		n = strtol(count, &end, 10);
		if (!isdigit((unsigned char)*count) || *end || errno || n > INT_MAX) {
			json_decref(body);
			return cli_usage_error("scale: the server count must be a whole number "
			                       "0 or more, not \"%s\"",
			                       count);
		}
		json_object_set_new(body, "count", json_integer(n));
		if (ctl->have_for)
			json_object_set_new(body, "for", json_real(ctl->for_seconds));
	}
	if (cli_request(ctl, "POST", "/scale", body, ctl->timeout, &r) < 0) {
		json_decref(body);
		return cli_unreachable(ctl, &r);
	}
	json_decref(body);
	if (r.status != 200) {
		rc = cli_fail(ctl, &r);
	} else if (ctl->json) {
		cli_print_raw(&r);
	} else if (ctl->unpin) {
		printf("%s unpinned; its policy decides again\n", zone);
	} else {
		double until = cli_jnum(r.json, "until");
		char c[32], d[32], when[64];

		cli_fmt_num(cli_jnum(r.json, "count"), c, sizeof(c));
		if (isnan(until)) {
			printf(
			    "%s pinned at %s servers until unpinned (scalerctl scale %s --unpin)\n",
			    zone, c, zone);
		} else {
			cli_fmt_duration(until - cli_now(), d, sizeof(d));
			cli_fmt_time(until, when, sizeof(when));
			printf("%s pinned at %s servers for %s (until %s)\n", zone, c, d, when);
		}
	}
	cli_reply_free(&r);
	return rc;
}

static int cli_cmd_drain(struct ctl *ctl, const char *zone, const char *server)
{
	struct cli_reply r;
	json_t *body = json_pack("{ssss}", "zone", zone, "server", server);
	int rc = CTL_OK;

	if (cli_request(ctl, "POST", "/drain", body, ctl->timeout, &r) < 0) {
		json_decref(body);
		return cli_unreachable(ctl, &r);
	}
	json_decref(body);
	if (r.status != 200 && r.status != 202) {
		rc = cli_fail(ctl, &r);
	} else if (ctl->json) {
		cli_print_raw(&r);
	} else {
		printf("draining %s in %s: it gets no new requests and is removed when idle\n",
		       server, zone);
	}
	cli_reply_free(&r);
	return rc;
}

/* ---- main ------------------------------------------------------------------ */

enum { OPT_TOKEN_FILE = 256, OPT_FOR, OPT_UNPIN, OPT_TIMEOUT };

static const struct option cli_options[] = {
    {"url", required_argument, NULL, 'u'},
    {"token", required_argument, NULL, 't'},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"config", required_argument, NULL, 'c'},
    {"json", no_argument, NULL, 'j'},
    {"follow", no_argument, NULL, 'f'},
    {"for", required_argument, NULL, OPT_FOR},
    {"unpin", no_argument, NULL, OPT_UNPIN},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"delay", required_argument, NULL, 'd'},
    {"iterations", required_argument, NULL, 'n'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

struct cli_command {
	const char *name;
	int min_args, max_args;
	const char *usage;
};

static const struct cli_command cli_commands[] = {
    {"status", 0, 0, "status"},
    {"servers", 0, 1, "servers [ZONE]"},
    {"events", 0, 1, "events [-f] [ZONE]"},
    {"reload", 0, 0, "reload"},
    {"scale", 1, 2, "scale ZONE N [--for DURATION] | scale ZONE --unpin"},
    {"drain", 2, 2, "drain ZONE SERVER"},
    {"top", 0, 1, "top [ZONE] [-d SECONDS] [-n N]"},
    {NULL, 0, 0, NULL},
};

static int cli_run(struct ctl *ctl, const char *cmd, char **args)
{
	if (strcmp(cmd, "status") && strcmp(cmd, "reload")) {
		ctl->zone = args[0];
		ctl->server = !strcmp(cmd, "drain") ? args[1] : NULL;
	}
	if (!strcmp(cmd, "status"))
		return cli_cmd_status(ctl);
	if (!strcmp(cmd, "servers"))
		return cli_cmd_servers(ctl, args[0]);
	if (!strcmp(cmd, "events"))
		return cli_cmd_events(ctl, args[0]);
	if (!strcmp(cmd, "reload"))
		return cli_cmd_reload(ctl);
	if (!strcmp(cmd, "top"))
		return cli_cmd_top(ctl, args[0]);
	if (!strcmp(cmd, "scale"))
		return cli_cmd_scale(ctl, args[0], args[1]);
	return cli_cmd_drain(ctl, args[0], args[1]);
}

int main(int argc, char **argv)
{
	struct ctl ctl;
	const char *url = NULL, *token = NULL, *token_file = NULL, *conf = NULL;
	const struct cli_command *cmd;
	int c, nargs, rc;

	memset(&ctl, 0, sizeof(ctl));
	ctl.timeout = 15;
	int have_top = 0;
	ctl.top_delay = 2;
	while ((c = getopt_long(argc, argv, "u:t:c:jfhVd:n:", cli_options, NULL)) != -1) {
		switch (c) {
		case 'u':
			url = optarg;
			break;
		case 't':
			token = optarg;
			break;
		case OPT_TOKEN_FILE:
			token_file = optarg;
			break;
		case 'c':
			conf = optarg;
			break;
		case 'j':
			ctl.json = 1;
			break;
		case 'f':
			ctl.follow = 1;
			break;
		case OPT_FOR:
			ctl.for_seconds = cli_parse_duration(optarg);
			if (ctl.for_seconds <= 0)
				return cli_usage_error("--for: \"%s\" is not a duration like 90s, "
				                       "10m, 1h or 1h30m",
				                       optarg);
			ctl.have_for = 1;
			break;
		case OPT_UNPIN:
			ctl.unpin = 1;
			break;
		case OPT_TIMEOUT: {
			char *end;
			ctl.timeout = strtod(optarg, &end);
			if (end == optarg || *end || !(ctl.timeout > 0))
				return cli_usage_error(
				    "--timeout: \"%s\" is not a number of seconds", optarg);
			break;
		}
		case 'd': {
			char *end;
			ctl.top_delay = strtod(optarg, &end);
			if (end == optarg || *end ||
			    !(ctl.top_delay >= 0.1 && ctl.top_delay <= 3600))
				return cli_usage_error(
				    "--delay: \"%s\" is not a number of seconds from 0.1 to 3600",
				    optarg);
			have_top = 1;
			break;
		}
		case 'n': {
			char *end;
			ctl.top_iterations = strtol(optarg, &end, 10);
			if (end == optarg || *end || ctl.top_iterations < 1)
				return cli_usage_error(
				    "--iterations: \"%s\" is not a count above 0", optarg);
			have_top = 1;
			break;
		}
		case 'h':
			cli_help();
			return CTL_OK;
		case 'V':
			printf("scalerctl %s\n", PACKAGE_VERSION);
			return CTL_OK;
		default:
			fputs("Try 'scalerctl --help'.\n", stderr);
			return CTL_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage_error("no command given (status, servers, events, reload, "
		                       "scale, drain, top)");
	for (cmd = cli_commands; cmd->name; cmd++)
		if (!strcmp(cmd->name, argv[optind]))
			break;
	if (!cmd->name)
		return cli_usage_error("unknown command \"%s\" (status, servers, events, reload, "
		                       "scale, drain, top)",
		                       argv[optind]);
	nargs = argc - optind - 1;
	if (!strcmp(cmd->name, "scale") && nargs == 1 && !ctl.unpin)
		return cli_usage_error("scale: give a server count or --unpin: %s", cmd->usage);
	if (!strcmp(cmd->name, "scale") && nargs == 2 && ctl.unpin)
		return cli_usage_error("scale: --unpin takes no server count: %s", cmd->usage);
	if (ctl.unpin && ctl.have_for)
		return cli_usage_error("scale: --for and --unpin do not go together");
	if (nargs < cmd->min_args || nargs > cmd->max_args)
		return cli_usage_error("%s: %s arguments; usage: scalerctl %s", cmd->name,
		                       nargs < cmd->min_args ? "missing" : "too many", cmd->usage);
	if ((ctl.have_for || ctl.unpin) && strcmp(cmd->name, "scale"))
		return cli_usage_error("%s is an option of scale only",
		                       ctl.unpin ? "--unpin" : "--for");
	if (ctl.follow && strcmp(cmd->name, "events"))
		return cli_usage_error("-f/--follow is an option of events only");
	if (have_top && strcmp(cmd->name, "top"))
		return cli_usage_error("-d/--delay and -n/--iterations are options of top only");

	/* flags beat the environment, which beats scaler.conf */
	if (!url && getenv("SCALER_URL") && *getenv("SCALER_URL"))
		url = getenv("SCALER_URL");
	if (url && cli_set_url(&ctl, url, url == getenv("SCALER_URL") ? "SCALER_URL" : "-u") < 0)
		return cli_usage_error("\"%s\" is not an http:// URL or host:port", url);
	if (token) {
		ctl.token = strdup(token);
		cli_copy(ctl.token_from, sizeof(ctl.token_from), "--token");
	} else if (token_file) {
		ctl.token = cli_read_token_file(&ctl, token_file);
		if (!ctl.token) {
			cli_err("%s", ctl.token_problem);
			return CTL_USAGE;
		}
		snprintf(ctl.token_from, sizeof(ctl.token_from), "--token-file %s", token_file);
	} else if (getenv("SCALER_TOKEN") && *getenv("SCALER_TOKEN")) {
		ctl.token = strdup(getenv("SCALER_TOKEN"));
		cli_copy(ctl.token_from, sizeof(ctl.token_from), "SCALER_TOKEN");
	}
	if (!conf && getenv("SCALER_CONF") && *getenv("SCALER_CONF"))
		conf = getenv("SCALER_CONF");
	if (cli_read_conf(&ctl, conf ? conf : CTL_DEFAULT_CONF, conf != NULL, !ctl.url[0],
	                  !ctl.token && !ctl.token_problem[0]) < 0)
		return CTL_USAGE;
	if (!ctl.url[0])
		cli_set_url(&ctl, CTL_DEFAULT_URL, "the default");

	snprintf(ctl.noproxy, sizeof(ctl.noproxy), "%.900s%slocalhost,127.0.0.1,::1",
	         getenv("no_proxy")   ? getenv("no_proxy")
	         : getenv("NO_PROXY") ? getenv("NO_PROXY")
	                              : "",
	         getenv("no_proxy") || getenv("NO_PROXY") ? "," : "");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(ctl.curl = curl_easy_init())) {
		cli_err("cannot initialise libcurl");
		return CTL_SERVER;
	}
	rc = cli_run(&ctl, cmd->name, argv + optind + 1);
	curl_easy_cleanup(ctl.curl);
	curl_global_cleanup();
	free(ctl.token);
	return rc;
}
