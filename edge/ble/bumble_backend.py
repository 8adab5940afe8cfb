"""A bleak backend over a bumble host, so the gateway's code is the same on every radio.

In production the gateway uses bleak's BlueZ backend. For tests, the demo and USB HCI
dongles it passes ``backend=BumbleClient`` / ``BumbleScanner`` plus a bumble transport
spec (``tcp-client:127.0.0.1:18900`` for the simulator's virtual radio, ``usb:0`` for a
dongle). bleak's public API (BleakScanner, BleakClient, start_notify, ...) is unchanged.

One bumble host is opened per transport and shared by scanners and clients in the
process, as a BlueZ adapter is. Connection attempts are serialised (a controller runs
one LE connection procedure at a time) and scanning pauses while one is in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError
from bumble import core as bumble_core
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt import Characteristic
from bumble.gatt_client import CharacteristicProxy, DescriptorProxy, ServiceProxy
from bumble.hci import Address
from bumble.transport import open_transport

from cardiogate.core.logs import get_logger
from cardiogate.edge.ble.bumble_strings import defer_packet_strings

log = get_logger(__name__)

DEFAULT_MTU = 247
DISCONNECT_TIMEOUT_S = 3.0
_T = TypeVar("_T")
_PROPERTY_NAMES: list[tuple[int, str]] = [
    (Characteristic.Properties.BROADCAST, "broadcast"),
    (Characteristic.Properties.READ, "read"),
    (Characteristic.Properties.WRITE_WITHOUT_RESPONSE, "write-without-response"),
    (Characteristic.Properties.WRITE, "write"),
    (Characteristic.Properties.NOTIFY, "notify"),
    (Characteristic.Properties.INDICATE, "indicate"),
    (Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES, "authenticated-signed-writes"),
    (Characteristic.Properties.EXTENDED_PROPERTIES, "extended-properties"),
]
_AD_UUID_TYPES = (
    bumble_core.AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    bumble_core.AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    bumble_core.AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    bumble_core.AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
)


@dataclass(frozen=True, slots=True)
class _CachedCharacteristic:
    handle: int
    end_group_handle: int
    uuid: bumble_core.UUID
    properties: int
    descriptors: tuple[tuple[int, bumble_core.UUID], ...]


@dataclass(frozen=True, slots=True)
class _CachedService:
    handle: int
    end_group_handle: int
    uuid: bumble_core.UUID
    characteristics: tuple[_CachedCharacteristic, ...]


# Service discovery costs dozens of ATT round trips; a device's GATT database does not change between
# reconnects unless its firmware does, so the layout is remembered per address (as BlueZ does) and
# forgotten on any GATT error.
_GATT_CACHE: dict[str, tuple[_CachedService, ...]] = {}


def forget_services(address: str) -> None:
    _GATT_CACHE.pop(address.upper(), None)


def _abandon(task: asyncio.Future[Any]) -> None:
    """Cancel a task we will not wait for, and make sure its outcome is never reported as unretrieved."""
    task.cancel()
    task.add_done_callback(lambda t: None if t.cancelled() else t.exception())


def bleak_uuid(u: bumble_core.UUID) -> str:
    """bumble UUID -> bleak's normalised lower-case 128-bit string."""
    return str(uuid.UUID(bytes=bytes(reversed(u.to_bytes(force_128=True)))))


def _advertised_uuids(adv: Advertisement) -> list[str]:
    found: list[str] = []
    for ad_type in _AD_UUID_TYPES:
        for item in adv.data.get_all(ad_type):
            items = item if isinstance(item, list) else [item]
            found.extend(bleak_uuid(u) for u in items if isinstance(u, bumble_core.UUID))
    return found


