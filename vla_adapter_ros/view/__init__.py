"""View: the live view's Rerun logging (ROS messages or decoded arrays in, Rerun entities out).

May import pipeline and vla_adapter_core, numpy and rerun-sdk; never rclpy, never nodes/.
"""
