#!/usr/bin/env bash
# Fetch MediaPipe's palm detectors (Apache-2.0) and convert them for handgraph.
#
#   bash tools/get_palm_detector.sh [--out DIR] [--keep-tflite DIR] [--package FILE.tgz]
#
# 1. `npm pack @mediapipe/hands@0.4.1675469240` (the npm registry; or --package, a copy of
#    that package's .tgz already on disk, then nothing is downloaded);
# 2. cuts palm_detection_full.tflite and palm_detection_lite.tflite out of
#    package/hands_solution_packed_assets.data at the start/end offsets that
#    package/hands_solution_packed_assets_loader.js lists for them (read from the script);
# 3. checks their sha256 against the values below (../shared/data/mediapipe/README.md);
# 4. converts each with tools/convert_palm.py (Python standard library only) to
#    DIR/palm_detection_full.safetensors and DIR/palm_detection_lite.safetensors
#    (DIR: weights/ by default). --keep-tflite also keeps the two .tflite files in DIR.
# Temporary files live in a folder removed on exit. Errors: one line `error: ...`, status 1.
set -euo pipefail

PACKAGE="@mediapipe/hands@0.4.1675469240"
TGZ_NAME="mediapipe-hands-0.4.1675469240.tgz"
SHA256_FULL="2f25e740121983f68ffc05f99991d524dc0ea812134f6316a26125816941ee85"
SHA256_LITE="e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/weights"
KEEP=""
LOCAL_TGZ=""
PYTHON="${PYTHON:-python3}"

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --out) [ $# -ge 2 ] || die "--out needs a folder"; OUT="$2"; shift 2 ;;
        --keep-tflite) [ $# -ge 2 ] || die "--keep-tflite needs a folder"; KEEP="$2"; shift 2 ;;
        --package) [ $# -ge 2 ] || die "--package needs a .tgz file"; LOCAL_TGZ="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (Python 3 is needed to cut and convert the models)"
command -v tar >/dev/null 2>&1 || die "tar not found"
[ -d "$OUT" ] || die "output folder $OUT does not exist"
[ -z "$KEEP" ] || [ -d "$KEEP" ] || die "folder $KEEP (--keep-tflite) does not exist"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/palm_detector.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

if [ -n "$LOCAL_TGZ" ]; then
    [ -f "$LOCAL_TGZ" ] || die "package file $LOCAL_TGZ not found"
    cp "$LOCAL_TGZ" "$TMP/$TGZ_NAME"
else
    command -v npm >/dev/null 2>&1 || die "npm not found: it fetches $PACKAGE from the npm registry (Debian: apt-get install npm), or give a copy of the package with --package $TGZ_NAME"
    echo "fetching $PACKAGE with npm pack"
    if ! (cd "$TMP" && npm pack --loglevel=error "$PACKAGE") >"$TMP/npm.log" 2>&1; then
        # npm's first message line (not its code/syscall/errno lines nor a stack trace)
        last="$(awk '/^npm (error|ERR!)/ { sub(/^npm (error|ERR!) */, ""); if ($0 ~ /^(code|syscall|errno) / || $0 ~ /^ +at / || $0 == "") next; print; exit }' "$TMP/npm.log" | tr -d '\r' | cut -c1-300 || true)"
        die "npm pack $PACKAGE failed: ${last:-no message} (no network? then use --package $TGZ_NAME)"
    fi
    [ -f "$TMP/$TGZ_NAME" ] || die "npm pack did not write $TGZ_NAME"
fi

mkdir "$TMP/pkg"
tar -xzf "$TMP/$TGZ_NAME" -C "$TMP/pkg" package/hands_solution_packed_assets.data \
    package/hands_solution_packed_assets_loader.js 2>"$TMP/tar.log" ||
    die "$(basename "${LOCAL_TGZ:-$TGZ_NAME}") is not the expected package (tar: $(grep -v '^[[:space:]]*$' "$TMP/tar.log" | head -n 1 || true))"

# Cut the two models out by the offsets the loader lists, check their sha256.
"$PYTHON" - "$TMP/pkg/package" "$TMP" "$SHA256_FULL" "$SHA256_LITE" <<'PY' || exit 1
import hashlib, json, os, re, sys

pkg, out, sha_full, sha_lite = sys.argv[1:5]
loader_path = os.path.join(pkg, "hands_solution_packed_assets_loader.js")
data_path = os.path.join(pkg, "hands_solution_packed_assets.data")


def die(msg):
    sys.stderr.write("error: %s\n" % msg)
    sys.exit(1)


with open(loader_path, "r", encoding="utf-8", errors="replace") as f:
    script = f.read()
# The script ends with loadPackage({"files": [{"filename", "start", "end"}, ...], "remote_package_size": N});
calls = re.findall(r"loadPackage\((\{.*?\})\)\s*;", script, re.S)
if not calls:
    die("%s: no loadPackage({...}) call listing the files" % os.path.basename(loader_path))
try:
    listing = json.loads(calls[-1])
    files = {e["filename"]: (e["start"], e["end"]) for e in listing["files"]}
except (ValueError, KeyError, TypeError) as e:
    die("%s: cannot read the file list (%s)" % (os.path.basename(loader_path), e))
with open(data_path, "rb") as f:
    data = f.read()
size = listing.get("remote_package_size")
if size != len(data):
    die("%s has %d bytes, the loader says %r" % (os.path.basename(data_path), len(data), size))
for model, want in (("full", sha_full), ("lite", sha_lite)):
    name = "/third_party/mediapipe/modules/palm_detection/palm_detection_%s.tflite" % model
    if name not in files:
        die("the loader lists no %s" % name)
    start, end = files[name]
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(data)):
        die("the loader gives %s the bytes [%r, %r) of a %d-byte file" % (name, start, end, len(data)))
    blob = data[start:end]
    got = hashlib.sha256(blob).hexdigest()
    if got != want:
        die("palm_detection_%s.tflite (bytes %d..%d of the package's assets) has sha256 %s, expected %s: "
            "not the model this project was checked with" % (model, start, end, got, want))
    with open(os.path.join(out, "palm_detection_%s.tflite" % model), "wb") as f:
        f.write(blob)
    print("palm_detection_%s.tflite: %d bytes at %d..%d, sha256 %s (as expected)" % (model, len(blob), start, end, got))
PY

for model in full lite; do
    "$PYTHON" "$ROOT/tools/convert_palm.py" "$TMP/palm_detection_$model.tflite" \
        -o "$OUT/palm_detection_$model.safetensors" || exit 1
    if [ -n "$KEEP" ]; then
        cp "$TMP/palm_detection_$model.tflite" "$KEEP/palm_detection_$model.tflite"
    fi
done
echo "done: $OUT/palm_detection_full.safetensors, $OUT/palm_detection_lite.safetensors"
