"""`meshgov stream serve`: relay events ports to one governed subject per principal and purpose.

Each raw event of an ``events`` port is published, filtered and masked by the same decision and
secure SQL as a query, to ``gov.<purpose>.<principal>.<domain>.<name>.<port>``; malformed and
oversize events go to ``dlq.<domain>.<name>.<port>`` with the reason. Exit codes: 0 stopped,
2 invalid input, 4 broker unavailable.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from meshgov.cli._common import err_console, hash_key_of, load_principal_file, reports_errors

if TYPE_CHECKING:
    from meshgov.streams import Relay

app = typer.Typer(help="Governed event streams (NATS JetStream).", no_args_is_help=True)


@app.command("serve")
@reports_errors
def serve(
    ports: Annotated[
        list[str] | None,
        typer.Argument(help="PRODUCT:PORT of events ports (default: every events port)."),
    ] = None,
    catalog: Annotated[
        Path, typer.Option(help="Directory of product manifests (the mesh).", show_default=False)
    ] = Path("examples/mesh"),
    principal: Annotated[
        list[Path] | None,
        typer.Option(help="Principal file of a subscriber (repeat for several)."),
    ] = None,
    purpose: Annotated[
        list[str] | None, typer.Option(help="Purpose of the governed streams (repeatable).")
    ] = None,
    nats: Annotated[str, typer.Option(help="NATS server URL.")] = "nats://127.0.0.1:4222",
    policies: Annotated[
        Path | None, typer.Option(help="Policy directory (default: ./policies).")
    ] = None,
    batch: Annotated[
        int, typer.Option(min=1, max=10_000, help="Events per micro-batch.")
    ] = 4000,  # RelayConfig.batch (not imported here: it would double the CLI's start-up)
) -> None:
    """Relay events to governed subjects until interrupted (Ctrl-C)."""
    import asyncio
    import signal

    from meshgov.catalog import load_catalog
    from meshgov.config import Settings
    from meshgov.errors import AccessDenied, InputError
    from meshgov.event_batches import events_port
    from meshgov.gate import default_policies_dir
    from meshgov.gateway import Gateway
    from meshgov.governed import governed_port, parse_port_ref
    from meshgov.policy_backends import load_bundle_dir
    from meshgov.streams import RelayConfig, Subscriber, events_ports, run_relays

    gateway = Gateway(load_catalog(catalog), load_bundle_dir(policies or default_policies_dir()))
    chosen = [parse_port_ref(p) for p in ports] if ports else events_ports(gateway)
    for product, port_name in chosen:
        events_port(gateway, product, port_name)  # an unknown or stream-less port exits 2
    if not chosen:
        raise InputError(f"no events port with a `stream:` in {catalog}")
    if not principal or not purpose:
        raise InputError("give at least one --principal and one --purpose (who receives what)")
    subscribers = [
        Subscriber(load_principal_file(path), name) for path in principal for name in purpose
    ]

    from meshgov.core.collection import tune_for_batches

    settings = Settings()  # MESHGOV_HASH_KEY, MESHGOV_STREAM_NAMESPACE: as the service's relay
    hash_key = hash_key_of(settings)
    tune_for_batches()  # a relay process: batches of short-lived objects (measured)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def started(relays: list[Relay]) -> None:
            for relay in relays:
                subjects = ", ".join(relay.subject_for(s) for s in subscribers)
                err_console.print(f"relaying {relay.raw_subject} → {subjects}", markup=False)
                # The policy is fixed for this process: a subscriber denied now gets nothing
                # until restarted, which a silent relay would leave the user to guess.
                for subscriber in subscribers:
                    try:
                        governed_port(
                            gateway,
                            subscriber.principal,
                            subscriber.purpose,
                            relay.product,
                            relay.port,
                        )
                    except AccessDenied as exc:
                        err_console.print(
                            f"[yellow]warning[/] nothing is relayed to "
                            f"{escape(relay.subject_for(subscriber))}: {escape(exc.message)}"
                        )

        await run_relays(
            nats,
            lambda: gateway,
            hash_key,
            chosen,
            subscribers,
            stop,
            RelayConfig.in_namespace(settings.stream_namespace, batch=batch),
            on_started=started,
        )

    asyncio.run(main())
