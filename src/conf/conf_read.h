/* Reading scaler.conf before libconfig sees it: the file (and each file it
 * @includes) must be a regular file of a sane size with sane lines, read
 * once through one open descriptor, and what libconfig would silently get
 * wrong is noted by file and line for the validation to report: a string
 * that holds a NUL (\x00) and an integer too large for 64 bits. */
#ifndef SCALER_CONF_READ_H
#define SCALER_CONF_READ_H

#include <libconfig.h>
#include <stddef.h>
#include <sys/stat.h>

#define CONF_MAX_BYTES (1024 * 1024) /* a configuration file, each included one too */
#define CONF_MAX_LINE 65536          /* libconfig's scanner is quadratic in a line's length */
#define CONF_MAX_INCLUDES 10         /* @include depth */

enum conf_note_kind { CONF_NOTE_NUL, CONF_NOTE_RANGE };

struct conf_note {
	enum conf_note_kind kind;
	const char *file; /* as libconfig names the file (owned by struct conf_text) */
	unsigned line;
	char text[48]; /* the literal, for CONF_NOTE_RANGE */
	char name[64]; /* the setting it is given to, as written before '=' or ':' */
	int index;     /* its place in that setting's array or list, else -1 */
};

/* A file @included, as read: named as written after @include, which is
 * how libconfig names the settings it holds. */
struct conf_included {
	char *name;
	char *path; /* as opened: relative to the include dir */
	struct stat st;
};

struct conf_text {
	struct conf_note *notes;
	size_t n, cap;
	char **names; /* file names the notes point to */
	size_t nnames;
	struct stat st; /* the top file, as read */
	struct conf_included *included;
	size_t nincluded;
};

/* The @included file libconfig names `name`, as read; NULL when no such
 * file was read. */
const struct conf_included *conf_included_find(const struct conf_text *t, const char *name);

/* Read and parse `path` into cfg (its include dir set by the caller).
 * 0, or -1 after logging one line per reason ("FILE: ..." or
 * "FILE:LINE: ..."). Settings of the top file are named after `name`, which
 * must live as long as cfg. */
int conf_read(config_t *cfg, const char *path, const char *name, struct conf_text *t);
void conf_text_free(struct conf_text *t);

#endif
