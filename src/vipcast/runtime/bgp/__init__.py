"""BGP runtime: asyncio drivers of vipcast.proto.bgp (sockets, timers)."""
