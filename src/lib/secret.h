/* Files that hold secrets (the API token, a config with an inline token,
 * TLS keys): the one rule for who may own and read them, as ssh has for
 * private keys.
 *
 * Accepted: a regular file owned by root or by this process's user, that
 * nobody else may write, and that nobody else may read, except, for a file
 * owned by root, the daemon's group: this process's effective group or the
 * group the package creates (SCALER_DAEMON_GROUP, "scaler"), so the .deb's
 * root:scaler 0640 token is valid for scalerd run as user scaler or as root.
 * A POSIX access ACL may add readers within the same rule only: this
 * process's user (or root), and the daemon's group for a file of root's, as
 * systemd's LoadCredential= does on a tmpfs (root's file, 0400, plus
 * "user:<the service's user>:r"); its mask in the mode's group bits is not
 * taken for the owning group's permission.
 * Anything else is refused with a sentence saying what to chmod or chown. */
#ifndef SCALER_SECRET_H
#define SCALER_SECRET_H

#include <stddef.h>
#include <sys/stat.h>

#ifndef SCALER_DAEMON_GROUP
#define SCALER_DAEMON_GROUP "scaler"
#endif

/* Open `path` for reading without blocking on a FIFO and check the open
 * file (what = "token file", "TLS key", ... for the messages). The file
 * descriptor (O_CLOEXEC), or -1 with the reason in err. st: optional, gets
 * the status of the file checked. */
int secret_open(const char *path, const char *what, struct stat *st, char *err, size_t errlen);

/* "a FIFO", "a directory", ... for messages about a file that is not regular. */
const char *file_type_name(mode_t mode);

/* The rule on the status of a file already open: 0, or -1 with the reason. */
int secret_check(const struct stat *st, const char *path, const char *what, char *err,
                 size_t errlen);

#endif
