"""The lab and the demo composed (``vipcast lab ...``, ``vipcast demo``): routers, vipcast
nodes, backends and a client in network namespaces, built from :mod:`vipcast.lab`'s daemon
wrappers; beside, not inside, the production composition roots of :mod:`vipcast.app`."""
