#!/usr/bin/env bash
# Check that a release's metadata agree, offline:
#
#   bash scripts/check-release.sh [TREE]      # default: this source tree
#
# - META.json is valid against PGXN's Meta Spec 1.0, written as a JSON
#   schema in scripts/pgxn-meta-spec-1.schema.json (Debian's
#   python3-jsonschema checks it), and the files it names exist;
# - the release version, X.Y.Z, is the same in CHANGELOG (its first
#   release), META.json (the distribution and the extension it provides)
#   and debian/changelog (its newest entry, X.Y.Z-N);
# - X.Y is pg_walvault.control's default_version, and sql/ has the script
#   that installs or updates to it;
# - the licence is the PostgreSQL Licence in LICENSE, META.json and
#   debian/copyright.
#
# Prints one line per check and exits non-zero if any failed.
set -euo pipefail

tree=${1:-$(cd "$(dirname "$0")/.." && pwd)}
schema=$(cd "$(dirname "$0")" && pwd)/pgxn-meta-spec-1.schema.json
python=/usr/bin/python3 # Debian's, where python3-jsonschema is
failed=0

ok() { echo "ok - $*"; }
fail() { echo "not ok - $*"; failed=1; }
check() # check DESCRIPTION GOT WANT
{
	if [ "$2" = "$3" ]; then ok "$1: $2"; else fail "$1: '$2', expected '$3'"; fi
}

cd "$tree"

control=$(sed -n "s/^default_version = '\(.*\)'/\1/p" pg_walvault.control)
changelog=$(sed -nE 's/^([0-9]+\.[0-9]+\.[0-9]+) .*/\1/p' CHANGELOG | head -n 1)
debian=$(dpkg-parsechangelog -l debian/changelog -S Version)
read -r meta provided < <("$python" -c '
import json, sys
m = json.load(open("META.json"))
print(m.get("version", "-"), m.get("provides", {}).get("pg_walvault", {}).get("version", "-"))
')

[ -n "$changelog" ] || fail "CHANGELOG: no release line (X.Y.Z — date)"
check "CHANGELOG's newest release is the control file's default_version ($control)" \
	"${changelog%.*}" "$control"
check "META.json version" "$meta" "$changelog"
check "META.json provides pg_walvault version" "$provided" "$changelog"
check "debian/changelog upstream version" "${debian%-*}" "$changelog"
check "debian/changelog's source package" "$(dpkg-parsechangelog -l debian/changelog -S Source)" pg-walvault

# the extension can be installed or updated to the control file's version
if [ -f "sql/pg_walvault--$control.sql" ] || compgen -G "sql/pg_walvault--*--$control.sql" >/dev/null; then
	ok "sql/ installs or updates to $control"
else
	fail "no sql/pg_walvault--$control.sql nor an update script to $control"
fi

# META.json against the spec, and the files it names
if out=$("$python" - "$schema" <<'PY' 2>&1
import json, os, sys
import jsonschema

schema = json.load(open(sys.argv[1]))
meta = json.load(open("META.json"))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
errors = sorted(validator.iter_errors(meta), key=lambda e: list(e.path))
for e in errors:
    print("META.json /%s: %s" % ("/".join(str(p) for p in e.path), e.message))
for name, ext in meta.get("provides", {}).items():
    for key in ("file", "docfile"):
        if key in ext and not os.path.isfile(ext[key]):
            print("META.json provides %s %s: %s does not exist" % (name, key, ext[key]))
            errors.append(key)
if meta.get("license") != "postgresql":
    print("META.json license: %r, expected postgresql" % meta.get("license"))
    errors.append("license")
sys.exit(1 if errors else 0)
PY
); then
	ok "META.json is valid PGXN Meta Spec 1.0"
else
	fail "META.json:"
	echo "$out" | sed 's/^/    /'
fi

grep -q 'PostgreSQL Licence' LICENSE && ok "LICENSE: PostgreSQL Licence" || fail "LICENSE does not name the PostgreSQL Licence"
grep -q '^License: PostgreSQL$' debian/copyright && ok "debian/copyright: PostgreSQL" || fail "debian/copyright: no License: PostgreSQL"

exit $failed
