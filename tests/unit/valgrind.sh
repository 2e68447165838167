#!/bin/sh
# The unit test programs again under valgrind's memcheck: any invalid
# access or leak fails the program's line. TAP output, one line each.
progs="test_conf test_plugin test_http_server test_http_client test_policy_threshold test_policy_target tests/unit/test_election_single tests/balancer/test_http1 tests/unit/test_history"
set -- $progs
echo "1..$#"
if ! command -v valgrind >/dev/null 2>&1; then
	i=0
	for p in $progs; do i=$((i + 1)); echo "ok $i - $p under valgrind # SKIP valgrind not installed"; done
	exit 0
fi
i=0
rc=0
for p in $progs; do
	i=$((i + 1))
	log=$(mktemp)
	# CK_FORK=no: the tests run in the process valgrind watches
	if CK_FORK=no CK_TAP_LOG_FILE_NAME=/dev/null valgrind --quiet --leak-check=full \
		--errors-for-leak-kinds=definite --error-exitcode=99 "${top_builddir:-.}/$p" >"$log" 2>&1; then
		echo "ok $i - $p under valgrind"
	else
		echo "not ok $i - $p under valgrind"
		sed 's/^/# /' "$log" | tail -40
		rc=1
	fi
	rm -f "$log"
done
exit $rc
