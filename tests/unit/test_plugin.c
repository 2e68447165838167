/* The plugin loader: what it loads and what it refuses, with the sentence
 * it refuses with. */
#include "config.h"

#include <check.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "plugin.h"

static char err[2048];

static void expect_refused(enum scaler_kind kind, const char *dir, const char *name,
                           const char *needle)
{
	struct plugin *p = plugin_load(dir, kind, name, err, sizeof(err));
	ck_assert_msg(p == NULL, "loading %s from %s should have been refused", name, dir);
	ck_assert_msg(strstr(err, needle) != NULL, "error for %s should contain \"%s\", got: %s",
	              name, needle, err);
}

START_TEST(a_good_plugin_loads_with_its_descriptor)
{
	struct plugin *p =
	    plugin_load(TEST_PLUGIN_DIR, SCALER_KIND_DRIVER, "good", err, sizeof(err));
	ck_assert_msg(p != NULL, "expected driver_good.so to load, got: %s", err);
	ck_assert_str_eq(p->name, "good");
	ck_assert_int_eq(p->kind, SCALER_KIND_DRIVER);
	ck_assert_str_eq(p->desc->version, "1.0");
	ck_assert_ptr_nonnull(strstr(p->path, "driver_good.so"));
	plugin_unload(p);
}
END_TEST

START_TEST(a_wrong_abi_major_is_refused_naming_both_versions)
{
	char want[64];
	expect_refused(SCALER_KIND_DRIVER, TEST_PLUGIN_DIR, "badabi", "driver_badabi.so");
	snprintf(want, sizeof(want), "ABI 99.%d", SCALER_ABI_MINOR);
	ck_assert_msg(strstr(err, want), "expected the plugin's ABI (%s) in: %s", want, err);
	snprintf(want, sizeof(want), "ABI %d.%d", SCALER_ABI_MAJOR, SCALER_ABI_MINOR);
	ck_assert_msg(strstr(err, want), "expected scalerd's ABI (%s) in: %s", want, err);
	ck_assert_msg(strstr(err, "rebuild"), "expected advice to rebuild in: %s", err);
}
END_TEST

START_TEST(a_plugin_of_another_kind_is_refused)
{
	expect_refused(SCALER_KIND_DRIVER, TEST_PLUGIN_DIR, "wrongkind",
	               "is a policy plugin, but it was configured as the driver plugin");
}
END_TEST

START_TEST(a_shared_object_without_the_descriptor_is_refused)
{
	expect_refused(SCALER_KIND_DRIVER, TEST_PLUGIN_DIR, "nosym", "no \"scaler_plugin\" symbol");
}
END_TEST

START_TEST(a_plugin_whose_name_differs_from_its_file_is_refused)
{
	expect_refused(SCALER_KIND_DRIVER, TEST_PLUGIN_DIR, "misnamed", "calls itself \"other\"");
}
END_TEST

