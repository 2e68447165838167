#include "config.h"

#include "conf_read.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "secret.h"

struct cr {
	struct conf_text *t;
	const char *include_dir;
	int bad;
};

__attribute__((format(printf, 2, 3))) static void cr_err(struct cr *r, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(SCALER_LOG_ERR, NULL, "%s", msg);
	r->bad = 1;
}

/* Zero and free a buffer of `size` bytes: it may hold a token. */
static void cr_burn(char *buf, size_t size)
{
	if (!buf)
		return;
	explicit_bzero(buf, size);
	free(buf);
}

/* The whole of a regular file, read through one descriptor; NULL after
 * saying why. A FIFO is refused at once instead of waiting for a writer.
 * Every buffer the file passed through is zeroed before it is freed. */
static char *cr_slurp(struct cr *r, const char *path, struct stat *st, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	char *buf = NULL;
	size_t n = 0;

	if (fd < 0) {
		cr_err(r, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, st) < 0) {
		cr_err(r, "%s: cannot read: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st->st_mode)) {
		cr_err(r, "%s: is %s; a configuration must be a regular file", path,
		       file_type_name(st->st_mode));
		goto out;
	}
	if (st->st_size > CONF_MAX_BYTES) {
		cr_err(r, "%s: %lld bytes; a configuration file is at most %d bytes", path,
		       (long long)st->st_size, CONF_MAX_BYTES);
		goto out;
	}
	/* a buffer the size of the file, not of the limit: a reload reads the
	 * file again, and 1 MiB blocks freed in the middle of the heap stay
	 * with the process (they made its RSS climb over many reloads) */
	size_t cap = (size_t)st->st_size + 1 < 4096 ? 4096 : (size_t)st->st_size + 1;
	buf = malloc(cap + 1);
	if (!buf) {
		cr_err(r, "%s: out of memory", path);
		goto out;
	}
	for (;;) {
		if (n == cap && cap <= CONF_MAX_BYTES) { /* it grew since fstat */
			size_t more = cap * 2 > CONF_MAX_BYTES + 1 ? CONF_MAX_BYTES + 1 : cap * 2;
			/* not realloc: it may move the bytes and leave the old ones behind */
			char *b = malloc(more + 1);
			if (!b) {
				cr_err(r, "%s: out of memory", path);
				cr_burn(buf, cap + 1);
				buf = NULL;
				goto out;
			}
			memcpy(b, buf, n);
			cr_burn(buf, cap + 1);
			buf = b;
			cap = more;
		}
		ssize_t got = read(fd, buf + n, cap - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			cr_err(r, "%s: cannot read: %s", path, strerror(errno));
			cr_burn(buf, cap + 1);
			buf = NULL;
			goto out;
		}
		if (got == 0)
			break;
		n += (size_t)got;
		if (n > CONF_MAX_BYTES) {
			cr_err(r,
			       "%s: grew past %d bytes while read; a configuration file is at "
			       "most that",
			       path, CONF_MAX_BYTES);
			cr_burn(buf, cap + 1);
			buf = NULL;
			goto out;
		}
	}
	buf[n] = '\0';
	*len = n;
out:
	close(fd);
	return buf;
}

static const char *cr_name(struct cr *r, const char *file)
{
	struct conf_text *t = r->t;
	for (size_t i = 0; i < t->nnames; i++)
		if (strcmp(t->names[i], file) == 0)
			return t->names[i];
	char **v = realloc(t->names, (t->nnames + 1) * sizeof(*v));
	if (!v)
		return NULL;
	t->names = v;
	if (!(v[t->nnames] = strdup(file)))
		return NULL;
	return v[t->nnames++];
}

static int cr_name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '*' || c == '-' || c == '.';
}

/* The name a value at `at` is given to: the word before the '=' or ':'
 * that precedes it on its line (an array's name for its elements). */
static void cr_setting_name(const char *bol, const char *at, char *out, size_t len, int *index)
{
	const char *p = at, *end;
	int commas = 0, opened = 0;

	out[0] = '\0';
	*index = -1;
	if (at < bol)
		return;
	while (p > bol && p[-1] != '=' && p[-1] != ':' && p[-1] != ';' && p[-1] != '{') {
		if (p[-1] == ',' && !opened)
			commas++;
		if (p[-1] == '[' || p[-1] == '(')
			opened = 1;
		p--;
	}
	if (opened)
		*index = commas;
	if (p == bol || (p[-1] != '=' && p[-1] != ':'))
		return;
	p--;
	while (p > bol && (p[-1] == ' ' || p[-1] == '\t'))
		p--;
	end = p;
	while (p > bol && cr_name_char(p[-1]))
		p--;
	if (end > p && (size_t)(end - p) < len) {
		memcpy(out, p, (size_t)(end - p));
		out[end - p] = '\0';
	}
}

