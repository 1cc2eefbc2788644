"""``python -m milvus_hash.store.server_launcher ARGS``: the ``milvus`` package's ``milvus-server``,
whose port check binds as Milvus itself does.

``milvus-server`` checks each port it is given by binding it without ``SO_REUSEADDR`` and takes the
next one when that fails. A port its previous run served is in ``TIME_WAIT`` for a minute after a
stop, so that check failed on every quick restart and the server moved to the next port, although
Milvus (a Go program: ``SO_REUSEADDR`` on its listeners) could have listened on it. Here the check
sets ``SO_REUSEADDR`` too: a port in ``TIME_WAIT`` is taken again, a port another program listens
on is still refused (and the next one taken, as before).
"""

from __future__ import annotations

import socket
import sys


def _try_bind_port(self, port: int):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        return sock
    except (OSError, ValueError, OverflowError):
        sock.close()
        return None


def main() -> int | None:
    import milvus

    config = getattr(milvus, "MilvusServerConfig", None)
    if config is not None and hasattr(config, "try_bind_port"):
        config.try_bind_port = _try_bind_port
    sys.argv[0] = "milvus-server"
    return milvus.main()


if __name__ == "__main__":
    sys.exit(main())
