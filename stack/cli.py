"""The `caretaker` command: one entry point for every process and admin task."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from caretaker.settings import MqttTarget, get_settings

if TYPE_CHECKING:
    from dashboards.provisioning import Target

app = typer.Typer(help="Caretaker: equipment telemetry and patrol inspection for properties.",
                  no_args_is_help=True, add_completion=False)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
mqtt_app = typer.Typer(help="MQTT logins of devices, guard handhelds and services.",
                       no_args_is_help=True)
app.add_typer(mqtt_app, name="mqtt-credentials")
notify_app = typer.Typer(help="Notifications: the site's receivers.", no_args_is_help=True)
app.add_typer(notify_app, name="notify")
report_app = typer.Typer(help="Reports: the weekly inspection report.", no_args_is_help=True)
app.add_typer(report_app, name="report")
dashboards_app = typer.Typer(help="Grafana dashboards: export, push, the reader role.",
                             no_args_is_help=True)
app.add_typer(dashboards_app, name="dashboards")
user_app = typer.Typer(help="People's logins: users of the console.", no_args_is_help=True)
app.add_typer(user_app, name="user")


def _logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def fail(message: str) -> None:
    """Print a clear error and exit non-zero."""
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(1)


@app.command()
def migrate() -> None:
    """Apply the database migrations not yet applied."""
    from caretaker.db import connect
    from caretaker.migrations import migrate as run

    with connect() as conn:
        applied = run(conn)
    typer.echo(f"applied {len(applied)} migration(s)" + "".join(
        f"\n  {m.version:03d}_{m.name}" for m in applied))


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="admin, supervisor, engineer, frontdesk, guard or "
                                           "viewer")],
    site: Annotated[str | None, typer.Option(help="limit the token to this site")] = None,
    guard: Annotated[str | None, typer.Option(help="the guard a guard token belongs to")] = None,
    name: Annotated[str | None, typer.Option(help="a label for the token")] = None,
    expires: Annotated[str | None, typer.Option(help="lifetime, e.g. 90d, 12h or 'never' "
                       "(default: CARETAKER_TOKEN_DEFAULT_EXPIRY, 365d)")] = None,
) -> None:
    """Create an API token; the token is printed alone on the last line."""
    from psycopg.errors import ForeignKeyViolation

    from caretaker.db import connect
    from caretaker.durations import parse_duration
    from caretaker.tokens import create_token

    try:
        lifetime: timedelta | Literal["never"] | None = (
            None if expires is None else "never" if expires == "never"
            else parse_duration(expires, what="--expires"))
        with connect() as conn:
            token = create_token(conn, role=role, site_id=site, guard_id=guard, name=name,
                                 expires=lifetime)
    except ValueError as exc:
        fail(str(exc))
    except ForeignKeyViolation:
        fail(f"there is no site {site!r}: load it first (`caretaker load FILE`)")
    article = "an" if role[0] in "aeiou" else "a"
    typer.echo(f"created {article} {role} token" + (f" for site {site}" if site else ""),
               err=True)
    typer.echo(token)


@token_app.command("list")
def token_list(
    all_: Annotated[bool, typer.Option("--all", help="also revoked and expired tokens")] = False,
) -> None:
    """List tokens: prefix, role, site, created, expires, last used (never the secret)."""
    from caretaker.db import connect
    from caretaker.tokens import list_tokens

    def when(at: datetime | None) -> str:
        return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if at else "-"

    with connect() as conn:
        rows = list_tokens(conn, include_inactive=all_)
    table = [("PREFIX", "ROLE", "SITE", "GUARD", "NAME", "CREATED", "EXPIRES", "LAST USED",
              "STATE")]
    for t in rows:
        state = "revoked" if t.revoked_at else "expired" if t.expired else "active"
        table.append((t.prefix or f"#{t.id}", t.role, t.site_id or "*", t.guard_id or "-",
                      t.name, when(t.created_at), when(t.expires_at) if t.expires_at
                      else "never", when(t.last_used_at), state))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@token_app.command("revoke")
def token_revoke(
    prefix: Annotated[str, typer.Argument(help="the token's prefix from `caretaker token "
                                          "list` (or #ID for a token listed without one)")],
) -> None:
    """Revoke a token: it is refused (401) from the next request on."""
    from caretaker.db import connect
    from caretaker.errors import CaretakerError
    from caretaker.tokens import revoke

    try:
        with connect() as conn:
            info = revoke(conn, prefix)
    except CaretakerError as exc:
        fail(exc.message)
    typer.echo(f"revoked the {info.role} token {info.prefix or '#' + str(info.id)}"
               f" ({info.name})")


def _read_password(from_stdin: bool) -> str:
    """The new password: one line of standard input, or typed twice at a terminal."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        fail("give the password on standard input with --password-stdin")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@user_app.command("create")
