"""Rendering the executed report notebook into one self-contained HTML file.

`make report` executes `notebooks/40_report.ipynb` with papermill (its sections come from
`emolib.report`) and then runs

    python -m emolib.render --notebook reports/notebooks/40_report.ipynb --out reports/report.html

(`python -m emolib.render render ...` works too), which is `render_report`: nbconvert's
HTMLExporter without the code cells, turned into a single self-contained file:

* the widget state papermill stored in the notebook metadata stays embedded, and the
  widget renderer (`@jupyter-widgets/html-manager` 1.0.15 `dist/embed.js`, vendored
  under `emolib/static/`) is inlined instead of nbconvert's CDN `<script src=...>`;
* require.js, MathJax and mermaid are not loaded (the report uses none of them);
* every figure is a base64 `data:` image;
* the result is checked: no `<script src="http...">` may remain.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

STATIC_DIR = Path(__file__).with_name("static")
TEMPLATES_DIR = Path(__file__).with_name("templates")
WIDGET_JS = STATIC_DIR / "html-manager-1.0.15" / "embed.js"
WIDGET_JS_VERSION = "@jupyter-widgets/html-manager@1.0.15"
WIDGET_JS_SHA256 = "8f6d2d3f856d8595d1841dec3019d99bbe74d331f2a5178c2a33bfec729e3d6a"
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
_PUBLIC_PATH_THROW = 'if(!e)throw new Error("Automatic publicPath is not supported in this browser");'
_PUBLIC_PATH_FIX = "if(!e)e=document.baseURI||self.location.href;"


class ReportError(RuntimeError):
    """The report cannot be rendered as asked; the message says why."""


def widget_renderer_js() -> str:
    """The vendored html-manager embed bundle, checked, made safe to inline in a <script>."""
    if not WIDGET_JS.is_file():
        raise ReportError(f"{WIDGET_JS} is missing: the widget renderer ({WIDGET_JS_VERSION}) ships with emolib")
    data = WIDGET_JS.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != WIDGET_JS_SHA256:
        raise ReportError(f"{WIDGET_JS}: sha256 {digest} is not the vendored {WIDGET_JS_VERSION} ({WIDGET_JS_SHA256})")
    js = data.decode("utf-8")
    if js.count(_PUBLIC_PATH_THROW) != 1:
        raise ReportError(f"{WIDGET_JS}: webpack public-path code not found; cannot inline it")
    js = js.replace(_PUBLIC_PATH_THROW, _PUBLIC_PATH_FIX)
    # keep the HTML parser from ending the <script> early
    return js.replace("</script", "<\\/script").replace("<!--", "<\\!--")


_EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\ssrc\s*=\s*[\"']?\s*(?:https?:)?//", re.IGNORECASE)
_EXTERNAL_LINK = re.compile(r"<link[^>]*\shref\s*=\s*[\"']?\s*(?:https?:)?//", re.IGNORECASE)
_EXTERNAL_IMG = re.compile(r"<img[^>]*\ssrc\s*=\s*[\"']?\s*(?:https?:)?//", re.IGNORECASE)


def check_self_contained(html_text: str) -> list[str]:
    """Problems that would make the page need the network (empty list when none)."""
    problems = []
    for rx, what in (
        (_EXTERNAL_SCRIPT, "<script src> from the network"),
        (_EXTERNAL_LINK, "<link href> to the network"),
        (_EXTERNAL_IMG, "<img src> from the network"),
    ):
        for m in rx.finditer(html_text):
            problems.append(f"{what}: {html_text[m.start() : m.start() + 160]!r}")
    if "cdn.jsdelivr.net/npm/@jupyter-widgets" in html_text:
        problems.append("the CDN widget renderer is still referenced")
    return problems


def _has_widget_views(nb) -> bool:
    return any(
        WIDGET_VIEW_MIME in (o.get("data") or {})
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )


def render_report(executed_ipynb, out_html, *, title: str | None = None) -> Path:
    """Convert an executed report notebook into one self-contained HTML file (no code cells).

    Raises ReportError when widgets were displayed but their state is not in the notebook
    metadata (they would render as empty placeholders), or when anything would still be
    fetched from the network.
    """
    import nbformat
    from nbconvert import HTMLExporter

    from .runinfo import atomic_write_text

    nb = nbformat.read(str(executed_ipynb), as_version=4)
    has_views = _has_widget_views(nb)
    state = (nb.metadata.get("widgets") or {}).get(WIDGET_STATE_MIME)
    if has_views and not state:
        raise ReportError(
            f"{executed_ipynb}: widgets were displayed but nb.metadata.widgets has no "
            f"{WIDGET_STATE_MIME}: execute it with papermill/nbclient (store_widget_state)"
        )
    if title:
        nb.metadata["title"] = title
    for cell in nb.cells:  # library log lines on stderr are not part of the report
        if cell.cell_type == "code":
            cell.outputs = [
                o
                for o in cell.get("outputs", [])
                if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
            ]
    exporter = HTMLExporter(
        template_name="lab",
        extra_template_paths=[str(TEMPLATES_DIR)],
        template_file="emolib_report.html.j2",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    resources = {"emolib_widget_js": widget_renderer_js() if state else ""}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    problems = check_self_contained(body)
    if problems:
        raise ReportError("the report is not self-contained:\n  " + "\n  ".join(problems[:10]))
    out = Path(out_html)
    atomic_write_text(out, body)
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m emolib.render --notebook X.ipynb --out report.html` (a leading `render` is accepted too)."""
    import argparse
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["render"]:
        argv = argv[1:]
    parser = argparse.ArgumentParser(
        prog="python -m emolib.render", description="executed report notebook -> self-contained HTML"
    )
    parser.add_argument("--notebook", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--title", default="Facial emotion recognition: report")
    args = parser.parse_args(argv)
    try:
        out = render_report(args.notebook, args.out, title=args.title)
    except (ReportError, FileNotFoundError) as e:
        parser.exit(1, f"error: {e}\n")
    size = out.stat().st_size / 1e6
    print(f"wrote {out} ({size:.1f} MB, self-contained)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
