/* scaler.conf: what conf_load accepts, what it fills in by default, and the
 * exact "FILE:LINE: SETTING: message" lines it logs for what it refuses. */
#include "config.h"

#include "conf.h"
#include "log.h"
#include "token_file.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

static char tc_log[65536]; /* what the last load logged */

static const char *tc_srcdir(void)
{
	const char *d = getenv("top_srcdir");
	return d && *d ? d : ".";
}

static char tc_fixtures[64]; /* a private copy of tests/data/conf */

static void tc_fixtures_remove(void)
{
	DIR *d = opendir(tc_fixtures);
	struct dirent *e;
	char path[4200];
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", tc_fixtures, e->d_name);
			unlink(path);
		}
	if (d)
		closedir(d);
	rmdir(tc_fixtures);
}

/* Fixtures are loaded from a copy of mode 0600: a checkout's files are
 * readable by everybody, and a file holding a token inline must not be. */
static const char *tc_fixture(const char *name)
{
	static char path[4200];
	if (!tc_fixtures[0]) {
		char src[4096];
		snprintf(tc_fixtures, sizeof(tc_fixtures), "/tmp/test_conf-fixtures-XXXXXX");
		ck_assert(mkdtemp(tc_fixtures) != NULL);
		atexit(tc_fixtures_remove);
		snprintf(src, sizeof(src), "%s/tests/data/conf", tc_srcdir());
		DIR *d = opendir(src);
		struct dirent *e;
		ck_assert_msg(d != NULL, "cannot read %s: %s", src, strerror(errno));
		while ((e = readdir(d))) {
			char from[4200], to[4200], buf[65536];
			if (e->d_name[0] == '.')
				continue;
			snprintf(from, sizeof(from), "%s/%s", src, e->d_name);
			snprintf(to, sizeof(to), "%s/%s", tc_fixtures, e->d_name);
			int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT, 0600);
			ck_assert(in >= 0 && out >= 0);
			ssize_t n;
			while ((n = read(in, buf, sizeof(buf))) > 0)
				ck_assert(write(out, buf, (size_t)n) == n);
			close(in);
			close(out);
		}
		closedir(d);
	}
	snprintf(path, sizeof(path), "%s/%s", tc_fixtures, name);
	return path;
}

/* conf_load with stderr (the log) captured into tc_log. */
static struct conf *tc_load(const char *path)
{
	char tmpl[] = "/tmp/test_conf-log-XXXXXX";
	int fd = mkstemp(tmpl), saved;
	struct conf *c;
	ssize_t n;

	ck_assert_msg(fd >= 0, "mkstemp: %s", strerror(errno));
	unlink(tmpl);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	c = conf_load(path);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, tc_log, sizeof(tc_log) - 1);
	tc_log[n > 0 ? n : 0] = '\0';
	close(fd);
	return c;
}

static char tc_path[64];

/* Write `text` to a temporary file and load it. */
static struct conf *tc_load_text(const char *text)
{
	snprintf(tc_path, sizeof(tc_path), "/tmp/test_conf-XXXXXX");
	int fd = mkstemp(tc_path);
	ck_assert_msg(fd >= 0, "mkstemp: %s", strerror(errno));
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct conf *c = tc_load(tc_path);
	unlink(tc_path);
	return c;
}

