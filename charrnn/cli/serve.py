"""`charrnn serve`: checkpoint -> a model behind HTTP on localhost, until Ctrl-C."""

from __future__ import annotations

from typing import Annotated

import typer

from ..api import load
from ..errors import CharRNNError
from ..serve import Limits, Service, make_server
from .options import CheckpointArg, DeviceName, DeviceOpt, err

_DEFAULT = Limits()


def serve(
    checkpoint: CheckpointArg,
    host: Annotated[str, typer.Option(help="Address to listen on. The default answers this machine only.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port, printed at start).", min=0, max=65535)] = 8000,
    max_length: Annotated[int, typer.Option(help="Characters one request may generate.", min=1)] = _DEFAULT.max_length,
    timeout: Annotated[float, typer.Option(
        help="Seconds a generation may take; then it stops with what it has.", min=0.1)] = _DEFAULT.max_seconds,  # fmt: skip
    max_body: Annotated[int, typer.Option(help="Bytes a request body may hold.", min=1)] = _DEFAULT.max_body,
    max_requests: Annotated[int, typer.Option(
        help="Requests in flight at once; more are answered 503.", min=1)] = _DEFAULT.max_requests,  # fmt: skip
    batch: Annotated[bool, typer.Option(
        help="Step concurrent unseeded generations together as one batch (much faster for many clients);"
             " --no-batch steps each alone.")] = True,  # fmt: skip
    device: DeviceOpt = DeviceName.auto,
) -> None:
    """Serve a model over HTTP: POST /generate and /score, GET /health (JSON)."""
    model = load(checkpoint, device.value)
    limits = Limits(max_length, timeout, max_body, max_requests)
    try:
        service = Service(model, limits, batch)
        server = make_server(service, host, port)
    except OSError as e:
        raise CharRNNError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    bound_host, bound_port = server.server_address[:2]
    err.print(f"serving {model.path} on http://{bound_host}:{bound_port} (POST /generate, /score; GET /health);"
              " Ctrl-C stops", markup=False, highlight=False)  # fmt: skip
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        err.print("stopped", markup=False)
    finally:
        server.server_close()
        service.close()
