import sys

from services.common import grpc_polling

# As `friday` does: before grpc loads here and in every process the benchmark starts.
grpc_polling.prefer_legacy_epoll()

from bench.cli import main  # noqa: E402

sys.exit(main())
