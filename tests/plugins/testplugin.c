/* Plugins for the loader's tests: one source, built several times with
 * different descriptors (see tests/local.am):
 *   TEST_KIND        the kind in the descriptor (SCALER_KIND_DRIVER)
 *   TEST_POLICY      policy ops instead of driver ops
 *   TEST_NAME        the name in the descriptor ("good")
 *   TEST_ABI_MAJOR   the major in the descriptor
 *   TEST_MISSING_OP  leave the kind's first required op NULL
 *   TEST_OPS_SIZE    the ops table's size field (default: its sizeof)
 *   TEST_NO_SYMBOL   export something else than the descriptor
 * Built with -I tests/plugins/abi-1.1 it is a plugin as built against ABI
 * 1.1. */
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

#ifdef TEST_POLICY
__attribute__((unused)) static int tp_decide(void *ctx, const struct scaler_policy_input *in,
                                             struct scaler_policy_decision *out)
{
	(void)ctx;
	out->desired = in->current;
	return 0;
}

static const struct scaler_policy_ops tp_ops = {
#ifdef TEST_OPS_SIZE
    .size = TEST_OPS_SIZE,
#else
    .size = sizeof(tp_ops),
#endif
#ifndef TEST_MISSING_OP
    .decide = tp_decide,
#endif
};
#define TP_OPS .policy = &tp_ops
#else
__attribute__((unused)) static int tp_create(void *ctx, const struct scaler_server_spec *spec,
                                             scaler_driver_cb cb, void *arg)
{
	(void)ctx;
	(void)spec;
	(void)cb;
	(void)arg;
	return -1;
}

__attribute__((unused)) static int tp_remove(void *ctx, const struct scaler_server *srv,
                                             scaler_driver_cb cb, void *arg)
{
	(void)ctx;
	(void)srv;
	(void)cb;
	(void)arg;
	return -1;
}

__attribute__((unused)) static int tp_list(void *ctx, scaler_driver_list_cb cb, void *arg)
{
	(void)ctx;
	(void)cb;
	(void)arg;
	return -1;
}

static const struct scaler_driver_ops tp_ops = {
#ifdef TEST_OPS_SIZE
    .size = TEST_OPS_SIZE,
#else
    .size = sizeof(tp_ops),
#endif
#ifndef TEST_MISSING_OP
    .create = tp_create,
#endif
    .remove = tp_remove,
    .list = tp_list,
};
#define TP_OPS .driver = &tp_ops
#endif

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
    .ops = {TP_OPS},
};
#endif
