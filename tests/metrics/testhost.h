/* A minimal scaler host for tests that load plugins through dlopen: log,
 * conf_error and conf_check_known record what they are told (conf_number and
 * conf_integer, the real ones, report through that conf_error), so a test can
 * assert on the messages a plugin gives an operator. */
#ifndef SCALER_TESTHOST_H
#define SCALER_TESTHOST_H

#include <scaler/plugin.h>

#include <stddef.h>

/* Fill the host table (ABI numbers, log and config helpers); loop may be
 * NULL, the HTTP and Redis services are left to the caller. */
void testhost_init(struct scaler_host *host, struct ev_loop *loop);

/* Everything logged and every config error so far, one per line. */
const char *testhost_messages(void);
void testhost_clear(void);
/* Also copy every message to stderr (for command-line drivers). */
void testhost_echo(int on);

/* dlopen $SCALER_PLUGIN_DIR/<kind>_<name>.so (default ".libs") and return
 * its exported descriptor, NULL with a sentence in err. */
const struct scaler_plugin *testhost_load(const char *kind, const char *name, char *err,
                                          size_t errlen);

/* Parse `text` as the body of a group "{ text }" into cf and return the
 * group; NULL with the parse error in err. Call config_destroy(cf) after. */
config_setting_t *testhost_group(config_t *cf, const char *text, char *err, size_t errlen);

/* Reset host and messages, then init plugin p with `text` as its group body
 * (NULL: no group at all); cf holds the config (config_destroy it after).
 * Returns init's result; a text that does not parse aborts the test. */
int testhost_plugin_init(struct scaler_host *host, const struct scaler_plugin *p, config_t *cf,
                         const char *text, void **ctx);

#endif
