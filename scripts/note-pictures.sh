#!/usr/bin/env bash
# The README's pictures, made from herald's real output (examples/note_picture.rs): the merge-request
# note of a failing and a green pipeline, a note with a Terraform plan's step summary (unfolded), and
# a finding's thread on the diff (ruff's real report).
# Turned into HTML as GitLab's CommonMark would (markdown-it-py; a suggestion block shown as
# GitLab shows one), styled like GitLab, and photographed by headless Chromium at desktop (1000 px)
# and phone (390 px) widths into docs/images/.
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

# Photographs a page at a window size (`width,height`) into a PNG, trimmed of the empty space below.
shoot() {
  chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --window-size="$2" --screenshot="$3" "file://$1" >/dev/null 2>&1
  python3 - "$3" <<'PY'
import sys
from PIL import Image, ImageChops
path = sys.argv[1]
image = Image.open(path).convert("RGB")
background = Image.new("RGB", image.size, image.getpixel((image.width - 1, image.height - 1)))
box = ImageChops.difference(image, background).getbbox()
if box:
    image.crop((0, 0, image.width, min(image.height, box[3] + 16))).save(path, optimize=True)
PY
}

cargo run --quiet --example note_picture -- "$work"
for note in failing green plan; do
  python3 - "$work/$note.md" "$work/$note.html" <<'PY'
import sys
from markdown_it import MarkdownIt

source, target = sys.argv[1:3]
body = MarkdownIt("commonmark", {"html": True}).enable("table").render(open(source, encoding="utf-8").read())
# Step summaries photographed as a reviewer sees them after a click: unfolded.
body = body.replace("<details><summary>📝", "<details open><summary>📝")
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
  table {{ border-collapse: collapse; margin: 4px 0; }}
  th, td {{ border: 1px solid #dcdcde; padding: 2px 8px; }}
</style></head>
<body><div class="note"><div class="note-header"><span class="avatar">h</span><b>herald bot</b> @shop-ci-bot · commented</div>
<div class="md">{body}</div></div></body></html>"""
open(target, "w", encoding="utf-8").write(page)
PY
  for size in desktop:1000,1100 phone:390,1700; do
    name=${size%%:*}
    shoot "$work/$note.html" "${size#*:}" "docs/images/note-$note-$name.png"
    echo "docs/images/note-$note-$name.png"
  done
done

# The finding's thread, under its line of the diff.
python3 - "$work/finding.md" "$work/finding-lines.txt" "$work/finding.html" <<'PY'
import html, re, sys
from markdown_it import MarkdownIt

source, lines_file, target = sys.argv[1:4]
text = open(source, encoding="utf-8").read()
diff_lines = [line.split("\t", 1) for line in open(lines_file, encoding="utf-8").read().splitlines()]
commented = "21"
# GitLab shows a suggestion block as the change it proposes, with an "Apply suggestion" button.
match = re.search(r"```suggestion:-0\+0\n(.*?)```\n", text, re.S)
suggestion = ""
if match:
    old = next(code for number, code in diff_lines if number == commented)
    new = match.group(1).rstrip("\n").split("\n")
    rows = f'<div class="del">-{html.escape(old)}</div>' + "".join(f'<div class="add">+{html.escape(line)}</div>' for line in new)
    suggestion = f'<div class="suggestion"><div class="suggestion-head">Suggested change <span class="apply">Apply suggestion</span></div><pre>{rows}</pre></div>'
    text = text[: match.start()] + "SUGGESTION_HERE\n" + text[match.end():]
body = MarkdownIt("commonmark", {"html": True}).render(text).replace("<p>SUGGESTION_HERE</p>", suggestion)
rows = ""
for number, code in diff_lines:
    kind = "added" if number in ("21",) else ""
    sign = "+" if kind else " "
    rows += f'<tr class="{kind}"><td class="num">{number}</td><td class="code">{sign} {html.escape(code)}</td></tr>'
    if number == commented:
        rows += f'<tr><td></td><td><div class="thread"><div class="note-header"><span class="avatar">h</span><b>herald bot</b> @shop-ci-bot · started a thread</div><div class="md">{body}</div></div></td></tr>'
page = f"""<!doctype html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body {{ margin: 0; padding: 16px; background: #fff; color: #333238;
         font: 14px/1.5 -apple-system, "Segoe UI", Roboto, "Noto Sans", Ubuntu, sans-serif; }}
  .file {{ border: 1px solid #dcdcde; border-radius: 4px; max-width: 920px; overflow: hidden; }}
  .file-head {{ background: #fbfafd; border-bottom: 1px solid #dcdcde; padding: 8px 12px; font-weight: 600; }}
  table {{ border-collapse: collapse; width: 100%; font: 12px/1.6 "DejaVu Sans Mono", Menlo, monospace; }}
  td.num {{ width: 40px; color: #89888d; text-align: right; padding: 0 8px; vertical-align: top; }}
  td.code {{ white-space: pre; padding: 0 8px; }}
  tr.added td {{ background: #ecfdf0; }}
  .thread {{ margin: 8px 8px 12px 0; border: 1px solid #dcdcde; border-radius: 4px; background: #fff;
            font: 14px/1.5 -apple-system, "Segoe UI", Roboto, "Noto Sans", Ubuntu, sans-serif; white-space: normal; }}
  .note-header {{ padding: 8px 12px; border-bottom: 1px solid #ececef; color: #626168; }}
  .note-header b {{ color: #333238; }}
  .avatar {{ display: inline-block; width: 24px; height: 24px; border-radius: 50%; background: #7b58cf;
            color: #fff; text-align: center; line-height: 24px; font-size: 12px; margin-right: 8px; }}
  .md {{ padding: 4px 12px 8px; }}
  code {{ background: #ececef; border-radius: 3px; padding: 1px 3px; font-size: 12px; }}
  .suggestion {{ border: 1px solid #dcdcde; border-radius: 4px; margin: 8px 0; }}
  .suggestion-head {{ background: #fbfafd; padding: 4px 8px; border-bottom: 1px solid #dcdcde; font-size: 12px; }}
  .apply {{ float: right; background: #1f75cb; color: #fff; border-radius: 4px; padding: 0 8px; }}
  .suggestion pre {{ margin: 0; font: 12px/1.6 "DejaVu Sans Mono", Menlo, monospace; overflow-x: auto; }}
  .del {{ background: #fbe9eb; padding: 0 8px; }} .add {{ background: #ecfdf0; padding: 0 8px; }}
</style></head>
<body><div class="file"><div class="file-head">app.py</div><table>{rows}</table></div></body></html>"""
open(target, "w", encoding="utf-8").write(page)
PY
for size in desktop:1000,800 phone:390,1200; do
  name=${size%%:*}
  shoot "$work/finding.html" "${size#*:}" "docs/images/finding-$name.png"
  echo "docs/images/finding-$name.png"
done
