"""Open a rendered course site offline in headless Chromium: is its math typeset, does it load nothing remote?

    python benchmarks/site_offline.py SITE_OR_RUN [--out report.json]

SITE_OR_RUN is a rendered site (a folder with ``index.html``) or a finished run folder of
``featureae-lite notebooks`` (rendered into ``RUN/site`` first). For every page: the addresses it
would load from the internet (must be none) and the number of typeset formulas in Chromium's DOM with
the network blocked (a page whose markdown holds ``$`` math must have some). Exit 1 on a failure.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from featureae_lite.core.fileio import write_atomic
from featureae_lite.course.site_check import (
    external_references,
    find_chromium,
    typeset_count,
    typeset_in_chromium,
)

_TEX = re.compile(r"\$[^$\n]*[\\^_{][^$\n]*\$")  # $…$ holding a TeX command, sub- or superscript


def check_site(site: Path) -> list[dict]:
    """One row per page: name, remote addresses, typeset formulas, seconds in Chromium."""
    chromium = find_chromium()
    rows = []
    for page in sorted(site.glob("*.html")):
        text = page.read_text()
        row: dict = {"page": page.name, "remote": external_references(text),
                     "has_tex": bool(_TEX.search(text))}
        if chromium:
            start = time.perf_counter()
            row["typeset"] = typeset_count(typeset_in_chromium(page, chromium))
            row["seconds"] = round(time.perf_counter() - start, 1)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="rendered site folder or finished run folder")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON")
    args = parser.parse_args(argv)
    site = args.site
    if not (site / "index.html").is_file():
        from featureae_lite.course.html_report import render_run

        start = time.perf_counter()
        site = render_run(site, site / "site").parent
        print(f"rendered {site} in {time.perf_counter() - start:.1f} s")
    rows = check_site(site)
    if not find_chromium():
        print("no chromium: only the no-remote check ran (apt-get install chromium, or set $CHROMIUM)")
    bad = [r for r in rows if r["remote"] or (r.get("typeset") == 0 and r["has_tex"])]
    for r in rows:
        flag = "FAIL" if r in bad else "ok  "
        print(f"{flag} {r['page']:<40} remote {len(r['remote'])}  typeset {r.get('typeset', '–')}"
              f"  {r.get('seconds', '')}")
    if args.out:
        write_atomic(args.out, json.dumps(rows, indent=2))
    if bad:
        sys.exit(1)
    return rows


if __name__ == "__main__":
    main()
