"""tests/rehearsal/servers.check_free: the port check before the rehearsal's endpoints start."""
import socket

import pytest

from rehearsal.servers import check_free


def test_ports_of_a_just_finished_run_count_as_free_but_a_live_listener_does_not():
    """A rerun on the same ports right after a run (the rehearsal tests do this) must not be refused because the
    finished servers' closed connections sit in TIME_WAIT for up to a minute; the servers bind with SO_REUSEADDR,
    so the check must too. Fails if check_free binds without it (a rerun within a minute then fails, depending on
    timing) or if it lets a port with a live listener through."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.listen(1)
    with pytest.raises(RuntimeError, match=f"port {port} .*in use"):
        check_free({"photos": port})

    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = listener.accept()
    conn.close()  # the server side closes first, as an HTTP/1.0 server does: its socket ends in TIME_WAIT
    client.recv(1)
    client.close()
    listener.close()
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # the situation is real: a bind without SO_REUSEADDR is refused
    check_free({"photos": port})
