/* Plugins for the loader's tests: one source, built several times with
 * different descriptors (see tests/local.am). */
#include <stddef.h>

#include <scaler/plugin.h>

#ifndef TEST_KIND
#define TEST_KIND SCALER_KIND_DRIVER
#endif
#ifndef TEST_NAME
#define TEST_NAME "good"
#endif
#ifndef TEST_ABI_MAJOR
#define TEST_ABI_MAJOR SCALER_ABI_MAJOR
#endif

__attribute__((unused)) static int tp_init(const struct scaler_host *host,
                                           const config_setting_t *conf, void **ctx)
{
	static const char *const known[] = {"plugin", "answer", NULL};
	int answer = 42;
	if (conf && host->conf_check_known(conf, known) < 0)
		return -1;
	if (conf && config_setting_lookup_int(conf, "answer", &answer) && answer != 42)
		return host->conf_error(config_setting_get_member(conf, "answer"), "must be 42");
	*ctx = (void *)host;
	return 0;
}

__attribute__((unused)) static void tp_fini(void *ctx)
{
	(void)ctx;
}

__attribute__((unused)) static int tp_list(void *ctx, scaler_driver_list_cb cb, void *arg)
{
	(void)ctx;
	cb(arg, 0, NULL, 0, NULL);
	return 0;
}

static const struct scaler_driver_ops tp_ops = {.size = sizeof(tp_ops), .list = tp_list};

#ifdef TEST_NO_SYMBOL
__attribute__((visibility("default"))) const int not_a_plugin = 1;
#else
__attribute__((visibility("default"))) const struct scaler_plugin scaler_plugin = {
    .abi_major = TEST_ABI_MAJOR,
    .abi_minor = SCALER_ABI_MINOR,
    .size = sizeof(struct scaler_plugin),
    .kind = TEST_KIND,
    .name = TEST_NAME,
    .version = "1.0",
    .init = tp_init,
    .fini = tp_fini,
    .ops = {.driver = &tp_ops},
};
#endif
