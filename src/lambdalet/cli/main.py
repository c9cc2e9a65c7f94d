"""The ``lambdalet`` command: a thin layer over the API client and the Node.

``serve`` runs a node; every other command calls a running node's API at ``--endpoint-url``
(default ``http://127.0.0.1:9000``, or ``LAMBDALET_ENDPOINT_URL``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lambdalet.client import ApiError, Client

app = typer.Typer(
    help="lambdalet: run AWS Lambda functions on your own machine.", no_args_is_help=True
)
console = Console()
errors = Console(stderr=True)

Endpoint = Annotated[
    str, typer.Option("--endpoint-url", envvar="LAMBDALET_ENDPOINT_URL", help="API endpoint")
]


def _client(endpoint_url: str) -> Client:
    return Client(endpoint_url)


def _fail(error: Exception) -> typer.Exit:
    # Messages quote patterns like [a-zA-Z0-9-_]+: escaped, or rich would take them for markup.
    if isinstance(error, ApiError):
        errors.print(f"[red]{error.code}[/red]: {escape(error.message)}", soft_wrap=True)
    else:
        errors.print(f"[red]error[/red]: {escape(str(error))}", soft_wrap=True)
    return typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="where state and code are kept")] = None,
    deploy: Annotated[
        list[Path] | None, typer.Option(help="function directory to deploy once started")
    ] = None,
) -> None:
    """Run a lambdalet node (the embedded default: SQLite and a local data directory)."""
    import uvloop

    from lambdalet.api.serving import make_server
    from lambdalet.config import Settings
    from lambdalet.node import Node

    overrides: dict[str, Any] = {"host": host, "port": port, "data_dir": data_dir}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    node = Node(settings)
    server = make_server(node, log_level=settings.log_level)
    # --deploy signs with the node's own first key: accepted even when signatures are checked.
    access_key, (secret, _) = next(iter(settings.signing_keys().items()))
    own_credentials = (access_key, secret, settings.region)

    async def deploy_when_started() -> None:
        await server.listening.wait()
        for directory in deploy or []:
            try:
                result = await asyncio.to_thread(
                    _deploy_with_new_client, settings.base_url, directory, own_credentials
                )
                console.print(f"deployed [bold]{result['FunctionName']}[/bold] from {directory}")
            except (ApiError, OSError, ValueError) as error:
                errors.print(f"[red]could not deploy {directory}[/red]: {escape(str(error))}")
        console.print(f"lambdalet is serving on {settings.base_url}")

    async def run() -> None:
        await asyncio.gather(server.serve(), deploy_when_started())

    # uvicorn stops gracefully on SIGTERM, then re-raises the signal to the handler it found: with
    # the default one the process would die of it (status 143) after a clean stop; exit 0 instead.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvloop.run(run())


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _deploy_with_new_client(
    endpoint_url: str, directory: Path, credentials: tuple[str, str, str]
) -> dict[str, Any]:
    client = Client(endpoint_url, credentials=credentials)
    try:
        return client.deploy(directory)
    finally:
        client.close()


@app.command("deploy")
def deploy_command(
    directory: Annotated[Path, typer.Argument(help="directory with the function's code")],
    endpoint_url: Endpoint = "http://127.0.0.1:9000",
    name: Annotated[
        str | None, typer.Option(help="function name (default: manifest or directory name)")
    ] = None,
    handler: Annotated[str | None, typer.Option(help="module.function, e.g. app.handler")] = None,
    runtime: Annotated[str | None, typer.Option(help="runtime id, e.g. python3.11")] = None,
    memory: Annotated[int | None, typer.Option(help="memory in MB (128-10240)")] = None,
    timeout: Annotated[int | None, typer.Option(help="timeout in seconds (1-900)")] = None,
) -> None:
    """Create a function from a directory, or update it if it exists."""
    if not directory.is_dir():
        raise _fail(ValueError(f"{directory} is not a directory"))
    client = _client(endpoint_url)
    try:
        result = client.deploy(
            directory, name=name, handler=handler, runtime=runtime, memory=memory, timeout=timeout
        )
    except (ApiError, OSError, ValueError) as error:
        raise _fail(error) from None
    finally:
        client.close()
    console.print(
        f"deployed [bold]{result['FunctionName']}[/bold] ({result['Runtime']}, {result['Handler']},"
        f" {result['MemorySize']} MB) CodeSha256 {result['CodeSha256']}"
    )


@app.command()
def invoke(
    name: Annotated[str, typer.Argument(help="function name")],
    payload: Annotated[str, typer.Option(help="JSON event")] = "{}",
    event: Annotated[
        bool, typer.Option("--event", help="invoke asynchronously (InvocationType=Event)")
    ] = False,
    endpoint_url: Endpoint = "http://127.0.0.1:9000",
) -> None:
    """Invoke a function and print its result and log tail."""
    client = _client(endpoint_url)
    try:
        response = client.invoke(
            name, payload.encode(), invocation_type="Event" if event else "RequestResponse"
        )
    except (ApiError, httpx_errors()) as error:
        raise _fail(error) from None
    finally:
        client.close()
    if event:
        console.print(f"accepted (status {response.status}, request id {response.request_id})")
        return
    if response.log_text:
        # Verbatim, as ``logs`` prints it: rich would wrap lines and expand REPORT's tabs.
        sys.stderr.write(response.log_text.rstrip("\n") + "\n")
        sys.stderr.flush()
    sys.stdout.write(response.payload.decode("utf-8", "replace") + "\n")
    if response.function_error:
        raise typer.Exit(1)


@app.command()
def bench(
    name: Annotated[str, typer.Argument(help="function name")],
    requests: Annotated[int, typer.Option("--requests", "-n", min=1, help="invokes")] = 1000,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="invokes in flight")
    ] = 8,
    payload: Annotated[str, typer.Option(help="JSON event")] = "{}",
    endpoint_url: Endpoint = "http://127.0.0.1:9000",
) -> None:
    """Invoke a function many times at once; print invokes/s and latency percentiles."""
    from lambdalet.cli.bench import run_load

    result = run_load(
        endpoint_url, name, payload.encode(), requests=requests, concurrency=concurrency
    )
    table = Table("requests", "ok", "function errors", "throttled", "failed", "invokes/s")
    table.add_row(
        f"{result.requests:,}",
        f"{result.ok:,}",
        f"{result.function_errors:,}",
        f"{result.throttled:,}",
        f"{result.failed:,}",
        f"{result.per_s:,.0f}",
    )
    console.print(table)
    points = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
    console.print(
        "latency (ms): " + ", ".join(f"{k} {result.percentile_ms(q):.2f}" for k, q in points)
    )
    if result.failed:
        raise typer.Exit(1)


def httpx_errors() -> type[Exception]:
    """The httpx error base class, imported lazily."""
    import httpx

    return httpx.HTTPError


@app.command("ls")
def list_command(endpoint_url: Endpoint = "http://127.0.0.1:9000") -> None:
    """List functions."""
    client = _client(endpoint_url)
    try:
        found = client.list_functions()
    except (ApiError, httpx_errors()) as error:
        raise _fail(error) from None
    finally:
        client.close()
    table = Table(
        "Name", "Runtime", "Handler", "Memory (MB)", "Timeout (s)", "Code size", "Last modified"
    )
    for function in found:
        table.add_row(
            function["FunctionName"],
            function["Runtime"],
            function["Handler"],
            str(function["MemorySize"]),
            str(function["Timeout"]),
            f"{function['CodeSize']:,} B",
            function["LastModified"],
        )
    console.print(table)


@app.command()
def usage(
    month: Annotated[str | None, typer.Option(help="YYYY-MM (UTC); default: this month")] = None,
    endpoint_url: Endpoint = "http://127.0.0.1:9000",
) -> None:
    """Print a month's invocations, GB-seconds and cost per function, after the free tier."""
    client = _client(endpoint_url)
    try:
        found = client.usage(month)
    except (ApiError, httpx_errors()) as error:
        raise _fail(error) from None
    finally:
        client.close()
    table = Table("Function", "Invocations", "Errors", "Billed (ms)", "GB-seconds", "List cost")
    for line in found["Functions"]:
        table.add_row(
            line["FunctionName"],
            f"{line['Invocations']:,}",
            f"{line['Errors']:,}",
            f"{line['BilledDurationMs']:,}",
            f"{line['GBSeconds']:,.3f}",
            f"${line['ListCost']:,.4f}",
        )
    console.print(f"usage in {found['Month']} (UTC)")
    console.print(table)
    totals, free, cost = found["Totals"], found["FreeTier"], found["Cost"]
    console.print(
        f"total {totals['Invocations']:,} invocations, {totals['GBSeconds']:,.3f} GB-s;"
        f" free tier {free['Requests']:,} invocations, {free['GBSeconds']:,.3f} GB-s;"
        f" to pay ${cost['Requests']:,.4f} requests + ${cost['Compute']:,.4f} compute ="
        f" ${cost['Total']:,.4f}"
    )


