"""Parts of bench/fleet_bench.py: the fleet's data, the processes that sync it, the changes and the checks."""
