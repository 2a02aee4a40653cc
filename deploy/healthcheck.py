"""Container health check: exit 0 when the gateway's readiness endpoint answers 2xx, else 1.

The internal API listens on loopback only (config: `api.host`), so the check runs inside the
container, with nothing but the standard library (the image has no curl). Proxy variables
are ignored: a proxy would answer for a gateway it cannot see."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8080/readyz"


def main() -> int:
    url = os.environ.get("GATEWAY_HEALTH_URL", DEFAULT_URL)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=4) as answer:
            status = int(answer.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        print(f"not ready: {url}: {exc}", file=sys.stderr)
        return 1
    if 200 <= status < 300:
        return 0
    print(f"not ready: {url} answered {status}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
