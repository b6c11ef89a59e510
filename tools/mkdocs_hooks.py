"""mkdocs hooks: the site is built from Markdown that also reads well on GitHub.

* Repository pages outside ``docs/`` become site pages: ``README.md`` is the home page, and
  ``benchmarks/README.md``, ``configs/README.md`` and ``CHANGELOG.md`` are pages of their own.
* Links are written for GitHub, relative to the file they are in (``../benchmarks/README.md`` from a docs
  page, ``docs/training.md`` from the README). On the site they are rewritten to the page they point to;
  a link to another file of the repository (a script, a result file) keeps its text without the link,
  since the site holds no copy of it; a link to a file that does not exist is a warning, which fails
  ``mkdocs build --strict``.
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path
from typing import Dict, List

from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.repository_links")

ROOT = Path(__file__).resolve().parents[1]
# repository file -> its page on the site
REPOSITORY_PAGES: Dict[str, str] = {
    "README.md": "index.md",
    "benchmarks/README.md": "benchmarks.md",
    "configs/README.md": "configs.md",
    "CHANGELOG.md": "changelog.md",
}
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]+`")
LINK = re.compile(r"(?<!!)\[([^\]\n]+)\]\(([^)\s]+)\)")


def on_files(files: Files, config) -> Files:
    for source, page in REPOSITORY_PAGES.items():
        files.append(File.generated(config, page, abs_src_path=str(ROOT / source)))
    return files


def _site_target(target: str, source: Path, page_uri: str, docs_dir: Path) -> str:
    """Where a GitHub-relative link from ``source`` goes on the site; "" for a repository file without a page."""
    path, _, anchor = target.partition("#")
    resolved = (source.parent / path).resolve()
    if not resolved.exists():
        log.warning(f"{source.relative_to(ROOT)}: the link {target!r} points to {resolved}, which does not exist")
        return target
    try:
        site_uri = resolved.relative_to(docs_dir).as_posix()
    except ValueError:
        site_uri = REPOSITORY_PAGES.get(resolved.relative_to(ROOT).as_posix(), "")
    if not site_uri:
        return ""
    relative = posixpath.relpath(site_uri, posixpath.dirname(page_uri) or ".")
    return relative + (f"#{anchor}" if anchor else "")


def _rewrite_links(text: str, source: Path, page_uri: str, docs_dir: Path) -> str:
    codes: List[str] = []

    def hide(match: re.Match) -> str:
        codes.append(match.group(0))
        return f"\x00{len(codes) - 1}\x00"

    def link(match: re.Match) -> str:
        label, target = match.group(1), match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
            return match.group(0)
        site = _site_target(target, source, page_uri, docs_dir)
        return f"[{label}]({site})" if site else label

    text = LINK.sub(link, INLINE_CODE.sub(hide, text))
    return re.sub(r"\x00(\d+)\x00", lambda m: codes[int(m.group(1))], text)


def on_page_markdown(markdown: str, page, config, files) -> str:
    source = Path(page.file.abs_src_path)
    docs_dir = Path(config["docs_dir"]).resolve()
    parts, last = [], 0
    for fence in FENCE.finditer(markdown):  # code blocks stay as they are
        parts.append(_rewrite_links(markdown[last:fence.start()], source, page.file.src_uri, docs_dir))
        parts.append(fence.group(0))
        last = fence.end()
    parts.append(_rewrite_links(markdown[last:], source, page.file.src_uri, docs_dir))
    return "".join(parts)