START_TEST(names_outside_the_allowed_alphabet_are_refused)
{
	const char *bad[] = {"../good", "Good", "go od", "", "a/b", "x.so"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_refused(SCALER_KIND_DRIVER, TEST_PLUGIN_DIR, bad[i],
		               "invalid driver plugin name");
	ck_assert(plugin_name_valid("docker"));
	ck_assert(plugin_name_valid("my_driver-2"));
}
END_TEST

START_TEST(a_symlink_is_refused)
{
	char dir[] = "/tmp/scaler-plugin-XXXXXX", link[512], target[512];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(target, sizeof(target), "%s/driver_good.so", TEST_PLUGIN_DIR);
	snprintf(link, sizeof(link), "%s/driver_good.so", dir);
	ck_assert_int_eq(symlink(target, link), 0);
	expect_refused(SCALER_KIND_DRIVER, dir, "good", "symbolic link");
	unlink(link);
	/* a directory in the plugin's place is not a regular file */
	ck_assert_int_eq(mkdir(link, 0700), 0);
	expect_refused(SCALER_KIND_DRIVER, dir, "good", "not a regular file");
	rmdir(link);
	rmdir(dir);
}
END_TEST

START_TEST(a_missing_plugin_names_the_path_and_the_directory)
{
	expect_refused(SCALER_KIND_METRICS, TEST_PLUGIN_DIR, "nothere", "metrics_nothere.so");
	ck_assert_msg(strstr(err, "plugin_dir"), "expected the plugin_dir in: %s", err);
}
END_TEST

START_TEST(init_gets_its_group_and_refuses_unknown_settings)
{
	struct scaler_host host = {.abi_major = SCALER_ABI_MAJOR,
	                           .conf_error = conf_error,
	                           .conf_check_known = conf_check_known,
	                           .conf_number = conf_number,
	                           .conf_integer = conf_integer};
	config_t cfg;
	struct plugin_instance pi;

	config_init(&cfg);
	ck_assert(config_read_string(&cfg, "driver = { plugin = \"good\"; answer = 42; };"));
	ck_assert_int_eq(plugin_instance_new(&pi, TEST_PLUGIN_DIR, SCALER_KIND_DRIVER, "good",
	                                     &host, config_lookup(&cfg, "driver"), NULL, NULL, 0),
	                 0);
	ck_assert_ptr_eq(pi.ctx, &host);
	plugin_instance_free(&pi);
	ck_assert_ptr_null(pi.plugin);
	config_destroy(&cfg);

	config_init(&cfg);
	ck_assert(config_read_string(&cfg, "driver = { plugin = \"good\"; colour = 1; };"));
	ck_assert_int_eq(plugin_instance_new(&pi, TEST_PLUGIN_DIR, SCALER_KIND_DRIVER, "good",
	                                     &host, config_lookup(&cfg, "driver"), NULL, NULL, 0),
	                 -1);
	ck_assert_ptr_null(pi.plugin);
	config_destroy(&cfg);
}
END_TEST

START_TEST(a_policy_without_decide_is_refused_naming_the_op)
{
	expect_refused(SCALER_KIND_POLICY, TEST_PLUGIN_DIR, "nodecide", "policy_nodecide.so");
	ck_assert_msg(strstr(err, "decide"), "expected the missing op named in: %s", err);
}
END_TEST

START_TEST(an_ops_table_too_small_for_the_required_ops_is_refused)
{
	expect_refused(SCALER_KIND_DRIVER, TEST_PLUGIN_DIR, "smallops", "driver_smallops.so");
	ck_assert_msg(strstr(err, "ops table") && strstr(err, "remove"),
	              "expected the ops table's size and the op it misses in: %s", err);
}
END_TEST

START_TEST(a_plugin_built_against_abi_1_1_still_loads)
{
	struct scaler_host host = {.abi_major = SCALER_ABI_MAJOR,
	                           .abi_minor = SCALER_ABI_MINOR,
	                           .size = sizeof(host),
	                           .conf_error = conf_error,
	                           .conf_check_known = conf_check_known};
	struct plugin_instance pi;
	ck_assert_msg(plugin_instance_new(&pi, TEST_PLUGIN_DIR, SCALER_KIND_DRIVER, "abi11", &host,
	                                  NULL, NULL, NULL, 0) == 0,
	              "expected driver_abi11.so (ABI 1.1) to load and init");
	ck_assert_int_eq(pi.plugin->desc->abi_minor, 1);
	ck_assert_ptr_nonnull(pi.plugin->ops.driver.create);
	plugin_instance_free(&pi);
}
END_TEST

/* ---- the plugin search path and the checks of its directories ---- */

static void copy_file(const char *from, const char *to, mode_t mode)
{
	char buf[65536];
	size_t n;
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	ck_assert_msg(in && out, "cannot copy %s to %s", from, to);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
	fclose(in);
	fclose(out);
	ck_assert_int_eq(chmod(to, mode), 0);
}

/* a fresh directory (mode 0755) holding a copy of driver_good.so when `with` */
static void plugin_dir_new(char *dir, size_t len, const char *parent, int with)
{
	char so[4200], good[4200];
	snprintf(dir, len, "%s/plugins-XXXXXX", parent);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chmod(dir, 0755), 0);
	if (with) {
		snprintf(good, sizeof(good), "%s/driver_good.so", TEST_PLUGIN_DIR);
		snprintf(so, sizeof(so), "%s/driver_good.so", dir);
		copy_file(good, so, 0755);
	}
}

static void plugin_dir_free(const char *dir)
{
	char so[4200];
	snprintf(so, sizeof(so), "%s/driver_good.so", dir);
	unlink(so);
	rmdir(dir);
}

START_TEST(the_search_path_takes_the_first_directory_that_has_the_plugin)
{
	char a[256], b[256], path[600];
	plugin_dir_new(a, sizeof(a), "/tmp", 0);
	plugin_dir_new(b, sizeof(b), "/tmp", 1);
	snprintf(path, sizeof(path), "%s:%s", a, b);
	struct plugin *p = plugin_load(path, SCALER_KIND_DRIVER, "good", err, sizeof(err));
	ck_assert_msg(p && strncmp(p->path, b, strlen(b)) == 0,
	              "expected driver_good.so from %s (the only one), got %s", b,
	              p ? p->path : err);
	plugin_unload(p);
	plugin_dir_free(a);
	plugin_dir_new(a, sizeof(a), "/tmp", 1);
	snprintf(path, sizeof(path), "%s:%s", a, b);
	p = plugin_load(path, SCALER_KIND_DRIVER, "good", err, sizeof(err));
	ck_assert_msg(p && strncmp(p->path, a, strlen(a)) == 0,
	              "expected driver_good.so from %s (first in the path), got %s", a,
	              p ? p->path : err);
	plugin_unload(p);
	plugin_dir_free(a);
	plugin_dir_free(b);
}
END_TEST