def user_create(
    name: Annotated[str, typer.Argument(help="the login name")],
    role: Annotated[str, typer.Option(help="admin, supervisor, engineer, frontdesk, guard or "
                                           "viewer")],
    site: Annotated[str | None, typer.Option(help="limit the user to this site")] = None,
    guard: Annotated[str | None, typer.Option(help="a guard user's guard id")] = None,
    language: Annotated[str | None, typer.Option(help="zh-CN or en (default: the site's)")
                        ] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password "
                              "from standard input (one line)")] = False,
) -> None:
    """Create a user who logs in at /login; the password is never echoed or logged."""
    from caretaker.db import connect
    from caretaker.errors import CaretakerError
    from caretaker.users import create_user

    password = _read_password(password_stdin)
    try:
        with connect() as conn:
            user = create_user(conn, name, password, role=role, site_id=site, guard_id=guard,
                               language=language,
                               min_length=get_settings().password_min_length)
    except CaretakerError as exc:
        fail(exc.message)
    typer.echo(f"created user {user.name} ({user.role}"
               + (f", site {user.site_id}" if user.site_id else ", every site")
               + (f", guard {user.guard_id}" if user.guard_id else "") + ")")


@user_app.command("list")
def user_list() -> None:
    """List users: name, role, site, guard, language, state, last login (never a password)."""
    from caretaker.clock import system_clock
    from caretaker.db import connect
    from caretaker.users import list_users

    def when(at: datetime | None) -> str:
        return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if at else "-"

    now = system_clock()
    with connect() as conn:
        users = list_users(conn)
    table = [("NAME", "ROLE", "SITE", "GUARD", "LANGUAGE", "STATE", "CREATED", "LAST LOGIN")]
    for u in users:
        state = ("disabled" if u.disabled else
                 f"locked until {when(u.locked_until)}" if u.locked_until and u.locked_until > now
                 else "active")
        table.append((u.name, u.role, u.site_id or "*", u.guard_id or "-", u.language or "site",
                      state, when(u.created_at), when(u.last_login_at)))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@user_app.command("disable")
def user_disable(
    name: Annotated[str, typer.Argument(help="the login name")],
    enable: Annotated[bool, typer.Option("--enable", help="enable the user again")] = False,
) -> None:
    """Disable a user: refused at /login, and its sessions end at once."""
    from caretaker.db import connect
    from caretaker.errors import CaretakerError
    from caretaker.users import set_disabled

    try:
        with connect() as conn:
            user = set_disabled(conn, name, not enable)
    except CaretakerError as exc:
        fail(exc.message)
    typer.echo(f"{'enabled' if enable else 'disabled'} user {user.name}")


@user_app.command("password")
def user_password(
    name: Annotated[str, typer.Argument(help="the login name")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password "
                              "from standard input (one line)")] = False,
) -> None:
    """Set a user's password: its sessions end, a lock-out is lifted."""
    from caretaker.db import connect
    from caretaker.errors import CaretakerError
    from caretaker.users import set_password

    password = _read_password(password_stdin)
    try:
        with connect() as conn:
            user = set_password(conn, name, password,
                                min_length=get_settings().password_min_length)
    except CaretakerError as exc:
        fail(exc.message)
    typer.echo(f"changed the password of user {user.name}")


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="listen address")] = None,
    port: Annotated[int | None, typer.Option(help="listen port")] = None,
) -> None:
    """Serve the REST API."""
    import uvicorn

    from stack.app import api as create_api

    settings = get_settings()
    _logging()
    uvicorn.run(create_api(settings), host=host or settings.api_host,
                port=port or settings.api_port, log_level="info", access_log=False)


