#!/usr/bin/env bash
# The README's pictures of the merge-request note, made from the real renderer's output: a failing
# and a green pipeline (examples/note_picture.rs), turned into HTML as GitLab's CommonMark would
# (markdown-it-py), styled like a GitLab comment, and photographed by headless Chromium at desktop
# (1000 px) and phone (390 px) widths into docs/images/.
#
#   scripts/note-pictures.sh
#
# Needs: chromium and fonts-noto-color-emoji (Debian), python3 with markdown-it-py and pillow (PyPI,
# installed if missing: pillow trims the empty space below the note).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v chromium >/dev/null || { echo "scripts/note-pictures.sh: needs chromium (apt-get install chromium)" >&2; exit 1; }
python3 -c "import markdown_it, PIL" 2>/dev/null || python3 -m pip install --quiet markdown-it-py pillow
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo run --quiet --example note_picture -- "$work"
for note in failing green; do
  python3 - "$work/$note.md" "$work/$note.html" <<'PY'
import sys
from markdown_it import MarkdownIt

source, target = sys.argv[1:3]
body = MarkdownIt("commonmark", {"html": True}).render(open(source, encoding="utf-8").read())
page = f"""<!doctype html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body {{ margin: 0; padding: 16px; background: #fbfafd; color: #333238;
         font: 14px/1.5 -apple-system, "Segoe UI", Roboto, "Noto Sans", Ubuntu, sans-serif; }}
  .note {{ background: #fff; border: 1px solid #dcdcde; border-radius: 4px; max-width: 920px; }}
  .note-header {{ padding: 8px 16px; border-bottom: 1px solid #ececef; color: #626168; }}
  .note-header b {{ color: #333238; }}
  .avatar {{ display: inline-block; width: 24px; height: 24px; border-radius: 50%; background: #7b58cf;
            color: #fff; text-align: center; line-height: 24px; font-size: 12px; margin-right: 8px; }}
  .md {{ padding: 4px 16px 12px; overflow-wrap: anywhere; }}
  h3 {{ font-size: 1.25em; margin: 12px 0 4px; }}
  h4 {{ font-size: 1.05em; margin: 16px 0 4px; }}
  p {{ margin: 4px 0; }}
  ul {{ margin: 4px 0; padding-left: 20px; }}
  a {{ color: #1f75cb; text-decoration: none; }}
  sub {{ color: #626168; font-size: 12px; vertical-align: baseline; }}
  code {{ background: #ececef; border-radius: 3px; padding: 1px 3px; font-size: 12px; }}
  pre {{ background: #fbfafd; border: 1px solid #dcdcde; border-radius: 4px; padding: 8px 12px; margin: 4px 0 8px;
        overflow-x: auto; font: 12px/1.45 "GitLab Mono", Menlo, "DejaVu Sans Mono", monospace; }}
  details {{ margin-top: 12px; }}
  summary {{ cursor: pointer; font-weight: 600; color: #333238; }}
</style></head>
<body><div class="note"><div class="note-header"><span class="avatar">h</span><b>herald bot</b> @shop-ci-bot · commented</div>
<div class="md">{body}</div></div></body></html>"""
open(target, "w", encoding="utf-8").write(page)
PY
  for size in desktop:1000,1100 phone:390,1700; do
    name=${size%%:*}
    chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
      --window-size="${size#*:}" --screenshot="docs/images/note-$note-$name.png" "file://$work/$note.html" >/dev/null 2>&1
    # Trim the page's empty space below the note.
    python3 - "docs/images/note-$note-$name.png" <<'PY'
import sys
from PIL import Image, ImageChops
path = sys.argv[1]
image = Image.open(path).convert("RGB")
background = Image.new("RGB", image.size, image.getpixel((image.width - 1, image.height - 1)))
box = ImageChops.difference(image, background).getbbox()
if box:
    image.crop((0, 0, image.width, min(image.height, box[3] + 16))).save(path, optimize=True)
PY
    echo "docs/images/note-$note-$name.png"
  done
done
