"""A requests session for msal that honours the CA bundle and the proxy rule it is given.

requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` override ``Session.verify`` (psf/requests
#3829), so ``msal.ConfidentialClientApplication(verify=ca)`` silently trusts the system bundle
instead of ours on machines that set those variables. This session keeps its own ``verify``.

It reads nothing else from the environment either (``trust_env`` off: no ``~/.netrc``
credentials sent to the identity platform): each request takes the proxy the job's
``network.Route`` gives its URL, the same rule as the Graph calls of the job.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

from .network import Route


class PinnedVerifySession(requests.Session):
    def __init__(self, verify: bool | str = True, route: Route | None = None) -> None:
        super().__init__()
        self.verify = verify
        self.trust_env = False
        self.route = route or Route()

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        settings: dict[str, Any] = super().merge_environment_settings(
            url, proxies, stream, verify, cert
        )
        if verify is None or verify is True:
            settings["verify"] = self.verify
        parts = urlsplit(str(url))
        proxy = self.route.for_url(parts.scheme, parts.hostname or "", parts.port)
        settings["proxies"] = {} if proxy is None else {"all": proxy.url_with_credentials()}
        return settings