static int tc_count_lines(const char *needle)
{
	int n = 0;
	for (const char *p = tc_log; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

#define expect_log(needle)                              \
	ck_assert_msg(strstr(tc_log, (needle)) != NULL, \
	              "expected the log to contain\n    %s\nbut it was:\n%s", (needle), tc_log)

#define expect_no_log(needle)                                                               \
	ck_assert_msg(strstr(tc_log, (needle)) == NULL,                                     \
	              "expected the log NOT to contain\n    %s\nbut it was:\n%s", (needle), \
	              tc_log)

#define expect_refused(c) \
	ck_assert_msg((c) == NULL, "expected conf_load to refuse the file; log:\n%s", tc_log)

#define expect_loaded(c) \
	ck_assert_msg((c) != NULL, "expected conf_load to accept the file; log:\n%s", tc_log)

/* The line logged for `fixture` at `line` about `setting`: "x.conf:7: a.b: msg" */
static const char *tc_msg(const char *fixture, int line, const char *setting, const char *msg)
{
	static char buf[1024];
	snprintf(buf, sizeof(buf), "%s:%d: %s: %s", fixture, line, setting, msg);
	return buf;
}

static const char *const NODE = "node = { id = 1; };\n";

/* NODE + text, refused, with `needle` in the log */
static void tc_refuses(const char *text, const char *needle)
{
	char buf[8192];
	snprintf(buf, sizeof(buf), "%s%s", NODE, text);
	struct conf *c = tc_load_text(buf);
	ck_assert_msg(c == NULL, "expected conf_load to refuse\n%s\nlog:\n%s", buf, tc_log);
	ck_assert_msg(strstr(tc_log, needle) != NULL,
	              "for the file\n%s\nexpected the log to contain\n    %s\nbut it was:\n%s", buf,
	              needle, tc_log);
}

static struct conf *tc_accepts(const char *text)
{
	char buf[8192];
	snprintf(buf, sizeof(buf), "%s%s", NODE, text);
	struct conf *c = tc_load_text(buf);
	ck_assert_msg(c != NULL, "expected conf_load to accept\n%s\nlog:\n%s", buf, tc_log);
	return c;
}

/* ---- files that load ---------------------------------------------------- */

START_TEST(every_setting_of_a_full_file_is_read)
{
	struct conf *c = tc_load(tc_fixture("good.conf"));
	expect_loaded(c);

	ck_assert_str_eq(c->node_id, "42"); /* "0042" normalised */
	ck_assert_str_eq(c->admin_listen, "127.0.0.1:9500");
	ck_assert_str_eq(c->admin_url, "http://scaler-a.example:9500");
	ck_assert_str_eq(c->token, "s3cret-token");
	ck_assert_ptr_nonnull(c->zones_hosted);
	ck_assert_str_eq(c->zones_hosted[0], "east");
	ck_assert_str_eq(c->zones_hosted[1], "west");
	ck_assert_ptr_null(c->zones_hosted[2]);
	ck_assert_str_eq(c->cluster, "shop_prod-1");
	ck_assert_str_eq(c->redis_url, "redis://:pw@127.0.0.1:6380/2");
	ck_assert_str_eq(c->plugin_dir, "/opt/scaler/plugins");
	ck_assert_str_eq(c->state_dir, "/srv/scaler");
	ck_assert_str_eq(c->log_level, "debug");
	ck_assert_int_eq(c->log_syslog, 1);
	ck_assert_double_eq(c->interval, 5.0);
	ck_assert_double_eq(c->window, 30.5);
	ck_assert_double_eq(c->cooldown_up, 15.0);
	ck_assert_double_eq(c->cooldown_down, 60.0);
	ck_assert_double_eq(c->drain_timeout, 2.5);
	ck_assert_double_eq(c->reconcile_interval, 30.0);
	ck_assert_int_eq(c->dry_run, 1);
	ck_assert_double_eq(c->stop_timeout, 3.0);

	ck_assert_str_eq(c->driver.name, "docker");
	ck_assert_str_eq(c->metrics[0].plugin.name, "influxdb");
	ck_assert_str_eq(c->policy.name, "threshold");
	ck_assert_str_eq(c->election.name, "bully");
	ck_assert_str_eq(c->balancer.name, "builtin");
	/* plugin settings are the plugins' business but reach them intact */
	const char *image = NULL;
	ck_assert_ptr_nonnull(c->driver.group);
	ck_assert(config_setting_lookup_string(c->driver.group, "image", &image));
	ck_assert_str_eq(image, "scaler-app:latest");
	ck_assert_ptr_nonnull(config_setting_get_member(c->election.group, "peers"));

	ck_assert_uint_eq(c->nzones, 3);
	const struct conf_zone *e = &c->zones[0], *w = &c->zones[1], *z3 = &c->zones[2];
	ck_assert_str_eq(e->name, "east");
	ck_assert_str_eq(e->listen, "127.0.0.1:8081");
	ck_assert_str_eq(e->admin, "127.0.0.1:9081");
	ck_assert_int_eq(e->min, 2);
	ck_assert_int_eq(e->max, 8);
	ck_assert_int_eq(e->port_min, 30000);
	ck_assert_int_eq(e->port_max, 30049);
	ck_assert_double_eq(e->interval, 1.5);
	ck_assert_double_eq(e->window, 20.0);
	ck_assert_double_eq(e->cooldown_up, 1.0);
	ck_assert_double_eq(e->cooldown_down, 2.0);
	ck_assert_int_eq(e->dry_run, 0);
	ck_assert_uint_eq(e->nservers, 2);
	ck_assert_str_eq(e->servers[0], "http://127.0.0.1:7001");
	ck_assert_str_eq(e->servers[1], "http://[::1]:7002");
	ck_assert_ptr_null(e->servers[2]);
	ck_assert_int_eq(e->line, 27);
	/* per-zone plugin groups: policy names its own plugin, balancer inherits it */
	ck_assert_ptr_nonnull(e->policy);
	ck_assert_str_eq(e->policy_plugin, "target");
	ck_assert_ptr_eq(e->policy_conf, e->policy);
	ck_assert_ptr_nonnull(e->balancer);
	ck_assert_str_eq(e->balancer_plugin, "builtin");
	ck_assert_ptr_eq(e->balancer_conf, e->balancer);

	/* a zone without overrides inherits the global values */
	ck_assert_str_eq(w->listen, "[::1]:8082");
	ck_assert_str_eq(w->admin, "localhost:9082");
	ck_assert_int_eq(w->min, 1);
	ck_assert_int_eq(w->max, 10);
	ck_assert_int_eq(w->port_min, 20100); /* default: 20000 + 100 * index */
	ck_assert_int_eq(w->port_max, 20199);
	ck_assert_double_eq(w->interval, 5.0);
	ck_assert_double_eq(w->window, 30.5);
	ck_assert_double_eq(w->cooldown_up, 15.0);
	ck_assert_double_eq(w->cooldown_down, 60.0);
	ck_assert_int_eq(w->dry_run, 1);
	ck_assert_uint_eq(w->nservers, 0);
	ck_assert_ptr_nonnull(w->servers);
	ck_assert_ptr_null(w->servers[0]);
	ck_assert_ptr_null(w->policy);
	ck_assert_str_eq(w->policy_plugin, "threshold");
	ck_assert_ptr_eq(w->policy_conf, c->policy.group);
	ck_assert_ptr_eq(w->balancer_conf, c->balancer.group);

	ck_assert_str_eq(z3->name, "Z.3_c-x");
	ck_assert_int_eq(z3->min, 0);
	ck_assert_int_eq(z3->max, 0);
	ck_assert_int_eq(z3->port_min, 20200);

	/* the plugins' view points into the zone */
	ck_assert_ptr_eq(e->pub.name, e->name);
	ck_assert_ptr_eq(e->pub.listen, e->listen);
	ck_assert_ptr_eq(e->pub.admin, e->admin);
	ck_assert_int_eq(e->pub.min, 2);
	ck_assert_int_eq(e->pub.max, 8);
	ck_assert_int_eq(e->pub.port_min, 30000);
	ck_assert_int_eq(e->pub.port_max, 30049);
	ck_assert_str_eq(e->pub.servers[1], "http://[::1]:7002");
	ck_assert_ptr_eq(e->pub.conf, e->group);

	ck_assert_ptr_eq(conf_zone_find(c, "west"), w);
	ck_assert_ptr_null(conf_zone_find(c, "nowhere"));
	ck_assert_int_eq(conf_hosts_zone(c, "east"), 1);
	ck_assert_int_eq(conf_hosts_zone(c, "west"), 1);
	ck_assert_int_eq(conf_hosts_zone(c, "Z.3_c-x"), 0); /* not in node.zones */
	ck_assert_int_eq(conf_hosts_zone(c, "nowhere"), 0);
	ck_assert_str_eq(tc_log, ""); /* nothing to complain about */
	conf_free(c);
}
END_TEST

START_TEST(everything_omitted_takes_its_default)
{
	unsetenv("SCALER_PLUGIN_DIR");
	struct conf *c = tc_load(tc_fixture("minimal.conf"));
	expect_loaded(c);

	ck_assert_str_eq(c->node_id, "7");
	ck_assert_str_eq(c->admin_listen, "127.0.0.1:9000");
	ck_assert_str_eq(c->admin_url, "http://127.0.0.1:9000");
	ck_assert_ptr_null(c->token);
	ck_assert_str_eq(c->token_file, "");
	ck_assert_ptr_null(c->zones_hosted);
	ck_assert_str_eq(c->cluster, "scaler");
	ck_assert_str_eq(c->redis_url, "redis://127.0.0.1:6379/0");
	ck_assert_str_eq(c->plugin_dir, PLUGINDIR);
	ck_assert_str_eq(c->state_dir, LOCALSTATEDIR "/lib/scaler");
	ck_assert_str_eq(c->log_level, "info");
	ck_assert_int_eq(c->log_syslog, 0);
	ck_assert_double_eq(c->interval, 10.0);
	ck_assert_double_eq(c->window, 10.0);
	ck_assert_double_eq(c->cooldown_up, 0.0);
	ck_assert_double_eq(c->cooldown_down, 0.0);
	ck_assert_double_eq(c->drain_timeout, 10.0);
	ck_assert_double_eq(c->reconcile_interval, 60.0);
	ck_assert_int_eq(c->dry_run, 0);
	ck_assert_double_eq(c->stop_timeout, 10.0);
	ck_assert_str_eq(c->driver.name, "process");
	ck_assert_str_eq(c->metrics[0].plugin.name, "http");
	ck_assert_str_eq(c->policy.name, "threshold");
	ck_assert_str_eq(c->election.name, "single");
	ck_assert_str_eq(c->balancer.name, "builtin");
	ck_assert_ptr_null(c->driver.group);
	ck_assert_ptr_null(c->balancer.group);
	ck_assert_uint_eq(c->nzones, 0); /* a node that only takes part in the election */
	ck_assert_int_eq(conf_hosts_zone(c, "zone1"), 0);
	conf_free(c);
}
END_TEST

START_TEST(plugin_dir_default_comes_from_the_environment_when_set)
{
	setenv("SCALER_PLUGIN_DIR", "/tmp/plugins-from-env", 1);
	struct conf *c = tc_load(tc_fixture("minimal.conf"));
	expect_loaded(c);
	ck_assert_str_eq(c->plugin_dir, "/tmp/plugins-from-env");
	conf_free(c);

	/* an explicit setting still wins */
	c = tc_accepts("plugin_dir = \"/opt/p\";\n");
	ck_assert_str_eq(c->plugin_dir, "/opt/p");
	conf_free(c);
	unsetenv("SCALER_PLUGIN_DIR");
}
END_TEST

START_TEST(the_shipped_scaler_conf_loads)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/etc/scaler.conf", tc_srcdir());
	struct conf *c = tc_load(path);
	expect_loaded(c);

	ck_assert_str_eq(c->driver.name, "process");
	ck_assert_str_eq(c->metrics[0].plugin.name, "http");
	ck_assert_str_eq(c->policy.name, "threshold");
	ck_assert_str_eq(c->election.name, "single");
	ck_assert_str_eq(c->balancer.name, "builtin");
	ck_assert_double_eq(c->interval, 10.0);
	ck_assert_uint_eq(c->nzones, 3);
	for (int i = 0; i < 3; i++) {
		char name[16], listen[32], admin[32];
		snprintf(name, sizeof(name), "zone%d", i + 1);
		snprintf(listen, sizeof(listen), "127.0.0.1:%d", 8081 + i);
		snprintf(admin, sizeof(admin), "127.0.0.1:%d", 9081 + i);
		ck_assert_str_eq(c->zones[i].name, name);
		ck_assert_str_eq(c->zones[i].listen, listen);
		ck_assert_str_eq(c->zones[i].admin, admin);
		ck_assert_int_eq(c->zones[i].min, 1);
		ck_assert_int_eq(c->zones[i].max, 5);
		ck_assert_int_eq(conf_hosts_zone(c, name), 1);
	}
	/* the seed's thresholds reach the policy plugin */
	double v = 0;
	ck_assert(config_setting_lookup_float(c->policy.group, "max_cpu", &v));
	ck_assert_double_eq(v, 70.0);
	ck_assert(config_setting_lookup_float(c->policy.group, "min_cpu", &v));
	ck_assert_double_eq(v, 10.0);
	const config_setting_t *cmd = config_setting_get_member(c->driver.group, "command");
	ck_assert_ptr_nonnull(cmd);
	ck_assert_str_eq(config_setting_get_string_elem(cmd, 0), "scaler-app");
	conf_free(c);
}
END_TEST

/* ---- errors: each names the file, the line and the setting -------------- */

START_TEST(a_syntax_error_names_its_line)
{
	struct conf *c = tc_load(tc_fixture("syntax.conf"));
	expect_refused(c);
	expect_log("syntax.conf:5: syntax error\n"); /* libconfig's text adds nothing here */

	/* libconfig's own words when they say more */
	c = tc_load_text("node = { id = 1; };\nnode = { id = 2; };\n");
	expect_refused(c);
	expect_log(":2: syntax error: duplicate setting name");
}
END_TEST

START_TEST(max_below_min_names_the_line_and_path_of_max)
{
	struct conf *c = tc_load(tc_fixture("max_lt_min.conf"));
	expect_refused(c);
	expect_log(tc_msg("max_lt_min.conf", 8, "zones.[1].max", "must be >= min (3 < 5)"));
	ck_assert_int_eq(tc_count_lines(" err: "), 2); /* the error and the summary */
	expect_log("max_lt_min.conf: 1 error, configuration not loaded");
}
END_TEST

START_TEST(a_min_above_the_default_max_blames_min)
{
	tc_refuses("zones = ( { name = \"z\"; listen = \"127.0.0.1:1\"; admin = \"127.0.0.1:2\";\n"
	           "  min = 12; } );\n",
	           ":3: zones.[0].min: must be <= max (12 > 10, the default max)");
}
END_TEST

START_TEST(unknown_settings_are_refused_with_their_line)
{
	struct conf *c = tc_load(tc_fixture("unknown.conf"));
	expect_refused(c);
	expect_log(
	    tc_msg("unknown.conf", 2, "intervall", "unknown setting (did you mean interval?)"));
	expect_log(
	    tc_msg("unknown.conf", 5, "zones.[0].maximum", "unknown setting (known here: name,"));
	ck_assert_int_eq(tc_count_lines("unknown setting"), 2);

	tc_refuses("log = { level = \"info\"; colour = true; };\n",
	           ":2: log.colour: unknown setting (known here: level, syslog)");
}
END_TEST

START_TEST(wrong_types_are_refused)
{
	struct conf *c = tc_load(tc_fixture("wrong_type.conf"));
	expect_refused(c);
	expect_log(tc_msg("wrong_type.conf", 2, "interval", "must be a number (got a string)"));
	expect_log(tc_msg("wrong_type.conf", 3, "cluster", "must be a string (got an integer)"));
	expect_log(tc_msg("wrong_type.conf", 4, "dry_run", "must be true or false (got a string)"));
	expect_log(
	    tc_msg("wrong_type.conf", 7, "zones.[0].min", "must be an integer (got a float)"));
	expect_log("wrong_type.conf: 4 errors, configuration not loaded");
	/* logged from the top of the file down, whatever order they are checked in */
	const char *l2 = strstr(tc_log, "wrong_type.conf:2:"),
	           *l3 = strstr(tc_log, "wrong_type.conf:3:");
	const char *l4 = strstr(tc_log, "wrong_type.conf:4:"),
	           *l7 = strstr(tc_log, "wrong_type.conf:7:");
	ck_assert_msg(l2 < l3 && l3 < l4 && l4 < l7, "expected errors sorted by line, got:\n%s",
	              tc_log);

	tc_refuses("zones = { name = \"z\"; };\n",
	           ":2: zones: must be a list of groups (got a group)");
	tc_refuses("zones = ( \"zone1\" );\n", ":2: zones.[0]: must be a group (got a string)");
	tc_refuses("driver = \"docker\";\n", ":2: driver: must be a group (got a string)");
	tc_refuses("log = \"debug\";\n", ":2: log: must be a group (got a string)");
}
END_TEST

START_TEST(numbers_accept_int_or_float_and_check_their_bounds)
{
	struct conf *c = tc_accepts("interval = 1;\nwindow = 0.5;\ncooldown_up = 0;\n"
	                            "drain_timeout = 0.0;\nstop_timeout = 1L;\n");
	ck_assert_double_eq(c->interval, 1.0);
	ck_assert_double_eq(c->window, 0.5);
	ck_assert_double_eq(c->stop_timeout, 1.0);
	conf_free(c);
	c = tc_accepts("interval = 0.2;\n");
	ck_assert_double_eq(c->interval, 0.2);
	conf_free(c);

	tc_refuses("interval = 0.1;\n", ":2: interval: must be >= 0.2 (got 0.1)");
	tc_refuses("window = 0;\n", ":2: window: must be > 0 (got 0)");
	tc_refuses("cooldown_down = -1;\n", ":2: cooldown_down: must be >= 0 (got -1)");
	tc_refuses("drain_timeout = -0.5;\n", ":2: drain_timeout: must be >= 0 (got -0.5)");
	c = tc_accepts("reconcile_interval = 0;\n");
	ck_assert_double_eq(c->reconcile_interval, 0.0);
	conf_free(c);
	c = tc_accepts("reconcile_interval = 1;\n");
	ck_assert_double_eq(c->reconcile_interval, 1.0);
	conf_free(c);
	c = tc_accepts("reconcile_interval = 86400.0;\n");
	ck_assert_double_eq(c->reconcile_interval, 86400.0);
	conf_free(c);
	tc_refuses("reconcile_interval = 0.5;\n",
	           ":2: reconcile_interval: must be 0 (off) or 1 to 86400 seconds (got 0.5)");
	tc_refuses("reconcile_interval = 86401;\n",
	           ":2: reconcile_interval: must be 0 (off) or 1 to 86400 seconds (got 86401)");
	tc_refuses("reconcile_interval = -1;\n", ":2: reconcile_interval: must be >= 0 (got -1)");
	tc_refuses("reconcile_interval = \"60\";\n",
	           ":2: reconcile_interval: must be a number (got a string)");
	tc_refuses("stop_timeout = true;\n", ":2: stop_timeout: must be a number (got a boolean)");
	tc_refuses("zones = ( { name = \"z\"; listen = \"127.0.0.1:1\"; admin = \"127.0.0.1:2\";\n"
	           "  window = -3; } );\n",
	           ":3: zones.[0].window: must be > 0 (got -3)");
	tc_refuses("zones = ( { name = \"z\"; listen = \"127.0.0.1:1\"; admin = \"127.0.0.1:2\";\n"
	           "  max = 1001; } );\n",
	           ":3: zones.[0].max: must be between 0 and 1000 (got 1001)");
	tc_refuses("zones = ( { name = \"z\"; listen = \"127.0.0.1:1\"; admin = \"127.0.0.1:2\";\n"
	           "  min = -1; } );\n",
	           ":3: zones.[0].min: must be between 0 and 1000 (got -1)");
}
END_TEST

START_TEST(duplicate_zone_names_are_refused)
{
	struct conf *c = tc_load(tc_fixture("duplicate_zone.conf"));
	expect_refused(c);
	expect_log(tc_msg("duplicate_zone.conf", 5, "zones.[2].name",
	                  "duplicate zone name \"zone1\" (first used by zones.[0], line 3)"));
}
END_TEST

START_TEST(overlapping_port_ranges_are_refused)
{
	struct conf *c = tc_load(tc_fixture("ports_overlap.conf"));
	expect_refused(c);
	/* zone2 has no ports: its default range 20100-20199 overlaps zone1's */
	expect_log(tc_msg("ports_overlap.conf", 5, "zones.[1]",
	                  "port range 20100-20199 overlaps zones.[0] (\"zone1\", 20050-20150)"));

	tc_refuses("zones = ( { name = \"z\"; listen = \"127.0.0.1:1\"; admin = \"127.0.0.1:2\";\n"
	           "  ports = [200, 100]; } );\n",
	           ":3: zones.[0].ports: low port must be <= high port (200 > 100)");
	tc_refuses("zones = ( { name = \"z\"; listen = \"127.0.0.1:1\"; admin = \"127.0.0.1:2\";\n"
	           "  ports = [0, 100]; } );\n",
	           ":3: zones.[0].ports.[0]: must be between 1 and 65535 (got 0)");
	tc_refuses("zones = ( { name = \"z\"; listen = \"127.0.0.1:1\"; admin = \"127.0.0.1:2\";\n"
	           "  ports = [100]; } );\n",
	           ":3: zones.[0].ports: must be [low, high] (two port numbers)");
	c = tc_accepts(
	    "zones = ( { name = \"a\"; listen = \"127.0.0.1:1\"; admin = \"127.0.0.1:2\";\n"
	    "  ports = [20100, 20199]; },\n"
	    "  { name = \"b\"; listen = \"127.0.0.1:3\"; admin = \"127.0.0.1:4\";\n"
	    "  ports = [20000, 20099]; } );\n");
	ck_assert_int_eq(c->zones[1].port_min, 20000);
	conf_free(c);
}
END_TEST

START_TEST(workers_is_a_count_or_auto)
{
	tc_refuses("zones = ( { name = \"z\"; listen = \"127.0.0.1:1\"; admin = \"127.0.0.1:2\";\n"
	           "  workers = 0; } );\n",
	           ":3: zones.[0].workers: must be between 1 and 64 (got 0)");
	tc_refuses(
	    "zones = ( { name = \"z\"; listen = \"127.0.0.1:1\"; admin = \"127.0.0.1:2\";\n"
	    "  workers = \"many\"; } );\n",
	    ":3: zones.[0].workers: must be a number of processes or \"auto\" (got \"many\")");
	struct conf *c = tc_accepts(
	    "zones = ( { name = \"a\"; listen = \"127.0.0.1:1\"; admin = \"127.0.0.1:2\";\n"
	    "  workers = \"auto\"; },\n"
	    "  { name = \"b\"; listen = \"127.0.0.1:3\"; admin = \"127.0.0.1:4\"; workers = 3; },\n"
	    "  { name = \"c\"; listen = \"127.0.0.1:5\"; admin = \"127.0.0.1:6\"; } );\n");
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	ck_assert_int_eq(c->zones[0].workers, cores < 1 ? 1 : cores > 64 ? 64 : (int)cores);
	ck_assert_int_eq(c->zones[1].workers, 3);
	ck_assert_int_eq(c->zones[2].workers, 1);
	conf_free(c);
}
END_TEST

START_TEST(token_and_token_file_together_are_refused)
{
	struct conf *c = tc_load(tc_fixture("token_both.conf"));
	expect_refused(c);
	expect_log(tc_msg("token_both.conf", 4, "node.token_file",
	                  "node.token and node.token_file are both set; keep one"));
}
END_TEST

START_TEST(token_file_is_read_trimmed_and_never_logged)
{
	char tok[] = "/tmp/test_conf-token-XXXXXX", text[512];
	int fd = mkstemp(tok);
	ck_assert_int_ge(fd, 0);
	const char *content = "  very-secret-value \t\nsecond line\n";
	ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	chmod(tok, 0600);

	snprintf(text, sizeof(text), "node = { id = 1; token_file = \"%s\"; };\n", tok);
	struct conf *c = tc_load_text(text);
	expect_loaded(c);
	ck_assert_str_eq(c->token, "very-secret-value");
	ck_assert_str_eq(c->token_file, tok);
	conf_free(c);

	/* an empty first line: refused, and nothing of the file in the log */
	fd = open(tok, O_WRONLY | O_TRUNC);
	ck_assert_int_eq(write(fd, "\nvery-secret-value\n", 19), 19);
	close(fd);
	c = tc_load_text(text);
	expect_refused(c);
	expect_log(":1: node.token_file: the first line of");
	expect_no_log("very-secret-value");

	/* readable or writable by others: refused, saying what to chmod */
	fd = open(tok, O_WRONLY | O_TRUNC);
	ck_assert_int_eq(write(fd, "very-secret-value\n", 18), 18);
	close(fd);
	static const mode_t open_modes[] = {0644, 0666, 0604, 0620};
	for (size_t i = 0; i < sizeof(open_modes) / sizeof(open_modes[0]); i++) {
		chmod(tok, open_modes[i]);
		c = tc_load_text(text);
		expect_refused(c);
		expect_log(":1: node.token_file: token file");
		expect_log("chmod ");
		expect_no_log("very-secret-value");
	}
	chmod(tok, 0600);

	/* TOKEN_MAX bytes are taken whole; one more is refused, never cut */
	static char longest[TOKEN_MAX + 3];
	memset(longest, 'k', TOKEN_MAX);
	longest[TOKEN_MAX] = '\n';
	fd = open(tok, O_WRONLY | O_TRUNC);
	ck_assert_int_eq(write(fd, longest, TOKEN_MAX + 1), TOKEN_MAX + 1);
	close(fd);
	c = tc_load_text(text);
	expect_loaded(c);
	ck_assert_uint_eq(strlen(c->token), TOKEN_MAX);
	conf_free(c);
	longest[TOKEN_MAX] = 'k';
	longest[TOKEN_MAX + 1] = '\n';
	fd = open(tok, O_WRONLY | O_TRUNC);
	ck_assert_int_eq(write(fd, longest, TOKEN_MAX + 2), TOKEN_MAX + 2);
	close(fd);
	c = tc_load_text(text);
	expect_refused(c);
	expect_log(":1: node.token_file: the first line of token file");
	expect_log("is longer than 4096 bytes");
	expect_no_log("kkkkkkkk");

	unlink(tok);
	c = tc_load_text(text);
	expect_refused(c);
	expect_log(":1: node.token_file: cannot read token file");
	expect_log("No such file or directory");
}
END_TEST

START_TEST(an_inline_token_longer_than_token_max_is_refused)
{
	static char text[TOKEN_MAX + 128], tok[TOKEN_MAX + 2];
	memset(tok, 't', TOKEN_MAX + 1);
	snprintf(text, sizeof(text), "node = { id = 1; token = \"%s\"; };\n", tok);
	struct conf *c = tc_load_text(text);
	expect_refused(c);
	expect_log(":1: node.token: is longer than 4096 bytes");
	expect_no_log("tttttttt");
	tok[TOKEN_MAX] = '\0';
	snprintf(text, sizeof(text), "node = { id = 1; token = \"%s\"; };\n", tok);
	c = tc_load_text(text);
	expect_loaded(c);
	ck_assert_uint_eq(strlen(c->token), TOKEN_MAX);
	conf_free(c);
}
END_TEST

START_TEST(node_zones_must_name_existing_zones)
{
	struct conf *c = tc_load(tc_fixture("hosted_unknown.conf"));
	expect_refused(c);
	expect_log(
	    tc_msg("hosted_unknown.conf", 4, "node.zones.[1]", "no zone named \"zone9\" in zones"));
	ck_assert_int_eq(tc_count_lines("no zone named"), 1);

	/* an empty list: this node runs no balancer */
	c = tc_load_text(
	    "node = { id = 1; zones = []; };\n"
	    "zones = ( { name = \"z\"; listen = \"127.0.0.1:1\"; admin = \"127.0.0.1:2\"; } );\n");
	expect_loaded(c);
	ck_assert_ptr_nonnull(c->zones_hosted);
	ck_assert_int_eq(conf_hosts_zone(c, "z"), 0);
	conf_free(c);
}
END_TEST

START_TEST(all_errors_are_reported_in_one_pass)
{
	struct conf *c = tc_load(tc_fixture("two_errors.conf"));
	expect_refused(c);
	expect_log(tc_msg("two_errors.conf", 2, "window", "must be > 0 (got 0)"));
	expect_log(
	    tc_msg("two_errors.conf", 5, "zones.[0].max", "must be between 0 and 1000 (got 1001)"));
	ck_assert_int_eq(tc_count_lines(" err: "), 3); /* two errors and the summary */
	expect_log("two_errors.conf: 2 errors, configuration not loaded");
}
END_TEST

START_TEST(required_settings_are_reported_at_their_group)
{
	struct conf *c = tc_load_text("cluster = \"x\";\n");
	expect_refused(c);
	expect_log(": node: required setting is missing");

	c = tc_load_text("\nnode = {\n  admin = \"127.0.0.1:9000\";\n};\n");
	expect_refused(c);
	expect_log(":2: node.id: required setting is missing");

	tc_refuses("zones = (\n  { min = 1; }\n);\n",
	           ":3: zones.[0].name: required setting is missing");
	expect_log(":3: zones.[0].listen: required setting is missing");
	expect_log(":3: zones.[0].admin: required setting is missing");
	tc_refuses("driver = { command = [\"x\"]; };\n",
	           ":2: driver.plugin: required setting is missing");
}
END_TEST

START_TEST(node_id_is_a_positive_integer_or_digits)
{
	struct conf *c = tc_load_text("node = { id = 123456789012L; };\n");
	expect_loaded(c);
	ck_assert_str_eq(c->node_id, "123456789012");
	conf_free(c);

	c = tc_load_text("node = { id = 0; };\n");
	expect_refused(c);
	expect_log(":1: node.id: must be >= 1 (got 0)");
	c = tc_load_text("node = { id = \"n1\"; };\n");
	expect_refused(c);
	expect_log(":1: node.id: must be a positive integer or a string of at most 18 digits");
	c = tc_load_text("node = { id = 1.0; };\n");
	expect_refused(c);
	expect_log(":1: node.id: must be an integer >= 1 or a string of digits (got a float)");
}
END_TEST

/* host:port values, through zone listen addresses */
static const struct {
	const char *value;
	const char *error; /* NULL: accepted */
} hostports[] = {
    {"127.0.0.1:8081", NULL},
    {"0.0.0.0:8081", NULL},
    {"localhost:8081", NULL},
    {"app-1.internal_x:65535", NULL},
    {"[::1]:8081", NULL},
    {"[::]:8081", NULL},
    {"*:8081", NULL}, /* every address, as for every listener of scaler */
    {":8081", NULL},
    {"127.0.0.1", "missing :port"},
    {"[fe80::1%eth0]:8081", "invalid IPv6 address"},
    {"127.0.0.1:0", "port must be between 1 and 65535"},
    {"127.0.0.1:65536", "port must be between 1 and 65535"},
    {"127.0.0.1:80a", "port must be a number between 1 and 65535"},
    {"127.0.0.1:", "port must be a number between 1 and 65535"},
    {"::1:8081", "IPv6 addresses are written in brackets"},
    {"[::1:8081", "missing ']'"},
    {"[::1]8081", "missing :port after the IPv6 address"},
    {"[zz::1]:8081", "invalid IPv6 address"},
    {"300.1.1.1:8081", "invalid IPv4 address"},
    {"exa mple:8081", "invalid host name"},
    {"http://a:1", "IPv6 addresses are written in brackets"},
};

START_TEST(listen_addresses_are_host_colon_port)
{
	char text[512], needle[256];
	snprintf(text, sizeof(text),
	         "zones = ( { name = \"z\"; admin = \"127.0.0.1:9999\";\n  listen = \"%s\"; } );\n",
	         hostports[_i].value);
	if (!hostports[_i].error) {
		conf_free(tc_accepts(text));
		return;
	}
	snprintf(needle, sizeof(needle), ":3: zones.[0].listen: \"%s\": %s", hostports[_i].value,
	         hostports[_i].error);
	tc_refuses(text, needle);
}
END_TEST

static const struct {
	const char *value;
	const char *error;
} redis_urls[] = {
    {"redis://127.0.0.1:6379", NULL},
    {"redis://127.0.0.1:6379/15", NULL},
    {"redis://:p@ss@word@redis.internal:6380/0", NULL},
    {"redis://[::1]:6379/1", NULL},
    {"unix:/run/redis/redis.sock", NULL},
    {"unix:/run/redis/redis.sock?db=3", NULL},
    {"redis://127.0.0.1", "missing :port"},
    {"redis://:6379", "missing host"},
    {"redis://*:6379", "missing host"},
    {"redis://user:pw@127.0.0.1:6379", "credentials are written redis://:password@host:port"},
    {"redis://127.0.0.1:6379/x", "the database after '/' must be a number"},
    {"unix:run/redis.sock", "unix: needs an absolute socket path"},
    {"unix:/run/redis.sock?database=1", "the only option after '?' is db=N"},
    {"http://127.0.0.1:6379", "must be redis://[:password@]host:port[/db] or unix:/path[?db=N]"},
};

START_TEST(redis_urls_are_checked_for_shape_and_never_echoed)
{
	char text[512], needle[256];
	snprintf(text, sizeof(text), "redis = \"%s\";\n", redis_urls[_i].value);
	if (!redis_urls[_i].error) {
		struct conf *c = tc_accepts(text);
		ck_assert_str_eq(c->redis_url, redis_urls[_i].value);
		conf_free(c);
		return;
	}
	snprintf(needle, sizeof(needle), ":2: redis: %s", redis_urls[_i].error);
	tc_refuses(text, needle);
	expect_no_log(redis_urls[_i].value);
}
END_TEST

START_TEST(names_are_checked)
{
	tc_refuses(
	    "cluster = \"Shop\";\n",
	    ":2: cluster: \"Shop\": cluster names are 1 to 63 characters of a-z, 0-9, '_', '-'");
	tc_refuses("cluster = \"\";\n", ":2: cluster: \"\": cluster names");
	tc_refuses("driver = { plugin = \"../evil\"; };\n",
	           ":2: driver.plugin: \"../evil\": plugin names are 1 to 63 characters");
	tc_refuses("zones = ( { name = \"z\"; listen = \"127.0.0.1:1\"; admin = \"127.0.0.1:2\";\n"
	           "  policy = { plugin = \"Target\"; }; } );\n",
	           ":3: zones.[0].policy.plugin: \"Target\": plugin names");
	tc_refuses("zones = ( { name = \"zone 1\"; listen = \"127.0.0.1:1\"; admin = "
	           "\"127.0.0.1:2\"; } );\n",
	           ":2: zones.[0].name: \"zone 1\": zone names are 1 to 63 characters");
	tc_refuses("log = { level = \"verbose\"; };\n",
	           ":2: log.level: \"verbose\": must be one of err, warning, notice, info, debug");
	tc_refuses("plugin_dir = \"\";\n", ":2: plugin_dir: must not be empty");
}
END_TEST

START_TEST(metrics_are_one_group_or_named_groups_and_zones_choose_among_them)
{
	/* one group: one metric named after its plugin (as before) */
	struct conf *c = tc_accepts("metrics = { plugin = \"influxdb\"; database = \"x\"; };\n"
	                            "zones = ( { name = \"z\"; listen = \"127.0.0.1:1\"; admin = "
	                            "\"127.0.0.1:2\"; } );\n");
	ck_assert_uint_eq(c->nmetrics, 1);
	ck_assert_str_eq(c->metrics[0].name, "influxdb");
	ck_assert_uint_eq(c->zones[0].nmetrics, 1);
	ck_assert_str_eq(c->zones[0].metrics_list[0].plugin.name, "influxdb");
	conf_free(c);

	/* named metrics; zones take all, some by name, or their own */
	c = tc_accepts(
	    "metrics = { cpu = { plugin = \"http\"; };\n"
	    "  requests = { plugin = \"balancer\"; metric = \"rps\"; }; };\n"
	    "zones = ( { name = \"a\"; listen = \"127.0.0.1:1\"; admin = \"127.0.0.1:2\"; },\n"
	    "  { name = \"b\"; listen = \"127.0.0.1:3\"; admin = \"127.0.0.1:4\";\n"
	    "    metrics = \"requests\"; },\n"
	    "  { name = \"c\"; listen = \"127.0.0.1:5\"; admin = \"127.0.0.1:6\";\n"
	    "    metrics = [\"requests\", \"cpu\"]; },\n"
	    "  { name = \"d\"; listen = \"127.0.0.1:7\"; admin = \"127.0.0.1:8\";\n"
	    "    metrics = { plugin = \"balancer\"; }; } );\n");
	ck_assert_uint_eq(c->nmetrics, 2);
	ck_assert_str_eq(c->metrics[1].name, "requests");
	ck_assert_str_eq(c->metrics[1].plugin.name, "balancer");
	ck_assert_uint_eq(c->zones[0].nmetrics, 2);
	ck_assert_uint_eq(c->zones[1].nmetrics, 1);
	ck_assert_str_eq(c->zones[1].metrics_list[0].name, "requests");
	ck_assert_uint_eq(c->zones[2].nmetrics, 2);
	ck_assert_str_eq(c->zones[2].metrics_list[0].name, "requests");
	ck_assert_str_eq(c->zones[2].metrics_list[1].name, "cpu");
	ck_assert_uint_eq(c->zones[3].nmetrics, 1);
	ck_assert_str_eq(c->zones[3].metrics_list[0].name, "balancer");
	conf_free(c);

	tc_refuses("metrics = { cpu = { plugin = \"http\"; }; timeout = 1.0; };\n",
	           ":2: metrics: either one metric's settings");
	tc_refuses("metrics = { cpu = { path = \"/x\"; }; };\n",
	           ":2: metrics.cpu.plugin: required setting is missing");
	tc_refuses("metrics = { cpu = { plugin = \"http\"; }; };\n"
	           "zones = ( { name = \"a\"; listen = \"127.0.0.1:1\"; admin = \"127.0.0.1:2\";\n"
	           "  metrics = \"ram\"; } );\n",
	           ":4: zones.[0].metrics: no metric \"ram\" among the global metrics (\"cpu\")");
	tc_refuses("metrics = { cpu = { plugin = \"http\"; }; };\n"
	           "zones = ( { name = \"a\"; listen = \"127.0.0.1:1\"; admin = \"127.0.0.1:2\";\n"
	           "  metrics = [\"cpu\", \"cpu\"]; } );\n",
	           "\"cpu\" is named twice");
	tc_refuses("zones = ( { name = \"a\"; listen = \"127.0.0.1:1\"; admin = \"127.0.0.1:2\";\n"
	           "  metrics = 3; } );\n",
	           ":3: zones.[0].metrics: must be a group of metrics, or the names");
	tc_refuses(
	    "metrics = { a = {plugin=\"http\";}; b = {plugin=\"http\";}; c = {plugin=\"http\";};\n"
	    " d = {plugin=\"http\";}; e = {plugin=\"http\";}; f = {plugin=\"http\";};\n"
	    " g = {plugin=\"http\";}; h = {plugin=\"http\";}; i = {plugin=\"http\";}; };\n",
	    ":2: metrics: at most 8 metrics (got 9)");
	tc_refuses("metrics = { CPU = { plugin = \"http\"; }; };\n",
	           ":2: metrics.CPU: metric names are 1 to 63 characters");
}
END_TEST

START_TEST(listen_and_admin_addresses_must_be_distinct)
{
	tc_refuses("zones = (\n"
	           "  { name = \"a\"; listen = \"127.0.0.1:8081\"; admin = \"127.0.0.1:9081\"; },\n"
	           "  { name = \"b\"; listen = \"127.0.0.1:8082\";\n"
	           "    admin = \"127.0.0.1:8081\"; } );\n",
	           ":5: zones.[1].admin: \"127.0.0.1:8081\" is already used by zones.[0].listen "
	           "(\"127.0.0.1:8081\", line 3)");
	/* the default node.admin counts too */
	tc_refuses(
	    "zones = ( { name = \"a\"; listen = \"127.0.0.1:8081\";\n"
	    "  admin = \"127.0.0.1:9000\"; } );\n",
	    ":3: zones.[0].admin: \"127.0.0.1:9000\" is already used by node.admin (default)");
	/* every address (0.0.0.0) takes the port on 127.0.0.1 as well */
	tc_refuses(
	    "zones = ( { name = \"a\"; listen = \"0.0.0.0:8081\"; admin = \"127.0.0.1:9081\"; },\n"
	    "  { name = \"b\"; listen = \"127.0.0.1:8081\"; admin = \"127.0.0.1:9082\"; } );\n",
	    ":3: zones.[1].listen: \"127.0.0.1:8081\" is already used by zones.[0].listen");
	/* same port on two distinct addresses is fine */
	conf_free(tc_accepts(
	    "zones = ( { name = \"a\"; listen = \"127.0.0.1:8081\"; admin = \"127.0.0.1:9081\"; "
	    "},\n"
	    "  { name = \"b\"; listen = \"127.0.0.2:8081\"; admin = \"127.0.0.2:9081\"; } );\n"));
}
END_TEST

START_TEST(static_servers_are_http_host_port)
{
	tc_refuses(
	    "zones = ( { name = \"a\"; listen = \"127.0.0.1:8081\"; admin = \"127.0.0.1:9081\";\n"
	    "  servers = [\"http://127.0.0.1:9001\",\n"
	    "             \"https://127.0.0.1:9002\"]; } );\n",
	    ":4: zones.[0].servers.[1]: \"https://127.0.0.1:9002\": must be http://host:port");
	tc_refuses(
	    "zones = ( { name = \"a\"; listen = \"127.0.0.1:8081\"; admin = \"127.0.0.1:9081\";\n"
	    "  servers = [\"http://127.0.0.1:9001/app\"]; } );\n",
	    ":3: zones.[0].servers.[0]: \"http://127.0.0.1:9001/app\": must be http://host:port "
	    "(no path)");
	tc_refuses(
	    "zones = ( { name = \"a\"; listen = \"127.0.0.1:8081\"; admin = \"127.0.0.1:9081\";\n"
	    "  servers = [\"http://127.0.0.1:9001\", \"http://127.0.0.1:9001\"]; } );\n",
	    ":3: zones.[0].servers.[1]: \"http://127.0.0.1:9001\" is listed twice");
	tc_refuses(
	    "zones = ( { name = \"a\"; listen = \"127.0.0.1:8081\"; admin = \"127.0.0.1:9081\";\n"
	    "  servers = \"http://127.0.0.1:9001\"; } );\n",
	    ":3: zones.[0].servers: must be a list of URLs (got a string)");
}
END_TEST

START_TEST(node_url_defaults_to_admin_and_is_checked)
{
	struct conf *c = tc_load_text("node = { id = 1; admin = \"[::1]:9100\"; };\n");
	expect_loaded(c);
	ck_assert_str_eq(c->admin_url, "http://[::1]:9100");
	conf_free(c);

	c = tc_load_text("node = { id = 1; admin = \"0.0.0.0:9100\"; token = \"t\"; };\n");
	expect_loaded(c);
	expect_log("node.url: not set and node.admin listens on every address");
	conf_free(c);

	c = tc_load_text("node = { id = 1; url = \"https://scaler.example/api\"; };\n");
	expect_loaded(c);
	ck_assert_str_eq(c->admin_url, "https://scaler.example/api");
	conf_free(c);

	c = tc_load_text("node = { id = 1; url = \"http://[::1]/scaler\"; };\n");
	expect_loaded(c);
	conf_free(c);

	c = tc_load_text("node = { id = 1; url = \"http://:9000\"; };\n");
	expect_refused(c);
	expect_log(":1: node.url: \"http://:9000\": missing host");

	c = tc_load_text("node = { id = 1; url = \"scaler.example:9000\"; };\n");
	expect_refused(c);
	expect_log(":1: node.url: \"scaler.example:9000\": must start with http:// or https://");

	c = tc_load_text("node = { id = 1; token = \"two words\"; };\n");
	expect_refused(c);
	expect_log(":1: node.token: must be non-empty visible ASCII");
	expect_no_log("two words");
}
END_TEST

START_TEST(errors_in_an_included_file_name_that_file)
{
	/* the include is found next to the including file, whatever the cwd */
	struct conf *c = tc_load(tc_fixture("include.conf"));
	expect_refused(c);
	expect_log(
	    tc_msg("include-zones.inc", 3, "zones.[0].max", "must be between 0 and 1000 (got -2)"));
}
END_TEST

/* scalerd hands its workers the config as libconfig writes it back */
START_TEST(a_config_written_back_by_libconfig_loads_the_same)
{
	static const char *const files[] = {"good.conf", "etc"};
	for (size_t f = 0; f < 2; f++) {
		char path[4096];
		if (f == 1)
			snprintf(path, sizeof(path), "%s/etc/scaler.conf", tc_srcdir());
		else
			snprintf(path, sizeof(path), "%s", tc_fixture(files[f]));
		struct conf *a = tc_load(path);
		expect_loaded(a);

		char tmpl[] = "/tmp/test_conf-snap-XXXXXX";
		int fd = mkstemp(tmpl);
		ck_assert_int_ge(fd, 0);
		FILE *out = fdopen(fd, "w");
		config_write(&a->cfg, out);
		fclose(out);
		struct conf *b = tc_load(tmpl);
		unlink(tmpl);
		ck_assert_msg(b != NULL, "%s written back was refused:\n%s", path, tc_log);

		ck_assert_str_eq(a->node_id, b->node_id);
		ck_assert_str_eq(a->admin_url, b->admin_url);
		ck_assert_str_eq(a->redis_url, b->redis_url);
		ck_assert_double_eq(a->interval, b->interval);
		ck_assert_double_eq(a->window, b->window);
		ck_assert_double_eq(a->drain_timeout, b->drain_timeout);
		ck_assert_str_eq(a->driver.name, b->driver.name);
		ck_assert(conf_setting_equal(a->driver.group, b->driver.group));
		ck_assert(conf_setting_equal(a->policy.group, b->policy.group));
		ck_assert(conf_setting_equal(a->election.group, b->election.group));
		ck_assert_uint_eq(a->nzones, b->nzones);
		for (size_t i = 0; i < a->nzones; i++) {
			ck_assert_msg(conf_zone_equal(&a->zones[i], &b->zones[i]),
			              "zone %s differs after the round trip", a->zones[i].name);
			ck_assert_double_eq(a->zones[i].interval, b->zones[i].interval);
			ck_assert_int_eq(a->zones[i].port_min, b->zones[i].port_min);
		}
		conf_free(a);
		conf_free(b);
	}
}
END_TEST

START_TEST(a_missing_file_is_reported)
{
	struct conf *c = tc_load("/nonexistent/scaler.conf");
	expect_refused(c);
	expect_log("/nonexistent/scaler.conf: cannot open: No such file or directory");
	c = tc_load("/tmp");
	expect_refused(c);
	expect_log("/tmp: is a directory; a configuration must be a regular file");
}
END_TEST

/* ---- hostile files (issue #11, items 16-20) --------------------------------- */

START_TEST(a_fifo_as_the_config_or_the_token_file_is_refused_at_once)
{
	char dir[] = "/tmp/test_conf-fifo-XXXXXX", fifo[128], text[256];
	ck_assert(mkdtemp(dir) != NULL);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	ck_assert(mkfifo(fifo, 0600) == 0);
	/* no writer ever comes: waiting for one would hang here until the timeout */
	struct conf *c = tc_load(fifo);
	expect_refused(c);
	expect_log("is a FIFO; a configuration must be a regular file");
	snprintf(text, sizeof(text), "node = { id = 1; token_file = \"%s\"; };\n", fifo);
	c = tc_load_text(text);
	expect_refused(c);
	expect_log(":1: node.token_file: token file");
	expect_log("is a FIFO");
	unlink(fifo);
	rmdir(dir);
}
END_TEST

static char *tc_big(size_t line_len, size_t lines)
{
	char *t = malloc(lines * (line_len + 2) + 64);
	size_t o = 0;
	ck_assert(t != NULL);
	o += (size_t)sprintf(t, "node = { id = 1; };\n");
	for (size_t l = 0; l < lines; l++) {
		t[o++] = '#';
		memset(t + o, 'x', line_len);
		o += line_len;
		t[o++] = '\n';
	}
	t[o] = '\0';
	return t;
}

START_TEST(a_huge_file_or_line_is_refused_before_parsing)
{
	/* a 10 MB comment line took libconfig > 15 s: refused at once */
	char *t = tc_big(10 * 1000 * 1000, 1);
	struct conf *c = tc_load_text(t);
	free(t);
	expect_refused(c);
	expect_log("bytes; a configuration file is at most 1048576 bytes");
	t = tc_big(100 * 1000, 1);
	c = tc_load_text(t);
	free(t);
	expect_refused(c);
	expect_log(":2: a line of 100001 bytes; lines are at most 65536 bytes");
	/* many ordinary lines are fine */
	t = tc_big(100, 5000);
	c = tc_load_text(t);
	free(t);
	expect_loaded(c);
	conf_free(c);
}
END_TEST

START_TEST(what_libconfig_reads_wrong_is_refused_naming_the_setting)
{
	tc_refuses("zones = ( { name = \"zo\\x00ne1\"; listen = \"127.0.0.1:1\"; "
	           "admin = \"127.0.0.1:2\"; } );\n",
	           ":2: zones.[0].name: holds \\x00 (a NUL character), which no setting takes");
	tc_refuses(
	    "zones = ( { name = \"zone1\";\n listen = \"127.0.0.1:1\"; admin = \"127.0.0.1:2\";"
	    " min = 1; max = 99999999999999999999; } );\n",
	    ":3: zones.[0].max: 99999999999999999999 is out of range");
	tc_refuses("interval = 123456789012345678901234567890L;\n",
	           ":2: interval: 123456789012345678901234567890L is out of range");
	tc_refuses("zones = ( { name = \"z\"; listen = \"127.0.0.1:1\"; admin = \"127.0.0.1:2\";\n"
	           " ports = [1, 0x1FFFFFFFFFFFFFFFFF]; } );\n",
	           ":3: zones.[0].ports.[1]: 0x1FFFFFFFFFFFFFFFFF is out of range");
	/* 32 bits without an L: 2147483648 would be read as -2147483648 */
	tc_refuses("interval = 2147483648;\n", ":2: interval: 2147483648 is out of range");
	tc_refuses("interval = 0x80000000;\n", ":2: interval: 0x80000000 is out of range");
	struct conf *c = tc_accepts("# 99999999999999999999 in a comment, \"\\x00\" too\n"
	                            "cluster = \"c\"; # 1e300\n"
	                            "driver = { plugin = \"p\"; a = 2147483647; b = -2147483648;\n"
	                            " c = 9223372036854775807L; d = 0x7FFFFFFF; e = [1, 2];\n"
	                            " f = 1.5e300; };\n");
	conf_free(c);
}
END_TEST

/* a NUL byte in the file itself: libconfig would read up to it and drop the rest */
START_TEST(a_nul_byte_in_the_file_is_refused_naming_its_line)
{
	static const char text[] = "node = { id = 1; };\n"
	                           "zones = ( { name = \"zo\0ne1\"; listen = \"127.0.0.1:1\"; "
	                           "admin = \"127.0.0.1:2\"; } );\n";
	static const char hides[] = "node = { id = 1; };\n\0"
	                            "zones = ( { name = \"z\"; listen = \"0.0.0.0:1\"; "
	                            "admin = \"0.0.0.0:2\"; } );\n";
	const char *v[] = {text, hides};
	size_t len[] = {sizeof(text) - 1, sizeof(hides) - 1};
	for (size_t i = 0; i < 2; i++) {
		snprintf(tc_path, sizeof(tc_path), "/tmp/test_conf-XXXXXX");
		int fd = mkstemp(tc_path);
		ck_assert(fd >= 0);
		ck_assert_int_eq(write(fd, v[i], len[i]), (ssize_t)len[i]);
		close(fd);
		struct conf *c = tc_load(tc_path);
		unlink(tc_path);
		expect_refused(c);
		expect_log(":2: a NUL byte; a configuration is text");
	}
}
END_TEST

START_TEST(dot_zone_names_and_endless_durations_are_refused)
{
	static const char *const names[] = {"..", ".", ".hidden", "-x"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text),
		         "zones = ( { name = \"%s\"; listen = \"127.0.0.1:1\"; "
		         "admin = \"127.0.0.1:2\"; } );\n",
		         names[i]);
		tc_refuses(text, "starting with a letter or a digit");
	}
	tc_refuses("interval = 1e300;\n",
	           ":2: interval: must be at most 31622400 s (a year), not 1e+300");
	tc_refuses("window = 1e999;\n", ":2: window:");
	tc_refuses("drain_timeout = 400000000;\n", ":2: drain_timeout: must be at most");
}
END_TEST