@app.command()
def rules() -> None:
    """Run the rules worker: rule evaluation, patrol checks, escalations, retention."""
    from stack.workers import run_rules as run

    _logging()
    run()


@app.command()
def ingest(
    workers: Annotated[int, typer.Option(min=1, help="ingest processes sharing the topics")] = 1,
    index: Annotated[int, typer.Option(min=0, help="this worker's number (its MQTT client id)")
                     ] = 0,
) -> None:
    """Run the MQTT ingest: telemetry, device status and scans into the database."""
    from stack.workers import run_ingest, supervise_ingest

    _logging()
    settings = get_settings()
    if workers > 1:
        if not settings.mqtt_url:  # the embedded broker: each worker logs in as itself
            _sync_embedded_broker(ingest_workers=workers)
        supervise_ingest(workers, settings)
    else:
        run_ingest(settings, index=index)


@app.command()
def simulate(
    config: Annotated[Path | None, typer.Option(help="site configuration YAML whose devices "
                      "and guards to simulate (default: the example site)")] = None,
    devices: Annotated[int | None, typer.Option(help="simulate a generated fleet of N devices "
                       "(mixed types, 100 per site) instead of a site configuration")] = None,
    seed: Annotated[int, typer.Option(help="same seed (and --start) → same messages")] = 1,
    speed: Annotated[float, typer.Option(help="the simulated clock runs X times faster; with "
                     "--duration it starts that long ago so timestamps stay in the past")] = 1.0,
    interval: Annotated[str | None, typer.Option(help="simulated time between a device's "
                        "readings, e.g. 5s (default 10s live, 60s with --backfill)")] = None,
    duration: Annotated[str | None, typer.Option(help="stop after this much simulated time, "
                        "e.g. 30m (default: run until interrupted)")] = None,
    scenario: Annotated[str | None, typer.Option(help="fault scenario: a packaged name "
                        "(faults, drift, slow-drift, outage, flapping, bad-payloads) or a YAML "
                        "file")] = None,
    backfill: Annotated[str | None, typer.Option(help="publish this much history (e.g. 7d) "
                        "as fast as the broker acknowledges, timestamps in the past, then "
                        "exit")] = None,
    rate: Annotated[float | None, typer.Option(help="target messages/s in total (sets each "
                    "device's interval to devices/rate; for load tests)")] = None,
    start: Annotated[datetime | None, typer.Option(help="simulated start time (UTC unless "
                     "an offset is given); default now")] = None,
    guards: Annotated[bool, typer.Option(help="simulate the site's guard patrols")] = True,
    guard_rates: Annotated[str | None, typer.Option(help="guard fault rates, e.g. late=0.1,"
                           "missed=0.05,out_of_order=0.03,repeated=0.03,offline_batch=0.05,"
                           "missed_run=0,abnormal=0.02")] = None,
    window: Annotated[int, typer.Option(help="QoS-1 messages in flight at most")] = 1000,
    truth: Annotated[Path | None, typer.Option(help="write the ground truth (devices, faults "
                     "injected and the alarms they raise, patrol runs and each visit made or "
                     "skipped) to this JSON file; a backfill writes "
                     "<state dir>/simulate-truth.json unless given")] = None,
) -> None:
    """Publish a simulated device fleet and guard patrols over MQTT (live, sped up or backfill)."""
    from caretaker.clock import system_clock
    from caretaker.durations import seconds as parse_duration
    from simulators.publisher import PublishError
    from simulators.run import Options, parse_rates
    from simulators.run import simulate as run

    _logging()
    settings = get_settings()
    try:
        opts = Options(
            config=config, devices=devices, seed=seed, speed=speed,
            interval=parse_duration(interval) if interval else None,
            duration=parse_duration(duration) if duration else None,
            scenario=scenario, backfill=parse_duration(backfill) if backfill else None,
            rate=rate, guards=guards, window=window,
            guard_rates=parse_rates(guard_rates) if guard_rates else None,
            start=start if start is None or start.tzinfo else start.replace(tzinfo=UTC),
            truth=truth if truth is not None or backfill is None
            else settings.state_dir / "simulate-truth.json")
        from caretaker.mqtt_credentials import SIMULATOR_USER

        target = settings.mqtt_login(SIMULATOR_USER)
        stats = run(opts, target=target, now=system_clock(),
                    device_logins=None if settings.mqtt_url else _simulated_device_logins)
    except (ValueError, OSError, PublishError) as exc:
        fail(str(exc))
    typer.echo(stats.summary())
    if opts.truth is not None:
        typer.echo(f"ground truth: {opts.truth}")