static void cr_note(struct cr *r, enum conf_note_kind kind, const char *file, unsigned line,
                    const char *bol, const char *text, size_t textlen)
{
	struct conf_text *t = r->t;
	const char *name = cr_name(r, file);

	if (!name)
		return;
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 8;
		struct conf_note *v = realloc(t->notes, cap * sizeof(*v));
		if (!v)
			return;
		t->notes = v;
		t->cap = cap;
	}
	struct conf_note *nt = &t->notes[t->n++];
	memset(nt, 0, sizeof(*nt));
	nt->kind = kind;
	nt->file = name;
	nt->line = line;
	cr_setting_name(bol, text, nt->name, sizeof(nt->name), &nt->index);
	if (textlen >= sizeof(nt->text))
		textlen = sizeof(nt->text) - 1;
	memcpy(nt->text, text, textlen);
}

/* An integer literal libconfig does not read as written: without an L
 * suffix it keeps 32 bits (2147483648 becomes -2147483648, 99999999999999999999
 * becomes -1), with one 64. Floats are left to the checks of the settings (an
 * overflowing one is infinite, which they refuse). */
static int cr_int_out_of_range(const char *s, size_t n)
{
	int neg = 0, wide = 0;
	size_t i = 0;
	unsigned long long v = 0, max;

	if (n && (s[0] == '-' || s[0] == '+')) {
		neg = s[0] == '-';
		i = 1;
	}
	while (n > i && (s[n - 1] == 'L' || s[n - 1] == 'l')) {
		n--;
		wide = 1;
	}
	max = wide ? (unsigned long long)INT64_MAX : (unsigned long long)INT32_MAX;
	if (n > i + 2 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
		for (size_t k = i + 2; k < n; k++) {
			if (!isxdigit((unsigned char)s[k]))
				return 0;
			if (v > (ULLONG_MAX >> 4))
				return 1;
			v = v * 16 + (unsigned)(isdigit((unsigned char)s[k])
			                            ? s[k] - '0'
			                            : tolower((unsigned char)s[k]) - 'a' + 10);
		}
		return v > max;
	}
	for (size_t k = i; k < n; k++) {
		if (!isdigit((unsigned char)s[k]))
			return 0; /* a float, or not a number at all: not ours to judge */
		unsigned d = (unsigned)(s[k] - '0');
		if (v > (ULLONG_MAX - d) / 10)
			return 1;
		v = v * 10 + d;
	}
	return v > max + (neg ? 1 : 0);
}

static int cr_file(struct cr *r, const char *path, int depth, struct stat *st);

static void cr_included(struct cr *r, const char *name, const char *path, const struct stat *st)
{
	struct conf_text *t = r->t;
	if (conf_included_find(t, name))
		return;
	struct conf_included *v = realloc(t->included, (t->nincluded + 1) * sizeof(*v));
	if (!v) {
		cr_err(r, "@include \"%s\": out of memory", name);
		return;
	}
	t->included = v;
	v[t->nincluded] = (struct conf_included){strdup(name), strdup(path), *st};
	if (!v[t->nincluded].name || !v[t->nincluded].path) {
		free(v[t->nincluded].name);
		free(v[t->nincluded].path);
		cr_err(r, "@include \"%s\": out of memory", name);
		return;
	}
	t->nincluded++;
}

const struct conf_included *conf_included_find(const struct conf_text *t, const char *name)
{
	for (size_t i = 0; i < t->nincluded; i++)
		if (strcmp(t->included[i].name, name) == 0)
			return &t->included[i];
	return NULL;
}

/* `@include "name"` at the start of a line: check the included file now
 * (libconfig opens it itself, relative to the include dir). */
static void cr_include(struct cr *r, const char *shown, unsigned line, const char *p,
                       const char *end, int depth)
{
	char name[4096], full[8192];
	struct stat st;
	const char *q;

	p += strlen("@include");
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p >= end || *p != '"' || !(q = memchr(p + 1, '"', (size_t)(end - p - 1))))
		return; /* libconfig reports the syntax error */
	if ((size_t)(q - p - 1) >= sizeof(name)) {
		cr_err(r, "%s:%u: @include: the file name is too long", shown, line);
		return;
	}
	memcpy(name, p + 1, (size_t)(q - p - 1));
	name[q - p - 1] = '\0';
	if (depth >= CONF_MAX_INCLUDES) {
		cr_err(r, "%s:%u: @include \"%s\": includes nest deeper than %d", shown, line, name,
		       CONF_MAX_INCLUDES);
		return;
	}
	if (r->include_dir)
		snprintf(full, sizeof(full), "%s/%s", r->include_dir,
		         name[0] == '/' ? name + 1 : name);
	else
		snprintf(full, sizeof(full), "%s", name);
	if (cr_file(r, full, depth + 1, &st) == 0)
		cr_included(r, name, full, &st);
}

/* Line lengths, NUL bytes, \x00 in strings and integers too large, in one
 * pass over the text that knows strings and comments. */
