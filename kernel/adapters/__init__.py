"""Adapters of the kernel, shared by several packages: HTTP to tenant-configured URLs through
the egress guard (``egress_http``), and the AWS clients' reply failures (``aws``)."""
