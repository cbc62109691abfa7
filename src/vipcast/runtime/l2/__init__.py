"""L2 runtime: membership-driven ownership and the AF_PACKET ARP/NDP responder."""
