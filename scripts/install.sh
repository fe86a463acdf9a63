#!/usr/bin/env bash
# Installs a built normiqa for the whole machine (or one user), outside the checkout:
#   PREFIX/bin/normiqa                       the binary (rpath $ORIGIN/../lib/normiqa, see build.rs)
#   PREFIX/lib/normiqa/*.so*                 the libtorch libraries it needs (those `ldd` resolves
#                                            into the torch wheel; the system's stay the system's)
#   PREFIX/share/normiqa/models/$DEFAULT_MODEL/   the default model (below); when it is an
#                                            ensemble (ensemble.toml), its member folders beside it
#   PREFIX/share/normiqa/weights/BACKBONE.pth     the ImageNet weights of each backbone (BACKBONE
#                                            from each run folder's config.toml, e.g. efficientnet-lite0)
# Usage: scripts/install.sh [--prefix DIR] [--binary FILE]   (normally through `./run install`)
# Every file is copied to a temporary name beside its destination and renamed into place.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=""
BINARY=$ROOT/target/release/normiqa
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=${2:?--prefix needs a folder}; shift 2 ;;
    --prefix=*) PREFIX=${1#--prefix=}; shift ;;
    --binary) BINARY=${2:?--binary needs a file}; shift 2 ;;
    *) echo "install: unknown option '$1' (--prefix DIR, --binary FILE)" >&2; exit 2 ;;
  esac
done
PREFIX=${PREFIX:-${HOME:?HOME is not set: give --prefix DIR}/.local}
log() { printf '[install] %s\n' "$*" >&2; }
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }

[ -x "$BINARY" ] || die "no binary at $BINARY: build it first (./run setup)"
WHEEL=$(readlink -f "${LIBTORCH:-$ROOT/.venv/libtorch}/..") \
  || die "libtorch not found: run ./run setup first"
# The model `predict` and `serve` use without --model (src/cli/predict.rs DEFAULT_MODEL).
DEFAULT_MODEL=clive-efficientnet-lite012
MODEL=$ROOT/models/$DEFAULT_MODEL
# The run folders to install: the default model, or the members of the default ensemble. An
# ensemble's members must be folders beside it (`"../NAME"` in ensemble.toml), as in models/.
if [ -f "$MODEL/ensemble.toml" ]; then
  LIST=$(sed -n 's/^members = \[\(.*\)\]$/\1/p' "$MODEL/ensemble.toml" | head -n 1)
  [ -n "$LIST" ] || die "$MODEL/ensemble.toml: no one-line members = [...] list"
  RUNS=()
  for m in $(tr -d ' "' <<<"$LIST" | tr ',' ' '); do
    case "$m" in
      ../*/*|../) die "$MODEL/ensemble.toml: member '$m' is not a folder beside the ensemble (\"../NAME\")" ;;
      ../*) RUNS+=("${m#../}") ;;
      *) die "$MODEL/ensemble.toml: member '$m' is not a folder beside the ensemble (\"../NAME\")" ;;
    esac
  done
  FOLDERS=("$DEFAULT_MODEL" "${RUNS[@]}")
else
  RUNS=("$DEFAULT_MODEL")
  FOLDERS=("$DEFAULT_MODEL")
fi
BACKBONES=()
for r in "${RUNS[@]}"; do
  [ -f "$ROOT/models/$r/run.json" ] || die "model $r is missing: $ROOT/models/$r/run.json"
  b=$(sed -n 's/^backbone = "\(.*\)"$/\1/p' "$ROOT/models/$r/config.toml" | head -n 1)
  [ -n "$b" ] || die "$ROOT/models/$r/config.toml names no backbone"
  case " ${BACKBONES[*]} " in *" $b "*) ;; *) BACKBONES+=("$b") ;; esac
done
# NORMIQA_EFFICIENTNET_LITEN, else .venv/efficientnet-liteN.pth (as normiqa looks it up)
weights_of() {
  local var w
  var=NORMIQA_$(tr 'a-z-' 'A-Z_' <<<"$1")
  w=${!var:-$ROOT/.venv/$1.pth}
  [ -f "$w" ] || die "ImageNet weights of $1 not found at $w: run ./run setup first"
  readlink -f "$w"
}
for b in "${BACKBONES[@]}"; do weights_of "$b" >/dev/null; done

mkdir -p "$PREFIX/bin" "$PREFIX/lib/normiqa" "$PREFIX/share/normiqa/weights" \
  "$PREFIX/share/normiqa/models/$DEFAULT_MODEL"
PREFIX=$(cd "$PREFIX" && pwd)

TMP=""
trap '[ -n "$TMP" ] && rm -f "$TMP"' EXIT
# put SRC DEST: copy through a temporary file in DEST's folder, then rename.
put() {
  TMP="$(dirname "$2")/.$(basename "$2").tmp.$$"
  cp -L "$1" "$TMP"
  chmod "$3" "$TMP"
  mv -f "$TMP" "$2"
  TMP=""
}

# The libraries the binary loads from the torch wheel (libtorch, c10, gomp, the CUDA runtime
# stubs libtorch_cpu links against), as the dynamic loader resolves them now.
LDD=$(ldd "$BINARY")
if grep -q "not found" <<<"$LDD"; then
  die "the binary does not load: $(grep 'not found' <<<"$LDD" | tr -s ' \t' ' ')"
fi
n=0
while read -r name path; do
  case "$(readlink -f "$path")" in
    "$WHEEL"/*) put "$path" "$PREFIX/lib/normiqa/$name" 0755; n=$((n + 1)) ;;
  esac
done < <(awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' <<<"$LDD")
[ "$n" -gt 0 ] || die "ldd shows no library from $WHEEL: was the binary built against it?"
log "$n libraries -> $PREFIX/lib/normiqa"

for r in "${FOLDERS[@]}"; do
  mkdir -p "$PREFIX/share/normiqa/models/$r"
  for f in "$ROOT/models/$r"/*; do
    put "$f" "$PREFIX/share/normiqa/models/$r/$(basename "$f")" 0644
  done
done
for b in "${BACKBONES[@]}"; do
  put "$(weights_of "$b")" "$PREFIX/share/normiqa/weights/$b.pth" 0644
done
put "$BINARY" "$PREFIX/bin/normiqa" 0755
log "model $DEFAULT_MODEL (${RUNS[*]}) and the weights of ${BACKBONES[*]} -> $PREFIX/share/normiqa"

# The installed binary must load its libtorch from PREFIX, with no help from the environment.
CHECK=$(cd / && env -i "$PREFIX/bin/normiqa" --version) || die "$PREFIX/bin/normiqa does not start"
LOADED=$(env -i ldd "$PREFIX/bin/normiqa" | awk '$1 == "libtorch_cpu.so" { print $3 }')
if [ "$(readlink -f "$(dirname "$LOADED")")" != "$(readlink -f "$PREFIX/lib/normiqa")" ]; then
  die "$PREFIX/bin/normiqa loads libtorch from '${LOADED:-nowhere}', not $PREFIX/lib/normiqa"
fi
log "installed $CHECK as $PREFIX/bin/normiqa"
case ":$PATH:" in
  *":$PREFIX/bin:"*) ;;
  *) log "add $PREFIX/bin to your PATH, e.g. export PATH=\"$PREFIX/bin:\$PATH\"" ;;
esac
