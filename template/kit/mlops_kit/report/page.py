"""Self-contained HTML pages from markdown: one file, nothing fetched when it opens.

The style is inlined, every image the markdown names by a relative path is
embedded as a data URI, and a Content-Security-Policy forbids the page any
request at all (scripts, styles, fonts, images from elsewhere): it opens the
same offline, from a CI artifact or inside the serving image.
"""

import base64
import html
import re
from pathlib import Path

from markdown_it import MarkdownIt

# No script is allowed, and images only as data: URIs; inline styles only.
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 0; color: #1f2328; background: #fff; }
main { max-width: 60rem; margin: 0 auto; padding: 1.5rem; }
h1 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #eaeef2; padding-bottom: .2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .8rem 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: .25rem .6rem; text-align: left; }
th { background: #f6f8fa; }
code { background: #f6f8fa; padding: .1rem .3rem; border-radius: 4px; font-size: 90%; }
img { max-width: 100%; height: auto; display: block; margin: .8rem 0; }
blockquote { color: #57606a; border-left: 4px solid #d0d7de; margin: 0; padding: 0 1rem; }
"""

MEDIA_TYPES = {".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg"}
IMAGE_SOURCE = re.compile(r'<img src="([^"]+)"')


def markdown_to_html(text: str) -> str:
    """CommonMark with tables; raw HTML in the markdown is escaped, never passed through."""
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def data_uri(path: Path) -> str:
    """The file at ``path`` as a data: URI."""
    media_type = MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{media_type};base64,{base64.b64encode(path.read_bytes()).decode()}"


def embed_images(body: str, folder: Path) -> str:
    """``body`` with each image given by a path relative to ``folder`` embedded.

    Other sources (a missing file, an address) stay as written; the page's policy
    keeps the browser from fetching them.
    """

    def embedded(match: re.Match) -> str:
        source = html.unescape(match.group(1))
        path = folder / source
        if ":" in source or not path.is_file():
            return match.group(0)
        return f'<img src="{data_uri(path)}"'

    return IMAGE_SOURCE.sub(embedded, body)


def html_page(title: str, markdown: str, folder: Path) -> str:
    """A whole HTML page of ``markdown``, its images (relative to ``folder``) embedded."""
    body = embed_images(markdown_to_html(markdown), folder)
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
    )


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it already holds exactly that; return whether it wrote."""
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True


def write_markdown_and_page(path: Path, title: str, markdown: str) -> Path:
    """Write ``markdown`` to ``path`` (.md) and its page beside it (.html); return the page."""
    write_if_changed(path, markdown)
    page = path.with_suffix(".html")
    write_if_changed(page, html_page(title, markdown, path.parent))
    return page
