"""The development backend's side of the city tier (NATS JetStream): it owns
the streams, takes every site's events durably (acking each message only
after its own commit; a duplicate key is stored once), keeps each station's
newest status, and sends each site its rentals, signed with that site's key.

Streams: one pair per site, so that no site can cost another anything (each
replicated on 3 nodes, each with a bound and a policy):
  CITY_EVENTS_<site>  city.<site>.events, city.<site>.results: its own dedupe
                      window (another site's ids cannot shadow its events),
                      256 MiB or 7 days, 64 KiB a message; full refuses new
                      messages, so the site keeps them in its outbox (no loss)
  CITY_STATE_<site>   city.<site>.status.*, city.<site>.gbfs.>: the newest per
                      subject, at most 20,000 subjects and 32 MiB (junk evicts
                      only that site's own statuses), 1 MiB a message
  CITY_RENTALS        city.*.rentals: only the backend writes it; an hour (a
                      rental older is moot), the consumer rentals-<site>
                      redelivers until that site acks
What a site sends must also name itself: its message ids start "<site>/", and
an event's site and station are its own (DevBackend.site_stations), or the
message is refused for good and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, DiscardPolicy, StorageType

from cloud_bridge.nats_uplink import RENTALS_STREAM, token
from cloud_bridge.rental_message import seal_rental
from hardware.sim.backend import DevBackend, Malformed

log = logging.getLogger("backend.city")

EVENTS, STATE = "CITY_EVENTS", "CITY_STATE"
BATCH = 1000  # messages per fetch: one transaction, then their acks
# Each site's budgets (docs/scaling.md): bounds per site, not one shared by all.
SITE_EVENTS_BYTES, SITE_EVENT_MAX = 256 << 20, 64 << 10
SITE_STATE_BYTES, SITE_STATE_SUBJECTS, SITE_STATE_MAX = 32 << 20, 20_000, 1 << 20


def events_stream(site: str) -> str:
    return f"{EVENTS}_{token(site)}"


def state_stream(site: str) -> str:
    return f"{STATE}_{token(site)}"


# JetStream's "no suitable peers for placement": the meta leader does not yet
# know enough of the cluster's nodes to place the replicas (seen once in CI
# just after an election). The cluster settles; a retry mends it.
_NOT_PLACED_YET = 10005


async def add_stream_placed(js: JetStreamContext, **cfg: Any) -> None:
    """Make (or find) a stream, retrying while the cluster settles; a
    configuration the server refuses for any other reason is raised."""
    while True:
        try:
            await js.add_stream(**cfg)
            return
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != _NOT_PLACED_YET:
                raise  # no retry mends it
            log.info("city tier cannot place %s yet (%s); retrying", cfg["name"],
                     exc.description)
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            log.info("city tier not ready for %s (%s); retrying", cfg["name"], exc)
        await asyncio.sleep(0.3)


class _FromStream:
    """A message read from the stream by its sequence (not handed over by the
    consumer): it quacks as a consumer's message whose ack and term are no-ops."""

    def __init__(self, raw: Any) -> None:
        self.subject: str = raw.subject
        self.data: bytes = raw.data or b""
        self.headers: dict[str, str] | None = raw.headers
        self.seq: int = raw.seq

    async def ack(self) -> None:
        pass

    async def term(self) -> None:
        pass


class Handled:
    """Which of a stream's sequences the backend has handled (committed, or
    refused for good): all up to `floor`, and those above it in `above`
    (bounded: a gap that holds more than MAX_ABOVE is read at once)."""
    MAX_ABOVE = 100_000

    def __init__(self, floor: int = 0) -> None:
        self.floor = floor
        self.above: set[int] = set()

    def add(self, seq: int) -> None:
        if seq <= self.floor:
            return
        self.above.add(seq)
        while self.floor + 1 in self.above:
            self.floor += 1
            self.above.discard(self.floor)

    def missing(self, last: int, limit: int) -> list[int]:
        """Up to `limit` sequences at or below `last` not handled, oldest first."""
        out: list[int] = []
        seq = self.floor
        while seq < last and len(out) < limit:
            seq += 1
            if seq not in self.above:
                out.append(seq)
        return out


