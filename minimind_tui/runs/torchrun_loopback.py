"""`torchrun --standalone` whose TCP stores listen on the loopback interface only.

`torchrun --standalone` starts a c10d TCPStore for the rendezvous and another one shared with the ranks, and a
TCPStore listens on every interface whatever host name it is given (--rdzv-endpoint 127.0.0.1:PORT or
--master_addr 127.0.0.1 only tell the clients where to connect). The store has no authentication, and the
agent unpickles the rendezvous state it reads from it: anyone who can reach the port can disturb or take over
the run. TCPStore accepts an already listening socket (master_listen_fd), so this wrapper runs torchrun itself
with every store server it creates handed a socket bound to 127.0.0.1. The ranks only connect as clients
(TORCHELASTIC_USE_AGENT_STORE), to MASTER_ADDR=127.0.0.1 (--local-addr).

Single node only; the dashboard starts multi-GPU runs with it:

    python -m minimind_tui.runs.torchrun_loopback --nproc_per_node 2 -m minimind_tui train sft ...

Several nodes need an address the other nodes can reach: run torchrun yourself, and keep its port unreachable
from outside the cluster (README, "Several GPUs").
"""
from __future__ import annotations

import socket
import sys

LOOPBACK = "127.0.0.1"
# TCPStore's parameters in order, so positional and keyword calls are read alike.
_STORE_ARGS = ("host_name", "port", "world_size", "is_master", "timeout", "wait_for_workers", "multi_tenant",
               "master_listen_fd", "use_libuv")
STORE_CLASS = "TCPStore"
_listeners: list[socket.socket] = []  # kept for the life of the process: the stores use their descriptors


def loopback_listener(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    sock.listen(socket.SOMAXCONN)
    return sock


def loopback_store_class(base: type) -> type:
    """A TCPStore subclass whose servers listen on 127.0.0.1 only (clients are unchanged)."""

    class LoopbackTCPStore(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            kw = dict(zip(_STORE_ARGS, args, strict=False))
            kw.update(kwargs)
            if kw.get("is_master") and kw.get("master_listen_fd") is None:
                sock = loopback_listener(int(kw.get("port") or 0))
                _listeners.append(sock)
                # The libuv server is the one that takes a listening descriptor.
                kw.update(port=sock.getsockname()[1], master_listen_fd=sock.fileno(), use_libuv=True)
            super().__init__(**kw)

    return LoopbackTCPStore


def install() -> None:
    """Make every TCPStore torchrun's agent creates a loopback one (the names it looks them up by)."""
    import torch.distributed as dist
    from torch.distributed.elastic.rendezvous import c10d_rendezvous_backend, static_tcp_rendezvous

    store = loopback_store_class(dist.TCPStore)
    # dynamic_rendezvous creates the store it shares with the ranks as dist.TCPStore; the rendezvous backends
    # imported the name into their own modules.
    for module in (dist, c10d_rendezvous_backend, static_tcp_rendezvous):
        setattr(module, STORE_CLASS, store)


def torchrun_args(argv: list[str]) -> list[str]:
    return ["--standalone", "--local-addr", LOOPBACK, *argv]


def main(argv: list[str] | None = None) -> None:
    install()
    from torch.distributed.run import main as torchrun
    torchrun(torchrun_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
