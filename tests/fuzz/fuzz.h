/* libFuzzer harnesses (tests/fuzz/NAME.c, one LLVMFuzzerTestOneInput each).
 *
 * Built two ways from the same rules (tests/fuzz/local.am):
 *   - scripts/fuzz: clang with -fsanitize=fuzzer,address,undefined, the
 *     libFuzzer engine as main;
 *   - make check: the normal compiler with replay.c as main, a TAP test
 *     that runs the harness over its corpus tests/fuzz/corpus/NAME/, so a
 *     fixed finding stays fixed.
 *
 * A harness checks invariants with FUZZ_ASSERT (a failure aborts: a finding)
 * and may name its conclusion with fuzz_verdict(); a corpus file named
 * "what@VERDICT" must reach exactly that verdict in the replay (so a
 * reproducer proves the harness still reaches the code it guards). */
#ifndef SCALER_FUZZ_H
#define SCALER_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The harness's conclusion about this input, e.g. "400" or "accept". */
void fuzz_verdict(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Report a broken invariant and abort. */
void fuzz_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#define FUZZ_ASSERT(cond, ...)                                      \
	do {                                                        \
		if (!(cond))                                        \
			fuzz_fail(__FILE__, __LINE__, __VA_ARGS__); \
	} while (0)

#endif
