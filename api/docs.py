"""``/docs``: Swagger UI served from the replica itself, so it works on a network without internet access.

FastAPI's own ``/docs`` page loads Swagger UI from a public CDN and starts it with an inline script, which
a strict Content-Security-Policy forbids. Here the page names only local files: Swagger UI's prebuilt
bundle (``api/static/swagger-ui/``, vendored from the npm package ``swagger-ui-dist`` by
``scripts/vendor-swagger-ui.sh``) and ``api/static/docs.js``, which reads the schema's URL from the page.
ReDoc is not served: one schema viewer is enough, and it would be another megabyte to vendor.
"""

from __future__ import annotations

from html import escape

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from api.headers import DOCS_PATH

SWAGGER_DIR = "/static/swagger-ui"


def docs_page(title: str, openapi_url: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="{SWAGGER_DIR}/swagger-ui.css">
  <title>{escape(title)} · docs</title>
  <script src="{SWAGGER_DIR}/swagger-ui-bundle.js" defer></script>
  <script src="/static/docs.js" defer></script>
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{escape(openapi_url)}"></div>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` for ``app`` (built with ``docs_url=None, redoc_url=None``)."""
    assert app.openapi_url, "the docs page needs the OpenAPI schema"
    page = docs_page(app.title, app.openapi_url)

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page)
