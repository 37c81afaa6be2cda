#!/usr/bin/env bash
# Runs every native Go fuzz target (func FuzzXxx in a _test.go file) of the
# module for FUZZTIME each (default 30s). New targets are picked up without
# editing this file.
set -euo pipefail
FUZZTIME=${FUZZTIME:-30s}
cd "$(dirname "$0")/.."
found=0
while IFS=: read -r file name; do
	pkg=./$(dirname "$file")
	echo "=== fuzz $pkg $name ($FUZZTIME)"
	CGO_ENABLED=1 go test -tags exclude_graphdriver_btrfs -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg"
	found=$((found + 1))
done < <(git ls-files '*_test.go' | xargs grep -Ho '^func Fuzz[A-Za-z0-9_]*' | sed 's/func //' | sort -u)
if [ "$found" -eq 0 ]; then
	echo "no fuzz targets found" >&2
	exit 1
fi
echo "fuzz: $found targets ran for $FUZZTIME each"