@app.command()
def logs(
    name: Annotated[str, typer.Argument(help="function name")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new lines")] = False,
    endpoint_url: Endpoint = "http://127.0.0.1:9000",
) -> None:
    """Print a function's log lines (START, output, END, REPORT)."""
    client = _client(endpoint_url)
    after_id = 0
    try:
        while True:
            for entry in client.read_logs(name, after_id):
                after_id = entry["id"]
                sys.stdout.write(entry["message"] + "\n")
            sys.stdout.flush()
            if not follow:
                return
            time.sleep(0.5)
    except (ApiError, httpx_errors()) as error:
        raise _fail(error) from None
    except KeyboardInterrupt:
        return
    finally:
        client.close()


@app.command("rm")
def remove(
    name: Annotated[str, typer.Argument(help="function name")],
    endpoint_url: Endpoint = "http://127.0.0.1:9000",
) -> None:
    """Delete a function."""
    client = _client(endpoint_url)
    try:
        client.delete_function(name)
    except (ApiError, httpx_errors()) as error:
        raise _fail(error) from None
    finally:
        client.close()
    console.print(f"deleted {name}")


schedule_app = typer.Typer(
    help="Run functions on a schedule: rate(...), cron(...) or at(...) (EventBridge Scheduler).",
    no_args_is_help=True,
)
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("add")
def schedule_add(
    function: Annotated[str, typer.Argument(help="function name (or name:qualifier)")],
    expression: Annotated[
        str,
        typer.Argument(help="'rate(5 minutes)', 'cron(0 12 * * ? *)' or 'at(2026-12-01T10:00:00)'"),
    ],
    name: Annotated[
        str | None, typer.Option(help="schedule name (default: the function's name)")
    ] = None,
    event_input: Annotated[
        str | None,
        typer.Option("--input", help="JSON event to send (default: EventBridge's Scheduled Event)"),
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="time zone of cron and at expressions (default: UTC)")
    ] = None,
    endpoint_url: Endpoint = "http://127.0.0.1:9000",
) -> None:
    """Invoke a function on a schedule."""
    client = _client(endpoint_url)
    schedule_name = name or function.split(":", 1)[0]
    try:
        function_arn = client.get_function(function)["Configuration"]["FunctionArn"]
        arn = client.create_schedule(
            schedule_name, expression, function_arn, event=event_input, timezone=timezone
        )
    except (ApiError, httpx_errors()) as error:
        raise _fail(error) from None
    finally:
        client.close()
    console.print(f"scheduled [bold]{escape(function)}[/bold] {escape(expression)}: {arn}")


