/* A configuration's bytes may hold the API token inline: the reader
 * (src/conf/conf_read.c) zeroes every buffer they pass through before it
 * is freed, on every path. read(), free() and realloc() are wrapped at link
 * time (-Wl,--wrap): read serves a file that grows while it is read or
 * fails half-way, free and realloc report any block that still holds the
 * token when it is given back (realloc may move the bytes and leave the old
 * ones behind, so a block holding the token must never reach it). */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <libconfig.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf_read.h"

#define SECRET "SECRET-TOKEN-4c0b1e"

ssize_t __real_read(int fd, void *buf, size_t n);
void __real_free(void *p);
void *__real_realloc(void *p, size_t n);
ssize_t __wrap_read(int fd, void *buf, size_t n);
void __wrap_free(void *p);
void *__wrap_realloc(void *p, size_t n);

static const char *served; /* what read returns while set, instead of the file */
static size_t served_len;  /* its length */
static size_t served_at;   /* bytes read so far */
static size_t fail_at;     /* read fails with EIO once this many were read (0: never) */
static volatile int burnt; /* blocks that held the token when given back (volatile: the
                            * compiler takes free() for the builtin that touches no global) */

static int holds_secret(void *p)
{
	return p && memmem(p, malloc_usable_size(p), SECRET, strlen(SECRET)) != NULL;
}

ssize_t __wrap_read(int fd, void *buf, size_t n)
{
	if (!served)
		return __real_read(fd, buf, n);
	if (fail_at && served_at >= fail_at) {
		errno = EIO;
		return -1;
	}
	size_t k = served_len - served_at < n ? served_len - served_at : n;
	if (k > 1000) /* a few bytes at a time, as a growing file gives them */
		k = 1000;
	memcpy(buf, served + served_at, k);
	served_at += k;
	return (ssize_t)k;
}

void __wrap_free(void *p)
{
	burnt += holds_secret(p);
	__real_free(p);
}

void *__wrap_realloc(void *p, size_t n)
{
	burnt += holds_secret(p);
	return __real_realloc(p, n);
}

/* conf_read of a 1-byte file that serves `len` bytes starting with an
 * inline token (and fails after fail bytes when fail > 0): 0 when it read
 * them, -1 when it refused them. */
static int read_growing(size_t len, size_t fail)
{
	char path[] = "test_conf_read-XXXXXX"; /* in the build directory */
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "\n", 1), 1);
	close(fd);

	char *text = __real_realloc(NULL, len + 1);
	ck_assert_ptr_nonnull(text);
	int head = snprintf(text, len + 1, "node = { id = 1; token = \"" SECRET "\"; };\n");
	memset(text + head, '\n', len - (size_t)head);
	text[len] = '\0';

	config_t cfg;
	struct conf_text t;
	memset(&t, 0, sizeof(t));
	config_init(&cfg);
	served = text;
	served_len = len;
	served_at = 0;
	fail_at = fail;
	burnt = 0;
	int rc = conf_read(&cfg, path, "test.conf", &t);
	served = NULL;
	ck_assert_msg(served_at > 4096, "the reader read past its first buffer (%zu bytes)",
	              served_at);
	conf_text_free(&t);
	config_destroy(&cfg);
	explicit_bzero(text, len);
	__real_free(text);
	unlink(path);
	return rc;
}

START_TEST(the_detector_sees_a_block_given_back_with_the_token)
{
	const char *text = "x " SECRET;
	volatile char *p = malloc(64); /* volatile: the stores are not optimised away */
	ck_assert_ptr_nonnull((void *)p);
	for (size_t i = 0; i <= strlen(text); i++)
		p[i] = text[i];
	burnt = 0;
	free((void *)p);
	ck_assert_int_eq(burnt, 1);
}
END_TEST

START_TEST(a_file_that_grows_while_read_leaves_no_copy_of_its_token)
{
	int rc = read_growing(20000, 0);
	ck_assert_int_eq(rc, 0);
	ck_assert_msg(burnt == 0, "%d block(s) holding the token given back unzeroed", burnt);
}
END_TEST

START_TEST(a_read_error_leaves_no_copy_of_the_token)
{
	int rc = read_growing(20000, 9000);
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(burnt == 0, "%d block(s) holding the token given back unzeroed", burnt);
}
END_TEST

START_TEST(a_file_that_grows_past_the_limit_leaves_no_copy_of_the_token)
{
	int rc = read_growing(CONF_MAX_BYTES + 2, 0);
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(burnt == 0, "%d block(s) holding the token given back unzeroed", burnt);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("conf_read");
	TCase *tc = tcase_create("secret");
	tcase_add_test(tc, the_detector_sees_a_block_given_back_with_the_token);
	tcase_add_test(tc, a_file_that_grows_while_read_leaves_no_copy_of_its_token);
	tcase_add_test(tc, a_read_error_leaves_no_copy_of_the_token);
	tcase_add_test(tc, a_file_that_grows_past_the_limit_leaves_no_copy_of_the_token);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