def _simulated_device_logins(keys: list[str]) -> dict[str, MqttTarget]:
    """Logins of the simulated devices that need their own connection (embedded broker)."""
    from psycopg import OperationalError

    from caretaker.db import connect
    from caretaker.mqtt_credentials import device_logins, sync_broker
    from caretaker.servers import LocalMosquitto

    settings = get_settings()
    try:
        with connect() as conn:
            logins = device_logins(conn, settings.state_dir, keys)
            sync_broker(conn, LocalMosquitto(settings.state_dir, settings.mqtt_port))
    except (OperationalError, RuntimeError):
        return {}  # no database: those devices use the shared connection
    target = settings.mqtt_target()
    return {key: target.login(user, password) for key, (user, password) in logins.items()}


def _sync_embedded_broker(*, ingest_workers: int = 1) -> bool:
    """Write the embedded broker's password and ACL files from the table; reload it.

    False when no embedded broker runs (the files are read when it starts).
    """
    from caretaker.db import connect
    from caretaker.mqtt_credentials import ensure_service_credentials, sync_broker
    from caretaker.servers import LocalMosquitto

    settings = get_settings()
    with connect() as conn:
        ensure_service_credentials(conn, settings.state_dir, ingest_workers=ingest_workers)
        return sync_broker(conn, LocalMosquitto(settings.state_dir, settings.mqtt_port))


def _credential_username(site: str | None, device: str | None, guard: str | None,
                         username: str | None) -> str:
    from caretaker.mqtt_credentials import username_for

    if username and not (site or device or guard):
        return username
    if not site or (device is None) == (guard is None) or username:
        fail("give --site and one of --device/--guard (or --username alone)")
    kind, subject = ("device", device) if device is not None else ("guard", guard)
    return username_for(kind, site, str(subject))


@mqtt_app.command("create")
def mqtt_create(
    site: Annotated[str, typer.Option(help="the site of the device or guard")],
    device: Annotated[str | None, typer.Option(help="a device id")] = None,
    guard: Annotated[str | None, typer.Option(help="a guard id (their handheld)")] = None,
) -> None:
    """Create a device's or guard handheld's MQTT login; the last line is JSON with the
    password (shown once; only its hash is stored)."""
    import json

    from caretaker.db import connect
    from caretaker.errors import CaretakerError
    from caretaker.mqtt_credentials import create

    if (device is None) == (guard is None):
        fail("give one of --device or --guard")
    kind, subject = ("device", device) if device is not None else ("guard", guard)
    settings = get_settings()
    try:
        with connect() as conn:
            cred, password = create(conn, kind=kind, site_id=site, subject=str(subject))
    except CaretakerError as exc:
        fail(exc.message)
    reloaded = False if settings.mqtt_url else _sync_embedded_broker()
    target = settings.mqtt_target()
    typer.echo(f"created {kind} login {cred.username}" + (
        "; the embedded broker accepts it now" if reloaded else
        "; run `caretaker mqtt-credentials export DIR` for your broker" if settings.mqtt_url
        else ""), err=True)
    typer.echo(json.dumps({"username": cred.username, "password": password,
                           "client_id": cred.username, "host": target.host,
                           "port": target.port, "tls": target.tls,
                           "topics": cred.topics()}))


