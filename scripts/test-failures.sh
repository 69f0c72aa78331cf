#!/usr/bin/env bash
# test-failures.sh FILE: what the failing tests in FILE (the output of `go test`, with or
# without -v) said themselves, without the node logs the e2e harness prints after a
# failure. The Makefile runs it when tests fail, so that the end of a long run says why.
#
# A test's own messages are the lines "    name_test.go:LINE: ..." and the continuation
# lines of each (indented deeper), at most 20 of those per message; lines from other
# files (the harness's node logs come from testnode.go) are left out.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 go-test-output" >&2; exit 2; }
awk '
# -v output: a test says what it is running before its lines.
/^=== (RUN|CONT|NAME) / { cur = $3; keep = 0; next }
/^=== PAUSE / { next }
# Without -v a failing test prints "--- FAIL: Name (..)" and then its lines; with -v that
# line ends them.
/^ *--- (FAIL|PASS|SKIP): / {
	cur = $3; keep = 0
	if ($2 == "FAIL:" && !(cur in seen)) { order[++n] = cur; seen[cur] = 1 }
	next
}
/^panic: / { panics[++np] = $0 }
/^(FAIL|ok|PASS|panic: )/ {
	if ($1 == "FAIL" && NF >= 2) { pkgfail[++nf] = $0 }
	cur = ""; keep = 0; next
}
cur != "" {
	if (match($0, /^ +[A-Za-z0-9_.-]+_test\.go:[0-9]+: /)) {
		lines[cur] = lines[cur] $0 "\n"
		match($0, /^ +/); hdr = RLENGTH; keep = 1; cont = 0
		next
	}
	if (keep && match($0, /^ +/) && RLENGTH > hdr && cont < 20) {
		lines[cur] = lines[cur] $0 "\n"; cont++; next
	}
	keep = 0
}
END {
	if (n == 0 && np == 0 && nf == 0) exit 0
	print ""
	print "==== failing tests, with their own messages (node logs left out):"
	for (i = 1; i <= n; i++) printf "--- FAIL: %s\n%s", order[i], lines[order[i]]
	for (i = 1; i <= np; i++) print panics[i]
	for (i = 1; i <= nf; i++) print pkgfail[i]
}
' "$1"
