"""What the hostile-input and fault suites did, for the summary printed after the tests
(and copied into the README): tests count themselves by marker; fault tests that push
traffic add the messages they sent and what their audit found lost or duplicated."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Ledger:
    messages_sent: int = 0
    lost: int = 0
    duplicated: int = 0

    def traffic(self, sent: int, lost: int, duplicated: int) -> None:
        self.messages_sent += sent
        self.lost += lost
        self.duplicated += duplicated


LEDGER = Ledger()
