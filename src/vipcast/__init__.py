"""vipcast: LoadBalancer IPs for on-premises Kubernetes."""

__version__ = "0.1.0"
