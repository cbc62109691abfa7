"""OpenStack Octavia driver (openstacksdk), tested against the real Octavia API server."""