static void cr_scan(struct cr *r, const char *shown, const char *buf, size_t len, int depth)
{
	enum { CR_CODE, CR_STRING, CR_LINE_COMMENT, CR_BLOCK_COMMENT } st = CR_CODE;
	unsigned line = 1;
	size_t bol = 0, long_lines = 0;
	const char *str_start = buf;

	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? buf[i] : '\n';
		if (i < len && c == '\0') {
			cr_err(r, "%s:%u: a NUL byte; a configuration is text", shown, line);
			return;
		}
		if (c == '\n') {
			if (i - bol > CONF_MAX_LINE && long_lines++ == 0)
				cr_err(r, "%s:%u: a line of %zu bytes; lines are at most %d bytes",
				       shown, line, i - bol, CONF_MAX_LINE);
			if (st == CR_LINE_COMMENT)
				st = CR_CODE;
			line++;
			bol = i + 1;
			continue;
		}
		switch (st) {
		case CR_LINE_COMMENT:
			break;
		case CR_BLOCK_COMMENT:
			if (c == '*' && i + 1 < len && buf[i + 1] == '/') {
				st = CR_CODE;
				i++;
			}
			break;
		case CR_STRING:
			if (c == '"') {
				st = CR_CODE;
			} else if (c == '\\' && i + 1 < len) {
				if ((buf[i + 1] == 'x' || buf[i + 1] == 'X') && i + 3 < len &&
				    buf[i + 2] == '0' && buf[i + 3] == '0')
					cr_note(r, CONF_NOTE_NUL, shown, line, buf + bol, str_start,
					        0);
				i++;
			}
			break;
		case CR_CODE:
			if (c == '"') {
				st = CR_STRING;
				str_start = buf + i;
			} else if (c == '#' || (c == '/' && i + 1 < len && buf[i + 1] == '/')) {
				st = CR_LINE_COMMENT;
			} else if (c == '/' && i + 1 < len && buf[i + 1] == '*') {
				st = CR_BLOCK_COMMENT;
				i++;
			} else if (c == '@' && strncmp(buf + i, "@include", 8) == 0) {
				const char *eol = memchr(buf + i, '\n', len - i);
				cr_include(r, shown, line, buf + i, eol ? eol : buf + len, depth);
			} else if ((isdigit((unsigned char)c) ||
			            ((c == '-' || c == '+') && i + 1 < len &&
			             isdigit((unsigned char)buf[i + 1]))) &&
			           (i == 0 || !cr_name_char(buf[i - 1]))) {
				size_t k = i + 1;
				while (k < len &&
				       (isalnum((unsigned char)buf[k]) || buf[k] == '.' ||
				        ((buf[k] == '-' || buf[k] == '+') &&
				         (buf[k - 1] == 'e' || buf[k - 1] == 'E'))))
					k++;
				if (cr_int_out_of_range(buf + i, k - i))
					cr_note(r, CONF_NOTE_RANGE, shown, line, buf + bol, buf + i,
					        k - i);
				i = k - 1;
			}
			break;
		}
	}
}

static int cr_file(struct cr *r, const char *path, int depth, struct stat *st)
{
	size_t len = 0;
	char *buf = cr_slurp(r, path, st, &len);

	if (!buf)
		return -1;
	cr_scan(r, path, buf, len, depth);
	explicit_bzero(buf, len); /* it may hold a token */
	free(buf);
	return 0;
}

/* Settings of the top file have no file name when read from a stream. */
static void cr_name_settings(config_setting_t *s, const char *name)
{
	if (!s)
		return;
	if (!s->file)
		s->file = name;
	if (config_setting_is_aggregate(s))
		for (int i = 0; i < config_setting_length(s); i++)
			cr_name_settings(config_setting_get_elem(s, (unsigned)i), name);
}

int conf_read(config_t *cfg, const char *path, const char *name, struct conf_text *t)
{
	struct cr r = {.t = t, .include_dir = config_get_include_dir(cfg)};
	size_t len = 0;
	char *buf = cr_slurp(&r, path, &t->st, &len);

	if (!buf)
		return -1;
	cr_scan(&r, path, buf, len, 0);
	if (r.bad) {
		explicit_bzero(buf, len);
		free(buf);
		return -1;
	}
	/* parse the bytes that were checked (no NUL among them), not the file again */
	int ok = config_read_string(cfg, buf);
	explicit_bzero(buf, len);
	free(buf);
	if (!ok) {
		const char *text = config_error_text(cfg) ? config_error_text(cfg) : "";
		const char *file = config_error_file(cfg) ? config_error_file(cfg) : path;
		if (config_error_type(cfg) == CONFIG_ERR_PARSE)
			log_msg(SCALER_LOG_ERR, NULL, "%s:%d: syntax error%s%s", file,
			        config_error_line(cfg), strcmp(text, "syntax error") ? ": " : "",
			        strcmp(text, "syntax error") ? text : "");
		else
			log_msg(SCALER_LOG_ERR, NULL, "%s: cannot read: %s", file, text);
		return -1;
	}
	cr_name_settings(config_root_setting(cfg), name);
	return 0;
}

void conf_text_free(struct conf_text *t)
{
	for (size_t i = 0; i < t->nnames; i++)
		free(t->names[i]);
	free(t->names);
	for (size_t i = 0; i < t->nincluded; i++) {
		free(t->included[i].name);
		free(t->included[i].path);
	}
	free(t->included);
	free(t->notes);
	memset(t, 0, sizeof(*t));
}