START_TEST(a_plugin_in_no_directory_of_the_path_names_them_all)
{
	char a[256], b[256], path[600];
	plugin_dir_new(a, sizeof(a), "/tmp", 0);
	plugin_dir_new(b, sizeof(b), "/tmp", 0);
	snprintf(path, sizeof(path), "%s:%s:/nonexistent/scaler", a, b);
	expect_refused(SCALER_KIND_DRIVER, path, "good", "driver_good.so");
	ck_assert_msg(strstr(err, a) && strstr(err, b) && strstr(err, "/nonexistent/scaler"),
	              "expected every directory searched in: %s", err);
	plugin_dir_free(a);
	plugin_dir_free(b);
}
END_TEST

START_TEST(a_world_writable_plugin_directory_is_refused_even_sticky)
{
	char a[256];
	plugin_dir_new(a, sizeof(a), "/tmp", 1);
	ck_assert_int_eq(chmod(a, 01777), 0);
	expect_refused(SCALER_KIND_DRIVER, a, "good", "world-writable");
	ck_assert_msg(strstr(err, a), "expected the directory named in: %s", err);
	plugin_dir_free(a);
}
END_TEST

START_TEST(a_plugin_or_directory_its_group_can_write_is_refused_unless_the_group_is_roots)
{
	char a[256], so[300];
	if (geteuid() != 0) {
		fprintf(stderr, "# not root: cannot give a file to another group here\n");
		return;
	}
	plugin_dir_new(a, sizeof(a), "/tmp", 1);
	snprintf(so, sizeof(so), "%s/driver_good.so", a);
	/* root:root 0775 is root's alone */
	ck_assert_int_eq(chmod(a, 0775), 0);
	ck_assert_int_eq(chmod(so, 0775), 0);
	struct plugin *p = plugin_load(a, SCALER_KIND_DRIVER, "good", err, sizeof(err));
	ck_assert_msg(p != NULL, "expected root:root 0775 to load, got: %s", err);
	plugin_unload(p);
	/* a plugin another group may write, in a directory no one else may */
	ck_assert_int_eq(chown(so, 0, 65534), 0);
	ck_assert_int_eq(chmod(so, 0664), 0);
	expect_refused(SCALER_KIND_DRIVER, a, "good", "writable by its group");
	ck_assert_msg(strstr(err, "chmod go-w"), "expected what to do in: %s", err);
	ck_assert_int_eq(chown(so, 0, 0), 0);
	/* a directory another group may write */
	ck_assert_int_eq(chown(a, 0, 65534), 0);
	expect_refused(SCALER_KIND_DRIVER, a, "good", "writable by its group");
	ck_assert_msg(strstr(err, a), "expected the directory named in: %s", err);
	plugin_dir_free(a);
}
END_TEST

START_TEST(a_symlinked_plugin_directory_is_refused)
{
	char a[256], link[300];
	plugin_dir_new(a, sizeof(a), "/tmp", 1);
	snprintf(link, sizeof(link), "%s-link", a);
	ck_assert_int_eq(symlink(a, link), 0);
	expect_refused(SCALER_KIND_DRIVER, link, "good", "symbolic link");
	unlink(link);
	plugin_dir_free(a);
}
END_TEST

START_TEST(a_plugin_owned_by_another_user_is_refused)
{
	char a[256], so[300];
	if (geteuid() != 0) {
		fprintf(stderr, "# not root: cannot give a file to another user here\n");
		return;
	}
	plugin_dir_new(a, sizeof(a), "/tmp", 1);
	snprintf(so, sizeof(so), "%s/driver_good.so", a);
	ck_assert_int_eq(chown(so, 65534, 65534), 0);
	ck_assert_int_eq(chmod(so, 0664), 0);
	expect_refused(SCALER_KIND_DRIVER, a, "good", "owned by");
	ck_assert_int_eq(chown(so, 0, 0), 0);
	ck_assert_int_eq(chown(a, 65534, 65534), 0);
	expect_refused(SCALER_KIND_DRIVER, a, "good", "owned by");
	plugin_dir_free(a);
}
END_TEST