@mqtt_app.command("revoke")
def mqtt_revoke(
    site: Annotated[str | None, typer.Option(help="the site of the device or guard")] = None,
    device: Annotated[str | None, typer.Option(help="a device id")] = None,
    guard: Annotated[str | None, typer.Option(help="a guard id")] = None,
    username: Annotated[str | None, typer.Option(help="the login's user name")] = None,
) -> None:
    """Withdraw an MQTT login: the embedded broker disconnects and refuses it at once."""
    from caretaker.db import connect
    from caretaker.mqtt_credentials import revoke

    name = _credential_username(site, device, guard, username)
    settings = get_settings()
    with connect() as conn:
        if not revoke(conn, name):
            fail(f"no live MQTT login {name!r}")
    reloaded = False if settings.mqtt_url else _sync_embedded_broker()
    typer.echo(f"revoked {name}" + ("; the embedded broker refuses it now" if reloaded else
               "; export the files again for your broker" if settings.mqtt_url else ""))


@mqtt_app.command("list")
def mqtt_list(
    revoked: Annotated[bool, typer.Option("--revoked", help="include revoked logins")] = False,
) -> None:
    """MQTT logins: user name, kind, site, subject, created (never a password or hash)."""
    from caretaker.db import connect
    from caretaker.mqtt_credentials import list_credentials

    with connect() as conn:
        creds = list_credentials(conn, revoked=revoked)
    for c in creds:
        p = c.public()
        typer.echo(f"{p['username']:<48} {p['kind']:<8} {p['site'] or '-':<16} "
                   f"{p['subject']:<16} {p['created'][:19]}"
                   + (f" revoked {p['revoked'][:19]}" if p["revoked"] else ""))


@mqtt_app.command("export")
def mqtt_export(
    directory: Annotated[Path, typer.Argument(help="where to write `passwords` and `acl`")],
) -> None:
    """Write Mosquitto's password and ACL files for a broker you run (see README, Security)."""
    from caretaker.db import connect
    from caretaker.mqtt_credentials import list_credentials, write_files

    with connect() as conn:
        passwords, acl = write_files(directory, list_credentials(conn))
    typer.echo(f"wrote {passwords} and {acl}: point password_file and acl_file at them, set "
               "allow_anonymous false and use_username_as_clientid true, and send the "
               "broker SIGHUP")


@notify_app.command("test")
def notify_test(
    site: Annotated[str, typer.Option(help="the site whose receivers to try")],
    receiver: Annotated[str | None, typer.Option(help="only this receiver ('webhook': the "
                        "work-order policy's or the global webhook)")] = None,
) -> None:
    """Send one test message now to each receiver of a site; say what each one answered."""
    from caretaker.clock import system_clock
    from caretaker.db import connect
    from tickets.outbox import send_test

    with connect() as conn:
        if conn.execute("SELECT 1 FROM sites WHERE id = %s", (site,)).fetchone() is None:
            fail(f"no site {site!r}")
        results = send_test(conn, site, now=system_clock(), only=receiver)
    if not results:
        fail(f"site {site!r} has no receiver" + (f" named {receiver!r}" if receiver else "")
             + ": add them under `notifications:` in its site file")
    for name, channel, error in results:
        typer.echo(f"{name:<24} {channel:<9} " + ("delivered" if error is None
                                                    else f"FAILED: {error}"))
    if any(error is not None for _, _, error in results):
        raise typer.Exit(1)


@app.command()
def load(
    file: Annotated[Path | None, typer.Argument(help="a site configuration (YAML)")] = None,
    example: Annotated[bool, typer.Option("--example", help="load the packaged example site "
                                          "(Riverside Gardens)")] = False,
) -> None:
    """Apply a site configuration file; loading the same file again changes nothing."""
    from caretaker.clock import system_clock
    from caretaker.db import connect
    from caretaker.site_config import SiteConfigError, example_document, read_file
    from stack.app import load_site

    if (file is None) == (not example):
        fail("give a FILE or --example (one of them)")
    try:
        doc = example_document() if example else read_file(file)  # type: ignore[arg-type]
        with connect() as conn:
            result = load_site(conn, doc, now=system_clock())
    except SiteConfigError as exc:
        fail(str(exc))
    typer.echo(result.summary())


@app.command()
def up(
    external: Annotated[bool, typer.Option("--external", help="use the servers named by "
                        "CARETAKER_DATABASE_URL and CARETAKER_MQTT_URL; start none")] = False,
    detach: Annotated[bool, typer.Option("--detach", help="run in the background; return "
                      "once the API answers")] = False,
    supervised: Annotated[bool, typer.Option("--supervised", hidden=True)] = False,
) -> None:
    """Start the stack: database, broker, ingest, rules and the API, supervised."""
    from stack.up import up as run

    raise typer.Exit(run(get_settings(), external=external, detach=detach,
                         background=supervised))


