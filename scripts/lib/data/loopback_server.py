"""A loopback HTTP server that serves a directory for the duration of a download (``serve_local`` of the offline
demo and tests, ``lib.data.chunk_download``).

The URLs in the pool name ``bind`` (``127.0.0.1:PORT``); unless ``pin_port`` is true the server listens on a free
port and img2dataset reaches it as its HTTP proxy (:func:`serve_directory`), so two demo runs at once do not collide
on the port. Requests for any other origin are refused.
"""

import contextlib
import functools
import http.server
import logging
import threading

log = logging.getLogger("entitynet.download")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    # Absolute-form request targets ("GET http://127.0.0.1:18765/x"), i.e. requests sent to this server as an HTTP
    # proxy, are served when their origin is this one (the URL origin of the pool); any other origin is refused.
    origin: str | None = None

    def parse_request(self):
        if not super().parse_request():
            return False
        if "://" in self.path.split("?", 1)[0]:
            if self.origin is None or not self.path.startswith(self.origin + "/"):
                self.send_error(403, f"this loopback server serves {self.origin or 'no proxied origin'} only")
                return False
            self.path = self.path[len(self.origin):]
        return True

    def log_message(self, fmt, *args):  # noqa: D401 - keep the rule log readable
        log.debug("local server: " + fmt, *args)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


@contextlib.contextmanager
def serve_directory(directory: str, bind: str, pin_port: bool = True):
    """Serve ``directory`` over HTTP in a background thread; yields the environment variables the downloader needs.

    ``bind`` (``127.0.0.1:PORT``) is the origin that the URLs name. ``pin_port``: listen on that port (yields
    ``{}``). Otherwise listen on a free loopback port and yield ``http_proxy`` pointing at it: urllib (img2dataset)
    then sends every ``http://`` request there, and the server answers those for ``http://<bind>/`` from
    ``directory``, so two demo downloads at once cannot collide on the port while the URLs, and every output that
    records them, stay the same.
    """
    host, port = bind.rsplit(":", 1)
    if host not in LOOPBACK:
        raise ValueError(f"serve_local.bind {bind!r}: only loopback addresses are allowed")
    handler_cls = type("_Handler", (_QuietHandler,), {"origin": f"http://{bind}"})
    handler = functools.partial(handler_cls, directory=str(directory))
    try:
        server = http.server.ThreadingHTTPServer((host, int(port) if pin_port else 0), handler)
    except OSError as e:
        raise RuntimeError(f"cannot serve {directory} on {bind}: {e} (is another demo download running? Leave "
                           "serve_local.pin_port false to serve on a free port)") from e
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    actual = f"{host}:{server.server_address[1]}"
    env = {} if pin_port else {"http_proxy": f"http://{actual}", "no_proxy": ""}
    log.info("serving %s as http://%s%s", directory, bind, "" if pin_port else f" (listening on {actual}, a proxy)")
    try:
        yield env
    finally:
        server.shutdown()
        server.server_close()
