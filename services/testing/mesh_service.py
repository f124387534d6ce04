"""One of the in-process mesh's gRPC services: served in the mesh's own event loop, or
as a child process where a test needs what only a process does (a SIGKILL mid-request,
an event loop of its own). Stopped and started again, it comes back on the port its
first start got, which is where the mesh's other parts point."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from services.grpc_runtime import GrpcServer, ServerConfig

from .child_process import HOST
from .dispatcher_process import ServiceProcess


@dataclass(eq=False)
class MeshService:
    server: GrpcServer | None = None  # serving in this process
    process: ServiceProcess | None = None  # or as a child process
    port: int = 0  # 0 until the first start

    async def serve(self, build: Callable[[ServerConfig], GrpcServer]) -> None:
        """Serve in this process; `build` makes the server from where it listens."""
        self.server = build(ServerConfig(host=HOST, port=self.port))
        await self.server.start()
        self.port = self.server.port

    async def spawn(self, process_type: type[ServiceProcess], env: Mapping[str, str], *, nice: int) -> None:
        """Serve as a child process of `process_type` with the settings `env`."""
        self.process = process_type(env, port=self.port, nice=nice)
        # Chosen before the process serves: a client may be pointed at it while it starts.
        self.port = self.process.port
        await self.process.start()

    async def stop(self, grace: float = 0.0) -> None:
        """Whichever way it serves; `grace` is for in-flight requests in this process."""
        if self.process is not None:
            await self.process.stop()
            self.process = None
        if self.server is not None:
            await self.server.stop(grace=grace)
            self.server = None
