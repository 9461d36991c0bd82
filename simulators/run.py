"""`caretaker simulate`: build the run's plan from options, then pace its events onto MQTT."""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from caretaker.settings import MqttTarget
from simulators import scenarios as sc
from simulators.devices import MODELS
from simulators.fleet import fleet_from_config, generate_fleet, load_config
from simulators.stream import (
    Connect,
    Drop,
    Event,
    Plan,
    Publish,
    events,
    expected_telemetry,
    own_clients,
    status_topic,
)

log = logging.getLogger(__name__)

# What every simulated device says when a live run ends in order (Ctrl-C, SIGTERM, the end
# of --duration): offline, as a planned stop. The rules raise no offline alarm (and so open
# no ticket) for it or for the silence after it; a Last Will (a dropped connection) still
# raises one. The stored status history keeps the stop (device_status source 'planned').
PLANNED_STOP = b'{"status": "offline", "reason": "planned"}'

LIVE_INTERVAL = 10.0
BACKFILL_INTERVAL = 60.0
# Seconds between a device's readings below which millisecond timestamps would collide on
# the (device, metric, ts) key: a higher rate needs more devices.
MIN_INTERVAL = 0.002


@dataclass
class Options:
    """The options of one run (the CLI's flags)."""

    config: Path | None = None
    devices: int | None = None
    seed: int = 1
    speed: float = 1.0
    interval: float | None = None
    duration: float | None = None
    scenario: str | None = None
    backfill: float | None = None
    rate: float | None = None
    start: datetime | None = None
    guards: bool = True
    guard_rates: dict[str, float] | None = None
    window: int = 1000
    progress: bool = True
    truth: Path | None = None  # write the ground truth (simulators/truth.py) here


@dataclass
class Stats:
    """What a run published."""

    counts: Counter[str] = field(default_factory=Counter)
    drops: int = 0
    seconds: float = 0.0

    @property
    def messages(self) -> int:
        """Messages published, of every kind."""
        return sum(self.counts.values())

    def summary(self) -> str:
        """One line for the operator."""
        rate = self.messages / self.seconds if self.seconds > 0 else 0.0
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.counts.items()))
        drops = f", {self.drops} connection(s) dropped for a Last Will" if self.drops else ""
        return (f"published {self.messages} messages ({kinds}) in {self.seconds:.1f} s, "
                f"{rate:.0f}/s{drops}")


def build_plan(opts: Options, *, now: datetime) -> tuple[Plan, float]:
    """The run's plan and its speed, from the options and the current time."""
    if opts.speed <= 0:
        raise ValueError("--speed must be more than 0")
    scenario = sc.load_scenario(opts.scenario) if opts.scenario else sc.NO_FAULTS
    sites: tuple[dict[str, Any], ...] = ()
    if opts.devices is not None:
        if opts.config is not None:
            raise ValueError("give --config or --devices, not both")
        fleet = generate_fleet(opts.devices)
    else:
        config = load_config(opts.config)
        fleet = fleet_from_config(config, known_types=set(MODELS))
        if opts.guards and config.get("schedules"):
            sites = (config,)
    rates = None
    if sites:
        from simulators.guards import Rates

        try:
            rates = Rates.of(opts.guard_rates)
        except TypeError as exc:
            raise ValueError(f"--guard-rates: {exc}") from None
    if not fleet:
        raise ValueError("no devices to simulate")
    for fault in scenario.faults:
        if not any(fault.matches(d) for d in fleet):
            log.warning("scenario %s: %s fault on %s matches no device", scenario.name,
                        fault.kind, ", ".join(fault.devices))
    speed = opts.speed
    interval = opts.interval
    if opts.rate is not None:
        if opts.rate <= 0:
            raise ValueError("--rate must be more than 0")
        if opts.backfill is not None or opts.interval is not None:
            raise ValueError("--rate sets the interval itself; it cannot go with "
                             "--interval or --backfill")
        interval = len(fleet) / opts.rate
        speed = 1.0
        if interval < MIN_INTERVAL:
            raise ValueError(f"--rate {opts.rate:g} with {len(fleet)} devices means a reading "
                             f"every {interval * 1000:.2f} ms per device; use --devices "
                             f"{math.ceil(opts.rate * MIN_INTERVAL)} or more")
    now_s = now.timestamp()
    if opts.backfill is not None:
        interval = interval or BACKFILL_INTERVAL
        if opts.start is not None:
            start = opts.start.timestamp()
        else:  # whole intervals, so a rerun with the same seed covers the same instants
            start = math.floor((now_s - opts.backfill) / interval) * interval
        end: float | None = start + opts.backfill
        live, receive_time = False, False
    else:
        interval = interval or LIVE_INTERVAL
        if opts.start is not None:
            start = opts.start.timestamp()
        elif speed > 1 and opts.duration:
            # A sped-up clock starts in the past so its timestamps never pass the wall clock.
            start = now_s - opts.duration
        else:
            start = now_s
            if speed > 1:
                log.warning("--speed %g without --duration: timestamps run ahead of the wall "
                            "clock (the ingest refuses those more than a day ahead)", speed)
        end = None if opts.duration is None else start + opts.duration
        live = True
        receive_time = speed == 1 and opts.start is None
    if interval <= 0:
        raise ValueError("--interval must be more than 0")
    plan = Plan(devices=tuple(fleet), start=start, end=end, interval=interval, seed=opts.seed,
                scenario=scenario, live=live, receive_time=receive_time, sites=sites,
                guard_rates=rates)
    return plan, (math.inf if opts.backfill is not None else speed)