START_TEST(one_port_named_two_ways_is_one_port)
{
	tc_refuses(
	    "zones = ( { name = \"a\"; listen = \"localhost:31000\"; admin = \"127.0.0.1:2\"; },\n"
	    "  { name = \"b\"; listen = \"127.0.0.1:31000\"; admin = \"127.0.0.1:3\"; } );\n",
	    ":3: zones.[1].listen: \"127.0.0.1:31000\" is already used by zones.[0].listen");
	tc_refuses(
	    "zones = ( { name = \"a\"; listen = \"[::1]:31000\"; admin = \"127.0.0.1:2\"; },\n"
	    "  { name = \"b\"; listen = \"[0:0::1]:31000\"; admin = \"127.0.0.1:3\"; } );\n",
	    "is already used by zones.[0].listen");
	tc_refuses(
	    "zones = ( { name = \"a\"; listen = \"127.0.0.1:31000\"; admin = \"127.0.0.1:2\"; },\n"
	    "  { name = \"b\"; listen = \"LOCALHOST:31000\"; admin = \"127.0.0.1:3\"; } );\n",
	    "is already used by zones.[0].listen");
	struct conf *c = tc_accepts(
	    "zones = ( { name = \"a\"; listen = \"127.0.0.1:31000\"; admin = \"127.0.0.1:2\"; },\n"
	    "  { name = \"b\"; listen = \"127.0.0.2:31000\"; admin = \"127.0.0.1:3\"; } );\n");
	conf_free(c);
}
END_TEST

