/* Logging to stderr or syslog, with levels (syslog's numbers). */
#ifndef SCALER_LOG_H
#define SCALER_LOG_H

#include <scaler/plugin.h> /* enum scaler_log_level */

void log_setup(const char *ident, enum scaler_log_level level, int use_syslog);
void log_set_level(enum scaler_log_level level);
enum scaler_log_level log_get_level(void);
/* "err", "warning", "notice", "info", "debug" → level; -1 when unknown */
int log_level_parse(const char *name);

void log_msg(enum scaler_log_level level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef void (*log_fn)(enum scaler_log_level level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* From now on hand every message to `fn` (NULL: back to stderr or syslog).
 * A plugin linking this library has its own copy of it: forwarding to the
 * host's log makes that copy follow scalerd's level, -d and --syslog. */
void log_forward(log_fn fn);

#define log_err(...) log_msg(SCALER_LOG_ERR, NULL, __VA_ARGS__)
#define log_warn(...) log_msg(SCALER_LOG_WARNING, NULL, __VA_ARGS__)
#define log_notice(...) log_msg(SCALER_LOG_NOTICE, NULL, __VA_ARGS__)
#define log_info(...) log_msg(SCALER_LOG_INFO, NULL, __VA_ARGS__)
#define log_debug(...) log_msg(SCALER_LOG_DEBUG, NULL, __VA_ARGS__)

#endif
