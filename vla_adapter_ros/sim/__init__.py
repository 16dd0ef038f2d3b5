"""Sim: the simulated robots' physics and kinematics (MuJoCo ALOHA, kinematic stand-in).

May import pipeline, params and vla_adapter_core; never rclpy, never nodes/.
"""