START_TEST(an_admin_api_others_can_reach_needs_a_token)
{
	struct conf *c = tc_load_text("node = { id = 1; admin = \"0.0.0.0:9100\"; };\n");
	expect_refused(c);
	expect_log(":1: node.admin: \"0.0.0.0:9100\" is not a loopback address and no token is "
	           "configured");
	c = tc_load_text("node = { id = 1; };\nzones = ( { name = \"z\"; listen = \"0.0.0.0:1\"; "
	                 "admin = \"10.1.2.3:2\"; } );\n");
	expect_refused(c);
	expect_log(":2: zones.[0].admin: \"10.1.2.3:2\" is not a loopback address");
	/* with a token, or for a zone this node does not run: fine */
	c = tc_load_text(
	    "node = { id = 1; token = \"t\"; admin = \"0.0.0.0:9100\"; };\n"
	    "zones = ( { name = \"z\"; listen = \"0.0.0.0:1\"; admin = \"0.0.0.0:2\"; } );\n");
	expect_loaded(c);
	conf_free(c);
	c = tc_load_text(
	    "node = { id = 1; zones = []; };\n"
	    "zones = ( { name = \"z\"; listen = \"0.0.0.0:1\"; admin = \"0.0.0.0:2\"; } );\n");
	expect_loaded(c);
	conf_free(c);
}
END_TEST

