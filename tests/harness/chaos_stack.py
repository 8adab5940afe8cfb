"""A :class:`LocalStack` with fault-injection and inspection hooks for the chaos, backlog and
disk-budget tests: a pausable relay between every Kafka client and tansu, and read-only
queries on the gateway's outbox beside the running gateway."""

from __future__ import annotations

import sqlite3
import subprocess
from dataclasses import dataclass, field
from typing import Any

from cardiogate.app.stack import LocalStack, free_port
from tests.harness.kafka_relay import TcpProxy, start_tansu_advertising


@dataclass
class ChaosStack(LocalStack):
    kafka_proxy: bool = False  # put a pausable TCP relay between every Kafka client and tansu
    proxy_port: int = field(default_factory=free_port)
    proxy: TcpProxy | None = None

    @property
    def kafka_bootstrap(self) -> str:
        """Where Kafka clients connect: the relay when there is one (tansu advertises it, too)."""
        return f"127.0.0.1:{self.proxy_port if self.kafka_proxy else self.kafka_port}"

    def _start_kafka(self) -> subprocess.Popen[bytes]:
        if not self.kafka_proxy:
            return super()._start_kafka()
        self.proxy = TcpProxy(self.proxy_port, self.kafka_port)
        return start_tansu_advertising(self.kafka_port, self.proxy_port, self.workdir / "tansu.log")

    def _need_proxy(self) -> TcpProxy:
        if self.proxy is None:
            raise RuntimeError("Kafka outages need ChaosStack(kafka_proxy=True)")
        return self.proxy

    def pause_kafka(self) -> None:
        """Make Kafka unreachable for every client (connections cut, new ones refused); tansu keeps its data."""
        self._need_proxy().pause()

    def resume_kafka(self) -> None:
        self._need_proxy().resume()

    def outbox_depth(self) -> int:
        """Records in the gateway's outbox still waiting for an ack (read beside the running gateway)."""
        return int(self.outbox_rows("SELECT COUNT(*) FROM outbox")[0][0])

    def outbox_rows(self, query: str) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on the gateway's outbox (e.g. its ``evicted`` ledger)."""
        db = sqlite3.connect(f"file:{self.outbox_path}?mode=ro", uri=True, timeout=10)
        try:
            return list(db.execute(query).fetchall())
        finally:
            db.close()

    def stop(self) -> None:
        super().stop()
        if self.proxy is not None:
            self.proxy.close()