class BumbleRadio:
    """One bumble host on one HCI transport, shared within the process."""

    _radios: ClassVar[dict[str, BumbleRadio]] = {}
    _open_lock: ClassVar[asyncio.Lock | None] = None

    def __init__(self, spec: str, device: Device, transport: Any) -> None:
        self.spec = spec
        self.device = device
        self._transport = transport
        self._scanners = 0
        self._scanning = False
        self._connecting = False
        self.connect_lock = asyncio.Lock()

    @classmethod
    async def get(cls, spec: str) -> BumbleRadio:
        """The radio for ``spec``, opened and powered on at first use."""
        if cls._open_lock is None:
            cls._open_lock = asyncio.Lock()
        async with cls._open_lock:
            radio = cls._radios.get(spec)
            if radio is not None and radio.lost:  # the controller went away (USB unplugged, socket closed)
                log.warning("bumble radio lost; reopening", transport=spec)
                del cls._radios[spec]
                with contextlib.suppress(Exception):
                    await radio._transport.close()
                radio = None
            if radio is None:
                defer_packet_strings()
                transport = await open_transport(spec)
                device = Device.with_hci("cardiogate-gateway", Address("F0:F0:F0:F0:F0:F0"),
                                         transport.source, transport.sink)
                await device.power_on()
                radio = cls(spec, device, transport)
                cls._radios[spec] = radio
            return radio

    @property
    def lost(self) -> bool:
        """Whether the HCI transport has terminated (every command on it would only time out)."""
        terminated = getattr(getattr(self._transport, "source", None), "terminated", None)
        return isinstance(terminated, asyncio.Future) and terminated.done()

    @classmethod
    async def close_all(cls) -> None:
        """Close every radio (tests and shutdown)."""
        radios, cls._radios = list(cls._radios.values()), {}
        for radio in radios:
            with contextlib.suppress(Exception):
                await radio._transport.close()
        cls._open_lock = None

    async def acquire_scanning(self) -> None:
        self._scanners += 1
        await self._sync_scanning()

    async def release_scanning(self) -> None:
        self._scanners = max(0, self._scanners - 1)
        await self._sync_scanning()

    async def _sync_scanning(self) -> None:
        want = self._scanners > 0 and not self._connecting
        if want and not self._scanning:
            await self.device.start_scanning(filter_duplicates=False)
            self._scanning = True
        elif not want and self._scanning:
            await self.device.stop_scanning()
            self._scanning = False

    async def connect(self, address: str, timeout: float) -> Connection:  # noqa: ASYNC109 (bumble's own timeout)
        """Connect to ``address``, pausing scanning for the connection procedure."""
        async with self.connect_lock:
            self._connecting = True
            await self._sync_scanning()
            try:
                return await self.device.connect(Address(address), timeout=timeout)
            finally:
                self._connecting = False
                await self._sync_scanning()


def _spec(kwargs: dict[str, Any]) -> str:
    spec = kwargs.get("bumble_transport")
    if not isinstance(spec, str) or not spec:
        raise BleakError("the bumble backend needs bumble_transport='<transport spec>'")
    return spec


