/* The rule for files that hold secrets (src/lib/secret.c): who may own,
 * write and read them, and what the refusal tells the operator to do. */
#include "config.h"

#include "secret.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static char tdir[] = "/tmp/test_secret.XXXXXX";
static char path[256];

static void setup(void)
{
	ck_assert(mkdtemp(tdir) != NULL);
	snprintf(path, sizeof(path), "%s/token", tdir);
}

static void teardown(void)
{
	unlink(path);
	rmdir(path);
	rmdir(tdir);
	memcpy(tdir + strlen(tdir) - 6, "XXXXXX", 6);
}

static void make_file(mode_t mode, uid_t uid, gid_t gid)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
	ck_assert(write(fd, "abc\n", 4) == 4);
	close(fd);
	if (uid != (uid_t)-1 || gid != (gid_t)-1)
		ck_assert_msg(chown(path, uid, gid) == 0, "chown: %s", strerror(errno));
	ck_assert(chmod(path, mode) == 0);
}

/* 0 when accepted; the message otherwise */
static int try_open(char *err, size_t len)
{
	err[0] = '\0';
	int fd = secret_open(path, "token file", NULL, err, len);
	if (fd >= 0) {
		char b[8];
		ck_assert_msg(read(fd, b, sizeof(b)) == 4, "expected to read the accepted file");
		close(fd);
		return 0;
	}
	ck_assert_msg(err[0], "expected a reason with the refusal");
	return -1;
}

static void expect_refused(const char *needle1, const char *needle2)
{
	char err[512];
	ck_assert_msg(try_open(err, sizeof(err)) < 0, "expected %s refused", path);
	ck_assert_msg(strstr(err, needle1) && (!needle2 || strstr(err, needle2)),
	              "expected the refusal to say \"%s\"%s%s, got: %s", needle1,
	              needle2 ? " and " : "", needle2 ? needle2 : "", err);
	ck_assert_msg(strstr(err, path), "expected the refusal to name %s, got: %s", path, err);
}

START_TEST(owner_only_files_are_accepted)
{
	char err[512];
	make_file(0600, (uid_t)-1, (gid_t)-1);
	ck_assert_msg(try_open(err, sizeof(err)) == 0, "expected 0600 accepted, got: %s", err);
	make_file(0400, (uid_t)-1, (gid_t)-1);
	ck_assert_msg(try_open(err, sizeof(err)) == 0, "expected 0400 accepted, got: %s", err);
}
END_TEST

START_TEST(files_others_can_read_or_write_are_refused_saying_what_to_chmod)
{
	make_file(0644, (uid_t)-1, (gid_t)-1);
	expect_refused("read by others", "chmod ");
	make_file(0666, (uid_t)-1, (gid_t)-1);
	expect_refused("read and written by its group and others", "chmod ");
	make_file(0602, (uid_t)-1, (gid_t)-1);
	expect_refused("written by others", "chmod ");
	make_file(0620, (uid_t)-1, (gid_t)-1);
	expect_refused("written by its group", "chmod ");
	make_file(0604, (uid_t)-1, (gid_t)-1);
	expect_refused("(mode 0604)", "chmod ");
}
END_TEST

START_TEST(root_owned_files_may_be_read_by_the_daemons_group_only)
{
	char err[512];
	if (geteuid() != 0)
		return; /* needs chown */
	/* the daemon's own group (the .deb's root:scaler 0640 for scalerd run as scaler) */
	make_file(0640, 0, getegid());
	ck_assert_msg(try_open(err, sizeof(err)) == 0,
	              "expected root:<daemon's group> 0640 accepted, got: %s", err);
	/* still never writable by the group */
	make_file(0660, 0, getegid());
	expect_refused("written by its group", "chmod 640");
	/* another group: not the daemon's */
	make_file(0640, 0, 54321);
	expect_refused("read by group 54321", "chgrp " SCALER_DAEMON_GROUP);
}
END_TEST

START_TEST(files_of_another_user_are_refused_saying_what_to_chown)
{
	if (geteuid() != 0)
		return; /* needs chown */
	make_file(0600, 54321, 54321);
	expect_refused("belongs to user 54321", "chown root");
}
END_TEST

