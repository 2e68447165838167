#include "config.h"

#include "secret.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <linux/posix_acl.h>
#include <linux/posix_acl_xattr.h>

#define SC_ACL_MAX 32 /* entries of an access ACL looked at */

const char *file_type_name(mode_t m)
{
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	if (S_ISSOCK(m))
		return "a socket";
	return "not a plain file";
}

static const char *sc_user_name(uid_t uid, char *buf, size_t len)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];

	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res)
		snprintf(buf, len, "%s", res->pw_name);
	else
		snprintf(buf, len, "%u", (unsigned)uid);
	return buf;
}

static const char *sc_group_name(gid_t gid, char *buf, size_t len)
{
	struct group gr, *res = NULL;
	char tmp[4096];

	if (getgrgid_r(gid, &gr, tmp, sizeof(tmp), &res) == 0 && res)
		snprintf(buf, len, "%s", res->gr_name);
	else
		snprintf(buf, len, "%u", (unsigned)gid);
	return buf;
}

/* The daemon's group: this process's, or the one the package creates. */
static int sc_daemon_group(gid_t gid)
{
	struct group gr, *res = NULL;
	char tmp[4096];

	if (gid == getegid())
		return 1;
	return getgrnam_r(SCALER_DAEMON_GROUP, &gr, tmp, sizeof(tmp), &res) == 0 && res &&
	       res->gr_gid == gid;
}

int secret_check(const struct stat *st, const char *path, const char *what, char *err,
                 size_t errlen)
{
	char owner[64], me_name[64], group[64];
	uid_t me = geteuid();
	mode_t m = st->st_mode & 07777;

	if (!S_ISREG(st->st_mode)) {
		snprintf(err, errlen, "%s %s is %s: it must be a regular file", what, path,
		         file_type_name(st->st_mode));
		return -1;
	}
	if (st->st_uid != 0 && st->st_uid != me) {
		snprintf(err, errlen,
		         "%s %s belongs to user %s; it must belong to root or to the user scalerd "
		         "runs as (%s): chown %s %s",
		         what, path, sc_user_name(st->st_uid, owner, sizeof(owner)),
		         sc_user_name(me, me_name, sizeof(me_name)), me == 0 ? "root" : me_name,
		         path);
		return -1;
	}
	int group_may_read = st->st_uid == 0 && sc_daemon_group(st->st_gid);
	mode_t too_open = m & 0077 & ~(mode_t)(group_may_read ? 0040 : 0);
	if (!too_open)
		return 0;
	const char *how =
	    (too_open & 0022) ? ((too_open & 0044) ? "read and written" : "written") : "read";
	const char *by = (too_open & 0007) ? ((too_open & 0070) ? "its group and others" : "others")
	                                   : "its group";
	if (st->st_uid == 0 && (m & 0040) && !group_may_read && !(too_open & 0037))
		snprintf(
		    err, errlen,
		    "%s %s can be read by group %s (mode %04o); only the owner and the daemon's "
		    "group may read it: chmod 600 %s, or chgrp %s %s",
		    what, path, sc_group_name(st->st_gid, group, sizeof(group)), (unsigned)m, path,
		    SCALER_DAEMON_GROUP, path);
	else
		snprintf(err, errlen,
		         "%s %s can be %s by %s (mode %04o); a secret must not be: chmod %s %s",
		         what, path, how, by, (unsigned)m,
		         group_may_read && (m & 0040) ? "640" : "600", path);
	return -1;
}

/* A POSIX access ACL on the file (systemd's LoadCredential= on a tmpfs
 * gives root's file, mode 0400, "user:<the service's user>:r"): the group
 * bits of its mode are then the ACL's mask, not what the owning group may
 * do. 0 with the group bits of *st made the owning group's own, when every
 * named entry grants nothing, or no more than reading to the daemon (its
 * user or root; its group for a file of root's); -1 with the reason. No
 * ACL: 0 and *st as it was. */
static int sc_acl(int fd, struct stat *st, const char *path, const char *what, char *err,
                  size_t errlen)
{
	unsigned char buf[sizeof(struct posix_acl_xattr_header) +
	                  SC_ACL_MAX * sizeof(struct posix_acl_xattr_entry)];
	ssize_t n = fgetxattr(fd, "system.posix_acl_access", buf, sizeof(buf));
	if (n < 0 && (errno == ENODATA || errno == ENOTSUP))
		return 0;
	size_t head = sizeof(struct posix_acl_xattr_header),
	       one = sizeof(struct posix_acl_xattr_entry);
	struct posix_acl_xattr_header h;
	if (n >= (ssize_t)head)
		memcpy(&h, buf, head);
	if (n < (ssize_t)head || ((size_t)n - head) % one != 0 ||
	    le32toh(h.a_version) != POSIX_ACL_XATTR_VERSION) {
		snprintf(err, errlen,
		         "%s %s has an access ACL scalerd cannot read (%s): setfacl -b %s", what,
		         path, n < 0 ? strerror(errno) : "its format", path);
		return -1;
	}
	size_t count = ((size_t)n - head) / one;
	unsigned mask = 7, group_obj = 0;
	for (size_t i = 0; i < count; i++) {
		struct posix_acl_xattr_entry e;
		memcpy(&e, buf + head + i * one, one);
		if (le16toh(e.e_tag) == ACL_MASK)
			mask = le16toh(e.e_perm) & 7;
	}
	for (size_t i = 0; i < count; i++) {
		struct posix_acl_xattr_entry e;
		memcpy(&e, buf + head + i * one, one);
		unsigned tag = le16toh(e.e_tag), may = le16toh(e.e_perm) & mask & 7;
		uint32_t id = le32toh(e.e_id);
		char name[64];
		if (tag == ACL_GROUP_OBJ)
			group_obj = may;
		if ((tag != ACL_USER && tag != ACL_GROUP) || !may)
			continue;
		int daemon = tag == ACL_USER ? (id == 0 || id == geteuid())
		                             : st->st_uid == 0 && sc_daemon_group((gid_t)id);
		if (daemon && !(may & 2))
			continue;
		snprintf(err, errlen,
		         "%s %s has an ACL that lets %s %s %s it; a secret must not: setfacl -b %s",
		         what, path, tag == ACL_USER ? "user" : "group",
		         tag == ACL_USER ? sc_user_name((uid_t)id, name, sizeof(name))
		                         : sc_group_name((gid_t)id, name, sizeof(name)),
		         (may & 2) ? "write" : "read", path);
		return -1;
	}
	st->st_mode = (st->st_mode & ~(mode_t)070) | (mode_t)(group_obj << 3);
	return 0;
}

int secret_open(const char *path, const char *what, struct stat *st, char *err, size_t errlen)
{
	struct stat own;
	int fd;

	if (!st)
		st = &own;
	/* O_NONBLOCK: opening a FIFO must not wait for a writer */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, st) < 0) {
		snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
		close(fd);
		return -1;
	}
	struct stat rule = *st;
	if (sc_acl(fd, &rule, path, what, err, errlen) < 0 ||
	    secret_check(&rule, path, what, err, errlen) < 0) {
		close(fd);
		return -1;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	return fd;
}