@app.command()
def demo(
    external: Annotated[bool, typer.Option("--external", help="use external servers")] = False,
    detach: Annotated[bool, typer.Option("--detach", help="run in the background")] = False,
    supervised: Annotated[bool, typer.Option("--supervised", hidden=True)] = False,
    history: Annotated[str, typer.Option(help="history to backfill through the broker when "
                       "the example site is new (readings, patrols, alarms), e.g. 7d; 0: "
                       "none")] = "7d",
    scenario: Annotated[str | None, typer.Option(help="the live simulator's fault scenario "
                        "(faults, drift, outage, flapping, bad-payloads, or a YAML file)")
                        ] = None,
) -> None:
    """`up`, plus the example site with a week of history, plus the simulator publishing live
    data (with --scenario, its faults)."""
    from datetime import timedelta

    from caretaker.durations import seconds as parse_duration
    from stack.up import DemoOptions
    from stack.up import up as run

    try:
        options = DemoOptions(history=timedelta(seconds=parse_duration(history)),
                              scenario=scenario)
        if scenario is not None:
            from simulators.scenarios import load_scenario

            load_scenario(scenario)  # a bad name fails here, not in a restarting child
    except ValueError as exc:
        fail(str(exc))
    raise typer.Exit(run(get_settings(), external=external, detach=detach,
                         background=supervised, demo=True, demo_options=options))


@app.command()
def down() -> None:
    """Stop a stack started by `caretaker up` (or `demo`); leave no process behind."""
    from stack.up import down as run

    typer.echo(run(get_settings()))


@app.command()
def status() -> None:
    """What runs where (processes, ports, URLs, health), and rows arriving in the database."""
    from stack.status import status as run

    typer.echo(run(get_settings()))


@report_app.command("weekly")
def report_weekly(
    site: Annotated[str, typer.Option(help="the site's id")],
    week: Annotated[str | None, typer.Option(help="ISO week, e.g. 2026-W48 (default: the "
                    "last complete week on the site's clock)")] = None,
    lang: Annotated[str | None, typer.Option(help="zh-CN or en (default: the site's "
                    "`reports: language`)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="pdf or html")] = "pdf",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="file to write "
                      "(default: report-SITE-WEEK.pdf|html here)")] = None,
) -> None:
    """Write a site's weekly inspection report (HTML or PDF) for one week."""
    from psycopg.errors import UndefinedTable
    from tqdm import tqdm

    from caretaker.clock import system_clock
    from caretaker.db import connect
    from caretaker.errors import CaretakerError
    from reports import weekly
    from reports.i18n import LANGUAGES
    from reports.periods import Week, last_complete_week
    from reports.render import html_to_pdf
    from reports.settings import site_settings

    if fmt not in ("pdf", "html"):
        fail(f"--format must be pdf or html, not {fmt!r}")
    if lang is not None and lang not in LANGUAGES:
        fail(f"--lang must be one of {', '.join(LANGUAGES)}, not {lang!r}")
    now = system_clock()
    try:
        with connect() as conn:
            known = [r["id"] for r in conn.execute(
                "SELECT id FROM sites WHERE NOT auto_registered ORDER BY id").fetchall()]
            if site not in known:
                fail(f"unknown site {site!r}; known: {', '.join(known) or 'none'} (load a "
                     "site with `caretaker load FILE` or `caretaker load --example`)")
            where = weekly.site_of(conn, site)
            chosen = Week.parse(week) if week else last_complete_week(now, where.timezone)
            language = lang or site_settings(conn, site).language
            steps = weekly.TREND_WEEKS + 5 + (2 if fmt == "pdf" else 1)
            with tqdm(total=steps, desc=f"{site} {chosen}", unit="step", file=sys.stderr,
                      leave=False) as bar:
                def step(what: str) -> None:
                    bar.set_postfix_str(what)
                    bar.update(1)

                data = weekly.gather(conn, site, chosen, now=now, progress=step)
                bar.set_postfix_str("HTML")
                html = weekly.to_html(data, language)
                bar.update(1)
                if fmt == "pdf":
                    bar.set_postfix_str("PDF")
                    body = html_to_pdf(html)
                    bar.update(1)
                else:
                    body = html.encode()
    except UndefinedTable:
        fail("the database has no reports tables yet: run `caretaker migrate`")
    except CaretakerError as exc:
        fail(exc.message)
    target = output or Path(f"report-{site}-{chosen}.{fmt}")
    target.write_bytes(body)
    typer.echo(f"wrote {target} ({site}, {chosen}, {language}, {len(body):,} bytes)")


