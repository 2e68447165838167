#include "config.h"

#include "token_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf_util.h"
#include "secret.h"

char *token_file_read(const char *path, struct stat *st, char *why, size_t whylen)
{
	/* a token of up to TOKEN_MAX bytes, one more to see a longer one */
	char buf[TOKEN_MAX + 2], *b, *e, *token = NULL;
	struct stat own;
	ssize_t n;
	int fd, err;

	if (!st)
		st = &own;
	/* a regular file that only its owner (and the daemon's group) can read */
	fd = secret_open(path, "token file", st, why, whylen);
	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	err = errno;
	close(fd);
	if (n < 0) {
		snprintf(why, whylen, "cannot read token file %s: %s", path, strerror(err));
		return NULL;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (strlen(buf) > TOKEN_MAX) {
		/* cut, it would differ from what clients send: say so instead */
		snprintf(why, whylen, "the first line of token file %s is longer than %d bytes",
		         path, TOKEN_MAX);
		explicit_bzero(buf, sizeof(buf));
		return NULL;
	}
	for (b = buf; *b == ' ' || *b == '\t'; b++)
		;
	for (e = b + strlen(b); e > b && (e[-1] == ' ' || e[-1] == '\t');)
		*--e = '\0';
	if (!*b)
		snprintf(why, whylen, "the first line of token file %s is empty", path);
	else if (!conf_token_ok(b))
		snprintf(why, whylen,
		         "the token in token file %s contains spaces or control characters", path);
	else if (!(token = strdup(b)))
		snprintf(why, whylen, "out of memory");
	explicit_bzero(buf, sizeof(buf));
	return token;
}
