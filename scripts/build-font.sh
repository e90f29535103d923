#!/usr/bin/env bash
# Regenerate the dashboard's Korean web font (api/static/noto-sans-kr-400.woff2 and -700.woff2) from
# Debian's fonts-noto-cjk.
#
#   apt-get install fonts-noto-cjk     # Debian 12: 1:20220127+repack1-1 (Noto Sans CJK 2.004), SIL OFL 1.1
#   bash scripts/build-font.sh
#
# Takes the Korean face (index 1 of the .ttc collections) in two weights, 400 and 700, and keeps only the
# glyphs the page can show: ASCII and Latin-1, general punctuation, arrows, the KS X 1001 Hangul (the 2,350
# syllables of the national standard character set, which cover listed company names, and its 94 compatibility
# jamo), CJK punctuation, plus every non-ASCII character that api/static/*.{html,js,css} contain.
# fontTools and brotli are pinned and installed into a throwaway venv, and the subsetter keeps the source's
# timestamps, so the same inputs give byte-identical files; the script checks the inputs' SHA-256 first
# (FONT_SHA_CHECK=0 accepts other versions). No network at run time: the page serves the result itself.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC_DIR="${FONT_SRC_DIR:-/usr/share/fonts/opentype/noto}"
OUT="$ROOT/api/static"
FONTTOOLS="fonttools==4.68.0"
BROTLI="brotli==1.2.1"
declare -A WEIGHTS=([400]=NotoSansCJK-Regular.ttc [700]=NotoSansCJK-Bold.ttc)
declare -A SHA=(
  [NotoSansCJK-Regular.ttc]=b76b0433203017ca80401b2ee0dd69350349871c4b19d504c34dbdd80541690a
  [NotoSansCJK-Bold.ttc]=faa5f3656a78b2e2d450d27fe8382c778bc2b6bb5ea29c986664a6a435056ceb
)
KOREAN_FACE=1   # 0 JP, 1 KR, 2 SC, 3 TC, 4 HK: the KR face has Korean glyph forms for shared punctuation

for file in "${WEIGHTS[@]}"; do
  if [ ! -f "$SRC_DIR/$file" ]; then
    echo "missing $SRC_DIR/$file: apt-get install fonts-noto-cjk" >&2
    exit 1
  fi
  got="$(sha256sum "$SRC_DIR/$file" | cut -d' ' -f1)"
  if [ "${FONT_SHA_CHECK:-1}" = 1 ] && [ "$got" != "${SHA[$file]}" ]; then
    echo "$file is not the expected version (sha256 $got); FONT_SHA_CHECK=0 to use it anyway" >&2
    exit 1
  fi
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q "$FONTTOOLS" "$BROTLI" 2> >(grep -v '^WARNING: Location' >&2)

"$WORK/venv/bin/python" - "$OUT" > "$WORK/unicodes.txt" <<'EOF'
import sys
from pathlib import Path

def ks_x_1001(cp: int) -> bool:
    """In KS X 1001 iff EUC-KR encodes it in two bytes (other syllables need 8-byte make-up sequences)."""
    try:
        return len(chr(cp).encode("euc_kr")) == 2
    except UnicodeEncodeError:
        return False

wanted = set(range(0x20, 0x7F)) | set(range(0xA0, 0x100))             # ASCII, Latin-1
wanted |= set(range(0x2010, 0x2028)) | set(range(0x2030, 0x203C))      # dashes, quotes, bullets, ‰, ※
wanted |= set(range(0x2190, 0x219A)) | {0x20A9, 0x2212, 0x25B2, 0x25B3, 0x25BC, 0x25BD, 0x25CB, 0x25CF}
wanted |= set(range(0x3000, 0x3020))                                    # CJK punctuation
wanted |= {cp for cp in range(0x3131, 0x318F) if ks_x_1001(cp)}        # compatibility jamo
wanted |= {cp for cp in range(0xAC00, 0xD7A4) if ks_x_1001(cp)}        # the 2,350 syllables
for path in sorted(Path(sys.argv[1]).glob("*")):
    if path.suffix in {".html", ".js", ".css"}:
        wanted |= {ord(c) for c in path.read_text(encoding="utf-8") if ord(c) > 0x7E}
print("\n".join(f"U+{cp:04X}" for cp in sorted(wanted)))
EOF

for weight in "${!WEIGHTS[@]}"; do
  out="$OUT/noto-sans-kr-$weight.woff2"
  # Keep the licence name records (13, 14) and the credits; drop vertical-writing tables the page never uses.
  "$WORK/venv/bin/pyftsubset" "$SRC_DIR/${WEIGHTS[$weight]}" --font-number="$KOREAN_FACE" \
    --unicodes-file="$WORK/unicodes.txt" --flavor=woff2 --desubroutinize \
    --name-IDs=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14 --drop-tables+=vhea,vmtx,VORG \
    --output-file="$out"
  echo "$out: $(stat -c %s "$out") bytes"
done