START_TEST(a_config_holding_the_token_inline_is_a_secret_itself)
{
	char path[] = "/tmp/test_conf-inline-XXXXXX";
	const char *text = "node = { id = 1; token = \"very-secret-value\"; };\n";
	int fd = mkstemp(path);
	ck_assert(fd >= 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct conf *c = tc_load(path); /* mkstemp made it 0600 */
	expect_loaded(c);
	conf_free(c);
	chmod(path, 0644);
	c = tc_load(path);
	expect_refused(c);
	expect_log(":1: node.token: the token is inline, so configuration file");
	expect_log("can be read by others (mode 0644)");
	expect_no_log("very-secret-value");
	unlink(path);
}
END_TEST

START_TEST(a_config_holding_a_redis_password_is_a_secret_itself)
{
	char path[] = "/tmp/test_conf-redispw-XXXXXX";
	const char *text =
	    "node = { id = 1; };\nredis = \"redis://:very-secret-value@127.0.0.1:1/0\";\n";
	int fd = mkstemp(path);
	ck_assert(fd >= 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct conf *c = tc_load(path); /* mkstemp made it 0600 */
	expect_loaded(c);
	conf_free(c);
	chmod(path, 0644);
	c = tc_load(path);
	expect_refused(c);
	expect_log(":2: redis: the Redis password is inline, so configuration file");
	expect_log("can be read by others (mode 0644)");
	expect_no_log("very-secret-value");
	/* without a password the URL is no secret */
	text = "node = { id = 1; };\nredis = \"redis://127.0.0.1:1/0\";\n";
	fd = open(path, O_WRONLY | O_TRUNC);
	ck_assert(fd >= 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	c = tc_load(path);
	expect_loaded(c);
	conf_free(c);
	unlink(path);
}
END_TEST

START_TEST(an_included_file_holding_the_token_inline_is_a_secret_itself)
{
	char dir[] = "/tmp/test_conf-incl-XXXXXX", top[128], inc[128];
	ck_assert(mkdtemp(dir) != NULL);
	snprintf(top, sizeof(top), "%s/scaler.conf", dir);
	snprintf(inc, sizeof(inc), "%s/token.inc", dir);
	/* the token in a group the top file opens, and at the top of the included file */
	static const char *const tops[] = {"node = { id = 1;\n@include \"token.inc\"\n};\n",
	                                   "@include \"token.inc\"\n"};
	static const char *const incs[] = {"token = \"very-secret-value\";\n",
	                                   "node = { id = 1; token = \"very-secret-value\"; };\n"};
	for (size_t i = 0; i < 2; i++) {
		FILE *f = fopen(top, "w");
		ck_assert(f != NULL);
		fputs(tops[i], f);
		fclose(f);
		ck_assert_int_eq(chmod(top, 0600), 0);
		f = fopen(inc, "w");
		ck_assert(f != NULL);
		fputs(incs[i], f);
		fclose(f);
		ck_assert_int_eq(chmod(inc, 0600), 0);
		struct conf *c = tc_load(top);
		expect_loaded(c);
		conf_free(c);
		/* the top file is private, the one holding the token is not */
		ck_assert_int_eq(chmod(inc, 0644), 0);
		c = tc_load(top);
		expect_refused(c);
		expect_log("token.inc:1: node.token: the token is inline, so configuration file");
		expect_log("token.inc can be read by others (mode 0644)");
		expect_no_log("very-secret-value");
	}
	unlink(inc);
	unlink(top);
	rmdir(dir);
}
END_TEST

/* ---- helpers handed to plugins ------------------------------------------ */

static config_setting_t *tc_parse(config_t *cfg, const char *text)
{
	config_init(cfg);
	ck_assert_msg(config_read_string(cfg, text), "bad test input: %s", config_error_text(cfg));
	return config_root_setting(cfg);
}

START_TEST(setting_paths_join_groups_with_dots_and_index_lists)
{
	config_t cfg;
	char buf[256];
	config_setting_t *root = tc_parse(&cfg, "a = { b = ( 1, { c = [5, 6]; } ); };");

	ck_assert_str_eq(conf_setting_path(config_lookup(&cfg, "a.b.[1].c.[1]"), buf, sizeof(buf)),
	                 "a.b.[1].c.[1]");
	ck_assert_str_eq(conf_setting_path(config_lookup(&cfg, "a"), buf, sizeof(buf)), "a");
	ck_assert_str_eq(conf_setting_path(root, buf, sizeof(buf)), "");
	/* truncation stays a valid string */
	ck_assert_str_eq(conf_setting_path(config_lookup(&cfg, "a.b.[1].c"), buf, 6), "a.b");
	config_destroy(&cfg);
}
END_TEST

START_TEST(plugins_report_through_conf_error_and_conf_check_known)
{
	struct conf *c = tc_load_text("node = { id = 1; };\n"
	                              "driver = {\n"
	                              "  plugin = \"docker\";\n"
	                              "  image = \"x\";\n"
	                              "  imagee = \"y\";\n"
	                              "  timeout = \"5\";\n"
	                              "};\n");
	expect_loaded(c); /* the core leaves plugin settings alone */

	static const char *const known[] = {"plugin", "image", "timeout", NULL};
	char tmpl[] = "/tmp/test_conf-log-XXXXXX";
	int fd = mkstemp(tmpl), saved = dup(STDERR_FILENO);
	unlink(tmpl);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	int r1 = conf_check_known(c->driver.group, known);
	double t = -1;
	int r2 = conf_get_seconds(c->driver.group, "timeout", 0, &t);
	int r3 = conf_get_seconds(c->driver.group, "absent", 0, &t);
	int r4 = conf_error(config_setting_get_member(c->driver.group, "image"), "no such image %s",
	                    "x");
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	ssize_t n = read(fd, tc_log, sizeof(tc_log) - 1);
	tc_log[n > 0 ? n : 0] = '\0';
	close(fd);

	ck_assert_int_eq(r1, -1);
	ck_assert_int_eq(r2, -1);
	ck_assert_int_eq(r3, 0);
	ck_assert_double_eq(t, -1); /* untouched */
	ck_assert_int_eq(r4, -1);
	expect_log(":5: driver.imagee: unknown setting (did you mean image?)");
	expect_log(":6: driver.timeout: must be a number (got a string)");
	expect_log(":4: driver.image: no such image x");
	ck_assert_int_eq(conf_check_known(NULL, known), 0);
	conf_free(c);
}
END_TEST

START_TEST(conf_get_seconds_reads_ints_and_floats)
{
	config_t cfg;
	config_setting_t *root = tc_parse(&cfg, "a = 3; b = 2.5; c = -1;");
	double v = 0;

	ck_assert_int_eq(conf_get_seconds(root, "a", 0, &v), 1);
	ck_assert_double_eq(v, 3.0);
	ck_assert_int_eq(conf_get_seconds(root, "b", 0, &v), 1);
	ck_assert_double_eq(v, 2.5);
	ck_assert_int_eq(conf_get_seconds(NULL, "b", 0, &v), 0);
	fflush(stderr);
	int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);
	dup2(null, STDERR_FILENO);
	int r = conf_get_seconds(root, "c", 0, &v);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(null);
	ck_assert_int_eq(r, -1);
	ck_assert_double_eq(v, 2.5);
	config_destroy(&cfg);
}
END_TEST

/* ---- reload diff -------------------------------------------------------- */

static const char *const ZONE_A =
    "node = { id = 1; };\n"
    "balancer = { plugin = \"builtin\"; retries = 3; };\n"
    "zones = ( { name = \"a\"; listen = \"127.0.0.1:8081\"; admin = \"127.0.0.1:9081\";\n"
    "  servers = [\"http://127.0.0.1:7001\"]; %s } );\n";

static struct conf *tc_zone_variant(const char *extra, const char *global_balancer)
{
	char text[2048];
	snprintf(text, sizeof(text), ZONE_A, extra);
	if (global_balancer) {
		char *p = strstr(text, "retries = 3;");
		ck_assert_ptr_nonnull(p);
		char tmp[2048];
		snprintf(tmp, sizeof(tmp), "%.*s%s%s", (int)(p - text), text, global_balancer,
		         p + strlen("retries = 3;"));
		snprintf(text, sizeof(text), "%s", tmp);
	}
	struct conf *c = tc_load_text(text);
	ck_assert_msg(c != NULL, "variant refused:\n%s\n%s", text, tc_log);
	return c;
}

START_TEST(zone_equal_compares_what_the_balancer_worker_uses)
{
	struct conf *base = tc_zone_variant("", NULL);
	static const struct {
		const char *extra, *global_balancer;
		int equal;
	} cases[] = {
	    {"", NULL, 1},
	    {"min = 3; max = 4; interval = 2; dry_run = true; ports = [30000, 30010];", NULL, 1},
	    {"policy = { plugin = \"target\"; };", NULL, 1},
	    {"", "retries = 3.0;", 1},                                       /* 3 == 3.0 */
	    {"balancer = { retries = 3; plugin = \"builtin\"; };", NULL, 1}, /* same content */
	    {"", "retries = 4;", 0},
	    {"", "retries = 3; health_interval = 5;", 0},
	    {"balancer = { plugin = \"other\"; retries = 3; };", NULL, 0},
	    {"balancer = { retries = 3; x = [1, 2]; };", NULL, 0},
	    {"workers = 1;", NULL, 1}, /* the default */
	    {"workers = 2;", NULL, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct conf *v = tc_zone_variant(cases[i].extra, cases[i].global_balancer);
		ck_assert_msg(conf_zone_equal(&base->zones[0], &v->zones[0]) == cases[i].equal,
		              "zone with \"%s\" (global balancer \"%s\"): expected %s",
		              cases[i].extra,
		              cases[i].global_balancer ? cases[i].global_balancer : "retries = 3;",
		              cases[i].equal ? "equal" : "different");
		conf_free(v);
	}

	struct conf *v = tc_load_text(
	    "node = { id = 1; };\n"
	    "balancer = { plugin = \"builtin\"; retries = 3; };\n"
	    "zones = ( { name = \"a\"; listen = \"127.0.0.1:8082\";\n"
	    "  admin = \"127.0.0.1:9081\"; servers = [\"http://127.0.0.1:7001\"]; } );\n");
	expect_loaded(v);
	ck_assert_msg(!conf_zone_equal(&base->zones[0], &v->zones[0]),
	              "listen changed: expected different");
	conf_free(v);
	v = tc_load_text("node = { id = 1; };\n"
	                 "balancer = { plugin = \"builtin\"; retries = 3; };\n"
	                 "zones = ( { name = \"a\"; listen = \"127.0.0.1:8081\";\n"
	                 "  admin = \"127.0.0.1:9081\"; } );\n");
	expect_loaded(v);
	ck_assert_msg(!conf_zone_equal(&base->zones[0], &v->zones[0]),
	              "static servers removed: expected different");
	conf_free(v);
	conf_free(base);
}
END_TEST

START_TEST(setting_equal_ignores_member_order)
{
	config_t a, b;
	tc_parse(&a, "g = { x = 1; y = \"s\"; l = ( true, 2.0 ); };");
	tc_parse(&b, "g = { y = \"s\"; l = ( true, 2 ); x = 1L; };");
	ck_assert(conf_setting_equal(config_lookup(&a, "g"), config_lookup(&b, "g")));
	ck_assert(!conf_setting_equal(config_lookup(&a, "g.l"), config_lookup(&b, "g.y")));
	ck_assert(conf_setting_equal(NULL, NULL));
	ck_assert(!conf_setting_equal(config_lookup(&a, "g"), NULL));
	config_destroy(&a);
	config_destroy(&b);
}
END_TEST

static Suite *conf_suite(void)
{
	Suite *s = suite_create("conf");
	TCase *t = tcase_create("load");

	tcase_add_test(t, every_setting_of_a_full_file_is_read);
	tcase_add_test(t, everything_omitted_takes_its_default);
	tcase_add_test(t, plugin_dir_default_comes_from_the_environment_when_set);
	tcase_add_test(t, the_shipped_scaler_conf_loads);
	tcase_add_test(t, a_syntax_error_names_its_line);
	tcase_add_test(t, max_below_min_names_the_line_and_path_of_max);
	tcase_add_test(t, a_min_above_the_default_max_blames_min);
	tcase_add_test(t, unknown_settings_are_refused_with_their_line);
	tcase_add_test(t, wrong_types_are_refused);
	tcase_add_test(t, numbers_accept_int_or_float_and_check_their_bounds);
	tcase_add_test(t, duplicate_zone_names_are_refused);
	tcase_add_test(t, overlapping_port_ranges_are_refused);
	tcase_add_test(t, token_and_token_file_together_are_refused);
	tcase_add_test(t, token_file_is_read_trimmed_and_never_logged);
	tcase_add_test(t, an_inline_token_longer_than_token_max_is_refused);
	tcase_add_test(t, node_zones_must_name_existing_zones);
	tcase_add_test(t, all_errors_are_reported_in_one_pass);
	tcase_add_test(t, required_settings_are_reported_at_their_group);
	tcase_add_test(t, node_id_is_a_positive_integer_or_digits);
	tcase_add_loop_test(t, listen_addresses_are_host_colon_port, 0,
	                    (int)(sizeof(hostports) / sizeof(hostports[0])));
	tcase_add_loop_test(t, redis_urls_are_checked_for_shape_and_never_echoed, 0,
	                    (int)(sizeof(redis_urls) / sizeof(redis_urls[0])));
	tcase_add_test(t, names_are_checked);
	tcase_add_test(t, metrics_are_one_group_or_named_groups_and_zones_choose_among_them);
	tcase_add_test(t, listen_and_admin_addresses_must_be_distinct);
	tcase_add_test(t, static_servers_are_http_host_port);
	tcase_add_test(t, node_url_defaults_to_admin_and_is_checked);
	tcase_add_test(t, errors_in_an_included_file_name_that_file);
	tcase_add_test(t, a_config_written_back_by_libconfig_loads_the_same);
	tcase_add_test(t, a_missing_file_is_reported);
	tcase_add_test(t, a_fifo_as_the_config_or_the_token_file_is_refused_at_once);
	tcase_add_test(t, a_huge_file_or_line_is_refused_before_parsing);
	tcase_add_test(t, what_libconfig_reads_wrong_is_refused_naming_the_setting);
	tcase_add_test(t, a_nul_byte_in_the_file_is_refused_naming_its_line);
	tcase_add_test(t, dot_zone_names_and_endless_durations_are_refused);
	tcase_add_test(t, one_port_named_two_ways_is_one_port);
	tcase_add_test(t, an_admin_api_others_can_reach_needs_a_token);
	tcase_add_test(t, a_config_holding_the_token_inline_is_a_secret_itself);
	tcase_add_test(t, an_included_file_holding_the_token_inline_is_a_secret_itself);
	tcase_add_test(t, a_config_holding_a_redis_password_is_a_secret_itself);
	suite_add_tcase(s, t);

	t = tcase_create("helpers");
	tcase_add_test(t, setting_paths_join_groups_with_dots_and_index_lists);
	tcase_add_test(t, plugins_report_through_conf_error_and_conf_check_known);
	tcase_add_test(t, conf_get_seconds_reads_ints_and_floats);
	tcase_add_test(t, zone_equal_compares_what_the_balancer_worker_uses);
	tcase_add_test(t, workers_is_a_count_or_auto);
	tcase_add_test(t, setting_equal_ignores_member_order);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(conf_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
