/* Config helpers shared by scalerd's scaler.conf schema (src/conf/) and the
 * host services handed to plugins: every error is one log line
 * "FILE:LINE: SETTING: message". */
#ifndef SCALER_CONF_UTIL_H
#define SCALER_CONF_UTIL_H

#include <libconfig.h>
#include <stddef.h>

/* ---- error messages ---- */

/* Log "FILE:LINE: PATH: message" about `setting`; returns -1. */
int conf_error(const config_setting_t *setting, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Log a ready-made message about FILE:LINE (held like conf_error's). */
void conf_emit(const char *file, unsigned line, const char *text);
/* From hold to release, messages are held, then logged sorted by file and
 * line (so that a whole file's errors read from the top down), each text
 * once. */
void conf_errors_hold(void);
void conf_errors_release(void);
/* The file a setting was read from ("(config)" when unknown). */
const char *conf_setting_file(const config_setting_t *s);
/* "zones.[1].max" style path of a setting into buf. */
const char *conf_setting_path(const config_setting_t *s, char *buf, size_t len);
/* "an integer", "a string", ... for messages. */
const char *conf_type_name(const config_setting_t *s);

/* Report every member of `group` not in `known` (with "did you mean" for a
 * close name); the number reported. */
int conf_report_unknown(const config_setting_t *group, const char *const *known);
/* The same for plugins: -1 when any is unknown or group is not a group. */
int conf_check_known(const config_setting_t *group, const char *const *known);

/* ---- numbers ---- */

typedef int (*conf_error_fn)(const config_setting_t *setting, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int conf_is_int(const config_setting_t *s);
long long conf_int_value(const config_setting_t *s);
/* The value of number setting `s` (int or float) in *v; -1 after `error`
 * when it is not a finite number. `name` starts the messages in the style
 * of conf_number ("timeout must be ..."); NULL for the core's settings. */
int conf_number_value(conf_error_fn error, const config_setting_t *s, const char *name, double *v);
/* The value of integer setting `s` in [lo, hi] in *v; -1 after `error`. */
int conf_integer_value(conf_error_fn error, const config_setting_t *s, const char *name,
                       long long lo, long long hi, long long *v);
/* struct scaler_host's conf_number and conf_integer: "NAME must be a number
 * (got a string)", "NAME must be between LO and HI, not V", through
 * conf_error or the function given to conf_number_reporter. */
int conf_number(const config_setting_t *group, const char *name, double def, double lo, double hi,
                double *out);
int conf_integer(const config_setting_t *group, const char *name, long long def, long long lo,
                 long long hi, long long *out);
/* From now on conf_number and conf_integer report through `error` (NULL:
 * conf_error again), for hosts in tests that record messages their own way. */
void conf_number_reporter(conf_error_fn error);
#define CONF_SECONDS_MAX (366 * 86400.0) /* no duration setting runs longer */

/* Read a number of seconds (int or float); 0 when absent (value untouched),
 * 1 when read, -1 after conf_error when not a finite number, below min
 * (strict: not above min) or above CONF_SECONDS_MAX. `group` may be NULL
 * (absent). */
int conf_seconds(const config_setting_t *group, const char *name, double min, int strict,
                 double *out);
int conf_get_seconds(const config_setting_t *group, const char *name, double min, double *out);

/* ---- syntax of values (1/0, or 0/-1 with *why set to a sentence) ---- */

/* 1 when s is non-empty and only a-z, 0-9 (A-Z when upper) and `extra`. */
int conf_charset(const char *s, const char *extra, int upper);
/* "", "*", "0.0.0.0" or "::": every address. */
int conf_wildcard_host(const char *h);
/* Split "host:port" or "[v6]:port" into host (brackets removed; "" for
 * every address, written "*:port" or ":port") and port, by the rules
 * scalerd's listeners use (net_parse_hostport); a dotted-decimal host must
 * also be a valid IPv4 address. */
int conf_hostport(const char *s, char *host, size_t hostlen, int *port, const char **why);
/* host:port of something to connect to: every-address hosts are refused. */
int conf_connect_hostport(const char *s, char *host, size_t hostlen, int *port, const char **why);
/* http://host:port; http[s]://host[:port][/path] when `path_ok`. */
int conf_http_url(const char *u, int path_ok, const char **why);
/* redis://[:password@]host:port[/db] or unix:/path[?db=N] */
int conf_redis_url(const char *u, const char **why);
/* A bearer token goes into an HTTP header: visible ASCII only. */
int conf_token_ok(const char *t);

/* ---- comparing settings ---- */

/* 1 when two settings (and everything under them) have the same content;
 * NULL equals NULL and an empty group; int 10 equals float 10.0; group
 * members in any order. */
int conf_setting_equal(const config_setting_t *a, const config_setting_t *b);
/* The same, ignoring the member named `skip` of the two top-level groups. */
int conf_setting_equal_except(const config_setting_t *a, const config_setting_t *b,
                              const char *skip);

#endif
