#!/bin/sh
# Every C file of the tree is formatted as the root .clang-format says:
# clang-format --dry-run -Werror over each tracked .c/.h file (every .c/.h
# under the source tree when it is not a git checkout). TAP, one test point;
# a drifting file is named with the first lines clang-format would change.
# Fix with: clang-format -i FILE
srcdir=${top_srcdir:-.}
echo "1..1"
if ! command -v clang-format >/dev/null 2>&1; then
	echo "not ok 1 - C files formatted as .clang-format says # clang-format is not installed (apt-get install clang-format)"
	exit 1
fi
cd "$srcdir" || exit 1
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	files=$(git ls-files '*.c' '*.h')
else
	files=$(find . -name '*.[ch]' ! -path './build*' ! -path '*/.libs/*' | sed 's|^\./||' | sort)
fi
drift=""
n=0
report=$(mktemp)
for f in $files; do
	[ -f "$f" ] || continue
	n=$((n + 1))
	if ! clang-format --dry-run -Werror "$f" >/dev/null 2>"$report.one"; then
		drift="$drift $f"
		head -6 "$report.one" | sed 's/^/# /' >>"$report"
	fi
done
if [ -z "$drift" ]; then
	echo "ok 1 - all $n C files formatted as .clang-format says"
	rm -f "$report" "$report.one"
	exit 0
fi
echo "not ok 1 - files drift from .clang-format (run clang-format -i on them):$drift"
cat "$report"
rm -f "$report" "$report.one"
exit 1
