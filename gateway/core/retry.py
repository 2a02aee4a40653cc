"""The one retry policy (the delivery worker's and the webhook adapter's): exponential
backoff with equal jitter (each wait between half and all of the step), bounded attempts."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    initial_delay: float = 1.0
    max_delay: float = 300.0
    multiplier: float = 2.0
    max_attempts: int = 20

    def __post_init__(self) -> None:
        if self.initial_delay <= 0 or self.max_delay < self.initial_delay:
            raise ValueError("retry delays must satisfy 0 < initial_delay <= max_delay")
        if self.multiplier < 1:
            raise ValueError("retry multiplier must be at least 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def delay(self, attempts_made: int, jitter: float) -> float:
        """Seconds to wait after `attempts_made` failed attempts; `jitter` in [0, 1) is supplied
        by the caller so this stays pure. Half the delay is fixed, half is jittered, so that
        retries spread out but never collapse to zero."""
        if attempts_made < 1:
            raise ValueError("attempts_made starts at 1")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        # Past the step that reaches max_delay the exponent changes nothing: capping it keeps
        # a caller's thousandth attempt from overflowing a float.
        exponent = 0
        if self.multiplier > 1:
            reach = math.ceil(math.log(self.max_delay / self.initial_delay, self.multiplier))
            exponent = min(attempts_made - 1, reach)
        base = min(self.max_delay, self.initial_delay * self.multiplier**exponent)
        return base / 2 + base / 2 * jitter

    def exhausted(self, attempts_made: int) -> bool:
        return attempts_made >= self.max_attempts
