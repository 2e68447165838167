/* The replay driver of the fuzz harnesses (see fuzz.h): without arguments
 * it runs the harness over every file of $top_srcdir/tests/fuzz/corpus/NAME
 * (NAME = this program's name), each in a child process, and prints TAP:
 * "not ok" for a crash, a broken invariant or a verdict other than the one
 * a file's name asks for ("what@VERDICT"). With FILE or DIR arguments it
 * runs those instead (reproduce a libFuzzer finding with a normal build:
 * tests/fuzz/NAME crash-1234). */
#include "config.h"

#include "fuzz.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char fz_verdict[64];

void fuzz_verdict(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fz_verdict, sizeof(fz_verdict), fmt, ap);
	va_end(ap);
}

void fuzz_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s:%d: invariant broken: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	abort();
}

#ifndef SCALER_FUZZ_ENGINE /* libFuzzer brings its own main */

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct fz_list {
	char **v;
	size_t n, cap;
};

static int fz_add(struct fz_list *l, const char *path)
{
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		char **nv = realloc(l->v, ncap * sizeof(*nv));
		if (!nv)
			return -1;
		l->v = nv;
		l->cap = ncap;
	}
	if (!(l->v[l->n] = strdup(path)))
		return -1;
	l->n++;
	return 0;
}

static int fz_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Regular files of path (a file, or a directory's entries); -1 if unreadable. */
static int fz_collect(struct fz_list *l, const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode))
		return fz_add(l, path);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	struct dirent *e;
	size_t first = l->n;
	while ((e = readdir(d))) {
		char p[4096];
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && fz_add(l, p) < 0)
			break;
	}
	closedir(d);
	qsort(l->v + first, l->n - first, sizeof(char *), fz_cmp);
	return 0;
}

static unsigned char *fz_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	unsigned char *buf = malloc(cap);
	while (buf) {
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap)
			break;
		unsigned char *nb = realloc(buf, cap * 2);
		if (!nb) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = nb;
		cap *= 2;
	}
	if (ferror(f)) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = n;
	return buf;
}

/* Run one input in a child: 0 when it passed, else what went wrong in why. */
static int fz_run(const char *path, char *why, size_t whylen)
{
	const char *base = strrchr(path, '/');
	const char *want = strchr(base ? base + 1 : path, '@');
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		size_t len;
		unsigned char *data = fz_read(path, &len);
		if (!data) {
			fprintf(stderr, "cannot read %s: %s\n", path, strerror(errno));
			_exit(3);
		}
		/* stderr of the harness shows up as TAP comments */
		dup2(STDOUT_FILENO, STDERR_FILENO);
		fz_verdict[0] = '\0';
		LLVMFuzzerTestOneInput(data, len);
		free(data);
		if (want && strcmp(want + 1, fz_verdict) != 0) {
			printf("# expected the verdict \"%s\", got \"%s\"\n", want + 1, fz_verdict);
			fflush(stdout);
			_exit(2);
		}
		_exit(0);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			snprintf(why, whylen, "waitpid: %s", strerror(errno));
			return -1;
		}
	if (WIFSIGNALED(status)) {
		snprintf(why, whylen, "killed by signal %d", WTERMSIG(status));
		return -1;
	}
	if (WEXITSTATUS(status) == 2) {
		snprintf(why, whylen, "wrong verdict");
		return -1;
	}
	if (WEXITSTATUS(status) != 0) {
		snprintf(why, whylen, "exit status %d", WEXITSTATUS(status));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct fz_list l = {0};
	char dir[4096];
	const char *name = strrchr(argv[0], '/');
	name = name ? name + 1 : argv[0];
	if (strncmp(name, "lt-", 3) == 0) /* libtool's uninstalled binary */
		name += 3;
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			if (fz_collect(&l, argv[i]) < 0) {
				printf("1..1\nnot ok 1 - cannot read %s: %s\n", argv[i],
				       strerror(errno));
				return 1;
			}
	} else {
		const char *top = getenv("top_srcdir");
		snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", top ? top : ".", name);
		if (fz_collect(&l, dir) < 0 || l.n == 0) {
			printf("1..1\nnot ok 1 - no corpus in %s (set top_srcdir or name files)\n",
			       dir);
			return 1;
		}
	}
	printf("1..%zu\n", l.n);
	int failed = 0;
	for (size_t i = 0; i < l.n; i++) {
		char why[256];
		const char *shown = strrchr(l.v[i], '/');
		shown = argc > 1 || !shown ? l.v[i] : shown + 1;
		if (fz_run(l.v[i], why, sizeof(why)) == 0) {
			printf("ok %zu - %s\n", i + 1, shown);
		} else {
			printf("not ok %zu - %s: %s\n", i + 1, shown, why);
			failed = 1;
		}
		free(l.v[i]);
	}
	free(l.v);
	return failed;
}

#endif
