"""ROS 2 adapters for VLA-Adapter policies.

Importing this package imports no rclpy: the pure modules (robot_model, scheduling, safety
logic) are shared with training and tests; only the node modules import rclpy.
"""
