"""Independent units of work as Ray tasks: many-pair ``analyze``, sweeps split into groups,
and, later, ``evaluate`` of several folders.

Nothing here imports ``ray`` at module import time: only a call that runs on Ray does, so
the package (and every command without ``--ray``) works without the ``[distributed]``
extra. The parts, each a module:

- ``settings``: what the user asks (``RaySettings``: the address, the resources per task);
  plain data.
- ``cluster``: the nodes Ray reports and what one task requests of them (``TaskRequest``),
  how many tasks run at once; plain data, testable without Ray.
- ``connection``: ``connect(address)``, a context that starts, joins or reaches a Ray
  instance (an unreachable address fails in seconds, naming it) and yields its ``Cluster``.
- ``storage``: the shared-storage check every run makes before any work (each node writes
  a probe file the driver reads back).
- ``units``: ``run_units``, the one runner of independent units: one Ray task each, worker
  deaths retried once, failures reported per unit, Ctrl-C cancelling the rest.
- ``analyze``: ``analyze_on_ray``, one pair per task, the report the local run gives.
- ``sweep``: ``sweep_on_ray``, the values in groups, one ``run_sweep`` pass per group, and a
  hook to evaluate each group's outputs in the same task.
"""