def _grafana_target() -> Target:
    """Where Grafana reaches the database: CARETAKER_GRAFANA_DB_ADDRESS, else the database URL."""
    from caretaker.errors import Invalid
    from dashboards.provisioning import Target

    settings = get_settings()
    try:
        return Target.parse(settings.grafana_db_address or settings.db_url())
    except Invalid as exc:
        fail(exc.message)
    raise AssertionError  # fail() exits


@dashboards_app.command("export")
def dashboards_export(
    directory: Annotated[Path, typer.Argument(help="where to write provisioning/ and "
                                                   "dashboards/")],
    dashboards_path: Annotated[str | None, typer.Option(help="where Grafana finds "
                               "DIR/dashboards (default: its absolute path here)")] = None,
) -> None:
    """Write Grafana's provisioning files and the dashboards' JSON under DIRECTORY."""
    from dashboards.provisioning import export

    target = _grafana_target()
    files = export(directory, target, dashboards_path=dashboards_path)
    typer.echo(f"wrote {len(files)} files under {directory} (datasource "
               f"{target.host}:{target.port}/{target.database})" + "".join(
                   f"\n  {f.relative_to(directory)}" for f in files))


@dashboards_app.command("push")
def dashboards_push(
    url: Annotated[str, typer.Option(help="Grafana's URL, e.g. http://grafana:3000")],
) -> None:
    """Create or update the datasource and the dashboards through Grafana's HTTP API
    (token: CARETAKER_GRAFANA_TOKEN; the reader's password: CARETAKER_GRAFANA_DB_PASSWORD)."""
    from caretaker.errors import Invalid
    from dashboards.push import push

    settings = get_settings()
    if settings.grafana_token is None:
        fail("set CARETAKER_GRAFANA_TOKEN to a Grafana service-account token")
    if settings.grafana_db_password is None:
        fail("set CARETAKER_GRAFANA_DB_PASSWORD (the reader role's password)")
    assert settings.grafana_token is not None and settings.grafana_db_password is not None
    target = _grafana_target()
    try:
        push(url, settings.grafana_token.get_secret_value(), target,
             settings.grafana_db_password.get_secret_value(), progress=typer.echo)
    except Invalid as exc:
        fail(exc.message)
    except Exception as exc:
        import httpx2

        if not isinstance(exc, httpx2.HTTPError):
            raise
        fail(f"cannot reach Grafana at {url}: {exc}")


@dashboards_app.command("reader")
def dashboards_reader() -> None:
    """Create or update the read-only role `caretaker_reader` Grafana connects as (password:
    CARETAKER_GRAFANA_DB_PASSWORD)."""
    from caretaker.db import connect
    from dashboards.reader import READER, ensure_reader

    settings = get_settings()
    if settings.grafana_db_password is None:
        fail("set CARETAKER_GRAFANA_DB_PASSWORD to the password the role should have")
    assert settings.grafana_db_password is not None
    with connect() as conn:
        ensure_reader(conn, settings.grafana_db_password.get_secret_value())
        conn.commit()
    typer.echo(f"role {READER} can log in and read the dashboards' tables")


def main() -> None:
    """Entry point of the console script."""
    try:
        app()
    except RuntimeError as exc:  # configuration problems: say what to do, no traceback
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)
    except Exception as exc:
        from psycopg import OperationalError

        if not isinstance(exc, OperationalError):
            raise
        reason = str(exc).splitlines()[0]
        typer.secho(f"error: cannot reach the database ({reason}): start the stack with "
                    "`caretaker up`, or check CARETAKER_DATABASE_URL", fg="red", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
