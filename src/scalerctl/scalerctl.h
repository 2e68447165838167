/* What scalerctl's commands share (scalerctl.c): the connection, one
 * request at a time, the formatting of numbers and times, aligned tables. */
#ifndef SCALER_SCALERCTL_H
#define SCALER_SCALERCTL_H

#include <signal.h>
#include <stdio.h>

#include <curl/curl.h>
#include <jansson.h>

enum cli_exit {
	CTL_OK = 0,
	CTL_USAGE = 1,
	CTL_UNREACHABLE = 2,
	CTL_UNAUTHORISED = 3,
	CTL_NOTFOUND = 4,
	CTL_SERVER = 5,
};

struct ctl {
	char url[1024];
	char url_from[4200]; /* where the URL came from, for error messages */
	char *token;         /* NULL: send no Authorization header */
	char token_from[4200];
	char token_problem[4400]; /* why a configured token could not be used */
	int json;
	int follow;
	int unpin;
	int have_for;
	double for_seconds;
	double timeout;
	char noproxy[1024]; /* no_proxy plus the loopback names */
	const char *zone;   /* what the command is about, for a 404's hint */
	const char *server;
	double top_delay;    /* top: seconds between refreshes */
	long top_iterations; /* top: refreshes before it exits, 0: until q */
	CURL *curl;
	volatile sig_atomic_t *stop; /* when set: *stop non-zero aborts a request */
};

struct cli_reply {
	long status; /* 0: no HTTP response */
	char *body;
	size_t len;
	json_t *json; /* body parsed, NULL when it is not JSON */
	int too_big;  /* the body grew past CTL_MAX_BODY */
	char error[CURL_ERROR_SIZE];
};

#define TABLE_MAXCOLS 12

struct table {
	size_t ncols;
	const char *align; /* 'l' or 'r' per column */
	char **cells;      /* nrows * ncols, row 0 is the header */
	size_t nrows;
};

void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_copy(char *dst, size_t len, const char *src);
/* 3725 → "1h2m", 45 → "45s", 90000 → "1d1h". */
void cli_fmt_duration(double seconds, char *buf, size_t len);
double cli_now(void);
const char *cli_jstr(json_t *obj, const char *key, const char *dflt);
/* Number member (int or real); NAN when absent or null. */
double cli_jnum(json_t *obj, const char *key);
/* A number for a table cell: integers without decimals, "-" when NAN. */
void cli_fmt_num(double v, char *buf, size_t len);
/* A load value: always one decimal, "-" when unknown. */
void cli_fmt_metric(double v, char *buf, size_t len);

/* Text from the cluster (zone names, reasons) is data, not terminal
 * commands: control characters (C0, DEL, C1) become '?', in place. */
void cli_plain(char *s, int keep_newlines);

void table_init(struct table *t, const char *align);
/* One row of ncols strings (NULL prints "-"). */
void table_row(struct table *t, ...);
/* Print aligned and free the rows. */
void table_print(struct table *t);
void table_fprint(FILE *out, struct table *t);

void cli_reply_free(struct cli_reply *r);
/* One request. 0 when an HTTP response arrived (any status), -1 when the
 * transport failed (r->error says why). */
int cli_request(struct ctl *ctl, const char *method, const char *path, json_t *body, double timeout,
                struct cli_reply *r);
int cli_unreachable(struct ctl *ctl, const struct cli_reply *r);
/* Report a failed exchange and return the exit status it maps to. */
int cli_fail(struct ctl *ctl, const struct cli_reply *r);
/* GET that must answer 200 with JSON; exit status on failure, else 0. */
int cli_get_json(struct ctl *ctl, const char *path, struct cli_reply *r);
/* URL-encoded copy of s (free it). */
char *cli_escape(struct ctl *ctl, const char *s);

/* top.c: `scalerctl top [ZONE]` */
int cli_cmd_top(struct ctl *ctl, const char *zone);

#endif
