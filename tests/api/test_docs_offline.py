"""/docs and /redoc load nothing from the internet: every asset comes from this service."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from api_server import RunningServer

REFERENCE = re.compile(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_only_this_service(server: RunningServer, page: str) -> None:
    with server.client() as client:
        response = client.get(page)
        assert response.status_code == 200
        html = response.text
        assert "cdn.jsdelivr.net" not in html
        assert "fonts.googleapis.com" not in html
        references = REFERENCE.findall(html)
        assert any(ref.endswith(".js") for ref in references), references
        for reference in references:
            assert not urlsplit(reference).netloc, reference  # no other host
            assert not reference.startswith("//"), reference
            assert client.get(reference).status_code == 200, reference