START_TEST(the_checks_apply_to_the_directory_not_to_its_parents)
{
	/* merged /usr makes /lib a symlink; /tmp is world-writable */
	char parent[] = "/tmp/scaler-parent-XXXXXX", a[256], link[300], path[600];
	ck_assert_ptr_nonnull(mkdtemp(parent));
	ck_assert_int_eq(chmod(parent, 01777), 0);
	plugin_dir_new(a, sizeof(a), parent, 1);
	snprintf(link, sizeof(link), "%s-link", parent);
	ck_assert_int_eq(symlink(parent, link), 0);
	snprintf(path, sizeof(path), "%s%s", link, a + strlen(parent));
	struct plugin *p = plugin_load(path, SCALER_KIND_DRIVER, "good", err, sizeof(err));
	ck_assert_msg(p != NULL, "expected %s to load, got: %s", path, err);
	plugin_unload(p);
	unlink(link);
	plugin_dir_free(a);
	rmdir(parent);
}
END_TEST

START_TEST(the_plugin_is_loaded_from_the_file_that_was_checked)
{
	Dl_info info;
	struct plugin *p =
	    plugin_load(TEST_PLUGIN_DIR, SCALER_KIND_DRIVER, "good", err, sizeof(err));
	ck_assert_msg(p != NULL, "expected driver_good.so to load, got: %s", err);
	ck_assert(dladdr(p->desc, &info));
	ck_assert_msg(strncmp(info.dli_fname, "/proc/self/fd/", 14) == 0,
	              "expected the open file checked (/proc/self/fd/N) to be loaded, not %s",
	              info.dli_fname);
	plugin_unload(p);
}
END_TEST

START_TEST(plugins_loaded_together_are_each_their_own_file)
{
	struct plugin *a =
	    plugin_load(TEST_PLUGIN_DIR, SCALER_KIND_DRIVER, "good", err, sizeof(err));
	ck_assert_msg(a != NULL, "driver_good.so: %s", err);
	struct plugin *b =
	    plugin_load(TEST_PLUGIN_DIR, SCALER_KIND_DRIVER, "abi11", err, sizeof(err));
	ck_assert_msg(b != NULL, "driver_abi11.so: %s", err);
	struct plugin *c =
	    plugin_load(TEST_PLUGIN_DIR, SCALER_KIND_DRIVER, "good", err, sizeof(err));
	ck_assert_msg(c != NULL, "driver_good.so again: %s", err);
	ck_assert_str_eq(a->desc->name, "good");
	ck_assert_str_eq(b->desc->name, "abi11");
	ck_assert_ptr_eq(c->desc, a->desc); /* one object, two loads */
	plugin_unload(a);
	plugin_unload(b);
	b = plugin_load(TEST_PLUGIN_DIR, SCALER_KIND_POLICY, "nodecide", err, sizeof(err));
	ck_assert_ptr_null(b);
	ck_assert_msg(strstr(err, "decide"), "expected policy_nodecide.so refused, got: %s", err);
	plugin_unload(c);
}
END_TEST

static Suite *plugin_suite(void)
{
	Suite *s = suite_create("plugin loader");
	TCase *tc = tcase_create("load");
	tcase_add_test(tc, a_good_plugin_loads_with_its_descriptor);
	tcase_add_test(tc, a_wrong_abi_major_is_refused_naming_both_versions);
	tcase_add_test(tc, a_plugin_of_another_kind_is_refused);
	tcase_add_test(tc, a_shared_object_without_the_descriptor_is_refused);
	tcase_add_test(tc, a_plugin_whose_name_differs_from_its_file_is_refused);
	tcase_add_test(tc, names_outside_the_allowed_alphabet_are_refused);
	tcase_add_test(tc, a_symlink_is_refused);
	tcase_add_test(tc, a_missing_plugin_names_the_path_and_the_directory);
	tcase_add_test(tc, init_gets_its_group_and_refuses_unknown_settings);
	tcase_add_test(tc, a_policy_without_decide_is_refused_naming_the_op);
	tcase_add_test(tc, an_ops_table_too_small_for_the_required_ops_is_refused);
	tcase_add_test(tc, a_plugin_built_against_abi_1_1_still_loads);
	tcase_add_test(tc, the_search_path_takes_the_first_directory_that_has_the_plugin);
	tcase_add_test(tc, a_plugin_in_no_directory_of_the_path_names_them_all);
	tcase_add_test(tc, a_world_writable_plugin_directory_is_refused_even_sticky);
	tcase_add_test(tc, a_symlinked_plugin_directory_is_refused);
	tcase_add_test(
	    tc, a_plugin_or_directory_its_group_can_write_is_refused_unless_the_group_is_roots);
	tcase_add_test(tc, a_plugin_owned_by_another_user_is_refused);
	tcase_add_test(tc, the_checks_apply_to_the_directory_not_to_its_parents);
	tcase_add_test(tc, the_plugin_is_loaded_from_the_file_that_was_checked);
	tcase_add_test(tc, plugins_loaded_together_are_each_their_own_file);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(plugin_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
