"""A handler module whose import takes one second and registers nothing: load it next to the
example handlers (`--handlers examples/handlers.py --handlers bench/one_second_import.py`) to run
issue #10's SLA set "with a handler module that takes 1 s to import" — every spawned worker pays
the second, a fork server pays it once per generation."""

import time

time.sleep(1.0)
