"""A real WebDAV server (wsgidav on cheroot) for push tests: python webdav_server.py ROOT PORT USER PASSWORD LOG.

Every request's method, path and status is appended to LOG (one JSON line each), so a
test can see exactly what was uploaded. Run as a subprocess so the test can stop it
mid-run (the remote going down) and start it again on the same port.
"""

from __future__ import annotations

import json
import sys

from cheroot import wsgi
from wsgidav.wsgidav_app import WsgiDAVApp


def main() -> None:
    root, port, user, password, log = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    app = WsgiDAVApp(
        {
            "host": "127.0.0.1",
            "port": port,
            "provider_mapping": {"/": root},
            "simple_dc": {"user_mapping": {"*": {user: {"password": password}}}},
            "http_authenticator": {"accept_basic": True, "accept_digest": False, "default_to_digest": False},
            "verbose": 0,
            "logging": {"enable": False},
        }
    )

    def logged(environ, start_response):
        def sr(status, headers, exc_info=None):
            with open(log, "a") as f:
                f.write(
                    json.dumps(
                        {"method": environ["REQUEST_METHOD"], "path": environ.get("PATH_INFO", ""), "status": int(status.split()[0])}
                    )
                    + "\n"
                )
            return start_response(status, headers, exc_info)

        return app(environ, sr)

    server = wsgi.Server(("127.0.0.1", port), logged)
    try:
        server.start()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
