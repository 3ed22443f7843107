"""The post-boot validator: health checks that decide whether this boot is good.

Userland layer (may use attrs and sdnotify); nothing on the early-boot path imports it. Modules:
`spec` (values), `config` (checks.toml + drop-in directories), `checks` (one probe per kind),
`runner` (concurrent execution with timeouts, retries and a deadline), `decision`, `record`
(events, last-validation.json), `journal`, `notify/`, `sdnotify`, `boot` (the adapter
to the core's blessing), `conflict` (systemd-bless-boot) and `service` (the `validate` flow; its
metrics come from `bootguard.metrics`).
"""
