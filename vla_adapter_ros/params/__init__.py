"""Params: every node's parameter table and its `<Thing>Config` dataclass.

One row per parameter (default, range, description); the configs are validated on build.
May import pipeline and vla_adapter_core; never rclpy (rcl_interfaces only inside the
declare helper), never nodes/.
"""
