#!/bin/sh
# A plain git pre-commit hook running `armalias check --staged` (no pre-commit framework needed).
#
# Install in a kernel tree:
#     cp contrib/pre-commit-hook.sh .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit
# or, for every repository using a shared hooks directory:
#     git config core.hooksPath /path/to/hooks   (with this file there as `pre-commit`)
#
# The commit is refused when the staged change introduces a finding at or above the threshold
# (ARMALIAS_FAIL_ON, else .armalias.toml's fail-on, else warning); findings the change only moves
# are not reported.  `git commit --no-verify` skips the hook.  Set ARMALIAS to the command to run
# (default: armalias on PATH).  Nothing is written to the tree or the index: the check reads the
# staged blobs through git (in `git commit -a`, the index git prepared for the commit).
set -u
armalias=${ARMALIAS:-armalias}
if ! command -v "$armalias" >/dev/null 2>&1; then
	echo "pre-commit: $armalias not found; skipping the cache-alias check" >&2
	exit 0
fi
# Nothing analysable staged (no C, header or assembly file, no settings): nothing to check.
if ! git diff --cached --name-only --diff-filter=ACMRD -z | tr '\0' '\n' | grep -Eq '\.(c|h|S)$|(^|/)\.armalias\.toml$'; then
	exit 0
fi
set -- check --staged --format gcc
if [ -n "${ARMALIAS_FAIL_ON:-}" ]; then
	set -- "$@" --fail-on "$ARMALIAS_FAIL_ON"
fi
"$armalias" "$@"
status=$?
case $status in
0) exit 0 ;;
1) echo "pre-commit: armalias found cache-alias bugs this commit introduces (git commit --no-verify to override)" >&2
   exit 1 ;;
*) echo "pre-commit: armalias check failed to run (exit $status)" >&2
   exit "$status" ;;
esac
