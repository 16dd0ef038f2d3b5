"""Replay: offline evaluation of a policy on recorded bags (scoring, report, CLI).

May import pipeline, params, recording, vla_adapter_core and training; never rclpy, never nodes/.
"""