@schedule_app.command("ls")
def schedule_list(endpoint_url: Endpoint = "http://127.0.0.1:9000") -> None:
    """List schedules."""
    client = _client(endpoint_url)
    try:
        found = [client.get_schedule(summary["Name"]) for summary in client.list_schedules()]
    except (ApiError, httpx_errors()) as error:
        raise _fail(error) from None
    finally:
        client.close()
    table = Table("Name", "State", "Expression", "Time zone", "Target", "Input")
    for schedule in found:
        target = schedule["Target"]
        table.add_row(
            schedule["Name"],
            schedule["State"],
            escape(schedule["ScheduleExpression"]),
            schedule.get("ScheduleExpressionTimezone", "UTC"),
            target["Arn"].rsplit(":function:", 1)[-1],
            escape(target.get("Input", "Scheduled Event")),
        )
    console.print(table)


@schedule_app.command("rm")
def schedule_remove(
    name: Annotated[str, typer.Argument(help="schedule name")],
    endpoint_url: Endpoint = "http://127.0.0.1:9000",
) -> None:
    """Delete a schedule."""
    client = _client(endpoint_url)
    try:
        client.delete_schedule(name)
    except (ApiError, httpx_errors()) as error:
        raise _fail(error) from None
    finally:
        client.close()
    console.print(f"deleted schedule {escape(name)}")


route_app = typer.Typer(
    help="Serve functions over HTTP: routes of an HTTP API (API Gateway style).",
    no_args_is_help=True,
)
app.add_typer(route_app, name="route")
ApiName = Annotated[str, typer.Option("--api", help="name of the HTTP API")]


