"""BFD runtime: asyncio drivers of vipcast.proto.bfd (sockets, timers)."""
