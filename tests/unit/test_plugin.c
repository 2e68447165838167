/* The plugin loader: what it loads and what it refuses, with the sentence
 * it refuses with. */
#include "config.h"

#include <check.h>
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
	                                     &host, config_lookup(&cfg, "driver"), err,
	                                     sizeof(err)),
	                 0);
	ck_assert_ptr_eq(pi.ctx, &host);
	plugin_instance_free(&pi);
	ck_assert_ptr_null(pi.plugin);
	config_destroy(&cfg);

	config_init(&cfg);
	ck_assert(config_read_string(&cfg, "driver = { plugin = \"good\"; colour = 1; };"));
	ck_assert_int_eq(plugin_instance_new(&pi, TEST_PLUGIN_DIR, SCALER_KIND_DRIVER, "good",
	                                     &host, config_lookup(&cfg, "driver"), err,
	                                     sizeof(err)),
	                 -1);
	ck_assert_msg(strstr(err, "invalid settings"), "got: %s", err);
	ck_assert_ptr_null(pi.plugin);
	config_destroy(&cfg);
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