DeviceLogins = Callable[[list[str]], Mapping[str, MqttTarget]]


class Sink(Protocol):
    """Where events go: the Publisher, or a test's recorder."""

    def open(self, key: str, will_topic: str) -> None: ...

    def drop(self, key: str) -> None: ...

    def publish(self, topic: str, payload: bytes, *, retain: bool = False,
                client: str | None = None) -> None: ...


def execute(event: Event, sink: Sink, stats: Stats) -> None:
    """Carry out one event on the sink (a Publisher)."""
    if isinstance(event, Publish):
        sink.publish(event.topic, event.payload, retain=event.retain, client=event.client)
        stats.counts[event.kind] += 1
    elif isinstance(event, Connect):
        sink.open(event.client, event.will_topic)
    elif isinstance(event, Drop):
        sink.drop(event.client)
        stats.drops += 1


def pace(stream: Iterable[Event], sink: Sink, *, start: float, speed: float,
         stats: Stats, monotonic: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep,
         on_event: Callable[[Event], None] | None = None) -> None:
    """Execute the events when their simulated time comes (`speed` inf: all at once)."""
    wall0 = monotonic()
    behind = False
    for event in stream:
        if speed != math.inf:
            delay = wall0 + (event.time - start) / speed - monotonic()
            if delay > 0.002:  # a few ms early is fine; sleeping per message is not
                sleep(delay)
            elif delay < -5 and not behind:
                behind = True
                log.warning("running %.0f s behind the simulated clock: this process cannot "
                            "publish that fast (lower --rate/--speed, or run several)", -delay)
        execute(event, sink, stats)
        if on_event is not None:
            on_event(event)


def simulate(opts: Options, *, target: MqttTarget, now: datetime,
             device_logins: DeviceLogins | None = None) -> Stats:
    """Run a simulation against the broker `target` names; returns what was published.

    `device_logins` gives the devices that need a connection of their own (a real Last Will)
    their logins; without one a device publishes through the shared connection.
    """
    from tqdm import tqdm

    from simulators.publisher import Publisher

    plan, speed = build_plan(opts, now=now)
    if opts.truth is not None:
        write_truth(plan, opts)
    stats = Stats()
    own = sorted(own_clients(plan))
    logins = device_logins(own) if device_logins is not None and own else {}
    publisher = Publisher(target, window=opts.window, device_logins=logins)
    publisher.shared()  # fail fast when the broker cannot be reached
    log.info("simulating %d devices (%s), interval %.3g s, seed %d, scenario %s, %s",
             len(plan.devices), "generated" if opts.devices else "site config", plan.interval,
             plan.seed, plan.scenario.name,
             "backfill" if speed == math.inf else f"speed {speed:g}")
    bar = None
    if speed == math.inf:
        bar = tqdm(total=expected_telemetry(plan), unit="msg", disable=not opts.progress,
                   desc="backfill", mininterval=0.5)
    report = _Reporter(stats) if speed != math.inf else None

    def on_event(event: Event) -> None:
        if bar is not None and isinstance(event, Publish) and event.kind == "telemetry":
            bar.update(1)
        if report is not None:
            report.tick()

    wall0 = time.monotonic()
    restore = _stop_on_sigterm()
    try:
        pace(events(plan), publisher, start=plan.start, speed=speed, stats=stats,
             sleep=publisher.idle, on_event=on_event)
    except KeyboardInterrupt:
        log.info("interrupted")
    finally:
        restore()
        if bar is not None:
            bar.close()
    if plan.live:  # the simulation is over: the devices stop in order, not by a fault
        for device in plan.devices:
            publisher.publish(status_topic(device), PLANNED_STOP, retain=True,
                              client=device.key if publisher.connected(device.key) else None)
            stats.counts["status"] += 1
    publisher.close()
    stats.seconds = time.monotonic() - wall0
    return stats


def write_truth(plan: Plan, opts: Options) -> None:
    """Write what the plan injects (the ground truth) to `opts.truth`, before publishing."""
    from simulators import truth

    assert opts.truth is not None
    config = None if opts.devices is not None else load_config(opts.config)
    truth.write(opts.truth, truth.build(plan, config))
    log.info("ground truth written to %s", opts.truth)


def _stop_on_sigterm() -> Callable[[], None]:
    """Let SIGTERM (a supervisor stopping us) end the run like Ctrl-C; returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


class _Reporter:
    """Logs progress every ten seconds during a live run."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.last = time.monotonic()
        self.last_count = 0

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.last >= 10.0:
            count = self.stats.messages
            log.info("published %d messages (%.0f/s)", count,
                     (count - self.last_count) / (now - self.last))
            self.last, self.last_count = now, count


def parse_rates(text: str) -> dict[str, float]:
    """Guard fault rates from `late=0.1,missed=0.05` (ValueError when malformed)."""
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"--guard-rates: {part!r} is not name=probability")
        number = float(value)
        if not 0 <= number <= 1:
            raise ValueError(f"--guard-rates: {name} must be between 0 and 1")
        rates[name.strip()] = number
    return rates
