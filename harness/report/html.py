"""report.html: report.md as one self-contained page (no file or network beside it).

The page is rendered from report.md itself, so the two never say different things: headings, paragraphs,
lists, tables (sortable by a click on a column's header), the plots inline as data: URIs, and each section
after the cost card folded (<details>) with the claims' verdicts among them. A small script sorts the
tables and, once the page has loaded, marks on <body> how many tables and images rendered
(``data-tables``, ``data-images-ok``), which the headless-browser test reads.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

_IMG = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)]+)\)\s*$")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_EM = re.compile(r"(?<![\w*])_(.+?)_(?![\w*])")

STYLE = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1500px;padding:1.5em 2em;
color:#1d2430;background:#fbfbfd}
h1{font-size:1.7em;margin:.2em 0 .6em}h2{font-size:1.35em;margin-top:1.6em;border-bottom:1px solid #dde;padding-bottom:.2em}
h3{font-size:1.1em;margin-top:1.3em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:13px;background:#fff;box-shadow:0 1px 2px #0001}
th,td{border:1px solid #dfe2ea;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f7;cursor:pointer;user-select:none;position:sticky;top:0}th:hover{background:#dfe6f3}
th.asc::after{content:" \\25B2";color:#678}th.desc::after{content:" \\25BC";color:#678}
tr:nth-child(even) td{background:#f8f9fc}
code{background:#eef0f4;padding:0 3px;border-radius:3px;font-size:.92em}
img{max-width:100%;border:1px solid #e3e6ee;background:#fff;margin:.4em 0}
details{margin:.8em 0;border:1px solid #e3e6ee;border-radius:6px;background:#fff;padding:.2em 1em}
details>summary{cursor:pointer;font-size:1.25em;font-weight:600;padding:.4em 0}
.tablewrap{overflow-x:auto}
"""

SCRIPT = """
const UNITS={'s':1,'min':60,'h':3600,'days':86400,'MiB':1,'GB':1000,'TB':1e6};
function cellValue(td){const t=td.textContent.trim();
 const m=t.match(/^[$]?([-+]?[\\d,]*\\.?\\d+)\\s*(s|min|h|days|MiB|GB|TB|%|x)?\\b/);
 if(!m)return t.toLowerCase();const v=parseFloat(m[1].replace(/,/g,''));
 return isNaN(v)?t.toLowerCase():v*(UNITS[m[2]]||1)}
function sortBy(th){const table=th.closest('table'),i=[...th.parentNode.children].indexOf(th);
 const asc=!th.classList.contains('asc');table.querySelectorAll('th').forEach(h=>h.classList.remove('asc','desc'));
 th.classList.add(asc?'asc':'desc');const body=table.tBodies[0];const rows=[...body.rows];
 rows.sort((a,b)=>{const x=cellValue(a.cells[i]),y=cellValue(b.cells[i]);
  if(typeof x===typeof y)return (x<y?-1:x>y?1:0)*(asc?1:-1);return (typeof x==='number'?-1:1)*(asc?1:-1)});
 rows.forEach(r=>body.appendChild(r))}
document.querySelectorAll('th').forEach(th=>th.addEventListener('click',()=>sortBy(th)));
window.addEventListener('load',()=>{const imgs=[...document.images];
 document.body.dataset.tables=document.querySelectorAll('table').length;
 document.body.dataset.images=imgs.length;
 document.body.dataset.imagesOk=imgs.filter(i=>i.complete&&i.naturalWidth>0).length;
 document.body.dataset.sortable=document.querySelectorAll('th').length>0?'yes':'no'});
"""


def _inline(text: str) -> str:
    """Markdown's inline marks as HTML; inside a code span nothing else is read."""
    parts = _CODE.split(html.escape(text.replace("\\|", "|"), quote=False))
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # (split keeps the code spans' text at the odd places)
            out.append(f"<code>{part}</code>")
        else:
            out.append(_EM.sub(r"<em>\1</em>", _BOLD.sub(r"<strong>\1</strong>", part)))
    return "".join(out)


def _cells(line: str) -> list[str]:
    """A table row's cells: split at the pipes that are not escaped (md_table writes a cell's own as \\|)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def _image(src: str, alt: str, base: Path) -> str:
    path = base / src
    try:
        data = base64.b64encode(path.read_bytes()).decode()
    except OSError:
        return f"<p><em>plot not found: {html.escape(src)}</em></p>"
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'


def to_html(markdown: str, base: Path, title: str = "dspy-resource-bench report") -> str:
    """report.md's text -> one HTML page; images are read from `base` (the report's folder) and inlined."""
    body: list[str] = []
    lines = markdown.splitlines()
    i, para, in_list, open_details = 0, [], False, False

    def flush() -> None:
        nonlocal para, in_list
        if para:
            body.append(f"<p>{_inline(' '.join(para))}</p>")
            para = []
        if in_list:
            body.append("</ul>")
            in_list = False

    while i < len(lines):
        line = lines[i]
        if not line.strip():
            flush()
        elif line.startswith("#"):
            flush()
            level = len(line) - len(line.lstrip("#"))
            text = line[level:].strip()
            if level == 2:
                if open_details:
                    body.append("</details>")
                if text == "What each optimizer cost" or not body:
                    body.append(f"<h2>{_inline(text)}</h2>")
                    open_details = False
                else:  # every later section folds; the claims' verdicts open by default
                    opened = " open" if text.startswith("Claims: verdicts") else ""
                    body.append(f"<details{opened}><summary>{_inline(text)}</summary>")
                    open_details = True
            else:
                body.append(f"<h{level}>{_inline(text)}</h{level}>")
        elif line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|(\s*:?-+:?\s*\|)+\s*$", lines[i + 1]):
            flush()
            head = _cells(line)
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            body.append('<div class="tablewrap"><table><thead><tr>' + "".join(f"<th>{_inline(h)}</th>" for h in head)
                        + "</tr></thead><tbody>"
                        + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows)
                        + "</tbody></table></div>")
            continue
        elif (m := _IMG.match(line.strip())):
            flush()
            body.append(_image(m.group("src"), m.group("alt"), base))
        elif line.startswith("- "):
            if para:
                body.append(f"<p>{_inline(' '.join(para))}</p>")
                para = []
            if not in_list:
                body.append("<ul>")
                in_list = True
            body.append(f"<li>{_inline(line[2:])}</li>")
        elif in_list and line.startswith("  "):
            body[-1] = body[-1][:-5] + " " + _inline(line.strip()) + "</li>"
        else:
            if in_list:
                body.append("</ul>")
                in_list = False
            para.append(line.strip())
        i += 1
    flush()
    if open_details:
        body.append("</details>")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + f"\n<script>{SCRIPT}</script></body></html>\n")
