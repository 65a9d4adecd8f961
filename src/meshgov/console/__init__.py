"""The web console under ``/ui/``: server-rendered pages over the service facade (issue 17).

A face like ``api/`` and ``pgwire/``: it authenticates with the shared token registry, authorises
with the shared rules (``meshgov.authz``) and calls only the service facade.
"""

from meshgov.console.pages import install_console

__all__ = ["install_console"]