# Seconds of empty fetches before the backend looks for what its consumer did
# not hand over (a consumer a node's crash left stuck or skipping ahead: seen
# once in CI with Debian's nats-server 2.9.10, every event of a site after its
# stream leader was killed acked to the site and never delivered).
IDLE_CHECK_S = 5


class CityLink:
    def __init__(self, backend: DevBackend, urls: list[str], ca: Path, password: str,
                 sites: dict[str, str], replicas: int = 3) -> None:
        self.backend = backend
        self.urls, self.ca, self.password = urls, ca, password
        self.sites = sites  # site -> its key (rentals are signed with it)
        self.replicas = replicas
        self.nc: Client | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = {"events_acked": 0, "state_acked": 0, "rentals_sent": 0,
                      "malformed": 0, "foreign": 0, "fetch_errors": 0, "recovered": 0}
        self.handled: dict[str, Handled] = {}  # events stream -> what is done
        # Event latency (backend commit time - the event's own time), for the bench.
        self.latencies: list[float] = []

    async def start(self, consume: bool = True) -> None:
        """consume=False: the streams and consumers only (a benchmark times
        the drain of a backlog with consume())."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        self.nc = await nats.connect(
            servers=self.urls, user="backend", password=self.password, tls=ctx,
            name="city-backend", allow_reconnect=True, max_reconnect_attempts=-1,
            reconnect_time_wait=1, error_cb=self._error)
        await self._ensure_streams(self.nc.jetstream(timeout=5))
        if consume:
            self.consume()

    def consume(self) -> None:
        assert self.nc is not None
        js = self.nc.jetstream(timeout=5)
        work: list[tuple[str, Callable[[JetStreamContext], Awaitable[None]]]] = [
            ("rentals", self._send_rentals)]
        for site in self.sites:
            work += [(f"events:{site}", functools.partial(self._take_events, site)),
                     (f"state:{site}", functools.partial(self._take_state, site))]
        for name, job in work:
            self._tasks.append(asyncio.create_task(self._forever(name, job, js),
                                                   name=f"city-link:{name}"))

    async def _error(self, exc: Exception) -> None:
        log.warning("city tier: %s", str(exc) or type(exc).__name__)

    async def _ensure_streams(self, js: JetStreamContext) -> None:
        """Made (or found) once JetStream has its leaders; retried while the
        cluster settles."""
        streams: list[dict[str, Any]] = [
            {"name": RENTALS_STREAM, "subjects": ["city.*.rentals"], "max_age": 3600.0,
             "max_bytes": 64 << 20, "discard": DiscardPolicy.NEW, "duplicate_window": 120.0}]
        consumers: list[tuple[str, ConsumerConfig]] = []
        for site in self.sites:
            t = token(site)
            streams += [
                {"name": events_stream(site), "subjects": [f"city.{t}.events",
                                                           f"city.{t}.results"],
                 "max_bytes": SITE_EVENTS_BYTES, "max_age": 7 * 86400.0,
                 "max_msg_size": SITE_EVENT_MAX, "discard": DiscardPolicy.NEW,
                 "duplicate_window": 120.0},
                {"name": state_stream(site), "subjects": [f"city.{t}.status.*",
                                                          f"city.{t}.gbfs.>"],
                 "max_msgs_per_subject": 1, "max_msgs": SITE_STATE_SUBJECTS,
                 "max_bytes": SITE_STATE_BYTES, "max_msg_size": SITE_STATE_MAX}]
            consumers += [
                (events_stream(site), ConsumerConfig(
                    durable_name="backend", ack_policy=AckPolicy.EXPLICIT, ack_wait=30.0,
                    max_ack_pending=4 * BATCH)),
                (state_stream(site), ConsumerConfig(
                    durable_name="backend-state", ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                    filter_subject=f"city.{t}.status.*", ack_wait=30.0,
                    max_ack_pending=4 * BATCH))]
        async with asyncio.timeout(30):
            for cfg in streams:
                await add_stream_placed(js, num_replicas=self.replicas,
                                        storage=StorageType.FILE, **cfg)
            consumers += [(RENTALS_STREAM, ConsumerConfig(
                durable_name=f"rentals-{token(site)}", ack_policy=AckPolicy.EXPLICIT,
                filter_subject=f"city.{token(site)}.rentals", ack_wait=30.0,
                max_ack_pending=64)) for site in self.sites]
            for stream, ccfg in consumers:
                while True:
                    try:
                        await js.add_consumer(stream, ccfg)
                        break
                    except nats.js.errors.BadRequestError:
                        raise
                    except (nats.errors.Error, nats.js.errors.Error) as exc:
                        log.info("consumer %s not made yet (%s); retrying",
                                 ccfg.durable_name, exc)
                        await asyncio.sleep(0.3)

    async def _forever(self, name: str,
                       work: Callable[[JetStreamContext], Awaitable[None]],
                       js: JetStreamContext) -> None:
        while True:
            try:
                await work(js)
            except (nats.errors.Error, nats.js.errors.Error, OSError) as exc:
                self.stats["fetch_errors"] += 1
                log.warning("city link %s: %s; again in 1 s", name, str(exc) or type(exc).__name__)
                await asyncio.sleep(1.0)
            except Exception:  # a bug here must not stop the city's intake for good
                self.stats["fetch_errors"] += 1
                log.exception("city link %s failed; again in 1 s", name)
                await asyncio.sleep(1.0)

    @staticmethod
    def _site(msg: Msg) -> str:
        return msg.subject.split(".")[1]  # the subject's site: its account allows no other

    def _items(self, msgs: list[Msg]) -> dict[str, list[tuple[Msg, dict[str, Any]]]]:
        by_site: dict[str, list[tuple[Msg, dict[str, Any]]]] = {}
        for m in msgs:
            site = self._site(m)
            try:
                item = json.loads(m.data)
                if not isinstance(item, dict):
                    raise ValueError("not an object")
            except (ValueError, RecursionError):
                self.stats["malformed"] += 1
                item = {}
            msg_id = (m.headers or {}).get("Nats-Msg-Id")
            if item and msg_id is not None and not msg_id.startswith(f"{site}/"):
                # An id naming another site: refused for good (its own stream's dedupe
                # window is all it could have touched anyway).
                self.stats["foreign"] += 1
                item = {}
            by_site.setdefault(site, []).append((m, item))
        return by_site

    async def _commit_and_ack(self, msgs: list[Any], counter: str,
                              handled: Handled | None = None) -> None:
        by_site = self._items(msgs)
        batches = [(site, [it for _, it in pairs if it]) for site, pairs in by_site.items()]
        try:
            self.backend.store_sites(batches)  # the fetch in one transaction
        except (Malformed, ValueError, TypeError, OverflowError):
            # One bad item spoils the transaction: store them one by one, and
            # take the bad ones out of the stream for good.
            for site, pairs in by_site.items():
                for m, it in pairs:
                    if not it:
                        continue
                    try:
                        self.backend.store_items(site, [it])
                    except (Malformed, ValueError, TypeError, OverflowError):
                        self.stats["malformed"] += 1
                        await m.term()
        now = time.time()
        for pairs in by_site.values():
            for m, it in pairs:
                if not it:
                    await m.term()  # malformed: never redelivered, counted above
                    continue
                at = (it.get("body") or {}).get("at") if it.get("kind") == "event" else None
                if isinstance(at, (int, float)) and len(self.latencies) < 1_000_000:
                    self.latencies.append(now - at)
        for m in msgs:
            with contextlib.suppress(nats.errors.Error):
                await m.ack()  # after the commit: a crash before it redelivers (dropped by key)
        if handled is not None:
            for m in msgs:
                handled.add(m.seq if isinstance(m, _FromStream)
                            else m.metadata.sequence.stream)
        self.stats[counter] += len(msgs)

    async def _take(self, js: JetStreamContext, stream: str, durable: str,
                    counter: str, check: bool = False) -> None:
        """check: also make sure every message the stream holds is handled,
        whatever its consumer does (the events: nothing a site was told is
        stored may go missing)."""
        psub = await js.pull_subscribe_bind(durable=durable, stream=stream)
        handled = None
        if check:
            if stream not in self.handled:
                info = await js.consumer_info(stream, durable)
                self.handled[stream] = Handled(info.ack_floor.stream_seq)
            handled = self.handled[stream]
        idle = 0
        while True:
            try:
                msgs = await psub.fetch(batch=BATCH, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                idle += 1  # nothing new (or a leader being elected): ask again
                if handled is not None and idle % IDLE_CHECK_S == 0:
                    await self._read_what_was_not_handed_over(js, stream, handled, counter)
                continue
            idle = 0
            await self._commit_and_ack(msgs, counter, handled)
            if handled is not None and len(handled.above) > Handled.MAX_ABOVE:
                await self._read_what_was_not_handed_over(js, stream, handled, counter)

    async def _read_what_was_not_handed_over(self, js: JetStreamContext, stream: str,
                                             handled: Handled, counter: str) -> None:
        """The consumer has handed over nothing for a while: if the stream holds
        messages the backend has not handled, read them by sequence and store
        them (the consumer may still hand them over later: dropped by key)."""
        last = (await js.stream_info(stream)).state.last_seq
        todo = handled.missing(last, BATCH)
        if not todo:
            return
        found: list[_FromStream] = []
        for seq in todo:
            try:
                found.append(_FromStream(await js.get_msg(stream, seq)))
            except nats.js.errors.NotFoundError:
                handled.add(seq)  # aged out or deleted: nothing to store
        log.warning("city link: %s holds %d message(s) its consumer did not hand over"
                    " (seq %d..%d); read from the stream", stream, len(todo), todo[0], todo[-1])
        self.stats["recovered"] += len(found)
        await self._commit_and_ack(found, counter, handled)

    async def _take_events(self, site: str, js: JetStreamContext) -> None:
        await self._take(js, events_stream(site), "backend", "events_acked", check=True)

    async def _take_state(self, site: str, js: JetStreamContext) -> None:
        await self._take(js, state_stream(site), "backend-state", "state_acked")

    async def _send_rentals(self, js: JetStreamContext) -> None:
        """Each issued rental, once into the stream (its id as the message id,
        so a resend after a lost answer is stored once); the stream's
        consumer then redelivers it until the site acks."""
        changed = self.backend.rentals_changed
        while True:
            for site, key in self.sites.items():
                for rental in self.backend.due(site, again_after_s=None):
                    try:
                        await js.publish(f"city.{token(site)}.rentals", seal_rental(key, rental),
                                         headers={"Nats-Msg-Id": rental["rental_id"]})
                    except BaseException:
                        self.backend.not_delivered(rental["rental_id"])  # sent next time
                        raise
                    self.stats["rentals_sent"] += 1
            async with changed:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await changed.wait()

    async def report(self) -> str:
        """Each site's events stream and the backend's consumer on it, for a
        failed test's output: which layer holds what (the edge's outbox says
        sent; did the stream store it, did the consumer hand it over?)."""
        if self.nc is None or not self.nc.is_connected:
            return "city link: not connected"
        js = self.nc.jetstream(timeout=5)
        lines = [f"city link: {self.stats}"]
        for site in self.sites:
            try:
                si = await js.stream_info(events_stream(site))
                ci = await js.consumer_info(events_stream(site), "backend")
            except (nats.errors.Error, nats.js.errors.Error) as exc:
                lines.append(f"  {site}: {exc!r}")
                continue
            st, cl = si.state, si.cluster
            lines.append(
                f"  {site}: stream {st.messages} msgs, seq {st.first_seq}..{st.last_seq},"
                f" deleted {st.num_deleted}, lost {st.lost}; leader"
                f" {cl.leader if cl else '?'}, replicas"
                f" {[(r.name, r.current, r.lag) for r in (cl.replicas or [])] if cl else '?'}")
            lines.append(
                f"  {site}: consumer delivered {ci.delivered.stream_seq}, ack floor"
                f" {ci.ack_floor.stream_seq}, pending {ci.num_pending}, ack pending"
                f" {ci.num_ack_pending}, redelivered {ci.num_redelivered}, leader"
                f" {ci.cluster.leader if ci.cluster else '?'}")
        return "\n".join(lines)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self.nc is not None:
            with contextlib.suppress(nats.errors.Error, OSError):
                await self.nc.close()
