"""A requests session for msal that honours the CA bundle it is given.

requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` override ``Session.verify`` (psf/requests
#3829), so ``msal.ConfidentialClientApplication(verify=ca)`` silently trusts the system bundle
instead of ours on machines that set those variables. This session keeps its own ``verify``.
"""

from __future__ import annotations

from typing import Any

import requests


class PinnedVerifySession(requests.Session):
    def __init__(self, verify: bool | str = True) -> None:
        super().__init__()
        self.verify = verify

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        settings: dict[str, Any] = super().merge_environment_settings(
            url, proxies, stream, verify, cert
        )
        if verify is None or verify is True:
            settings["verify"] = self.verify
        return settings