def _existing_api(client: Client, name: str) -> dict[str, Any]:
    api = client.http_api(name)
    if api is None:
        raise ApiError(404, "NotFoundException", f"No HTTP API named {name}")
    return api


@route_app.command("add")
def route_add(
    function: Annotated[str, typer.Argument(help="function name (or name:alias)")],
    route_key: Annotated[
        str, typer.Argument(help="'GET /items/{id}', 'ANY /{proxy+}', '$default'")
    ],
    api_name: ApiName = "lambdalet",
    endpoint_url: Endpoint = "http://127.0.0.1:9000",
) -> None:
    """Route requests to a function (the API and its $default stage are made if missing)."""
    client = _client(endpoint_url)
    try:
        function_arn = client.get_function(function)["Configuration"]["FunctionArn"]
        if ":" in function:
            function_arn += ":" + function.split(":", 1)[1]
        api = client.http_api(api_name, create=True)
        assert api is not None
        client.add_route(api["apiId"], route_key, function_arn)
    except (ApiError, httpx_errors()) as error:
        raise _fail(error) from None
    finally:
        client.close()
    console.print(
        f"routed {escape(route_key)} of API {api['apiId']} ({escape(api_name)}) to"
        f" [bold]{escape(function)}[/bold]: {api['apiEndpoint']}"
    )


@route_app.command("ls")
def route_list(
    api_name: ApiName = "lambdalet", endpoint_url: Endpoint = "http://127.0.0.1:9000"
) -> None:
    """List the routes of an HTTP API."""
    client = _client(endpoint_url)
    try:
        api = _existing_api(client, api_name)
        routes = client.list_routes(api["apiId"])
    except (ApiError, httpx_errors()) as error:
        raise _fail(error) from None
    finally:
        client.close()
    table = Table("Route id", "Route key", "Function", "Authorization")
    for route, function_arn in routes:
        table.add_row(
            route["routeId"],
            escape(route["routeKey"]),
            function_arn.rsplit(":function:", 1)[-1],
            route.get("authorizationType", "NONE"),
        )
    console.print(f"{api['apiEndpoint']} ({escape(api_name)})")
    console.print(table)


@route_app.command("rm")
def route_remove(
    route_key: Annotated[str, typer.Argument(help="the route key to remove, e.g. 'GET /items'")],
    api_name: ApiName = "lambdalet",
    endpoint_url: Endpoint = "http://127.0.0.1:9000",
) -> None:
    """Remove a route (and its integration) from an HTTP API."""
    client = _client(endpoint_url)
    try:
        api = _existing_api(client, api_name)
        if not client.remove_route(api["apiId"], route_key):
            raise ApiError(404, "NotFoundException", f"No route {route_key} in {api_name}")
    except (ApiError, httpx_errors()) as error:
        raise _fail(error) from None
    finally:
        client.close()
    console.print(f"removed {escape(route_key)} from {escape(api_name)}")


@app.command()
def doctor() -> None:
    """Say which runtimes and which sandbox isolation this host offers; exit 1 if any is off."""
    from lambdalet.config import Settings
    from lambdalet.sandbox import auto_choice
    from lambdalet.sandbox.namespaces import isolation_report

    settings = Settings()
    runtimes = Table("Runtime", "Runs with")
    for runtime_id, program in sorted(settings.runtimes.items()):
        runtimes.add_row(runtime_id, program)
    console.print(runtimes)
    isolation = Table("Isolation (namespaces backend)", "Active", "Detail")
    missing = 0
    for feature, active, detail in isolation_report():
        missing += not active
        mark = "[green]yes[/green]" if active else "[bold red]NO[/bold red]"
        isolation.add_row(feature, mark, detail)
    console.print(isolation)
    console.print(f"sandbox backend in use: [bold]{settings.sandbox_backend}[/bold]")
    if settings.sandbox_backend == "auto":
        chosen, why = auto_choice()
        if chosen == "process":
            errors.print(
                f"[bold red]auto falls back to the process backend ({escape(why)}):"
                " functions are NOT isolated[/bold red]"
            )
        else:
            console.print(f"auto picks [bold]{chosen}[/bold]: {why}")
    if missing:
        errors.print(f"[bold red]{missing} isolation feature(s) are off on this host[/bold red]")
        raise typer.Exit(1)


def main() -> None:
    """Entry point of the ``lambdalet`` console script."""
    app()


if __name__ == "__main__":
    main()
