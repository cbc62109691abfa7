"""External load balancer drivers (HAProxy appliance, OpenStack Octavia, F5 AS3) behind one port.

Each driver turns the pure desired load balancer of :mod:`vipcast.core.external` into calls on
its product, in the cloud-provider shape (get, ensure, update members, delete); expected
failures come back as values with a retry-after, never as exceptions.
"""