class BumbleScanner(BaseBleakScanner):
    """bleak scanner backend over a shared bumble radio."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._spec = _spec(kwargs)
        self._radio: BumbleRadio | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        self._radio = await BumbleRadio.get(self._spec)
        self._radio.device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        await self._radio.acquire_scanning()

    async def stop(self) -> None:
        if self._radio is None:
            return
        self._radio.device.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        await self._radio.release_scanning()
        self._radio = None

    def _on_advertisement(self, adv: Advertisement) -> None:
        uuids = _advertised_uuids(adv)
        if not self.is_allowed_uuid(uuids):
            return
        names = adv.data.get_all(bumble_core.AdvertisingData.COMPLETE_LOCAL_NAME) or adv.data.get_all(
            bumble_core.AdvertisingData.SHORTENED_LOCAL_NAME)
        name = str(names[0]) if names else None
        address = str(adv.address).removesuffix("/P")
        tx = None if adv.tx_power == Advertisement.TX_POWER_NOT_AVAILABLE else adv.tx_power
        data = AdvertisementData(
            local_name=name, manufacturer_data={}, service_data={}, service_uuids=uuids,
            tx_power=tx, rssi=adv.rssi, platform_data=(adv,),
        )
        device = self.create_or_update_device(address, address, name, adv.address, data)
        self.call_detection_callbacks(device, data)


class BumbleClient(BaseBleakClient):
    """bleak client backend over a shared bumble radio."""

    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=kwargs.get("disconnected_callback"),
                         timeout=kwargs.get("timeout", 10.0))
        self._spec = _spec(kwargs)
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._proxies: dict[int, CharacteristicProxy[bytes]] = {}
        self._subscribers: dict[int, Callable[[bytes], None]] = {}
        self.discovery_cached = False
        self._lost = asyncio.Event()

    @property
    def name(self) -> str:
        return self.address

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else 23

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        radio = await BumbleRadio.get(self._spec)
        timeout = float(kwargs.get("timeout", self._timeout))
        try:
            connection = await radio.connect(self.address, timeout)
        except (TimeoutError, bumble_core.BaseBumbleError) as exc:
            raise BleakDeviceNotFoundError(self.address, f"connect to {self.address} failed: {exc}") from exc
        self._connection = connection
        self._lost = asyncio.Event()
        connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)
        try:
            async with asyncio.timeout(timeout):
                self._peer = Peer(connection)
                await self._peer.request_mtu(DEFAULT_MTU)
                self.services = await self._discover(self._peer)
        except BaseException:
            await self.disconnect()
            raise

    async def _discover(self, peer: Peer) -> BleakGATTServiceCollection:
        cached = _GATT_CACHE.get(self.address.upper())
        if cached is None:
            cached = await self._discover_remote(peer)
            _GATT_CACHE[self.address.upper()] = cached
        else:
            self.discovery_cached = True
        collection = BleakGATTServiceCollection()
        client = peer.gatt_client
        for svc in cached:
            proxy_svc = ServiceProxy(client, svc.handle, svc.end_group_handle, svc.uuid)  # type: ignore[no-untyped-call]
            service = BleakGATTService(proxy_svc, svc.handle, bleak_uuid(svc.uuid))
            collection.add_service(service)
            for c in svc.characteristics:
                proxy: CharacteristicProxy[bytes] = CharacteristicProxy(client, c.handle, c.end_group_handle, c.uuid,
                                                                        c.properties)
                proxy.descriptors = [DescriptorProxy(client, h, t) for h, t in c.descriptors]
                proxy.descriptors_discovered = True
                props = [name for bit, name in _PROPERTY_NAMES if c.properties & bit]
                char = BleakGATTCharacteristic(proxy, c.handle, bleak_uuid(c.uuid), props,  # type: ignore[arg-type]
                                               lambda: self.mtu_size - 3, service)
                collection.add_characteristic(char)
                self._proxies[c.handle] = proxy
                for d in proxy.descriptors:
                    collection.add_descriptor(BleakGATTDescriptor(d, d.handle, bleak_uuid(d.type), char))
        return collection

    @staticmethod
    async def _discover_remote(peer: Peer) -> tuple[_CachedService, ...]:
        out = []
        for svc in await peer.discover_services():
            chars = []
            for c in await peer.discover_characteristics(service=svc):
                descs = await peer.discover_descriptors(c)
                chars.append(_CachedCharacteristic(c.handle, c.end_group_handle, c.uuid, int(c.properties),
                                                   tuple((d.handle, d.type) for d in descs)))
            out.append(_CachedService(svc.handle, svc.end_group_handle, svc.uuid, tuple(chars)))
        return tuple(out)

    async def _op(self, awaitable: Awaitable[_T]) -> _T:
        """Run a GATT operation, failing at once if the link drops.

        bumble waits for ever for the answer to a request sent on a link that is gone, and its
        request does not always end when cancelled: such a task is cancelled and abandoned,
        never awaited, so neither a lost link nor a caller's timeout can hang the session.
        """
        task = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait([task, lost], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            _abandon(task)
            raise
        finally:
            lost.cancel()
        if not task.done():
            _abandon(task)
            raise BleakError(f"{self.address}: link lost during a GATT operation")
        if task.cancelled():  # bumble cancelled its own request (the link went away), not our caller
            raise BleakError(f"{self.address}: GATT operation cancelled by the stack")
        return task.result()

    def _on_disconnection(self, reason: int) -> None:
        self._lost.set()
        self._connection = None
        self._peer = None
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        connection, self._connection = self._connection, None
        self._peer = None
        if connection is not None:
            connection.remove_listener(Connection.EVENT_DISCONNECTION, self._on_disconnection)
            task = asyncio.ensure_future(connection.disconnect())
            done, _ = await asyncio.wait([task], timeout=DISCONNECT_TIMEOUT_S)  # a link already gone never answers
            if not done:
                _abandon(task)
            elif not task.cancelled():
                task.exception()  # retrieved: a failed disconnect of a dead link is not an error

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("pairing over the bumble backend is not supported")

    async def unpair(self) -> None:
        raise NotImplementedError("pairing over the bumble backend is not supported")

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError("Not connected")
        return self._peer

    @contextlib.contextmanager
    def _gatt_errors(self) -> Iterator[None]:
        """A GATT error may mean a stale cached layout: forget it so the next connect rediscovers."""
        try:
            yield
        except (bumble_core.BaseBumbleError, KeyError):
            forget_services(self.address)
            raise

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, **kwargs: Any) -> bytearray:
        with self._gatt_errors():
            return bytearray(await self._op(self._require_peer().read_value(characteristic.handle)))

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, **kwargs: Any) -> bytearray:
        return bytearray(await self._op(self._require_peer().read_value(descriptor.handle)))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: SizedBuffer,
                              response: bool) -> None:
        with self._gatt_errors():
            await self._op(self._require_peer().write_value(characteristic.handle, bytes(data), with_response=response))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        await self._op(self._require_peer().write_value(descriptor.handle, bytes(data), with_response=True))

    async def start_notify(self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback,
                           **kwargs: Any) -> None:
        peer = self._require_peer()
        proxy = self._proxies[characteristic.handle]

        def deliver(value: bytes) -> None:
            callback(bytearray(value))

        self._subscribers[characteristic.handle] = deliver
        with self._gatt_errors():
            await self._op(peer.subscribe(proxy, deliver))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        peer = self._require_peer()
        deliver = self._subscribers.pop(characteristic.handle, None)
        await self._op(peer.unsubscribe(self._proxies[characteristic.handle], deliver))
