#include "config.h"

#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
	if (secret_check(st, path, what, err, errlen) < 0) {
		close(fd);
		return -1;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	return fd;
}
