"""Pure domain logic: no I/O, no asyncio. Given inputs and a clock value it returns decisions."""
