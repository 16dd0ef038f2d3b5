"""ROS 2 adapters for VLA-Adapter policies.

Importing this package imports no rclpy: the pure modules (parameters, scheduling, safety logic,
the simulator's kinematics) are shared with tests and tools; only the node modules import rclpy.
Robot facts come from vla_adapter_core.robot_description (torch-free).
"""
