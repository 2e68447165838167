/* The configuration loader (src/conf/) on any bytes: the input is written
 * to a private file (mode 0600) and loaded as scalerd loads scaler.conf.
 *
 * Invariants: a configuration that loads holds what the daemon relies on
 * (a node id of digits; zone names that start with a letter or a digit,
 * unique; 0 <= min <= max <= 1000; a port range within 1..65535; finite
 * durations of at most a year; an admin address others can reach only with
 * a token; a token of visible ASCII), and written back as libconfig writes
 * it (the snapshot the balancer workers get) it loads again the same.
 *
 * Verdicts: "valid", "invalid". */
#include "config.h"

#include "conf.h"
#include "fuzz.h"
#include "log.h"
#include "net.h"

#include <ctype.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fz_quiet;

/* libconfig 1.5 (Debian 12) loses what its scanner allocated for a token
 * that a syntax error cuts short (strbuf_append, libconfig_yylex; valgrind
 * shows it with config_read_string alone): not scaler's to fix, so not a
 * finding. Leaks of scaler's own (a config never destroyed) still are. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

static void fz_write(const char *path, const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FUZZ_ASSERT(fd >= 0, "cannot write %s", path);
	FUZZ_ASSERT(size == 0 || write(fd, data, size) == (ssize_t)size, "short write");
	close(fd);
}

static void fz_check(const struct conf *c)
{
	FUZZ_ASSERT(c->node_id[0] && strspn(c->node_id, "0123456789") == strlen(c->node_id),
	            "node id \"%s\"", c->node_id);
	FUZZ_ASSERT(isfinite(c->interval) && c->interval >= 0.2 && c->interval <= 366 * 86400.0,
	            "interval %g", c->interval);
	FUZZ_ASSERT(c->token || net_addr_is_loopback(c->admin_listen),
	            "admin %s reachable by others without a token", c->admin_listen);
	for (const char *t = c->token; t && *t; t++)
		FUZZ_ASSERT(*t > ' ' && *t < 127, "a token with byte %d", *t);
	for (size_t i = 0; i < c->nzones; i++) {
		const struct conf_zone *z = &c->zones[i];
		FUZZ_ASSERT(isalnum((unsigned char)z->name[0]), "zone name \"%s\"", z->name);
		FUZZ_ASSERT(0 <= z->min && z->min <= z->max && z->max <= 1000,
		            "zone %s: min %d max %d", z->name, z->min, z->max);
		FUZZ_ASSERT(1 <= z->port_min && z->port_min <= z->port_max && z->port_max <= 65535,
		            "zone %s: ports %d-%d", z->name, z->port_min, z->port_max);
		FUZZ_ASSERT(isfinite(z->interval) && isfinite(z->window) &&
		                isfinite(z->cooldown_up) && isfinite(z->cooldown_down),
		            "zone %s: a duration that is not finite", z->name);
		FUZZ_ASSERT(
		    c->token || !conf_hosts_zone(c, z->name) || net_addr_is_loopback(z->admin),
		    "zone %s: admin %s reachable by others without a token", z->name, z->admin);
		for (size_t k = 0; k < i; k++)
			FUZZ_ASSERT(strcmp(c->zones[k].name, z->name), "zone %s twice", z->name);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char dir[64] = "/tmp/fuzz-conf-XXXXXX", path[128], back[128];

	if (!fz_quiet) {
		log_setup("fuzz", SCALER_LOG_ERR, 0);
		log_set_level(
		    (enum scaler_log_level)(SCALER_LOG_ERR - 1)); /* errors are expected */
		fz_quiet = 1;
	}
	FUZZ_ASSERT(mkdtemp(dir), "mkdtemp");
	const char *fz_dir = dir;
	snprintf(path, sizeof(path), "%s/scaler.conf", fz_dir);
	snprintf(back, sizeof(back), "%s/snapshot.conf", fz_dir);
	fz_write(path, data, size);
	struct conf *c = conf_load(path);
	if (!c) {
		unlink(path);
		rmdir(dir);
		fuzz_verdict("invalid");
		return 0;
	}
	fz_check(c);
	/* written back as the balancer workers get it, it loads the same */
	int fd = open(back, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600); /* as scalerd's */
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	FUZZ_ASSERT(f, "cannot write the snapshot");
	config_write(&c->cfg, f);
	fclose(f);
	struct conf *b = conf_load(back);
	FUZZ_ASSERT(b, "the configuration written back does not load");
	FUZZ_ASSERT(strcmp(b->node_id, c->node_id) == 0 && b->nzones == c->nzones &&
	                (!b->token) == (!c->token) && strcmp(b->admin_listen, c->admin_listen) == 0,
	            "the configuration written back differs");
	for (size_t i = 0; i < c->nzones; i++)
		FUZZ_ASSERT(strcmp(b->zones[i].name, c->zones[i].name) == 0 &&
		                b->zones[i].min == c->zones[i].min &&
		                b->zones[i].max == c->zones[i].max &&
		                b->zones[i].port_min == c->zones[i].port_min &&
		                b->zones[i].port_max == c->zones[i].port_max,
		            "zone %zu differs written back", i);
	conf_free(b);
	conf_free(c);
	unlink(back);
	unlink(path);
	rmdir(dir);
	fuzz_verdict("valid");
	return 0;
}
