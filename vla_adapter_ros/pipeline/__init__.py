"""Pipeline: the logic between messages and commands, free of rclpy and of the nodes.

Conversions, the synchroniser, observation assembly, policy checks, chunk scheduling, safety,
the executor's command state machine, health counters and the status vocabulary. May import
numpy, message classes, vla_adapter_core and params; never rclpy, never nodes/.
"""
