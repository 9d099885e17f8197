"""MkDocs hook: serve the repository files that the pages link to outside docs/.

A page links to a repository file the way GitHub reads it, relative to the page
(``../BENCHMARKS.md``, ``../examples/specs/real-models.yaml``), so the same link works when the
Markdown is read on a forge and in the built site. MkDocs only knows files under ``docs/``; this
hook adds each such target (and, for Markdown targets, what they link to in turn) as a file of
the site under ``repo/``, so MkDocs renders it and validates the link and its anchor. A link to
a file that does not exist is left alone, and the strict build fails on it.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files, InclusionLevel

#: ``](target)`` in Markdown; the target's path part (before ``#`` or a title).
LINK = re.compile(r"\]\(\s*<?([^)\s>#]+)")


def _linked_outside(text: str, src_uri: str) -> set[str]:
    """The targets of ``text``'s relative links (from a file at ``src_uri`` in docs/) that leave
    docs/, as paths relative to docs/ (``../X.md``)."""
    found = set()
    for target in LINK.findall(text):
        if "://" in target or target.startswith(("/", "mailto:")):
            continue
        path = posixpath.normpath(posixpath.join(posixpath.dirname(src_uri), target))
        if path.startswith("../") and not path.startswith("../../"):
            found.add(path)
    return found


def _nav_paths(nav) -> set[str]:
    """Every page path named in the ``nav`` config."""
    if isinstance(nav, str):
        return {nav}
    if isinstance(nav, dict):
        return set().union(*(_nav_paths(v) for v in nav.values()))
    if isinstance(nav, list):
        return set().union(*(_nav_paths(v) for v in nav)) if nav else set()
    return set()


def on_files(files: Files, config) -> Files:
    docs = Path(config.docs_dir)
    in_nav = _nav_paths(config.nav)
    pending = {p for p in in_nav if p.startswith("../")}
    for page in files.documentation_pages():
        pending |= _linked_outside(page.content_string, page.src_uri)
    added: set[str] = set()
    while pending:
        src_uri = pending.pop()
        source = (docs / src_uri).resolve()
        if src_uri in added or not source.is_file():
            continue  # a missing target stays unresolved: the strict build names it
        added.add(src_uri)
        repo_path = src_uri[len("../"):]
        is_page = repo_path.endswith(".md")
        dest = posixpath.join("repo", repo_path[:-3], "index.html") if is_page else \
            posixpath.join("repo", repo_path)
        files.append(File(src_uri, src_dir=str(docs), dest_dir=config.site_dir,
                          use_directory_urls=config.use_directory_urls, dest_uri=dest,
                          inclusion=InclusionLevel.INCLUDED if src_uri in in_nav
                          else InclusionLevel.NOT_IN_NAV))
        if is_page:
            pending |= _linked_outside(source.read_text(encoding="utf-8"), src_uri)
    return files
