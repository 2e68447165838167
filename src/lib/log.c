#include "config.h"

#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static enum scaler_log_level log_level = SCALER_LOG_INFO;
static int log_syslog;
static char log_ident[64] = "scaler";
static log_fn log_to;

static const char *const log_names[] = {
    [SCALER_LOG_ERR] = "err",   [SCALER_LOG_WARNING] = "warning", [SCALER_LOG_NOTICE] = "notice",
    [SCALER_LOG_INFO] = "info", [SCALER_LOG_DEBUG] = "debug",
};

void log_setup(const char *ident, enum scaler_log_level level, int use_syslog)
{
	snprintf(log_ident, sizeof(log_ident), "%s", ident ? ident : "scaler");
	log_level = level;
	if (log_syslog)
		closelog();
	log_syslog = use_syslog;
	if (use_syslog)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_level(enum scaler_log_level level)
{
	log_level = level;
}

enum scaler_log_level log_get_level(void)
{
	return log_level;
}

void log_forward(log_fn fn)
{
	log_to = fn;
}

int log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (log_names[i] && name && strcmp(log_names[i], name) == 0)
			return (int)i;
	if (name && strcmp(name, "error") == 0)
		return SCALER_LOG_ERR;
	if (name && strcmp(name, "warn") == 0)
		return SCALER_LOG_WARNING;
	return -1;
}

void log_msg(enum scaler_log_level level, const char *who, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	if (level > log_level && !log_to)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_to) {
		log_to(level, who, "%s", msg); /* the host filters by its own level */
		return;
	}

	if (log_syslog) {
		if (who)
			syslog((int)level, "%s: %s", who, msg);
		else
			syslog((int)level, "%s", msg);
		return;
	}

	struct timeval tv;
	struct tm tm;
	char ts[32];
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ld %s[%ld] %s: %s%s%s\n", ts, (long)tv.tv_usec / 1000, log_ident,
	        (long)getpid(), level <= SCALER_LOG_DEBUG ? log_names[level] : "?", who ? who : "",
	        who ? ": " : "", msg);
}