/* An access ACL on path: user_id/group_id -1 for none, each granted perm
 * (4: read, 6: read and write); the mask lets all of it through. 0, or -1
 * when the file system has no ACLs. */
static int set_acl(long user_id, long group_id, unsigned perm)
{
	/* entries in the kernel's order: owner, users, owning group, groups,
	 * mask, others (little-endian, as on the machines this runs on) */
	uint8_t buf[4 + 6 * 8] = {2, 0, 0, 0};
	size_t n = 4;
	const long undefined = 0xffffffff;
	const long entries[6][3] = {{0x01, 4, undefined},    {0x02, perm, user_id},
	                            {0x04, 0, undefined},    {0x08, perm, group_id},
	                            {0x10, perm, undefined}, {0x20, 0, undefined}};
	for (int i = 0; i < 6; i++) {
		if (entries[i][2] < 0)
			continue; /* no such named entry */
		uint16_t tag = (uint16_t)entries[i][0], p = (uint16_t)entries[i][1];
		uint32_t id = (uint32_t)entries[i][2];
		memcpy(buf + n, &tag, 2);
		memcpy(buf + n + 2, &p, 2);
		memcpy(buf + n + 4, &id, 4);
		n += 8;
	}
	if (setxattr(path, "system.posix_acl_access", buf, n, 0) == 0)
		return 0;
	ck_assert_msg(errno == ENOTSUP || errno == EOPNOTSUPP, "setxattr: %s", strerror(errno));
	return -1;
}

START_TEST(an_acl_that_lets_only_the_daemon_read_is_accepted_any_other_refused)
{
	char err[512];
	if (geteuid() != 0)
		return; /* needs chown */
	/* systemd's LoadCredential= on tmpfs: root's file, 0400, user:<the
	 * service's user>:r; its mode then shows the mask as group bits (0440),
	 * and the owning group here is not the daemon's */
	make_file(0400, 0, 54321);
	if (set_acl(geteuid(), -1, 4) < 0)
		return; /* no ACLs here */
	struct stat st;
	ck_assert(stat(path, &st) == 0);
	ck_assert_msg((st.st_mode & 0777) == 0440, "expected the mask in the group bits, got %o",
	              st.st_mode & 0777);
	ck_assert_msg(try_open(err, sizeof(err)) == 0,
	              "expected root's 0400 with an ACL for the daemon's user accepted, got: %s",
	              err);
	make_file(0400, 0, 54321);
	set_acl(54322, -1, 4);
	expect_refused("lets user 54322 read it", "setfacl -b");
	make_file(0400, 0, 54321);
	set_acl(geteuid(), -1, 6);
	expect_refused("write it", "setfacl -b");
	make_file(0400, 0, 54321);
	set_acl(-1, 54323, 4);
	expect_refused("lets group 54323 read it", "setfacl -b");
}
END_TEST

START_TEST(a_fifo_is_refused_at_once)
{
	ck_assert(mkfifo(path, 0600) == 0);
	expect_refused("is a FIFO", NULL); /* and does not wait for a writer */
}
END_TEST

START_TEST(a_directory_and_a_missing_file_are_refused)
{
	ck_assert(mkdir(path, 0700) == 0);
	expect_refused("is a directory", NULL);
	rmdir(path);
	expect_refused("cannot read token file", "No such file");
}
END_TEST

static Suite *secret_suite(void)
{
	Suite *s = suite_create("secret");
	TCase *tc = tcase_create("rule");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, owner_only_files_are_accepted);
	tcase_add_test(tc, files_others_can_read_or_write_are_refused_saying_what_to_chmod);
	tcase_add_test(tc, root_owned_files_may_be_read_by_the_daemons_group_only);
	tcase_add_test(tc, files_of_another_user_are_refused_saying_what_to_chown);
	tcase_add_test(tc, an_acl_that_lets_only_the_daemon_read_is_accepted_any_other_refused);
	tcase_add_test(tc, a_fifo_is_refused_at_once);
	tcase_add_test(tc, a_directory_and_a_missing_file_are_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(secret_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
