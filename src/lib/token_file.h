/* Bearer tokens kept in files (node.token_file, scalerctl --token-file):
 * read the same way by scalerd and scalerctl. */
#ifndef SCALER_TOKEN_FILE_H
#define SCALER_TOKEN_FILE_H

#include <stddef.h>
#include <sys/stat.h>

/* The longest token, in a file or inline in the config (bytes): every
 * client and peer sends it whole in one header line. */
#define TOKEN_MAX 4096

/* The token in `path`: its first line, spaces and tabs trimmed at both
 * ends; it must be visible ASCII, and the file must pass the rule for
 * secrets (secret.h: no FIFO, nobody else may read or write it), at most
 * TOKEN_MAX bytes. A malloc'ed string (explicit_bzero
 * and free it), or NULL with a sentence naming the file in `why`. When `st` is not NULL it gets the
 * status of the file that was read (for mode checks). */
char *token_file_read(const char *path, struct stat *st, char *why, size_t whylen);

#endif
